"""Links named as stored: how a run reads an input whose name may hold personal data.

A delivery folder, a zip or a suppression file named after a number
(``stop-0611223399.csv``) would put that number in Dagster's storage (run config,
partition and run keys, error events) if a run were given its path. A run is given
instead a symbolic link to it, named as the ledger stores the name (the number as its
keyed token), so what Dagster keeps is the stored name.

Each input gets a folder of its own, named by a keyed digest of its absolute path:
two inputs whose names differ only in how a number is written have the same stored
name, and must still never share a link (each run must read its own bytes).
"""

from __future__ import annotations

import hmac
import os
import uuid
from pathlib import Path

from origine.keys import HashKey

MAX_NAME_BYTES = 255
"""The longest file name Linux file systems take; a longer stored name is shortened."""


def input_digest(target: Path, key: HashKey) -> str:
    """16 hex digits naming ``target`` (its absolute path, keyed: the path may hold a number)."""
    raw = str(target.absolute()).encode("utf-8", "surrogateescape")
    return hmac.new(key.secret, raw, "sha256").hexdigest()[:16]


def fitted_name(name: str, digest: str) -> str:
    """``name`` as a file name the file system takes: ``.``/``..``/empty become ``input``;
    a name longer than :data:`MAX_NAME_BYTES` in UTF-8 keeps its start and suffix around
    ``~`` and ``digest``'s first 8 digits (tokens made it longer than the name given)."""
    if name in ("", ".", ".."):
        return "input"
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES:
        return name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 16 else ""
    tail = f"~{digest[:8]}{suffix}"
    budget = MAX_NAME_BYTES - len(tail.encode("utf-8", "surrogateescape"))
    head = name[: len(name) - len(suffix)]
    while len(head.encode("utf-8", "surrogateescape")) > budget:
        head = head[:-1]
    return head + tail


def link_named(target: Path, name: str, folder: Path, key: HashKey) -> Path:
    """A symbolic link to ``target`` named ``name`` (a name as stored), in
    ``folder/<input_digest(target)>/`` (see the module docstring).

    Left alone when it already points at ``target``; otherwise made under a temporary
    name and renamed over the old one, so a run reading it while the next sensor tick
    makes it again still finds it. Never ``target``'s own path: an ``OSError`` (a folder
    that cannot be written) is raised rather than handing a run the name as given.
    """
    target = target.absolute()
    digest = input_digest(target, key)
    home = folder / digest
    link = home / fitted_name(name, digest)
    if link.is_symlink() and os.readlink(link) == str(target):
        return link
    home.mkdir(parents=True, exist_ok=True)
    fresh = home / f".{uuid.uuid4().hex}.tmp"
    try:
        fresh.symlink_to(target)
        os.replace(fresh, link)
    finally:
        fresh.unlink(missing_ok=True)  # gone once renamed
    return link


def prune_dangling(folder: Path) -> None:
    """Remove the links under ``folder`` whose input is gone, and the folders left empty."""
    if not folder.is_dir():
        return
    # os.walk never follows a link: a link to a delivery folder is not entered
    for root, dirs, files in os.walk(folder, topdown=False):
        here = Path(root)
        for name in files + dirs:
            path = here / name
            if path.is_symlink() and not path.exists():
                path.unlink(missing_ok=True)
        if here != folder and not any(here.iterdir()):
            here.rmdir()
