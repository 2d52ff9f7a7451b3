"""Benchmark: do the ingest's Great Expectations checks cost what the delivery adds?

Ingests several deliveries of N rows each, one after the other, into the same home
through the real CLI (Dagster, like a user), and prints for each run the ledger size
before it and every step's duration from the run's own event log. The segment and
warehouse check steps should take about the same time for every delivery: they
validate the new segment and the events this delivery appended, not the whole
ledger, which the weekly ``ledger_check`` job validates. Then times that weekly job.

    .venv/bin/python bench/warehouse_checks.py --rows 1000000 --deliveries 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import generate  # noqa: E402  (bench/ingest.py: the same synthetic delivery)


def delivery(folder: Path, rows: int, number: int) -> Path:
    """Delivery ``SC-2024-06-05-<number>``: the benchmark's rows, one more per number so
    the bytes (and so the fingerprint) differ. Ids like a broker's, sharing their first
    8 characters: DuckDB's string statistics keep 8, so a filter on the id alone cannot
    skip another delivery's row groups (``BENCH-1``/``BENCH-2`` would hide that)."""
    generate(folder, rows + number)
    manifest = folder / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("BENCH-1", f"SC-2024-06-05-{number:03d}"))
    return folder


def run_steps(dagster_home: Path) -> list[list[tuple[str, float]]]:
    """Per run (oldest first): (step, seconds) from its event log."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    runs = []
    with dg.DagsterInstance.get() as instance:
        for record in sorted(instance.get_run_records(), key=lambda r: r.create_timestamp):
            starts: dict[str, float] = {}
            steps = []
            for log in instance.all_logs(record.dagster_run.run_id):
                event = log.dagster_event
                if event is None or log.step_key is None:
                    continue
                if event.event_type_value == "STEP_START":
                    starts[log.step_key] = log.timestamp
                elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and log.step_key in starts:
                    steps.append((log.step_key, log.timestamp - starts.pop(log.step_key)))
            runs.append(steps)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="origine-bench-checks-"))
    home = tmp / "home"
    env = dict(os.environ, ORIGINE_HOME=str(home), ORIGINE_HASH_KEY="ab" * 32)
    tree = 0
    sizes = []
    for n in range(1, args.deliveries + 1):
        folder = delivery(tmp / f"delivery{n}", args.rows, n)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", str(folder), "--json"],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"ingest {n} failed: {proc.stderr[-4000:]}")
        seconds = time.perf_counter() - start
        json.loads(proc.stdout)  # the CLI's report: it ran to the end
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        size = int(con.execute("SELECT count(*) FROM ledger_events").fetchone()[0])
        con.close()
        sizes.append((tree, size - tree, seconds))
        tree = size
    for n, (steps, (before, events, seconds)) in enumerate(zip(run_steps(home / "dagster"), sizes), start=1):
        print(f"delivery {n}: ledger held {before:,} events, appended {events:,}; ingest {seconds:.1f}s")
        for step, secs in steps:
            print(f"  step {step:60s} {secs:8.1f}s")

    # The same suite over three batches of the same ledger, in this process: the last
    # delivery's events by seq range (what the warehouse check now reads), by delivery
    # filter alone (what it read before), and the whole ledger (what each audit read).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from origine.validation import ValidationRequest, delivery_filters, validate

    last_id = f"SC-2024-06-05-{args.deliveries:03d}"
    before, events, _ = sizes[-1]
    batches = {
        "seq range + delivery (now)": ValidationRequest(home / "warehouse.duckdb", "ledger_events",
                                                        filters=delivery_filters("bench", last_id),
                                                        seq_range=(before, before + events - 1)),
        "delivery filter (before)": ValidationRequest(home / "warehouse.duckdb", "ledger_events",
                                                      filters=delivery_filters("bench", last_id)),
        "whole ledger (audit before)": ValidationRequest(home / "warehouse.duckdb", "ledger_events"),
    }
    validate(batches["seq range + delivery (now)"])  # GX imported and warmed up once
    for name, request in batches.items():
        start = time.perf_counter()
        result = validate(request)
        print(f"ledger_events over {name:28s} {result.rows:>12,} rows {time.perf_counter() - start:8.1f}s")

    # The weekly job validates the whole ledger (and checks its tree).
    os.environ.update(ORIGINE_HOME=str(home), ORIGINE_HASH_KEY="ab" * 32)
    from pipelines.definitions import defs

    job = defs.resolve_job_def("ledger_check")
    start = time.perf_counter()
    result = job.execute_in_process(raise_on_error=False)
    print(f"weekly ledger_check over {tree:,} events: {time.perf_counter() - start:.1f}s, "
          f"success={result.success}")
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS" or event.event_type_value == "STEP_FAILURE":
            print(f"  step {event.step_key:60s} {event.event_specific_data.duration_ms / 1000:8.1f}s")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
