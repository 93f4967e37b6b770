"""Load the demo sources the way a user would: register each source through the HTTP API, drop its files into
the landing bucket, then wait (best effort) for the ingestions to finish."""
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)


def http_json(method: str, url: str, token: str | None = None, body: dict | None = None,
              timeout: float = 30) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - our http URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local URL we built
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


def load_demo(demo_dir: Path, *, api_url: str, admin_token: str, s3, landing_bucket: str,
              timeout_seconds: float = 60) -> dict[str, int]:
    """Register every demo/sources/<name>.json and drop demo/drops/<name>/* as full snapshots.
    Returns the number of files dropped per source."""
    dropped: dict[str, int] = {}
    for spec_file in sorted((demo_dir / "sources").glob("*.json")):
        name = spec_file.stem
        status, _ = http_json("PUT", f"{api_url}/v1/sources/{name}", admin_token, json.loads(spec_file.read_text()))
        if status not in (200, 201):
            log.warning("demo source %s: PUT /v1/sources/%s answered %d; its files are dropped anyway", name, name,
                        status)
        files = sorted(p for p in (demo_dir / "drops" / name).glob("*") if p.is_file())
        for file in files:
            s3.put_object(Bucket=landing_bucket, Key=f"sources/{name}/full/{file.name}", Body=file.read_bytes())
        dropped[name] = len(files)
        log.info("demo source %s: %d file(s) dropped", name, len(files))
    _wait_for_ingestions(api_url, admin_token, dropped, timeout_seconds)
    return dropped


def _wait_for_ingestions(api_url: str, token: str, dropped: dict[str, int], timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    pending = {name: count for name, count in dropped.items() if count}
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            status, body = http_json("GET", f"{api_url}/v1/ingestions?source={name}", token)
            if status != 200 or not isinstance(body, dict):
                # The route may not exist yet or the source was not registered: don't hold up startup.
                log.warning("GET /v1/ingestions answered %d; not waiting for the demo ingestions", status)
                return
            items = body.get("items", []) if isinstance(body, dict) else []
            done = [i for i in items if i.get("status") in ("completed", "failed")]
            if len(done) >= pending[name]:
                failed = sum(1 for i in done if i.get("status") == "failed")
                log.info("demo source %s: %d ingestion(s) finished, %d failed", name, len(done), failed)
                pending.pop(name)
        if pending:
            time.sleep(0.5)
    if pending:
        log.warning("demo ingestions still running after %ds: %s", timeout_seconds, ", ".join(sorted(pending)))
