"""Erasure benchmarks: AWS calls of locate and of a whole erasure by tenant size, and an erasure end to end through the
local stack.

    .venv/bin/python -m benchmarks.erasure calls --profiles 1000 10000 100000
    .venv/bin/python -m benchmarks.erasure local --runs 3 --api-port 18087 --aws-port 14567

`calls` builds the template in moto (in-process), stores N people (one crm record each, one profile each; the person
to erase has a crm and a shop record in one profile) through the real write path and an incremental unification run,
then runs locate, the worker's locate, every erasure step and the recompute run, counting each AWS call with a
botocore event hook (a fresh keyring each time, so KMS calls include unwrapping the tenant keys). Nothing in the
erasure scans, so the counts should not grow with N. The recompute run's DynamoDB calls do not either, but it opens
and re-clusters the whole sealed unification state in memory (its time and the state object grow with the tenant):
that is reported as `recompute_seconds` and `state_bytes`.

`local` starts `profilevault local up` with the demo data on the given ports, files erasures of demo people over
HTTP and measures the time from the POST to `completed` (the requests queue, the worker, the state machine with
moto's interpreter, the jobs queue and the recompute run, polled every 0.1 s). Results print as JSON lines.
"""
import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-central-1"
CRM = {"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone"}
SHOP = {"mail": "email", "given": "first_name", "family": "last_name"}
PERSON = {"email": "erase.me@example.org", "first_name": "Erika", "last_name": "Loeschmann", "phone": "+4930555000"}
WRITE_BATCH = 500


def _aws_env() -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)


class Calls:
    """Counts every AWS call of a set of clients (botocore's before-call event), by service and operation."""

    def __init__(self, clients):
        self.counts: Counter = Counter()
        for client in (clients.s3, clients.dynamodb, clients.sqs, clients.kms, clients.events, clients.stepfunctions):
            client.meta.events.register("before-call", self._count)

    def _count(self, model, **_):
        self.counts[f"{model.service_model.service_name}:{model.name}"] += 1

    def take(self) -> dict:
        by_service = Counter()
        for name, n in self.counts.items():
            by_service[name.split(":")[0]] += n
        out = {"dynamodb": by_service["dynamodb"], "kms": by_service["kms"], "s3": by_service["s3"],
               "sqs": by_service["sqs"], "events": by_service["events"],
               "states": by_service["stepfunctions"], "detail": dict(sorted(self.counts.items()))}
        self.counts.clear()
        return out


def _person(i: int) -> dict:
    first, last = ("Anna", "Ben", "Clara", "David", "Eva")[i % 5], f"Family{i}"
    return {"email": f"{first.lower()}.{i}@example.org", "first_name": first, "last_name": last,
            "phone": f"+49151{10_000_000 + i}"}


def _seed(deps, profiles: int) -> None:
    """N people through the real write path (sealed records, keys, blind indexes, the change journal), then one
    incremental unification run from an empty saved state: it reads exactly the journaled records by key."""
    from profilevault import jobs
    from profilevault.domain.sources import SourceSpec
    from profilevault.keys import vault
    from profilevault.profiles import rulesets, runs
    from profilevault.profiles import state as unification_state

    for name, fields, importance in (("crm", CRM, 1), ("shop", SHOP, 2)):
        deps.sources.put(name, SourceSpec(format="csv", primary_key="id", fields=fields, importance=importance),
                         deps.now())
    now = deps.now()
    people = [("crm", "p-0", PERSON), ("shop", "o-0", PERSON)] + [("crm", f"c{i}", _person(i))
                                                                 for i in range(1, profiles)]
    for source in ("crm", "shop"):
        rows = [(rid, attrs) for s, rid, attrs in people if s == source]
        for start in range(0, len(rows), WRITE_BATCH):
            sealed = []
            for rid, attrs in rows[start:start + WRITE_BATCH]:
                token = vault.record_token(deps.keyring, source, rid)
                sealed.append(vault.seal_record(deps.keyring, deps.records.address(source, token), token, rid,
                                                attrs, [], "ing_seed", now))
            deps.records.put_sealed(source, sealed)
    sources = deps.sources.list()
    digest = unification_state.ruleset_digest(deps, rulesets.get_ruleset(deps))
    unification_state.save(deps, unification_state.State(digest, unification_state.registered(sources), {}, {}, {}),
                           sweep=False)
    run = jobs.queue_job(deps, "unify", "benchmark")
    run = runs.run_unification(deps, run.id)
    assert run.mode == "incremental" and run.counts.profiles == profiles, run.counts


def calls(profiles: int) -> dict:
    from moto import mock_aws

    from profilevault.audit.trail import Actor
    from profilevault.aws import make_clients
    from profilevault.config import get_settings
    from profilevault.privacy import erasure, fulfil, requests
    from profilevault.privacy.erasure import StepEvent
    from profilevault.privacy.locate import locate_subject
    from profilevault.privacy.requests import NewPrivacyRequest
    from profilevault.profiles import runs
    from profilevault.wiring import build_deps
    from profilevault_local.stack import deploy

    _aws_env()
    with mock_aws():
        deployed = deploy(ROOT / "template.yaml", REGION)
        for spec in deployed.functions.values():
            os.environ.update(spec.env)
        get_settings.cache_clear()
        started = time.perf_counter()
        _seed(build_deps(get_settings(), make_clients()), profiles)
        seed_seconds = time.perf_counter() - started

        def fresh():  # a new container: its own clients and a cold keyring
            clients = make_clients()
            return build_deps(get_settings(), clients), Calls(clients)

        deps, counter = fresh()
        subject = requests.Subject(email=PERSON["email"]).normalised()
        located = locate_subject(deps, subject)
        assert len(located.records) == 2 and len(located.profile_ids) == 1
        locate_calls = counter.take()

        deps, counter = fresh()
        request = requests.create_request(deps, NewPrivacyRequest.model_validate({
            "type": "erasure", "subject": {"email": PERSON["email"]},
            "verification": {"method": "benchmark", "reference": "-"}}), Actor(sub="benchmark", role="privacy_officer"))
        counter.take()  # filing the request is the API's, not the erasure's
        # The worker's turn: locate, in_progress, start the workflow (moto records the execution without running
        # it here: the steps run below, one by one, as the state machine would invoke them).
        request = fulfil.fulfil_request(deps, request.id)
        steps = {"worker": counter.take()}
        recompute_seconds = 0.0
        for step in erasure.STEPS:
            deps, counter = fresh()
            erasure.run_step(deps, StepEvent(step=step, request_id=request.id, task_token="benchmark"))
            steps[step] = counter.take()
            if step == "recompute":  # the queued run, as the refresh function runs it
                run_id = erasure.load_work(deps, request.id).recompute_run_id
                deps, counter = fresh()
                began = time.perf_counter()
                run = runs.run_unification(deps, run_id)
                recompute_seconds = time.perf_counter() - began
                steps["recompute_run"] = counter.take()
        done = requests.get_request(deps, request.id)
        assert done.status == "completed", done
        state_bytes = len(deps.states.load().payload)
    total = Counter()
    for counted in steps.values():
        total.update({k: v for k, v in counted.items() if k != "detail"})
    return {"benchmark": "erasure_aws_calls", "profiles": profiles, "seed_seconds": round(seed_seconds, 1),
            "locate": {k: v for k, v in locate_calls.items() if k != "detail"},
            "erasure_total": dict(total), "run_mode": run.mode, "recompute_seconds": round(recompute_seconds, 2),
            "state_bytes": state_bytes,
            "per_step": {name: {k: v for k, v in counted.items() if k != "detail" and v}
                         for name, counted in steps.items()},
            "locate_detail": locate_calls["detail"]}


def local(runs_: int, api_port: int, aws_port: int) -> dict:
    import urllib.request

    from profilevault_local.localstack import LocalStack

    people = [line.split(",")[3] for line in (ROOT / "demo/drops/crm/customers.csv").read_text().splitlines()[1:]]
    with LocalStack(api_port=api_port, aws_port=aws_port, state_file=f"/tmp/pv-erasure-bench-{api_port}.json",
                    demo=True) as stack:
        token = stack.state["tokens"]["privacy_officer"]

        def call(method: str, path: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(f"{stack.api_url}{path}", method=method, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the local stack)
                return json.loads(response.read())

        time.sleep(8)  # the demo's unification run (5 s batch window) has made the profiles
        seconds = []
        for email in people[:runs_]:
            began = time.perf_counter()
            filed = call("POST", "/v1/privacy-requests", {"type": "erasure", "subject": {"email": email},
                                                          "verification": {"method": "benchmark", "reference": "-"}})
            while (status := call("GET", f"/v1/privacy-requests/{filed['id']}")["status"]) not in (
                    "completed", "failed", "needs_review"):
                time.sleep(0.1)
            assert status == "completed", status
            seconds.append(round(time.perf_counter() - began, 2))
    return {"benchmark": "erasure_local_stack", "erasures": len(seconds), "seconds": seconds,
            "median_seconds": sorted(seconds)[len(seconds) // 2], "startup_seconds": round(stack.startup_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("calls", help="AWS calls of locate and of a whole erasure, per tenant size")
    c.add_argument("--profiles", type=int, nargs="+", default=[1000, 10000])
    c.add_argument("--detail", action="store_true", help="print every operation's count")
    loc = sub.add_parser("local", help="erasures end to end through the local stack")
    loc.add_argument("--runs", type=int, default=3)
    loc.add_argument("--api-port", type=int, default=18087)
    loc.add_argument("--aws-port", type=int, default=14567)
    args = parser.parse_args()
    if args.command == "calls":
        for n in args.profiles:
            result = calls(n)
            if not args.detail:
                result.pop("locate_detail")
            print(json.dumps(result), flush=True)
    else:
        print(json.dumps(local(args.runs, args.api_port, args.aws_port)), flush=True)


if __name__ == "__main__":
    main()
