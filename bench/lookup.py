"""Benchmark ``origine lookup`` ("where did you get my number?") on a large ledger.

    .venv/bin/python bench/lookup.py [--events N] [--lookups K] [--rotate] [--dir DIR]

Builds the synthetic home bench/audit.py builds (directly in DuckDB SQL, with a real
tree and signed checkpoint), whose first ``--targets`` subjects are keyed HMACs of
real numbers (``+336`` and 8 digits), so lookups go through the whole path: the
number parsed and keyed, the warehouse opened read-only, the key checked, the
events and quarantined rows read. Then, each in a fresh process:

* the domain function :func:`origine.lookup.lookup_number`, K times on random held
  numbers (and a few not held): p50, p99, max, and the first (cold) call;
* the CLI once: ``origine lookup NUMBER --json`` as a subprocess (interpreter start
  and imports included);
* with ``--rotate``: the key rotated (every ledger subject mapped) and both again,
  the case the issue measured (~2 s after a rotation at 47M events): first with the
  lookup index stale (the rotation's key_map leaf makes lookups read the map itself),
  then rebuilt (``origine ledger index``; the daily retention run does it too).

The lookup index (origine.subject_index) is built first unless ``--no-index``.

The issue asks a p50 under 200 ms at 50M events; building 50M takes a while
(``--events 50000000``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import audit as audit_bench  # noqa: E402  (bench/audit.py: the synthetic home)

from origine.home import Home  # noqa: E402
from origine.keys import HashKey  # noqa: E402


def _key(root: Path) -> HashKey:
    key = HashKey(bytes.fromhex((root / "key.hex").read_text()))
    if (root / "layer.hex").exists():
        key = key.with_layer(bytes.fromhex((root / "layer.hex").read_text()))
    return key


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ, ORIGINE_HASH_KEY=(root / "key.hex").read_text().strip())
    env.pop("ORIGINE_HASH_KEY_FILE", None)
    if (root / "layer.hex").exists():
        env["ORIGINE_HASH_KEY_LAYERS"] = (root / "layer.hex").read_text().strip()
    else:
        env.pop("ORIGINE_HASH_KEY_LAYERS", None)
    return env


def measure_domain(root: Path, lookups: int, targets: int) -> dict[str, object]:
    """K calls of ``lookup_number`` in this process: latencies in milliseconds."""
    from origine.lookup import lookup_number

    os.environ.update(_env(root))
    if "ORIGINE_HASH_KEY_LAYERS" not in _env(root):
        os.environ.pop("ORIGINE_HASH_KEY_LAYERS", None)
    home = Home(root / "home")
    rng = random.Random(7)
    numbers = [f"+336{rng.randrange(targets):08d}" for _ in range(lookups)]
    numbers += [f"+3378{rng.randrange(10**7):07d}" for _ in range(max(1, lookups // 10))]  # not held
    times: list[float] = []
    held = 0
    for number in numbers:
        started = time.perf_counter()
        answer = lookup_number(home, number, "FR")
        times.append((time.perf_counter() - started) * 1000)
        held += bool(answer.events)
    first, rest = times[0], sorted(times[1:]) or [times[0]]
    return {"first_ms": first, "p50_ms": statistics.median(rest),
            "p99_ms": rest[min(len(rest) - 1, int(len(rest) * 0.99))], "max_ms": rest[-1],
            "calls": len(times), "held": held}


def measure_cli(root: Path, targets: int) -> dict[str, object]:
    """One ``origine lookup`` subprocess, wall time in milliseconds."""
    exe = Path(sys.executable).parent / "origine"
    number = f"+336{random.Random(11).randrange(targets):08d}"
    started = time.perf_counter()
    out = subprocess.run([str(exe), "lookup", number, "--home", str(root / "home"), "--json"],
                         capture_output=True, text=True, env=_env(root))
    ms = (time.perf_counter() - started) * 1000
    if out.returncode != 0:
        sys.exit(f"origine lookup failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return {"ms": ms, "events": len(json.loads(out.stdout)["events"])}


def _child(root: Path, what: str, lookups: int, targets: int) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--measure", what, "--dir", str(root), "--lookups",
                          str(lookups), "--targets", str(targets)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{what} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(label: str, d: dict[str, object], c: dict[str, object]) -> None:
    print(f"{label}: lookup_number p50 {d['p50_ms']:.1f} ms  p99 {d['p99_ms']:.1f} ms  max {d['max_ms']:.1f} ms  "
          f"first {d['first_ms']:.1f} ms  ({d['calls']} calls, {d['held']} held)")
    print(f"{label}: origine lookup (CLI, one process) {c['ms']:.0f} ms  ({c['events']} events)", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the home, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="ledger events (about)")
    parser.add_argument("--targets", type=int, default=100_000, help="subjects keyed from real numbers")
    parser.add_argument("--lookups", type=int, default=200, help="lookup_number calls measured")
    parser.add_argument("--rotate", action="store_true", help="then rotate the key and measure again")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (kept; default: a temp folder, removed)")
    parser.add_argument("--reuse", action="store_true", help="measure the home already built in --dir")
    parser.add_argument("--no-index", action="store_true", help="measure without building lookup's index")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        if args.measure == "domain":
            print(json.dumps(measure_domain(args.dir, args.lookups, args.targets)))
        elif args.measure == "cli":
            print(json.dumps(measure_cli(args.dir, args.targets)))
        elif args.measure == "rotate":
            from origine import warehouse
            from origine.rotation import rotate

            home = Home(args.dir / "home")
            layer = secrets.token_bytes(32)
            con = warehouse.connect(home.warehouse)
            try:
                rotate(con, _key(args.dir), layer, segments=home.segments)
            finally:
                con.close()
            (args.dir / "layer.hex").write_text(layer.hex())
            print(json.dumps({}))
        elif args.measure == "index":
            from origine import subject_index, warehouse

            con = warehouse.connect(Home(args.dir / "home").warehouse)
            try:
                started = time.perf_counter()
                subject_index.refresh(con, force=True)
                print(json.dumps({"seconds": time.perf_counter() - started}))
            finally:
                con.close()
        return
    if args.reuse and args.dir is None:
        parser.error("--reuse needs --dir")
    root = args.dir or Path(tempfile.mkdtemp(prefix="origine-bench-lookup-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if not args.reuse:
            started = time.perf_counter()
            subprocess.run([sys.executable, str(HERE / "audit.py"), "--build-only", "--dir", str(root), "--events",
                            str(args.events), "--targets", str(args.targets), "--route", "file"], check=True)
            facts = json.loads((root / "facts.json").read_text())
            print(f"ledger events {facts['events']:,} ({facts['subjects']:,} subjects; built in "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)
        if not args.no_index:
            r = _child(root, "index", args.lookups, args.targets)
            print(f"lookup index built in {r['seconds']:.1f} s (origine ledger index)", flush=True)
        _report("before rotation", _child(root, "domain", args.lookups, args.targets),
                _child(root, "cli", args.lookups, args.targets))
        if args.rotate:
            started = time.perf_counter()
            _child(root, "rotate", args.lookups, args.targets)
            print(f"rotated in {time.perf_counter() - started:.0f} s", flush=True)
            _report("after rotation, index stale", _child(root, "domain", args.lookups, args.targets),
                    _child(root, "cli", args.lookups, args.targets))
            if not args.no_index:
                r = _child(root, "index", args.lookups, args.targets)
                print(f"lookup index rebuilt in {r['seconds']:.1f} s", flush=True)
                _report("after rotation, index rebuilt", _child(root, "domain", args.lookups, args.targets),
                        _child(root, "cli", args.lookups, args.targets))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
