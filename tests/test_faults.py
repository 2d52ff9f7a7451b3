"""Faults survived: real ``origine ingest`` processes SIGKILLed mid-run, bad and truncated
input among good deliveries, a full disk, a read-only home, a locked warehouse.

Every kill is a real SIGKILL of a real subprocess (no cleanup runs, no rollback is
issued); the points are chosen with ``origine.faults`` (``ORIGINE_FAULT_POINT``) or
by watching the segment being written. After each: ``origine ledger check`` passes,
the ledger is exactly as before (or, killed after COMMIT, exactly as after), and
the rerun gives the same ledger as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from origine import faults
from origine.home import Home
from tests.processes import (
    cli_env,
    committed_segments,
    ingest_here,
    ingest_ok,
    kill_group,
    ledger_check_ok,
    ledger_state,
    partials,
    reference_state,
    run_cli,
    start_cli,
    wait_for,
    write_delivery,
)

pytestmark = pytest.mark.slow

SMALL, MEDIUM = 300, 20_000


@pytest.fixture
def second_rows() -> int:
    """Rows of the delivery the test interrupts (more where the kill must land mid-work)."""
    return SMALL * 5


@pytest.fixture
def two_deliveries(tmp_path: Path, second_rows: int) -> tuple[Path, Path]:
    """A first delivery, and a second that the tests interrupt."""
    return (
        write_delivery(tmp_path / "in", "F-1", SMALL, seed=1),
        write_delivery(tmp_path / "in", "F-2", second_rows, seed=2),
    )


def _assert_recovers(home: Home, delivery: Path, before, expected, *, committed: bool) -> None:
    """After a kill: the ledger is as before (or as after when the kill came after COMMIT),
    it verifies, no partial segment is taken for a real one, and the rerun completes."""
    now = ledger_state(home)
    if committed:
        assert now.same_content(expected) and now.head == expected.head
    else:
        assert now.same_content(before)
        assert (now.events, now.heads, now.head, now.nodes) == (before.events, before.heads, before.head, before.nodes)
    ledger_check_ok(home)
    assert not any(".partial-" in s for s in committed_segments(home))
    [summary] = ingest_ok(home, delivery)
    assert summary["duplicate"] is committed
    after = ledger_state(home)
    assert after.same_content(expected)
    assert (after.heads, after.head, after.nodes) == (expected.heads, expected.head, expected.nodes)
    ledger_check_ok(home)
    for segment in committed_segments(home):
        assert ".partial-" not in segment and (Path(segment) / "rows.parquet").is_file()


@pytest.fixture
def prepared(home: Home, key, two_deliveries, tmp_path: Path):
    """``home`` with the first delivery in; the state then, and after both uninterrupted."""
    first, second = two_deliveries
    ingest_here(home, first)
    return ledger_state(home), reference_state(tmp_path / "reference", [first, second])


# ---------------------------------------------------------------- SIGKILL at named points


@pytest.mark.parametrize("point", faults.POINTS)
def test_sigkill_at_each_point_leaves_the_ledger_as_before_and_the_rerun_completes(
    home, two_deliveries, prepared, point
) -> None:
    before, expected = prepared
    proc = run_cli(home, "ingest", str(two_deliveries[1]), "--json",
                   env=cli_env(home, ORIGINE_FAULT_POINT=point))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _assert_recovers(home, two_deliveries[1], before, expected, committed=point == "commit.after_commit")


@pytest.mark.parametrize("second_rows", [MEDIUM])
@pytest.mark.parametrize(
    "point,delay",
    [
        ("commit.after_rows", 0.05),  # inside the ledger append: events, tree nodes, tree head
        ("commit.before_commit", 0.1),  # inside DuckDB's COMMIT (WAL write, checkpoint)
    ],
)
def test_sigkill_during_ledger_append_and_commit(home, two_deliveries, prepared, point, delay) -> None:
    before, expected = prepared
    proc = run_cli(home, "ingest", str(two_deliveries[1]), "--json",
                   env=cli_env(home, ORIGINE_FAULT_POINT=point, ORIGINE_FAULT_DELAY=str(delay)))
    if proc.returncode == 0:  # the run outran its timer (a loaded machine): nothing to recover
        pytest.skip("the ingest finished before the timed kill")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # Killed before or during COMMIT: all or nothing, whichever DuckDB made durable.
    committed = ledger_state(home).events != before.events
    _assert_recovers(home, two_deliveries[1], before, expected, committed=committed)


@pytest.mark.parametrize("second_rows", [MEDIUM])
def test_sigkill_while_reading_and_hashing(home, two_deliveries, prepared) -> None:
    """Killed while the segment is being written: the partial folder is never taken for a
    segment, and the rerun writes the real one."""
    before, expected = prepared
    proc = start_cli(home, "ingest", str(two_deliveries[1]), "--json")
    try:
        [partial] = wait_for(lambda: partials(home), timeout=60, what="the segment's .partial folder", proc=proc)
        wait_for(lambda: (partial / "rows.parquet").exists(), timeout=10, what="rows being written", proc=proc)
        time.sleep(0.2)  # in the middle of reading and key-hashing the 20,000 rows
        assert proc.poll() is None and partial.exists(), "the run got past the read before the kill"
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    final = partial.with_name(partial.name.split(".partial-")[0])
    assert not final.exists()  # nothing but the partial was written
    _assert_recovers(home, two_deliveries[1], before, expected, committed=False)
    assert partials(home) == []  # the dead run's leftovers are swept by the rerun


def test_tree_nodes_left_by_a_killed_commit_are_swept(home, two_deliveries, prepared) -> None:
    """Killed while hashing the tree into its temporary file: the file is never read,
    the rerun removes it and completes."""
    before, expected = prepared
    proc = run_cli(home, "ingest", str(two_deliveries[1]), "--json",
                   env=cli_env(home, ORIGINE_FAULT_POINT="commit.in_tree"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert list(home.scratch.glob("nodes.partial-*"))
    _assert_recovers(home, two_deliveries[1], before, expected, committed=False)
    assert not list(home.scratch.glob("nodes.partial-*"))


# ---------------------------------------------------------------- bad input among good


def test_corrupt_and_truncated_deliveries_fail_alone(home, key, tmp_path) -> None:
    good1 = write_delivery(tmp_path / "in", "G-1", SMALL, seed=1)
    good2 = write_delivery(tmp_path / "in", "G-2", SMALL, seed=2)
    truncated_zip = tmp_path / "in" / "T-1.zip"
    truncated_zip.write_bytes(b"PK\x03\x04" + os.urandom(200))  # a zip cut short: no central directory
    corrupt = write_delivery(tmp_path / "in", "C-1", SMALL, seed=3)
    manifest = corrupt / "manifest.yaml"  # its file no longer matches the declared checksum
    manifest.write_text(manifest.read_text().replace("{path: contacts.csv}", "{path: contacts.csv, sha256: '" + "0" * 64 + "'}"))
    gz = write_delivery(tmp_path / "in", "Z-1", SMALL, seed=4)
    data = (gz / "contacts.csv").read_bytes()
    import gzip

    (gz / "contacts.csv.gz").write_bytes(gzip.compress(data)[:-200])  # truncated in transfer
    (gz / "contacts.csv").unlink()
    manifest = gz / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("contacts.csv", "contacts.csv.gz"))

    proc = run_cli(home, "ingest", str(good1), str(truncated_zip), str(corrupt), str(gz), str(good2), "--json")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("origine: error:")]
    assert len(errors) == 3, proc.stderr
    assert "T-1.zip" in errors[0] and "truncated or corrupt zip" in errors[0]
    assert "C-1/contacts.csv" in errors[1] and "SHA-256" in errors[1]
    assert "contacts.csv.gz" in errors[2] and "truncated" in errors[2]
    landed = json.loads(proc.stdout)
    assert [s["delivery_id"] for s in landed] == ["G-1", "G-2"]
    state = ledger_state(home)
    assert set(state.deliveries) == {("acme", "G-1"), ("acme", "G-2")}
    assert state.same_content(reference_state(tmp_path / "reference", [good1, good2]))
    ledger_check_ok(home)
    assert partials(home) == []


# ---------------------------------------------------------------- full disk, read-only home


def _file_size_limit(limit: int):
    def apply() -> None:
        # Writes past `limit` bytes fail with EFBIG, as on a full disk (not SIGXFSZ's kill).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("second_rows", [SMALL * 20])  # its commit must outgrow every existing file
@pytest.mark.parametrize("where", ["segment", "warehouse"])
def test_full_disk_gives_a_clear_error_and_no_half_state(home, two_deliveries, prepared, where) -> None:
    before, expected = prepared
    if where == "segment":
        limit = 64 * 1024  # the segment's Parquet files outgrow it while being written
    else:
        # every existing file may keep its size; the warehouse cannot grow by the delivery
        limit = max(p.stat().st_size for p in home.root.rglob("*") if p.is_file()) + 4096
    proc = run_cli(home, "ingest", str(two_deliveries[1]), "--json", preexec_fn=_file_size_limit(limit))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("origine: ")]
    assert "disk full" in line or "no space" in line.lower(), line
    _assert_recovers(home, two_deliveries[1], before, expected, committed=False)


def test_read_only_home_gives_a_clear_error_and_no_half_state(home, two_deliveries, prepared) -> None:
    """The home cannot be written. Modes do not stop root (these tests often run as root,
    and the interpreter may live where another user cannot reach it), so as root the home
    is made immutable (``chattr +i``: EPERM for every write, root's included) instead."""
    before, expected = prepared
    paths = [home.root, *home.root.rglob("*")]
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make the home read-only")
        made = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
        undo = ["chattr", "-i", *map(str, paths)]
        if made.returncode != 0:
            subprocess.run(undo, capture_output=True)
            pytest.skip(f"the file system of the home does not support chattr +i: {made.stderr.strip()}")
        restore = lambda: subprocess.run(undo, check=True, capture_output=True)  # noqa: E731
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for path, mode in modes.items():
            os.chmod(path, mode & ~0o222)
        restore = lambda: [os.chmod(p, m) for p, m in modes.items()]  # noqa: E731
    try:
        proc = run_cli(home, "ingest", str(two_deliveries[1]), "--json")
    finally:
        restore()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("origine: ")]
    assert "read-only" in line or "not writable" in line, line
    assert str(home.root) in line
    _assert_recovers(home, two_deliveries[1], before, expected, committed=False)


# ---------------------------------------------------------------- a locked warehouse


def test_locked_warehouse_waits_then_completes(home, two_deliveries, prepared) -> None:
    before, expected = prepared
    holder = duckdb.connect(str(home.warehouse))  # another run writing: holds DuckDB's file lock
    try:
        proc = start_cli(home, "ingest", str(two_deliveries[1]), "--json", env=cli_env(home, ORIGINE_LOCK_WAIT="60"))
        time.sleep(8)  # past imports and into the wait
        assert proc.poll() is None, proc.communicate()
    finally:
        holder.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)[0]["delivery_id"] == "F-2"
    after = ledger_state(home)
    assert after.same_content(expected) and after.head == expected.head
    ledger_check_ok(home)


def test_locked_warehouse_fails_clearly_after_the_wait(home, two_deliveries, prepared) -> None:
    before, expected = prepared
    holder = duckdb.connect(str(home.warehouse))
    try:
        start = time.monotonic()
        proc = run_cli(home, "ingest", str(two_deliveries[1]), "--json", env=cli_env(home, ORIGINE_LOCK_WAIT="1"))
        elapsed = time.monotonic() - start
    finally:
        holder.close()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("origine: ")]
    assert "locked by another process" in line and str(home.warehouse) in line, line
    assert elapsed < 60
    _assert_recovers(home, two_deliveries[1], before, expected, committed=False)
