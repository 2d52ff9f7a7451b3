"""The delivery contract: locating a delivery, reading its manifest, checking its files.

A delivery is a folder, or a ``.zip`` of one, holding ``manifest.yaml`` (or
``manifest.json``) and data files. Every path the manifest names must stay inside
the delivery: no ``..``, no absolute path, no symlink; declared SHA-256 digests
are checked here, declared row counts once the rows are read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml

from origine.dates import UnreadableDate, parse_instant
from origine.errors import BadInput

MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_CHUNK = 1 << 20
# A zip that expands past this is refused: a delivery is data, not a bomb.
MAX_UNZIPPED_BYTES = 200 << 30
# Folders a zip is extracted into, under the home's scratch: ``unzip-<pid>-<random>``.
UNZIP_PREFIX = "unzip-"


@dataclass(frozen=True)
class FileEntry:
    """One data file the manifest declares."""

    path: str
    sha256: str | None = None
    rows: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked manifest."""

    delivery_id: str
    vendor: str
    recipient: str | None
    delivered_at: datetime
    country: str
    files: tuple[FileEntry, ...]
    claims: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"

    def tzinfo(self) -> Any:
        """The zone naive dates in this delivery are read in."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class CheckedFile:
    """A data file that passed the manifest checks, with its digest."""

    entry: FileEntry
    local_path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Delivery:
    """A delivery ready to read: manifest, checked files, and its fingerprint."""

    label: str
    root: Path
    manifest: Manifest
    manifest_sha256: str
    files: tuple[CheckedFile, ...]

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the manifest's and files' digests: equal bytes, equal fingerprint."""
        doc = {
            "manifest": self.manifest_sha256,
            "files": {f.entry.path: f.sha256 for f in self.files},
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    """The file's SHA-256 hex digest and size, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


@contextlib.contextmanager
def open_delivery(path: Path, *, scratch: Path | None = None) -> Iterator[Delivery]:
    """Locate, unpack (for a zip), parse and check a delivery.

    A zip is extracted into a private temporary folder under ``scratch`` that is
    removed on exit, so raw numbers are not left behind. Its name carries this
    process's id (``unzip-<pid>-<random>``): a run killed before its clean-up leaves
    it, and :func:`origine.intake.sweep_dead_partials` removes it once that pid is gone.
    """
    path = Path(path)
    if not path.exists():
        raise BadInput("no such delivery (folder or .zip)", file=str(path))
    if path.is_file() and zipfile.is_zipfile(path):
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{UNZIP_PREFIX}{os.getpid()}-", dir=scratch))
        try:
            _extract_zip(path, tmp)
            yield load_delivery(_zip_root(tmp, path), label=str(path))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif path.is_dir():
        yield load_delivery(path, label=str(path))
    else:
        raise BadInput(_not_a_delivery(path), file=str(path))


def _not_a_delivery(path: Path) -> str:
    """Why a file is not a delivery: a .zip that does not open is named as such."""
    if path.suffix.lower() == ".zip":
        return "truncated or corrupt zip (its central directory is unreadable)"
    return "a delivery is a folder or a .zip of one"


def _extract_zip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            total = 0
            for info in zf.infolist():
                name = PurePosixPath(info.filename)
                if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                    raise BadInput(
                        f"zip member {info.filename!r} leaves the delivery", file=str(archive)
                    )
                # Unix symlinks are stored with mode 0o120000 in the high bits.
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise BadInput(
                        f"zip member {info.filename!r} is a symlink", file=str(archive)
                    )
                total += info.file_size
                if total > MAX_UNZIPPED_BYTES:
                    raise BadInput("zip expands past the size limit", file=str(archive))
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise BadInput(f"corrupt zip: {exc}", file=str(archive)) from None
    except (EOFError, zlib.error) as exc:
        raise BadInput(f"truncated or corrupt zip: {exc}", file=str(archive)) from None


def _zip_root(tmp: Path, archive: Path) -> Path:
    if any((tmp / n).exists() for n in MANIFEST_NAMES):
        return tmp
    entries = [p for p in tmp.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    raise BadInput("zip holds no manifest.yaml or manifest.json at its top", file=str(archive))


def load_delivery(root: Path, *, label: str | None = None) -> Delivery:
    """Parse and check the delivery folder ``root``."""
    label = label or str(root)
    manifest_path = next((root / n for n in MANIFEST_NAMES if (root / n).is_file()), None)
    if manifest_path is None:
        raise BadInput("no manifest.yaml or manifest.json", file=label)
    mlabel = f"{label}/{manifest_path.name}"
    if manifest_path.is_symlink():
        raise BadInput("the manifest is a symlink", file=mlabel)
    raw = manifest_path.read_bytes()
    manifest = parse_manifest(raw, label=mlabel, json_format=manifest_path.suffix == ".json")
    checked = tuple(_check_file(root, entry, label) for entry in manifest.files)
    return Delivery(label, root, manifest, hashlib.sha256(raw).hexdigest(), checked)


def parse_manifest(raw: bytes, *, label: str, json_format: bool = False) -> Manifest:
    """Parse manifest bytes (YAML or JSON) into a checked :class:`Manifest`."""
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text) if json_format else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise BadInput(
            f"unreadable manifest: {type(exc).__name__}",
            file=label,
            row=(line + 1) if line is not None else getattr(exc, "lineno", None),
        ) from None
    if not isinstance(doc, dict):
        raise BadInput("the manifest must be a mapping", file=label)

    def required(name: str) -> Any:
        value = doc.get(name)
        if value in (None, ""):
            raise BadInput("required field missing", file=label, column=name)
        return value

    delivery_id = str(required("delivery_id"))
    vendor = str(required("vendor"))
    for name, value in (("delivery_id", delivery_id), ("vendor", vendor)):
        if not _IDENT.match(value):
            raise BadInput(
                "must be letters, digits, '.', '_' or '-' (at most 128)", file=label, column=name
            )
    country = str(required("country")).upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise BadInput(f"unknown region {country!r} (ISO 3166 alpha-2)", file=label, column="country")
    tz_name = str(doc.get("timezone") or "UTC")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(f"unknown time zone {tz_name!r}", file=label, column="timezone") from None
    try:
        delivered_at = parse_instant(required("delivered_at"), ZoneInfo(tz_name))
    except UnreadableDate as exc:
        raise BadInput(str(exc), file=label, column="delivered_at") from None
    assert delivered_at is not None
    files_doc = required("files")
    if not isinstance(files_doc, list):
        raise BadInput("expected a list of files", file=label, column="files")
    files = tuple(_file_entry(item, i, label) for i, item in enumerate(files_doc, 1))
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise BadInput(f"file {f.path!r} listed twice", file=label, column="files")
        seen.add(f.path)
    claims = doc.get("claims") or {}
    if not isinstance(claims, dict):
        raise BadInput("expected a mapping", file=label, column="claims")
    recipient = doc.get("recipient")
    return Manifest(
        delivery_id=delivery_id,
        vendor=vendor,
        recipient=str(recipient) if recipient not in (None, "") else None,
        delivered_at=delivered_at,
        country=country,
        files=files,
        claims=_jsonable(claims),
        timezone=tz_name,
    )


def _file_entry(item: Any, index: int, label: str) -> FileEntry:
    column = f"files[{index}]"
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict) or not item.get("path"):
        raise BadInput("each file needs a path", file=label, column=column)
    sha = item.get("sha256")
    if sha is not None and not _HEX64.match(str(sha)):
        raise BadInput("sha256 must be 64 hex characters", file=label, column=f"{column}.sha256")
    rows = item.get("rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
        raise BadInput("rows must be a whole number", file=label, column=f"{column}.rows")
    return FileEntry(str(item["path"]), str(sha).lower() if sha else None, rows)


def _check_file(root: Path, entry: FileEntry, label: str) -> CheckedFile:
    where = f"{label}/{entry.path}"
    rel = PurePosixPath(entry.path.replace("\\", "/"))
    if rel.is_absolute() or entry.path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", entry.path):
        raise BadInput("absolute path in manifest: files must be inside the delivery", file=where)
    if ".." in rel.parts:
        raise BadInput("path leaves the delivery ('..')", file=where)
    local = root.joinpath(*rel.parts)
    # Any symlink on the way could point outside the delivery.
    probe = root
    for part in rel.parts:
        probe = probe / part
        if probe.is_symlink():
            raise BadInput("symlink in delivery: files must be regular files inside it", file=where)
    if not local.exists():
        raise BadInput("file listed in the manifest is missing", file=where)
    if not local.is_file():
        raise BadInput("not a regular file", file=where)
    if not local.resolve().is_relative_to(root.resolve()):
        raise BadInput("path leaves the delivery", file=where)
    digest, size = sha256_file(local)
    if entry.sha256 and entry.sha256 != digest:
        raise BadInput(
            f"SHA-256 mismatch: manifest declares {entry.sha256}, file has {digest}", file=where
        )
    return CheckedFile(entry, local, digest, size)


def _jsonable(value: Any) -> Any:
    """Claims as plain JSON types (YAML turns dates into objects)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def peek_identity(path: Path) -> tuple[str, str]:
    """``(vendor, delivery_id)`` from a delivery's manifest, without reading its data.

    Used to name the Dagster partition before the heavy work starts.
    """
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if PurePosixPath(n).name in MANIFEST_NAMES]
                names = [n for n in names if len(PurePosixPath(n).parts) <= 2 and "__MACOSX" not in n]
                if not names:
                    raise BadInput("zip holds no manifest.yaml or manifest.json", file=str(path))
                name = min(names, key=len)
                raw = zf.read(name)
        except zipfile.BadZipFile as exc:
            raise BadInput(f"corrupt zip: {exc}", file=str(path)) from None
        label = f"{path}/{name}"
    elif path.is_dir():
        manifest = next((path / n for n in MANIFEST_NAMES if (path / n).is_file()), None)
        if manifest is None:
            raise BadInput("no manifest.yaml or manifest.json", file=str(path))
        raw, label, name = manifest.read_bytes(), str(manifest), manifest.name
    elif not path.exists():
        raise BadInput("no such delivery (folder or .zip)", file=str(path))
    else:
        raise BadInput(_not_a_delivery(path), file=str(path))
    m = parse_manifest(raw, label=label, json_format=name.endswith(".json"))
    return m.vendor, m.delivery_id


def partition_key(vendor: str, delivery_id: str) -> str:
    """The Dagster partition key of a delivery."""
    return f"{vendor}/{delivery_id}"
