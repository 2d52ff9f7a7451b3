"""Fault injection for the fault tests: inert unless ``ORIGINE_FAULT_POINT`` is set.

The tests in ``tests/test_faults.py`` run ``origine ingest`` in a subprocess and
need it to die (SIGKILL: no cleanup, no ``finally``, no rollback) at a chosen
place. The code calls :func:`point` with a name at those places; nothing happens
unless the environment names that point::

    ORIGINE_FAULT_POINT=commit.after_ledger origine ingest DELIVERY

kills the process the moment it gets there. With ``ORIGINE_FAULT_DELAY=0.05``
the process is killed that many seconds *after* reaching the point, from a
timer thread, so the kill lands in the middle of whatever runs next (the ledger
append and the tree update, which run inside one DuckDB call chain).

The points, in the order one ingest reaches them:

``prepare.start``         before the delivery is read (nothing written yet)
``prepare.done``          the segment is written and renamed; nothing committed
``commit.begin``          the warehouse transaction is open; nothing inserted
``commit.after_rows``     delivery, files, rows, quarantine inserted (uncommitted)
``commit.in_tree``        hashing the new tree nodes into their file under ``tmp/``
``commit.after_ledger``   events appended, tree nodes and head recorded (uncommitted)
``commit.before_commit``  everything inserted; COMMIT is next
``commit.after_commit``   committed; the run has not reported back yet

Two points pause instead of killing (:func:`pause`, for ``origine audit``):
``ORIGINE_FAULT_POINT=bundle.after_evidence ORIGINE_FAULT_PAUSE=5`` sleeps 5 s once
the bundle's evidence is exported and the warehouse released, while the rest of the
bundle is written (the test that an ingest then commits without waiting); with
``ORIGINE_FAULT_RESUME=FILE`` it ends as soon as FILE exists. ``audit.verdicts``
pauses the same way once the audit has read its snapshot and released the warehouse,
before it computes the verdicts; with ``ORIGINE_FAULT_PAUSED=FILE`` a pause first
writes FILE (so a test knows the warehouse is released).

Never set these variables in production.
"""

from __future__ import annotations

import os
import signal
import threading

POINT_ENV = "ORIGINE_FAULT_POINT"
DELAY_ENV = "ORIGINE_FAULT_DELAY"

POINTS = (
    "prepare.start",
    "prepare.done",
    "commit.begin",
    "commit.after_rows",
    "commit.in_tree",
    "commit.after_ledger",
    "commit.before_commit",
    "commit.after_commit",
)


def point(name: str) -> None:
    """Kill this process here (or after ``ORIGINE_FAULT_DELAY`` s) when the env names ``name``."""
    wanted = os.environ.get(POINT_ENV)
    if not wanted:
        return
    assert name in POINTS, name
    if name != wanted:
        return
    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay <= 0:
        _kill()
    timer = threading.Timer(delay, _kill)
    timer.daemon = True
    timer.start()


PAUSE_POINTS = ("bundle.after_evidence", "audit.verdicts")
PAUSE_ENV = "ORIGINE_FAULT_PAUSE"


def pause(name: str) -> None:
    """Sleep ``ORIGINE_FAULT_PAUSE`` s here when the env names ``name`` (else nothing)."""
    assert name in PAUSE_POINTS, name
    if os.environ.get(POINT_ENV) == name:
        import time
        from pathlib import Path

        # With ORIGINE_FAULT_RESUME=FILE the pause ends as soon as FILE exists.
        resume = os.environ.get("ORIGINE_FAULT_RESUME")
        paused = os.environ.get("ORIGINE_FAULT_PAUSED")
        if paused:
            Path(paused).write_text("paused")
        deadline = time.monotonic() + float(os.environ.get(PAUSE_ENV) or 0)
        while time.monotonic() < deadline and not (resume and Path(resume).exists()):
            time.sleep(0.05)


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
