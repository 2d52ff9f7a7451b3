"""The benchmarks stay runnable: each runs end to end on a tiny input, and the
consistency lines it prints (what a reader of its figures relies on) say True."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.processes import REPO, bench_module

BENCH = REPO / "bench"


def run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_audit_bench_rotates_and_audits_again_with_the_same_verdicts() -> None:
    out = run("audit.py", "--events", "30000", "--targets", "3000", "--rotate")
    assert "summary.json and targets.csv identical: True" in out
    assert "appended 0; same verdicts and reasons as before the rotation: True" in out
    assert "re-keyed {'delivery_rows': " in out


def test_ingest_bench_runs_the_cli_and_reports_each_step() -> None:
    out = run("ingest.py", "--rows", "20000")
    assert "ratio ingest/floor:" in out and "peak RSS (ingest process, VmHWM):" in out
    accepted, quarantined = (int(x.replace(",", "")) for x in out.split("accepted ")[1].split(" {")[0].split(", quarantined "))
    assert accepted + quarantined == 20000 and quarantined > 0
    for step in ("delivery_segment", "warehouse_delivery", "warehouse_delivery_warehouse_expectations"):
        assert f"step {step} " in out
    # ledger v2: a delivery leaf and a row leaf per accepted row, their size reported
    leaves = re.search(r"ledger leaves \{'delivery': 1, 'row': ([\d]+)\}; row leaf bytes: median (\d+), p99 (\d+)", out)
    assert leaves and int(leaves[1]) == accepted and int(leaves[2]) <= 256, out


def _can_make_memory_cgroups() -> bool:
    """Whether this process may create a memory cgroup (root, a writable hierarchy)."""
    try:
        bench_module("ingest").MemoryCgroup(2**30).remove()
    except (SystemExit, OSError):
        return False
    return True


def test_ingest_bench_memory_limit_holds_the_process_tree_and_reports_an_oom_kill() -> None:
    """--memory-limit is how the 4 GiB bound at 55M rows was checked: it must really
    confine the ingest (a cap too small for it is an OOM kill, said as such) and let
    it finish under a cap it fits in."""
    if not _can_make_memory_cgroups():
        pytest.skip("needs root and a memory cgroup controller")
    out = run("ingest.py", "--rows", "20000", "--memory-limit", "4G")
    assert "memory cgroup capped at 4.00 GiB" in out and "OOM kills 0" in out
    killed = subprocess.run([sys.executable, str(BENCH / "ingest.py"), "--rows", "20000", "--memory-limit", "250M"],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0
    assert re.search(r"OOM kills [1-9]", killed.stdout) and "killed: SIGKILL" in killed.stderr


def test_bundle_bench_audits_verifies_and_reports_against_the_floor() -> None:
    out = run("bundle.py", "--rows", "3000")
    assert "floor  (duckdb COPY of the cited leaves as JSON lines" in out
    for line in ("audit + bundle:", "verify:"):
        assert line in out and "ratio" in out.split(line)[1].split("\n")[0] and "peak RSS" in out.split(line)[1].split("\n")[0]
    assert "bytes per target; proof overhead" in out
    targets = int(re.search(r"^targets ([\d,]+),", out, re.M).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert targets > 2000
