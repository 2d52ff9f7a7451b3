"""Benchmark: vectorized ``normalize_batch`` against the per-value reference.

Generates ``--rows`` values shaped like French broker exports (national with
and without the trunk zero, dotted, dashed, +33, 0033, 33..., Excel damage),
with some Moroccan (+212) and Senegalese (+221) numbers and about 2% garbage.
Times ``normalize_batch`` over all of them and ``phones.normalize`` over a
sample (extrapolated), checks the sample agrees, and prints rows/s for both,
the speed-up and peak RSS.

    .venv/bin/python bench/phones.py --rows 2000000
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402

from origine import phones  # noqa: E402
from origine.fastphone import BatchStats, normalize_batch  # noqa: E402


def _fr_number(rng: random.Random) -> str:
    """Nine national digits of a plausible French number (mostly mobile)."""
    first = rng.choices("671234589", weights=[45, 15, 10, 8, 6, 6, 4, 3, 3])[0]
    return first + "".join(rng.choices("0123456789", k=8))


def _pairs(nsn: str) -> str:
    return " ".join(nsn[i : i + 2] for i in range(1, 9, 2))


def _french(rng: random.Random, nsn: str) -> str:
    """One French export rendering of ``nsn``."""
    shape = rng.randrange(16)
    if shape == 0:
        return f"0{nsn[0]} {_pairs(nsn)}"
    if shape == 1:
        return f"0{nsn[0]}." + _pairs(nsn).replace(" ", ".")
    if shape == 2:
        return f"0{nsn[0]}-" + _pairs(nsn).replace(" ", "-")
    if shape == 3:
        return f"+33 {nsn[0]} {_pairs(nsn)}"
    if shape == 4:
        return f"+33{nsn}"
    if shape == 5:
        return f"0033{nsn}"
    if shape == 6:
        return f"33{nsn}"
    if shape == 7:
        return nsn  # Excel lost the zero
    if shape == 8:
        return f"{nsn}.0"
    if shape == 9:
        return f"'0{nsn}"
    if shape == 10:
        return f'="0{nsn}"'
    if shape == 11:
        return f"{nsn[0]},{nsn[1:6]}E+08"  # precision lost
    if shape == 12:
        return f"+33 (0){nsn[0]} {_pairs(nsn)}"
    if shape == 13:
        return f" 0{nsn} "
    return f"0{nsn}"


def _garbage(rng: random.Random) -> str:
    """Not a phone number: empty cells, placeholders, fragments, e-mails, comments."""
    kind = rng.choices(range(6), weights=[30, 25, 15, 10, 15, 5])[0]
    if kind == 0:
        return ""
    if kind == 1:
        return rng.choice(["n/a", "N/A", "NULL", "#N/A", "inconnu", "-", "?", "néant"])
    if kind == 2:
        return "".join(rng.choices("0123456789", k=rng.randrange(1, 6)))
    if kind == 3:
        return "".join(rng.choices("0123456789", k=rng.randrange(14, 22)))
    if kind == 4:
        return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randrange(3, 9))) + "@mail.fr"
    return f"06 12 34 56 78 poste {rng.randrange(100)}"  # the reference decides these


def generate(rows: int, seed: int = 7) -> list[str]:
    """Make ``rows`` delivered values; a pool is reused so generation stays cheap."""
    rng = random.Random(seed)
    pool_size = min(rows, 200_000)
    pool: list[str] = []
    for _ in range(pool_size):
        r = rng.random()
        if r < 0.02:
            pool.append(_garbage(rng))
        elif r < 0.06:
            nsn = rng.choice("67") + "".join(rng.choices("0123456789", k=8))
            pool.append(rng.choice([f"+212 {nsn}", f"00212{nsn}", f"+212{nsn}", f"212{nsn}"]))
        elif r < 0.09:
            nsn = rng.choice(["77", "78", "76", "70", "33"]) + "".join(rng.choices("0123456789", k=7))
            pool.append(rng.choice([f"+221 {nsn}", f"00221{nsn}", f"+221{nsn}"]))
        else:
            pool.append(_french(rng, _fr_number(rng)))
    reps, rest = divmod(rows, pool_size)
    return pool * reps + pool[:rest]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="values timed with the reference")
    parser.add_argument("--region", default="FR")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="fast-path runs; the best is reported")
    args = parser.parse_args(argv)

    values = generate(args.rows)
    arr = pa.array(values, pa.string())

    normalize_batch(arr.slice(0, 1000), args.region)  # rules for the region, warm
    best = float("inf")
    stats = BatchStats()
    table = None
    for _ in range(args.repeat):
        stats = BatchStats()
        t0 = time.perf_counter()
        table = normalize_batch(arr, args.region, stats=stats, threads=args.threads)
        best = min(best, time.perf_counter() - t0)
    assert table is not None and table.num_rows == args.rows

    rng = random.Random(1)
    idx = rng.sample(range(args.rows), min(args.sample, args.rows))
    t0 = time.perf_counter()
    ref = [phones.normalize(values[i], args.region) for i in idx]
    ref_time = time.perf_counter() - t0
    got = table.take(pa.array(idx)).to_pylist()
    wrong = sum(
        1
        for r, g in zip(ref, got, strict=True)
        if (r.e164, r.valid, r.country_code, r.line_type, r.reason)
        != (g["e164"], g["valid"], g["country_code"], g["line_type"], g["reason"])
    )

    fast_rate = args.rows / best
    ref_rate = len(idx) / ref_time
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    valid = table.column("valid").to_numpy(zero_copy_only=False).sum()
    print(f"rows                 {args.rows:,} (region {args.region}, valid {valid / args.rows:.1%})")
    print(f"normalize_batch      {best:.3f} s  {fast_rate:,.0f} rows/s (best of {args.repeat})")
    print(f"  fallback rows      {stats.fallback:,} ({stats.fallback / args.rows:.2%}); python clean-up {stats.python_clean:,}")
    print(f"phones.normalize     {ref_time:.3f} s for {len(idx):,}  {ref_rate:,.0f} rows/s (extrapolated {args.rows / ref_rate:.1f} s)")
    print(f"speed-up             {fast_rate / ref_rate:.0f}x")
    print(f"sample disagreements {wrong}")
    print(f"peak RSS             {rss_mib:,.0f} MiB")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
