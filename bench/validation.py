"""Benchmark: the `normalized_rows` suite through the GX/DuckDB adapter vs. loading the table.

    .venv/bin/python bench/validation.py [--rows 10000000] [--deliveries 10] [--keep DIR]

Builds a `delivery_rows` table of N rows in a temporary DuckDB file, then runs each
phase in its own child process so that each one's peak RSS (getrusage ru_maxrss) is
its own:

- ``gx``          the whole suite on the whole table (origine.validation.validate)
- ``gx_delivery`` the suite on one delivery's rows (a WHERE vendor/delivery_id batch)
- ``count``       baseline: ``SELECT count(*)`` plus a one-pass scan of the checked columns
- ``pandas``      baseline: the table loaded into a pandas DataFrame (what we avoid)

Prints seconds, rows/s and peak RSS per phase, and a JSON line with everything.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BUILD_SQL = """
CREATE TABLE delivery_rows AS
SELECT 'vendor' || (i % {deliveries}) AS vendor,
       'd' || (i % {deliveries}) AS delivery_id,
       'rows-' || (i % {deliveries}) || '.csv' AS file,
       (i // {deliveries} + 1)::BIGINT AS row,
       sha256(i::VARCHAR) AS subject_key,
       'demo' AS key_id,
       (CASE WHEN i % 7 = 0 THEN 32 ELSE 33 END)::INTEGER AS country_code,
       (['mobile', 'fixed_line', 'voip', 'unknown'])[1 + i % 4] AS line_type,
       'web form' AS source,
       TIMESTAMPTZ '2021-01-01 00:00:00+00' + to_seconds(i % 86400000) AS collected_at,
       CASE WHEN i % 3 = 0 THEN []::VARCHAR[]
            ELSE ['marketing.commercial', 'research.polling'] END AS consent_purposes,
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE TIMESTAMPTZ '2021-06-01 00:00:00+00' END AS consent_at,
       'proof-' || (i % 1000) AS consent_proof,
       'list broker' AS acquired_from,
       CASE WHEN i % 10 = 0 THEN TIMESTAMPTZ '2022-01-01 00:00:00+00' END AS opted_out_at,
       []::VARCHAR[] AS flags
FROM range({rows}) r(i)
"""

SCAN_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE NOT regexp_matches(subject_key, '^[0-9a-f]{64}$')),
       count(*) FILTER (WHERE line_type NOT IN ('fixed_line', 'mobile', 'voip', 'unknown')),
       count(*) FILTER (WHERE row < 1),
       count(*) FILTER (WHERE collected_at < TIMESTAMPTZ '1990-01-01 00:00:00+00'),
       count(DISTINCT key_id)
FROM delivery_rows
"""


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name: str, db: Path, rows: int, deliveries: int) -> dict:
    """Run one phase in this process and return its measurements."""
    import duckdb

    detail: dict = {}
    if name in ("gx", "gx_delivery"):
        t0 = time.perf_counter()
        from origine import validation
        import origine.validation.run  # noqa: F401  (Great Expectations: loaded by the first validate)

        detail["import_s"] = round(time.perf_counter() - t0, 2)  # not counted in `seconds`
    started = time.perf_counter()
    if name == "build":
        con = duckdb.connect(str(db))
        con.execute(BUILD_SQL.format(rows=rows, deliveries=deliveries))
        con.close()
    elif name in ("gx", "gx_delivery"):
        kwargs = {"filters": validation.delivery_filters("vendor1", "d1")} if name == "gx_delivery" else {}
        result = validation.validate(db, "normalized_rows", **kwargs)
        detail = {
            "batch_rows": result.rows,
            "expectations": len(result.results),
            "passed": result.passed,
            "errors": len(result.errors),
            "failed": [o.describe() for o in result.results if not o.success],
        }
        rows = result.rows or 0
    elif name == "count":
        con = duckdb.connect(str(db), read_only=True)
        detail["count"] = con.execute("SELECT count(*) FROM delivery_rows").fetchone()[0]
        detail["scan"] = list(con.execute(SCAN_SQL).fetchone())
        con.close()
    elif name == "pandas":
        con = duckdb.connect(str(db), read_only=True)
        frame = con.execute("SELECT * FROM delivery_rows").df()
        detail["shape"] = list(frame.shape)
        detail["frame_mb"] = round(frame.memory_usage(deep=False).sum() / 2**20)
        con.close()
    else:
        raise SystemExit(f"unknown phase {name}")
    seconds = time.perf_counter() - started
    return {
        "phase": name,
        "seconds": round(seconds, 3),
        "rows": rows,
        "rows_per_s": round(rows / seconds) if seconds else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **detail,
    }


def run_child(name: str, db: Path, rows: int, deliveries: int) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--db", str(db), "--rows", str(rows),
           "--deliveries", str(deliveries)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"phase": name, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--deliveries", type=int, default=10, help="deliveries the rows are spread over")
    parser.add_argument("--phases", default="gx,gx_delivery,count,pandas")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the DuckDB file in this folder")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # child process
        sys.path.insert(0, str(REPO))
        print(json.dumps(phase(args.phase, args.db, args.rows, args.deliveries)))
        return

    with tempfile.TemporaryDirectory(prefix="origine-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"bench-{args.rows}.duckdb"
        results = []
        if not db.exists():
            results.append(run_child("build", db, args.rows, args.deliveries))
        print(f"delivery_rows: {args.rows:,} rows in {args.deliveries} deliveries, "
              f"{db.stat().st_size / 2**20:,.0f} MiB on disk")
        for name in args.phases.split(","):
            results.append(run_child(name, db, args.rows, args.deliveries))
        print(f"{'phase':<12} {'seconds':>9} {'rows':>12} {'rows/s':>14} {'peak RSS MiB':>13}")
        for r in results:
            if "error" in r:
                print(f"{r['phase']:<12} FAILED {r['error']}")
                continue
            print(f"{r['phase']:<12} {r['seconds']:>9.2f} {r['rows']:>12,} {r['rows_per_s'] or 0:>14,} "
                  f"{r['peak_rss_mb']:>13,.0f}")
        for r in results:
            if r.get("failed"):
                print(f"{r['phase']}: failed expectations: {r['failed']}")
        print(json.dumps({"rows": args.rows, "results": results}))


if __name__ == "__main__":
    main()
