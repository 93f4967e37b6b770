"""Audit trail benchmarks: AWS calls per append and per verification, and retries under contention.

    .venv/bin/python -m benchmarks.audit calls --entries 1000 10000   # calls per append, verify and a listing page
    .venv/bin/python -m benchmarks.audit contention --threads 1 4 12 --appends 10   # attempts per append

Everything runs against template.yaml deployed in moto (in-process, conditional writes made atomic as in DynamoDB).
Call counts are what matters: they are what DynamoDB bills and what latency follows in AWS. Seconds are moto's and
only show the shape (moto's query scans the whole table per page). Results print as JSON lines.
"""
import argparse
import json
import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-central-1"


def _deployed_deps():
    """template.yaml in moto (the caller holds mock_aws) and Deps whose clients count their calls."""
    from profilevault.aws import make_clients
    from profilevault.config import get_settings
    from profilevault.wiring import build_deps
    from profilevault_local.ddb_atomic import make_conditional_writes_atomic
    from profilevault_local.stack import deploy

    make_conditional_writes_atomic()
    deployed = deploy(ROOT / "template.yaml", REGION)
    for spec in deployed.functions.values():
        os.environ.update(spec.env)
    get_settings.cache_clear()
    clients = make_clients()
    calls: Counter = Counter()
    for client in (clients.s3, clients.dynamodb, clients.kms):
        client.meta.events.register("before-call", lambda model, **_: calls.update(
            [f"{model.service_model.service_name}:{model.name}"]))
    return build_deps(get_settings(), clients), calls


def _env() -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)


def _measure(calls: Counter, work) -> tuple[dict, float]:
    calls.clear()
    started = time.perf_counter()
    work()
    return dict(sorted(calls.items())), round(time.perf_counter() - started, 3)


def aws_calls(entries: int) -> dict:
    from moto import mock_aws

    from profilevault.audit import listing, trail, verification
    from profilevault.audit.trail import Actor

    _env()
    with mock_aws():
        deps, calls = _deployed_deps()
        staff, system = Actor(sub="bench-admin", role="admin"), Actor.system("bench")
        trail.record(deps, "profile.read", staff, {"profile_id": "p_0"})  # the keyring and pseudonym exist now
        started = time.perf_counter()
        for n in range(entries - 3):
            trail.record(deps, "unification.completed", system, {"run_id": f"run_{n}"}, {"records": n})
        fill_seconds = time.perf_counter() - started
        staff_append, _ = _measure(calls, lambda: trail.record(deps, "profile.read", staff, {"profile_id": "p_1"}))
        system_append, _ = _measure(calls, lambda: trail.record(deps, "refresh.queued", system, {"run_id": "r"}))
        verify_calls, verify_seconds = _measure(calls, lambda: verification.verify(deps))
        page_calls, page_seconds = _measure(calls, lambda: listing.list_entries(deps, limit=100))
        anchor_calls, _ = _measure(calls, lambda: verification.anchor_head(deps))
        report = verification.verify(deps)
    return {"benchmark": "audit_calls", "entries": report.entries, "valid": report.valid,
            "append_staff_calls": staff_append, "append_system_calls": system_append,
            "moto_seconds_per_append": round(fill_seconds / max(entries - 3, 1), 4),
            "verify_calls": verify_calls, "verify_seconds_in_moto": verify_seconds,
            "list_page_of_100_calls": page_calls, "list_page_seconds_in_moto": page_seconds,
            "anchor_calls": anchor_calls}


def contention(threads: int, appends: int) -> dict:
    from moto import mock_aws

    from profilevault.audit import trail, verification
    from profilevault.audit.trail import Actor

    _env()
    with mock_aws():
        deps, _ = _deployed_deps()
        attempts: list[int] = []
        errors: list[str] = []
        real_put = deps.audit.put_entry
        local = threading.local()

        def counting_put(entry: dict) -> bool:
            local.tries = getattr(local, "tries", 0) + 1
            stored = real_put(entry)
            if stored:
                attempts.append(local.tries)
                local.tries = 0
            return stored

        deps.audit.put_entry = counting_put

        def work(worker: int) -> None:
            for n in range(appends):
                try:
                    trail.record(deps, "unification.completed", Actor.system(f"w-{worker}"), {"run_id": f"{n}"})
                except Exception as error:  # noqa: BLE001 (counted and reported)
                    errors.append(type(error).__name__)

        pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
        started = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        seconds = time.perf_counter() - started
        report = verification.verify(deps)
    return {"benchmark": "audit_contention", "threads": threads, "appends": threads * appends,
            "stored": len(attempts), "failed": Counter(errors), "valid": report.valid,
            "gapless": report.head is not None and report.head.seq == report.entries == len(attempts),
            "attempts_mean": round(statistics.mean(attempts), 2), "attempts_max": max(attempts),
            "attempts_p90": sorted(attempts)[int(len(attempts) * 0.9) - 1],
            "appends_per_second_in_moto": round(len(attempts) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("calls", "contention"))
    parser.add_argument("--entries", type=int, nargs="+", default=[1000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 12])
    parser.add_argument("--appends", type=int, default=10, help="contention: appends per thread")
    args = parser.parse_args()
    if args.what == "calls":
        for entries in args.entries:
            print(json.dumps(aws_calls(entries)), flush=True)
    else:
        for threads in args.threads:
            print(json.dumps(contention(threads, args.appends)), flush=True)


if __name__ == "__main__":
    main()
