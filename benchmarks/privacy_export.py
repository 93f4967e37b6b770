"""Access/portability packages for large subjects: memory and time to build one, with its records read a batch at a
time from DynamoDB (moto) and written straight into a zip spooled to disk.

    .venv/bin/python -m benchmarks.privacy_export --records 1000 10000

Every record of the subject shares its e-mail (one index entry per record) and carries a 1 KB note, so the package is
large; the peak of Python allocations while the package is written is measured with tracemalloc (the moto tables
that hold the records were filled before it started). AWS calls are counted per service; moto's time is mostly its
own response serialisation (about 0.2 s per 100-item batch here), so the seconds say little about AWS."""
import argparse
import json
import os
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-central-1"
NOTE = "x" * 1000


def build(records: int) -> dict:
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        os.environ[key] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        from profilevault.audit.trail import Actor
        from profilevault.aws import make_clients
        from profilevault.config import get_settings
        from profilevault.domain.sources import SourceSpec
        from profilevault.keys import vault
        from profilevault.privacy import export, fulfil, requests
        from profilevault.privacy.locate import locate_subject
        from profilevault.wiring import build_deps
        from profilevault_local.stack import deploy

        deployed = deploy(ROOT / "template.yaml", REGION)
        for spec in deployed.functions.values():
            os.environ.update(spec.env)
        get_settings.cache_clear()
        clients = make_clients()
        deps = build_deps(get_settings(), clients)
        calls: Counter = Counter()
        for client in (clients.dynamodb, clients.s3, clients.kms):
            client.meta.events.register("before-call", lambda model, **_: calls.update(
                [model.service_model.service_name]))
        fields = {"mail": "email", "note": "custom.note"}
        deps.sources.put("crm", SourceSpec(format="csv", primary_key="id", fields=fields), "now")
        for start in range(0, records, 500):
            sealed = []
            for n in range(start, min(start + 500, records)):
                token = vault.record_token(deps.keyring, "crm", f"r{n}")
                sealed.append(vault.seal_record(deps.keyring, deps.records.address("crm", token), token, f"r{n}",
                                                {"email": "big.subject@example.org", "custom.note": NOTE}, [],
                                                "ing_b", "now"))
            deps.records.put_sealed("crm", sealed)
        new = requests.NewPrivacyRequest(type="portability", subject={"email": "big.subject@example.org"},
                                         verification={"method": "bench", "reference": "bench"})
        request = requests.create_request(deps, new, Actor(sub="bench", role="privacy_officer"))
        request = fulfil.locate(deps, requests.advance(deps, request.id, "locating", "received"))
        subject = requests.open_subject(deps, request)
        calls.clear()
        started = time.perf_counter()
        located = locate_subject(deps, subject, profile_ids=request.profile_ids)
        locate_seconds = time.perf_counter() - started
        locate_calls = dict(calls)
        calls.clear()
        tracemalloc.start()
        started = time.perf_counter()
        with tempfile.TemporaryFile() as spool:
            files = export._write_zip(deps, request, located, spool)
            size = spool.tell()
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        package_calls = dict(calls)
    return {"benchmark": "privacy_export", "records": len(located.records), "files": files,
            "zip_bytes": size, "uncompressed_record_bytes_about": records * (len(NOTE) + 100),
            "locate_seconds_in_moto": round(locate_seconds, 2), "package_seconds_in_moto": round(seconds, 2),
            "locate_calls": locate_calls, "package_calls": package_calls,
            "package_peak_traced_mib": round(peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[1000])
    for records in parser.parse_args().records:
        print(json.dumps(build(records)), flush=True)


if __name__ == "__main__":
    main()
