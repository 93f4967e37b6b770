"""CPU cost per row of the ingest's pure part: read (CSV / JSON Lines) + map + validate + normalise.

    .venv/bin/python -m benchmarks.bench_normalize [--rows 100000] [--repeat 3]

Rows are synthetic and typical (id, email, first name, last name, phone); a share of phones is written
nationally and a few values are invalid, so the slow paths are represented. Reports the best of
`--repeat` runs in CPU time (process time), which is steadier than wall time on a shared machine.
"""
import argparse
import io
import json
import random
import time

from profilevault.domain.sources import SourceSpec
from profilevault.ingestion.mapping import MappedRecord, map_row
from profilevault.ingestion.readers import RowRejection, iter_rows

FIELDS = {"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone"}
FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Jürgen", "Zoë"]
LAST = ["Schmidt", "Müller", "Meyer", "Weber", "Wagner", "Becker", "Schulz", "Hoffmann", "O'Brien", "van Dijk"]


def synthetic_rows(count: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        roll = rng.random()
        if roll < 0.80:
            phone = f"+49151{rng.randrange(10_000_000, 99_999_999)}"  # E.164 already (most CRM exports)
        elif roll < 0.90:
            phone = f"+49 30 {rng.randrange(1_000_000, 9_999_999)}"
        elif roll < 0.99:
            phone = f"030 {rng.randrange(1_000_000, 9_999_999)}"  # national: phonenumbers.parse path
        else:
            phone = "12"  # invalid: a warning
        rows.append({"id": f"C{i}", "mail": f"{first}.{last}{i}@Example.org".replace(" ", "").replace("'", ""),
                     "given": first, "family": last, "tel": phone})
    return rows


def as_csv(rows: list[dict[str, str]]) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", *FIELDS])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def as_jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def run(data: bytes, spec: SourceSpec, map_rows: bool) -> tuple[float, int, int]:
    records = rejected = 0
    started = time.process_time()
    for row in iter_rows(io.BytesIO(data), spec):
        if isinstance(row, RowRejection):
            rejected += 1
            continue
        if map_rows and not isinstance(map_row(row, spec), MappedRecord):
            rejected += 1
            continue
        records += 1
    return time.process_time() - started, records, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = synthetic_rows(args.rows)
    for fmt, data in (("csv", as_csv(rows)), ("jsonl", as_jsonl(rows))):
        spec = SourceSpec(format=fmt, primary_key="id", fields=FIELDS)
        for label, map_rows in (("read only", False), ("read+map+normalise", True)):
            best = min(run(data, spec, map_rows)[0] for _ in range(args.repeat))
            _, records, rejected = run(data, spec, map_rows)
            print(f"{fmt:5} {label:20} {best / args.rows * 1e6:6.2f} µs/row  "
                  f"({args.rows / best:,.0f} rows/s; {records} records, {rejected} rejected; {len(data):,} bytes)")


if __name__ == "__main__":
    main()
