"""The landing folder: which dropped deliveries are ready, and under what name."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from origine.errors import BadInput
from origine.manifest import MANIFEST_NAMES, partition_key, peek_identity


@dataclass(frozen=True)
class LandingItem:
    """A delivery found in the landing folder."""

    path: Path
    partition_key: str
    run_key: str


@dataclass(frozen=True)
class LandingProblem:
    """An entry that cannot be named yet (being copied, or a broken manifest)."""

    path: Path
    message: str


def scan_landing(folder: Path) -> tuple[list[LandingItem], list[LandingProblem]]:
    """Deliveries in ``folder`` (sub-folders with a manifest, and .zip files), sorted.

    The run key changes when the delivery's bytes on disk change (size and mtime
    of the manifest and the folder), so a replaced delivery is run again while an
    unchanged one is not; identical bytes under a new name are run and reported
    as a duplicate by the pipeline.
    """
    items: list[LandingItem] = []
    problems: list[LandingProblem] = []
    if not folder.is_dir():
        return items, problems
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")) or entry.name.endswith((".partial", ".tmp")):
            continue
        is_zip = entry.is_file() and entry.suffix.lower() == ".zip"
        if not (entry.is_dir() or is_zip):
            continue
        if is_zip and not zipfile.is_zipfile(entry):
            problems.append(LandingProblem(entry, "not a complete zip yet"))
            continue
        if entry.is_dir() and not any((entry / n).is_file() for n in MANIFEST_NAMES):
            problems.append(LandingProblem(entry, "no manifest yet"))
            continue
        try:
            vendor, delivery_id = peek_identity(entry)
        except BadInput as exc:
            problems.append(LandingProblem(entry, exc.describe()))
            continue
        stamp = _stamp(entry)
        key = partition_key(vendor, delivery_id)
        items.append(LandingItem(entry, key, f"{key}@{entry.name}:{stamp}"))
    return items, problems


def _stamp(entry: Path) -> str:
    paths = [entry] if entry.is_file() else [entry, *sorted(p for p in entry.iterdir() if p.is_file())]
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{st.st_size}.{st.st_mtime_ns}")
    return "-".join(parts)
