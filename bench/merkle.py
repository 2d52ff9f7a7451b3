"""Benchmark origine.merkle appends against the floor of one hashlib call per leaf.

    .venv/bin/python bench/merkle.py [--leaves N] [--no-store] [--repeat R]

Prints, for N leaves: the floor (``hashlib.sha256(entry).digest()`` for each entry in
a plain Python loop), ``leaf_hashes`` (the same, with the RFC 9162 0x00 prefix),
``Frontier.extend`` (the n - 1 interior hashes, plus writing every node to a
``MemoryNodeStore`` unless ``--no-store``), ``Frontier.extend_packed`` (the same from
the hashes packed in one buffer, as the ledger's append feeds it, writing to a store
that keeps nothing: the ledger's streams its nodes to a file), their rates and ratios
to the floor, peak RSS, and the cost of proofs served from the store. Timings are the best of
``--repeat`` runs; on a shared machine expect ±30 % between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from origine.merkle import (  # noqa: E402
    Frontier,
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    leaf_hashes,
    root_at,
    verify_consistency,
    verify_inclusion,
)

T = TypeVar("T")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """Run ``run`` ``repeat`` times; return the shortest wall time and the last result."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def floor_loop(entries: list[bytes]) -> None:
    """The floor: one SHA-256 per leaf in a Python loop, results discarded."""
    sha = hashlib.sha256
    for entry in entries:
        sha(entry).digest()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000, help="tree size")
    parser.add_argument("--no-store", action="store_true", help="extend without a store")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    args = parser.parse_args(argv)
    n = args.leaves
    if n < 2:
        parser.error("--leaves must be at least 2")

    # Entries the size of a typical ledger record digest-plus-metadata line.
    entries = [b"record-%012d-%020d" % (i, i * 7919) for i in range(n)]
    print(f"leaves                 {n:,}  (entries of {len(entries[0])} bytes)")
    print(f"peak RSS after inputs  {peak_rss_mib():8.1f} MiB")

    t_floor, _ = best_of(args.repeat, lambda: floor_loop(entries))
    print(f"floor sha256 loop      {n / t_floor:12,.0f} leaves/s  {t_floor:7.3f} s")

    t_leaf, hashes = best_of(args.repeat, lambda: leaf_hashes(entries))
    print(
        f"leaf_hashes            {n / t_leaf:12,.0f} leaves/s  {t_leaf:7.3f} s"
        f"  x{t_leaf / t_floor:.2f} floor"
    )

    def build() -> tuple[Frontier, MemoryNodeStore | None]:
        store = None if args.no_store else MemoryNodeStore()
        frontier = Frontier()
        frontier.extend(hashes, store)
        return frontier, store

    t_ext, (frontier, store) = best_of(args.repeat, build)
    label = "extend (no store)" if store is None else "extend + MemoryStore"
    print(
        f"{label:22s} {n / t_ext:12,.0f} leaves/s  {t_ext:7.3f} s"
        f"  x{t_ext / t_floor:.2f} floor"
    )
    packed = b"".join(hashes)

    class Discard:
        """A store that drops what it receives (packed, like the ledger's file writer)."""

        def get(self, level: int, index: int) -> bytes:
            raise KeyError((level, index))

        def put_many(self, level: int, start_index: int, nodes: list[bytes]) -> None:
            pass

        def put_packed(self, level: int, start_index: int, nodes: bytes) -> None:
            pass

    def build_packed() -> Frontier:
        frontier = Frontier()
        frontier.extend_packed(packed, Discard())
        return frontier

    t_packed, packed_frontier = best_of(args.repeat, build_packed)
    print(
        f"{'extend_packed':22s} {n / t_packed:12,.0f} leaves/s  {t_packed:7.3f} s"
        f"  x{t_packed / t_floor:.2f} floor"
    )
    total = t_leaf + t_ext
    print(
        f"entries -> root total  {n / total:12,.0f} leaves/s  {total:7.3f} s"
        f"  x{total / t_floor:.2f} floor"
    )
    print(f"root                   {frontier.root().hex()}")
    assert packed_frontier.root() == frontier.root()
    print(f"peak RSS               {peak_rss_mib():8.1f} MiB")

    if store is None:
        return
    rng = random.Random(1)
    root = frontier.root()
    samples = 2_000
    picks = [rng.randrange(n) for _ in range(samples)]
    start = time.perf_counter()
    for i in picks:
        assert verify_inclusion(hashes[i], i, n, inclusion_proof(i, n, store), root)
    t_incl = time.perf_counter() - start
    olds = [rng.randrange(1, n) for _ in range(samples // 10)]
    start = time.perf_counter()
    for m in olds:
        proof = consistency_proof(m, n, store)
        assert verify_consistency(m, n, root_at(m, store), root, proof)
    t_cons = time.perf_counter() - start
    print(
        f"inclusion prove+verify {samples / t_incl:12,.0f} /s"
        f"   consistency (+root_at old) {len(olds) / t_cons:,.0f} /s"
    )


if __name__ == "__main__":
    main()
