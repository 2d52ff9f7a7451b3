"""Hostile and broken input files (issue 17): what a careless or hostile vendor sends.

Each test builds the input the issue describes, on the fly, and checks what origine
does with it: a leftover extracted zip is swept once its run is dead, decompression
bombs fail with exit 2 in bounded memory, an XML entity bomb in a workbook is refused,
every sheet of a workbook is read and accounted for, a UTF-8 file with one cp1252 row
is not read as mojibake, and JSON arrays of purposes keep their consent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from origine import intake
from origine.home import Home
from tests.processes import cli_env, ingest_ok, run_cli

MANIFEST = (
    "delivery_id: {id}\nvendor: hostile\nrecipient: party-a\n"
    "delivered_at: 2024-06-05T09:00:00+02:00\ncountry: FR\nfiles: [{{path: {name}}}]\n"
)


def delivery(parent: Path, delivery_id: str, name: str, data: bytes) -> Path:
    """A delivery folder holding one data file ``name``."""
    folder = parent / delivery_id
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    (folder / "manifest.yaml").write_text(MANIFEST.format(id=delivery_id, name=name))
    return folder


def zipped(folder: Path) -> Path:
    """``folder`` as ``folder.zip`` (its files at the zip's top)."""
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, path.name)
    return archive


CONTACTS = "phone;source;consent_purposes\n" + "".join(
    f"06{i:08d};jeu-concours;propagande électorale\n" for i in range(12345670, 12345690)
)


# ---------------------------------------------------------------- item 4: extracted zips


def test_a_zip_ingest_killed_while_open_leaves_its_extraction_and_the_next_run_sweeps_it(
    home: Home, key: object, tmp_path: Path
) -> None:
    """SIGKILL (no ``finally`` runs) with the zip extracted: the raw delivery stays in
    ``tmp/unzip-<pid>-*``; the next ingest removes it, and ingests."""
    archive = zipped(delivery(tmp_path / "in", "Z-1", "contacts.csv", CONTACTS.encode()))
    proc = run_cli(home, "ingest", str(archive), "--json", env=cli_env(home, ORIGINE_FAULT_POINT="prepare.start"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [left] = list(home.scratch.glob("unzip-*"))
    assert (left / "contacts.csv").read_text() == CONTACTS  # raw numbers, left on disk
    assert left.name.startswith("unzip-") and not intake._running(int(left.name.split("-")[1]))

    [summary] = ingest_ok(home, archive)
    assert summary["rows_read"] == 20 and summary["rows_accepted"] == 20
    assert not left.exists()
    assert list(home.scratch.glob("unzip-*")) == []


def test_the_sweep_keeps_the_extraction_of_a_live_run_and_removes_a_dead_ones(home: Home) -> None:
    """The owner is the pid in the name: this process's folder stays, a reaped child's goes."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process (until reused, which only delays removal)
    dead = home.scratch / f"unzip-{child.pid}-x1y2z3"
    live = home.scratch / f"unzip-{os.getpid()}-a1b2c3"
    for folder in (dead, live):
        (folder / "d").mkdir(parents=True)
        (folder / "d" / "contacts.csv").write_text(CONTACTS)
    stray = home.scratch / "unzip-notes.txt"  # not a folder of ours: never touched
    stray.write_text("x")
    assert intake.sweep_dead_partials(home.scratch) == [dead]
    assert not dead.exists() and live.exists() and stray.exists()

