"""warehouse.retry_while_locked: the one lock-wait loop (DuckDB lets one process write a file)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origine import warehouse
from origine.errors import OrigineError


@settings(max_examples=20, deadline=None)
@given(failures=st.integers(0, 4))
def test_a_lock_error_is_retried_until_the_attempt_succeeds(failures: int) -> None:
    calls: list[int] = []
    retries: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise duckdb.IOException("Could not set lock on file: Conflicting lock is held")
        return "opened"

    assert warehouse.retry_while_locked(attempt, 30, before_retry=lambda: retries.append(1)) == "opened"
    assert len(calls) == failures + 1 and len(retries) == failures


def test_any_other_error_is_not_retried() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise duckdb.IOException("No such file or directory")

    with pytest.raises(duckdb.IOException, match="No such file"):
        warehouse.retry_while_locked(attempt, 30)
    assert calls == [1]


def test_the_lock_error_propagates_once_the_wait_is_over() -> None:
    def attempt() -> None:
        raise duckdb.IOException("Conflicting lock is held")

    started = time.monotonic()
    with pytest.raises(duckdb.IOException, match="lock"):
        warehouse.retry_while_locked(attempt, 0.3)
    assert 0.3 <= time.monotonic() - started < 5


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_connect_waits_for_another_process_that_holds_the_warehouse(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse.connect(path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OrigineError, match="locked by another process"):
            warehouse.connect(path, wait=0)
        con = warehouse.connect(path, wait=60)  # opens once the holder exits
        assert holder.poll() is not None
        con.close()
    finally:
        holder.kill()
        holder.wait()
