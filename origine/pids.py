"""Is a process still alive: the one answer intake's partial-file sweep and the run reclaimer share."""

from __future__ import annotations

import os
from pathlib import Path


def running(pid: int) -> bool:
    """True if a process ``pid`` exists on this host (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is just not ours to signal
        return True
    return True


def process_id(pid: int) -> str | None:
    """``pid:starttime`` (clock ticks after boot, from /proc), or None if no such process.

    The start time tells a reused pid from the process that first had it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: the pid alone
        return str(pid) if running(pid) else None
    # the fields after the command name (which may hold spaces and parentheses)
    starttime = stat.rsplit(")", 1)[1].split()[19]
    return f"{pid}:{starttime}"
