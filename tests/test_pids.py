"""origine.pids: the liveness answer shared by intake's sweep and the run reclaimer."""

from __future__ import annotations

import os
import subprocess
import sys

from origine.pids import process_id, running
from pipelines.runs import _alive


def test_a_live_process_is_running_and_named_with_its_start_time() -> None:
    assert running(os.getpid())
    me = process_id(os.getpid())
    assert me is not None and me.split(":")[0] == str(os.getpid())
    assert _alive(me)


def test_a_finished_process_is_not_running_and_has_no_id() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    named = process_id(child.pid)
    child.wait()  # reaped: the pid names nothing now
    assert not running(child.pid)
    assert process_id(child.pid) is None
    assert named is not None and not _alive(named)


def test_a_reused_pid_with_another_start_time_is_not_the_same_process() -> None:
    me = process_id(os.getpid())
    assert me is not None and ":" in me
    pid, start = me.split(":")
    assert not _alive(f"{pid}:{int(start) + 1}")
