"""Benchmark the regulator's bundle: audit + bundle and verify, against the floor.

    .venv/bin/python bench/bundle.py [--rows N | --targets N] [--keep] [--dir DIR]

Builds a home with one delivery of N rows (default 1M; bench/ingest.py's generator;
``--targets N`` is the same option: the campaign targets every accepted row)
through the real ingest (`origine ingest`, Dagster), then, each step a child process
of its own (so its peak RSS is its own, from wait4):

* audit + bundle: `origine audit` of a campaign targeting the delivery, so every
  accepted number (verdicts, `targeted` leaves appended, evidence, batch proof,
  validations, report, signature);
* verify: `origine verify` of the bundle (streaming; every reason re-derived);
* the floor, in the same run: DuckDB (2 threads) exporting the same cited leaves'
  stored rows (`ledger_leaves`, ledger format v2) as JSON lines (`COPY … (FORMAT JSON)`).

Prints each time and its ratio to the floor, peak RSS, the bundle's size per target
and the proof overhead: the share of the bundle that is neither the cited leaves
(`ledger/events.jsonl`) nor the targets (`targets.csv`, `targets.parquet`).
Targets at 1M rows: both ratios ≤ 10, peak RSS ≤ 2 GiB each, overhead ≤ 25 %.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _bench_ingest():  # bench/ingest.py, a script, as a module
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``origine ARGV`` as a child: (seconds, peak RSS MiB of the child tree's
    largest process, stdout); exits with its stderr when it fails."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *argv], env=env, stdout=out, stderr=err,
                                 text=True, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        sys.exit(f"origine {argv[0]} failed ({child.returncode}): {stderr[-3000:]}{stdout[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


def floor(warehouse: Path, leaves: Path, out: Path) -> float:
    """Seconds for DuckDB (2 threads) to export the cited leaves' rows as JSON lines."""
    # capped like origine's own connections (default: 80% of RAM; 12.8 GiB at 5M rows)
    con = duckdb.connect(str(warehouse), read_only=True, config={"threads": 2, "memory_limit": "2GB"})
    try:
        start = time.perf_counter()
        con.execute(
            f"COPY (SELECT * FROM ledger_leaves WHERE seq IN (SELECT column0 FROM read_csv('{leaves}', header=false)) "
            f"ORDER BY seq) TO '{out}' (FORMAT JSON)"
        )
        return time.perf_counter() - start
    finally:
        con.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", "--targets", dest="rows", type=int, default=1_000_000,
                        help="rows of the delivery, all targeted by the campaign (default 1M)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (kept; default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="origine-bench-bundle-"))
    tmp.mkdir(parents=True, exist_ok=True)
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORIGINE_", "DAGSTER_"))}
    env.update(ORIGINE_HOME=str(home), ORIGINE_HASH_KEY="ab" * 32, PYTHONUNBUFFERED="1")
    try:
        t0 = time.perf_counter()
        delivery = _bench_ingest().generate(tmp / "delivery", args.rows)
        ingest_s, ingest_peak, out = run(["ingest", str(delivery), "--json"], env)
        report = json.loads(out)[0]
        print(f"ingested {args.rows:,} rows ({report['rows_accepted']:,} accepted) in {ingest_s:.1f}s "
              f"(generated in {time.perf_counter() - t0 - ingest_s:.1f}s)")
        campaign = tmp / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "campaign_id": "BENCH", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
            "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
            "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"},
            "targets": {"deliveries": ["BENCH-1"]},
        }))
        bundle = tmp / "bundle"
        audit_s, audit_peak, _ = run(["audit", str(campaign), "--out", str(bundle)], env)
        verify_s, verify_peak, out = run(["verify", str(bundle), "--json"], env)
        checked = json.loads(out)["checked"]
        floor_s = floor(home / "warehouse.duckdb", bundle / "ledger" / "leaves.txt", tmp / "floor.jsonl")
        floor_bytes = (tmp / "floor.jsonl").stat().st_size
        sizes = {p.relative_to(bundle).as_posix(): p.stat().st_size for p in bundle.rglob("*") if p.is_file()}
        total = sum(sizes.values())
        content = sizes["ledger/events.jsonl"] + sizes["targets.csv"] + sizes["targets.parquet"]
        targets = checked["targets"]
        kinds = ", ".join(f"{t} {n:,}" for t, n in (checked.get("leaves") or {}).items())
        print(f"targets {targets:,}, cited leaves {checked['proofs']:,} ({kinds}), tree size {checked['tree_size']:,}")
        print(f"floor  (duckdb COPY of the cited leaves as JSON lines, 2 threads): {floor_s:8.2f}s "
              f"({floor_bytes / 1e6:,.0f} MB)")
        print(f"audit + bundle: {audit_s:8.2f}s  ratio {audit_s / floor_s:5.1f}x  peak RSS {audit_peak:7,.0f} MiB")
        print(f"verify:         {verify_s:8.2f}s  ratio {verify_s / floor_s:5.1f}x  peak RSS {verify_peak:7,.0f} MiB")
        print(f"bundle {total / 1e6:,.1f} MB, {total / max(targets, 1):,.0f} bytes per target; proof overhead "
              f"{100 * (total - content) / total:.1f}% (proof nodes {sizes['ledger/proof-nodes.txt'] / 1e6:.1f} MB, "
              f"leaf indices {sizes['ledger/leaves.txt'] / 1e6:.1f} MB, key map {sizes['ledger/key-map.txt'] / 1e6:.1f} MB)")
        print(f"ingest peak RSS {ingest_peak:,.0f} MiB")
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
