"""Concurrent runs: two ``origine ingest`` processes started together give the ledger that
ingesting their deliveries one after the other gives, and the tree stays consistent.

The heavy step runs side by side; the commit is serialized (DuckDB's single writer and
the ``warehouse`` pool), so the tree must equal the serial tree of one order or the other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from origine.home import Home
from tests.conftest import TEST_KEY_HEX
from tests.processes import (
    bench_module,
    ledger_check_ok,
    ledger_state,
    reference_state,
    start_cli,
    write_delivery,
)

pytestmark = pytest.mark.slow


def _run_together(home, *deliveries: Path) -> list[tuple[int, str, str]]:
    procs = [start_cli(home, "ingest", str(d), "--json") for d in deliveries]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out, err))
    return results


def test_two_deliveries_at_once_equal_one_after_the_other(home, key, tmp_path) -> None:
    a = write_delivery(tmp_path / "in", "P-1", 3000, seed=11)
    b = write_delivery(tmp_path / "in", "P-2", 3000, seed=12, vendor="other")
    results = _run_together(home, a, b)
    for code, _, err in results:
        assert code == 0, err
    assert [json.loads(out)[0]["delivery_id"] for _, out, _ in results] == ["P-1", "P-2"]
    state = ledger_state(home)
    ab = reference_state(tmp_path / "ref-ab", [a, b])
    ba = reference_state(tmp_path / "ref-ba", [b, a])
    # the same events per delivery, whichever committed first …
    assert state.same_content(ab) and ab.same_content(ba)
    # … and the tree is exactly the serial tree of one of the two orders
    assert (state.heads, state.head, state.nodes) in {
        (ab.heads, ab.head, ab.nodes), (ba.heads, ba.head, ba.nodes),
    }
    ledger_check_ok(home)


def test_the_same_delivery_twice_at_once_lands_once(home, key, tmp_path) -> None:
    """The sensor and the CLI picking up the same delivery: one lands, the other is a
    duplicate (or waits and finds it landed); never twice, never a failure."""
    a = write_delivery(tmp_path / "in", "S-1", 3000, seed=21)
    results = _run_together(home, a, a)
    for code, _, err in results:
        assert code == 0, err
    duplicates = sorted(json.loads(out)[0]["duplicate"] for _, out, _ in results)
    assert duplicates == [False, True]
    state = ledger_state(home)
    reference = reference_state(tmp_path / "ref", [a])
    assert state.same_content(reference)
    assert (state.heads, state.head, state.nodes) == (reference.heads, reference.head, reference.nodes)
    ledger_check_ok(home)


def test_daemon_runs_two_partitions_at_once_on_the_multiprocess_executor(
    home, key, tmp_path, monkeypatch
) -> None:
    """The production path: runs queued like the landing sensor queues them, two at
    once, dequeued by a real ``dagster-daemon``, each run's steps in processes of the
    multiprocess executor. The ledger holds what serial ingests give, the tree is the
    serial tree of one order or the other, and ``ledger check`` passes."""
    partitions = bench_module("partitions")
    a = write_delivery(tmp_path / "in", "D-1", 2000, seed=31)
    b = write_delivery(tmp_path / "in", "D-2", 2000, seed=32, vendor="other")
    for name in ("DAGSTER_HOME", "ORIGINE_HOME"):  # run_config points them at its home
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setattr(partitions, "KEY", TEST_KEY_HEX)
    outcome = partitions.run_config(2, tmp_path / "daemon-home", [a, b], 2000)
    assert outcome.statuses == ["SUCCESS", "SUCCESS"], (outcome.home / "daemon.log").read_text()[-3000:]
    assert outcome.check.get("ok") is True, outcome.check
    state = ledger_state(Home(outcome.home))
    ab = reference_state(tmp_path / "ref-ab", [a, b])
    ba = reference_state(tmp_path / "ref-ba", [b, a])
    assert state.same_content(ab)
    assert (state.heads, state.head, state.nodes) in {
        (ab.heads, ab.head, ab.nodes), (ba.heads, ba.head, ba.nodes),
    }


