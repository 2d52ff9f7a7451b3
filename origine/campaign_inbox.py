"""The home's ``campaigns/`` folder after an audit: keep the spec, drop the raw numbers.

A campaign spec dropped in ``$ORIGINE_HOME/campaigns/`` usually comes with the files it
names: its target list and send report, which hold raw phone numbers. Once the
campaigns sensor's audit of the spec has succeeded, the ledger holds what they said
(``targeted`` events under subject keys) and the bundle holds the verdicts, so the raw
files have done their job. :func:`retire_campaign` moves the spec to
``campaigns/audited/`` (out of the sensor's sight, kept as the record of what was
audited) and deletes the raw files it named inside ``campaigns/`` that no spec still
waiting there names. Files outside the campaigns folder are never touched: they are the
user's.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from origine.campaign import load_campaign, scan_campaigns
from origine.errors import BadInput

AUDITED = "audited"


@dataclass
class Retired:
    """What :func:`retire_campaign` did: where the spec went, which raw files it deleted or kept."""

    spec: Path | None = None
    deleted: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Counts and the spec's new path (file names of raw files are not echoed: they may be numbers)."""
        return {"spec": str(self.spec) if self.spec else None, "raw_files_deleted": len(self.deleted),
                "raw_files_kept": len(self.kept)}


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _raw_files(spec: Path) -> set[Path]:
    campaign = load_campaign(spec)
    return {p.resolve() for p in (campaign.target_file, campaign.send_report) if p is not None}


def retire_campaign(spec: Path, folder: Path, audited_sha256: str) -> Retired:
    """After a successful audit of ``spec`` (a file directly in the campaigns ``folder``):
    move it to ``folder/audited/`` and delete the raw number files it named there.

    Nothing happens when the spec is not in ``folder`` (a run started by hand on another
    path) or its bytes are no longer those audited (``audited_sha256``: it was edited
    meanwhile, and the sensor will audit the new version). A raw file another spec still
    waiting in ``folder`` names is kept for that spec's audit; when a waiting spec cannot
    be read, every raw file is kept (it may name any of them).
    """
    done = Retired()
    spec = Path(spec)
    if spec.resolve().parent != Path(folder).resolve() or not spec.is_file():
        return done
    raw = spec.read_bytes()
    if hashlib.sha256(raw).hexdigest() != audited_sha256:
        return done
    try:
        mine = _raw_files(spec)
    except BadInput:  # its files vanished since the audit read them: nothing left to delete
        mine = set()
    archive = Path(folder) / AUDITED
    archive.mkdir(exist_ok=True)
    # The bytes' digest in the name: the same spec audited twice is one file, two versions two.
    target = archive / f"{spec.stem}.{audited_sha256[:12]}{spec.suffix}"
    os.replace(spec, target)
    done.spec = target
    still_needed: set[Path] = set()
    for waiting in scan_campaigns(Path(folder)):
        try:
            still_needed |= _raw_files(waiting.path)
        except BadInput:
            done.kept = sorted(p for p in mine if p.exists())
            return done
    for path in sorted(mine):
        if not _inside(path, Path(folder)) or path == target.resolve():
            continue
        if path in still_needed:
            done.kept.append(path)
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # another spec's audit deleted it first
            continue
        done.deleted.append(path)
    return done
