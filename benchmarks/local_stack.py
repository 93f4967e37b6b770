"""Through the local stack, as a user would: `profilevault local up --no-demo`, register a source, drop a CSV of N
rows into the landing bucket, wait for the ingestion, then a full unification run over what was stored; then drop
an incremental file that changes --changed of those rows and time the incremental run that follows its ingestion.

    .venv/bin/python -m benchmarks.local_stack --rows 10000 [--changed 100]

Wall-clock seconds (moto, the handlers and this client share the machine). Results print as one JSON line.
"""
import argparse
import io
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

from benchmarks.ingest import FIELDS, GeneratedCsv

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(state: dict, method: str, path: str, body=None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(state["api_url"] + path, data=data, method=method, headers={
        "Authorization": "Bearer " + state["tokens"]["admin"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read() or b"null")


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise TimeoutError(f"{what} did not finish within {timeout} s")


def runs(ddb, state: dict) -> list[dict]:
    """Every unification run the control table holds (the API reads one run at a time)."""
    items = ddb.scan(TableName=state["tables"]["ControlTable"], FilterExpression="begins_with(sk, :run)",
                     ExpressionAttributeValues={":run": {"S": "RUN#"}})["Items"]
    return [json.loads(i["doc"]["S"]) for i in items]


def run(rows: int, changed: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="pv-bench-"))
    state_file = workdir / "local.json"
    started = time.monotonic()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/profilevault"), "local", "up", "--no-demo", "--api-port",
                             str(free_port()), "--aws-port", str(free_port()), "--state-file", str(state_file)],
                            cwd=ROOT, stdout=open(workdir / "stack.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(state_file.exists, 120, "local up")
        startup = time.monotonic() - started
        state = json.loads(state_file.read_text())
        call(state, "PUT", "/v1/sources/bench", {"format": "csv", "primary_key": "id", "fields": FIELDS})
        s3 = boto3.client("s3", endpoint_url=state["aws_endpoint_url"], region_name=state["region"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        body = io.BufferedReader(GeneratedCsv(rows)).read()
        dropped = time.monotonic()
        s3.put_object(Bucket=state["landing_bucket"], Key="sources/bench/full/bench.csv", Body=body)

        def ingested():
            items = call(state, "GET", "/v1/ingestions?source=bench")["items"]
            return items if items and items[0]["status"] in ("completed", "failed") else None

        [ingestion] = wait_for(ingested, 3600, "ingestion")
        ingest_seconds = time.monotonic() - dropped
        run_started = time.monotonic()
        run_id = call(state, "POST", "/v1/unification/runs")["id"]
        finished = wait_for(lambda: (r := call(state, "GET", f"/v1/unification/runs/{run_id}"))["status"]
                            in ("completed", "failed") and r, 3600, "unification run")
        result = {"benchmark": "local_stack", "rows": rows, "startup_seconds": round(startup, 1),
                  "ingest_seconds": round(ingest_seconds, 1), "ingest_rows_per_s": round(rows / ingest_seconds),
                  "ingestion_status": ingestion["status"], "rows_stored": ingestion["rows_stored"],
                  "unification_seconds": round(time.monotonic() - run_started, 1),
                  "unification_run_ms": finished.get("duration_ms"), "profiles": finished["counts"]["profiles"]}

        ddb = boto3.client("dynamodb", endpoint_url=state["aws_endpoint_url"], region_name=state["region"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        wait_for(lambda: all(r["status"] not in ("queued", "running") for r in runs(ddb, state)), 3600, "runs")
        before = {r["id"] for r in runs(ddb, state)}
        dropped = time.monotonic()
        s3.put_object(Bucket=state["landing_bucket"], Key="sources/bench/incremental/2026/11/29/12/upserts/delta.csv",
                      Body=io.BufferedReader(GeneratedCsv(changed, seed=8)).read())  # same IDs, other values

        def incremental_done():
            done = [r for r in runs(ddb, state) if r["id"] not in before and r.get("trigger") == "ingestion"
                    and r["status"] == "completed"]
            return done[0] if done else None

        delta = wait_for(incremental_done, 3600, "incremental run")
        result.update(changed_rows=changed, drop_to_incremental_run_done_seconds=round(time.monotonic() - dropped, 1),
                      incremental_run_ms=delta["duration_ms"], incremental_mode=delta["mode"],
                      incremental_records_read=delta["counts"]["records_read"],
                      incremental_profiles_written=delta["counts"]["profiles_written"])
        return result
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100, help="rows the incremental file changes")
    args = parser.parse_args()
    print(json.dumps(run(args.rows, args.changed)), flush=True)


if __name__ == "__main__":
    main()
