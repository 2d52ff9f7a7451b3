"""Taking in one delivery, in the two steps the pipeline runs.

``prepare`` is the heavy, parallel step (partitions run it side by side);
``commit`` is the short serialized step that makes the delivery part of the
warehouse and the ledger in one transaction.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from origine import faults, warehouse
from origine.home import Home
from origine.ingest.commit import commit_delivery, duplicate_or_conflict, existing_delivery
from origine.ingest.prepare import prepare_delivery, segment_dir
from origine.ingest.report import DeliveryReport
from origine.keys import HashKey
from origine.manifest import LINK_PREFIX, UNZIP_PREFIX, host_tag, open_delivery
from origine.pids import running
from origine.profiles import load_profile
from origine.signing import load_signer


def prepare(path: Path, home: Home, key: HashKey, *, progress: bool = False) -> DeliveryReport:
    """Check, read and key-hash the delivery at ``path`` into its segment.

    The same bytes already committed return the stored report marked
    ``duplicate`` without reading the rows again; the same id with other bytes
    raises :class:`~origine.errors.DeliveryConflict`.
    """
    home.ensure()
    sweep_dead_partials(home.scratch)  # zips a killed run left extracted (raw numbers)
    with open_delivery(path, scratch=home.scratch) as delivery:
        m = delivery.manifest
        with warehouse.session(home.warehouse, read_only=True) as con:
            if _has_tables(con):
                warehouse.check_key_readonly(con, key.key_id)
                stored = duplicate_or_conflict(
                    con, m.vendor, m.delivery_id, delivery.fingerprint, delivery.label
                )
                if stored is not None:
                    return stored
        sweep_dead_partials(segment_dir(home.segments, m.vendor, m.delivery_id, delivery.fingerprint).parent)
        faults.point("prepare.start")
        report = prepare_delivery(
            delivery,
            key=key,
            profile=load_profile(m.vendor, home.profiles),
            segments_root=home.segments,
            progress=progress,
        )
        faults.point("prepare.done")
        return report


def check_conflict(path: Path, home: Home) -> None:
    """Raise :class:`~origine.errors.DeliveryConflict` when ``path`` is a delivery whose
    (vendor, delivery_id) was committed with other bytes; otherwise nothing.

    Called before a Dagster run is created (CLI and landing sensor): a refused
    re-delivery then makes no run in the good delivery's partition, which stays green.
    Reads the manifest only, and hashes the files only when the id is already committed.
    """
    from origine.manifest import peek_identity

    if not home.warehouse.exists():
        return
    vendor, delivery_id = peek_identity(path)
    with warehouse.session(home.warehouse, read_only=True) as con:
        if not _has_tables(con) or existing_delivery(con, vendor, delivery_id) is None:
            return
    with open_delivery(path, scratch=home.scratch) as delivery:
        with warehouse.session(home.warehouse, read_only=True) as con:
            duplicate_or_conflict(con, vendor, delivery_id, delivery.fingerprint, delivery.label)


def commit(report: DeliveryReport, home: Home, *, label: str) -> DeliveryReport:
    """Make a prepared delivery part of the warehouse (idempotent; all or nothing)."""
    if report.duplicate:
        return report
    sweep_dead_partials(home.scratch)  # tree nodes a killed commit left on their way in
    with warehouse.session(home.warehouse) as con:
        return commit_delivery(
            con, report, label=label, signer=load_signer(home.keys), scratch=home.scratch
        )


def sweep_dead_partials(folder: Path) -> list[Path]:
    """Remove the half-written segments (``<fingerprint>.partial-<pid>-<id>``) in ``folder``
    whose writer is no longer running: a run killed while reading leaves one behind (and
    a commit killed while hashing the tree, its ``tmp/nodes.partial-<pid>-<id>``; an
    ingest killed with a zip delivery open, the extracted delivery
    ``tmp/unzip-<pid>-<host>-<id>``, raw numbers included; a CLI run killed, the folder
    ``tmp/link-<pid>-<host>-<id>`` of the link it read its input through, which points at
    the path as given: only this host's).

    They are never read (only the renamed segment is), this only gives the space back
    (and, for an extracted zip, removes raw personal data the run meant to delete).
    Segments and scratch live on this host's disk, so the pid tells whether the writer
    still runs; a pid reused by another process only delays the removal.
    """
    removed = []
    owned = [(p, p.name.rsplit(".partial-", 1)[1]) for p in folder.glob("*.partial-*")]
    here = host_tag()
    owned += [
        (p, p.name[len(prefix):])
        for prefix in (UNZIP_PREFIX, LINK_PREFIX)
        for p in folder.glob(f"{prefix}*")
        # another host's pids mean nothing here (a link folder is never followed: rmtree
        # removes the link, not what it points at)
        if p.is_dir() and not p.is_symlink() and p.name[len(prefix):].split("-", 2)[1:2] == [here]
    ]
    for leftover, tail in owned:
        pid = tail.split("-", 1)[0]
        if pid.isdigit() and not running(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed


def _has_tables(con: object) -> bool:
    return bool(
        con.execute(  # type: ignore[attr-defined]
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'deliveries'"
        ).fetchone()[0]
    )
