"""The landing folder: which dropped deliveries are ready, and under what name.

An entry's name is the vendor's (``livraison-0612345678/``, ``0612345678.zip``): what a
run or a log keeps of it is its name as stored (:func:`origine.manifest.stored_name`),
and a run reads the delivery through a link so named (:func:`link_for_run`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from origine.errors import BadInput
from origine.freetext import scrub_text
from origine.keys import HashKey
from origine.links import link_named, prune_dangling
from origine.manifest import DEFAULT_REGION, MANIFEST_NAMES, partition_key, peek_manifest, stored_name


@dataclass(frozen=True)
class LandingItem:
    """A delivery found in the landing folder."""

    path: Path
    partition_key: str
    run_key: str
    name: str  # the entry's name as stored (its numbers as tokens)
    country: str  # the manifest's region, which the numbers in its names are read in


@dataclass(frozen=True)
class LandingProblem:
    """An entry that cannot be named yet (being copied, or a broken manifest)."""

    path: Path
    message: str  # as stored: numbers in it (the entry's path) as tokens
    name: str  # the entry's name as stored


def scan_landing(folder: Path, key: HashKey) -> tuple[list[LandingItem], list[LandingProblem]]:
    """Deliveries in ``folder`` (sub-folders with a manifest, and .zip files), sorted.

    The run key changes when the delivery's bytes on disk change (size and mtime
    of the manifest and the folder), so a replaced delivery is run again while an
    unchanged one is not; identical bytes under a new name are run and reported
    as a duplicate by the pipeline. Run keys and problems name entries as stored
    (``key`` makes the tokens); a problem's entry has no readable manifest, so its
    numbers are read in :data:`~origine.manifest.DEFAULT_REGION`.
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
        waiting = stored_name(entry.name, key, DEFAULT_REGION)
        if is_zip and not zipfile.is_zipfile(entry):
            problems.append(LandingProblem(entry, "not a complete zip yet", waiting))
            continue
        if entry.is_dir() and not any((entry / n).is_file() for n in MANIFEST_NAMES):
            problems.append(LandingProblem(entry, "no manifest yet", waiting))
            continue
        try:
            manifest = peek_manifest(entry)
        except BadInput as exc:
            problems.append(LandingProblem(entry, scrub_text(exc.describe(), key, DEFAULT_REGION).text, waiting))
            continue
        stamp = _stamp(entry)
        pkey = partition_key(manifest.vendor, manifest.delivery_id)
        name = stored_name(entry.name, key, manifest.country)
        items.append(LandingItem(entry, pkey, f"{pkey}@{name}:{stamp}", name, manifest.country))
    return items, problems


def links_for_runs(items: list[LandingItem], links: Path, key: HashKey) -> dict[Path, Path]:
    """Each item's path -> the path its run is given (:func:`link_for_run`); the links
    under ``links`` whose entry left the landing folder are removed first."""
    prune_dangling(links)
    return {item.path: link_for_run(item, links, key) for item in items}


def link_for_run(item: LandingItem, links: Path, key: HashKey) -> Path:
    """The path a run of ``item`` is given: ``item.path`` when its name is stored as is,
    else a link to it named ``item.name`` (:func:`origine.links.link_named`) under
    ``links/<vendor>/<delivery_id>/``, in a folder of the entry's own: two entries whose
    names differ only in how a number is written each get theirs, so a re-delivery under
    the other spelling is read (and refused as a conflict) from its own bytes.
    """
    if item.name == item.path.name:
        return item.path
    return link_named(item.path, item.name, links.joinpath(*item.partition_key.split("/")), key)


def _stamp(entry: Path) -> str:
    paths = [entry] if entry.is_file() else [entry, *sorted(p for p in entry.iterdir() if p.is_file())]
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{st.st_size}.{st.st_mtime_ns}")
    return "-".join(parts)
