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

from origine.dates import UnreadableDate, parse_instant
from origine.documents import (
    INSTANT, LIST, MAPPING, MAX_DOCUMENT_BYTES, TEXT, TEXT_OR_LIST, WHOLE, DocumentType, Key, Schema,
    check_keys, load_document, read_bounded,
)
from origine.errors import BadInput
from origine.freetext import TEL, personal_data_kinds, phone_e164, scrub_text
from origine.keys import HashKey

MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_CHUNK = 1 << 20
# A zip that expands past this is refused: a delivery is data, not a bomb.
MAX_UNZIPPED_BYTES = 200 << 30
# Folders a zip is extracted into, under the home's scratch: ``unzip-<pid>-<host>-<random>``.
UNZIP_PREFIX = "unzip-"
# Folders holding the link a CLI run reads its input through (named as stored), likewise.
LINK_PREFIX = "link-"
# The region a name is read in when no manifest says it (a manifest that does not parse):
# origine's default country; a number written with its country code is found in any region.
DEFAULT_REGION = "FR"


def stored_name(name: str, key: HashKey, region: str) -> str:
    """A delivery's file name (a manifest path, a folder's or a zip's name) as origine stores
    it: the report, the warehouse, the ledger's delivery leaf, Dagster's storage. A name
    written after a number (``contacts-0612345678.csv``) would carry it there, so each
    number in it becomes its token (:func:`origine.freetext.scrub_text`, read in the
    delivery's region), as for suppression files and send reports."""
    return scrub_text(name, key, region).text


def host_tag() -> str:
    """This machine's name as it appears in scratch folder names (letters and digits)."""
    import socket

    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"


FILE_SCHEMA = Schema(
    "a `files` entry",
    (
        Key("path", TEXT, "The file's path inside the delivery, `/`-separated: no `..`, no absolute "
            "path, no symlink. `contacts.csv`, `./contacts.csv` and `.//contacts.csv` are the same "
            "file: listing it twice is refused. A number in it (`contacts-0612345678.csv`) is stored as its "
            "keyed token (report, warehouse, ledger); errors name the file as given.", required=True),
        Key("sha256", TEXT, "The file's SHA-256 (64 hex characters): checked before anything is read."),
        Key("rows", WHOLE, "The number of data rows (header excluded): checked once the rows are read."),
    ),
    what="An entry is a mapping, or just the path as text (`files: [contacts.csv]`).",
)

CLAIMS_SCHEMA = Schema(
    "`claims`",
    (
        Key("row_count", WHOLE, "Rows the vendor says it delivered: compared with the rows read."),
        Key("consent_purposes", TEXT_OR_LIST, "Purposes the vendor says every row consented to "
            "(codes or the vendor's words, a list or `|`-separated): compared with the purposes found."),
        Key("consent_rate", TEXT, "Share of rows with that consent: `1.0`, `0.9`, `90`, `\"90 %\"`: "
            "compared with the measured share (±0.5 point)."),
        Key("sources", TEXT_OR_LIST, "Collection sources the vendor names: compared with the "
            "`source` values found."),
    ),
    others="any other claim is recorded with the delivery and reported in the audit as not "
    "checked (a name this close to a checked claim, such as `row_cont`, is refused as a typo)",
    what="The vendor's assertions: measured, never trusted. Each mismatch is a `CLAIM_MISMATCH` finding.",
)

MANIFEST_SCHEMA = Schema(
    "delivery manifest",
    (
        Key("delivery_id", TEXT, "The vendor's identifier of this delivery: letters, digits, `.`, `_`, `-` "
            "(at most 128), never one holding a valid phone number in any written form, nine digits "
            "included (refused: it names the delivery in the ledger, Dagster and every export; "
            "zero-padded counters such as `0000012345` are not numbers). With `vendor`, it names the delivery; the same bytes again "
            "are a duplicate, other bytes under the same name are refused.", required=True),
        Key("vendor", TEXT, "Who delivers: same characters as `delivery_id`. Chooses the vendor profile "
            "`$ORIGINE_HOME/profiles/<vendor>.yaml`.", required=True),
        Key("recipient", TEXT, "Who receives the numbers (recorded in each `delivered` event)."),
        Key("delivered_at", INSTANT, "When the vendor delivered (consent dated after it is flagged).",
            required=True),
        Key("country", TEXT, "ISO 3166 alpha-2 region (`FR`, `MA`, `SN`…) of numbers written without "
            "a `+` prefix.", required=True),
        Key("timezone", TEXT, "IANA time zone (`Europe/Paris`) of the dates written without an offset, "
            "here and in the data files.", default="UTC"),
        Key("files", LIST, "The data files: CSV/TSV, XLSX, Parquet, JSON Lines, optionally gzipped.",
            required=True, keys=FILE_SCHEMA),
        Key("claims", MAPPING, "What the vendor asserts about the delivery.", keys=CLAIMS_SCHEMA),
    ),
)

MANIFEST_DOCUMENT = DocumentType(
    "Delivery manifest",
    "`manifest.yaml`, `manifest.yml` or `manifest.json` at the top of a delivery folder or zip",
    MANIFEST_SCHEMA,
    example="""delivery_id: SC-2024-06-05-001
vendor: selfcontact
recipient: party-a
delivered_at: 2024-06-05T09:00:00+02:00
country: FR
timezone: Europe/Paris
files:
  - {path: contacts.csv, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, rows: 120000}
claims:
  row_count: 120000
  consent_purposes: [political.electoral]
  consent_rate: 1.0
  sources: [jeu-concours-ete-2023]
""",
)


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

    def stored_names(self, key: HashKey) -> dict[str, str]:
        """Each data file's manifest path -> its name as stored (:func:`stored_name`).

        Two paths that differ only in how a number is written (``0612345678.csv``,
        ``06 12 34 56 78.csv``) would be stored under one name, and a row leaf names its
        file by its position among the delivery leaf's names: refused.
        """
        names: dict[str, str] = {}
        first: dict[str, int] = {}
        for i, f in enumerate(self.files, 1):
            name = stored_name(f.entry.path, key, self.manifest.country)
            same = first.setdefault(name, i)
            if same != i:
                raise BadInput(
                    f"files[{i}] ({f.entry.path!r}) and files[{same}] ({self.files[same - 1].entry.path!r}) "
                    "would be stored under the same name (the number in their names is kept as one "
                    "token): rename one",
                    file=self.label,
                    column=f"files[{i}].path",
                )
            names[f.entry.path] = name
        return names

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
    process's id and host (``unzip-<pid>-<host>-<random>``): a run killed before its
    clean-up leaves it, and :func:`origine.ingest.intake.sweep_dead_partials` on the same host
    removes it once that pid is gone (a home shared by workers on several machines
    keeps the folders of the other hosts' runs).
    """
    path = Path(path)
    if not path.exists():
        raise BadInput("no such delivery (folder or .zip)", file=str(path))
    if path.is_file() and zipfile.is_zipfile(path):
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{UNZIP_PREFIX}{os.getpid()}-{host_tag()}-", dir=scratch))
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
    """Extract ``archive`` into ``dest``, refusing members that leave it, symlinks, and
    expansion past :func:`origine.limits.expansion_limit` (each member against its
    compressed size, the whole against the archive's size), before anything is written.

    The sizes checked are the declared ones: ``zipfile`` stops each member at its
    declared size, so a member that lies about it fails its CRC instead of writing on.
    """
    from origine import limits

    overall = min(MAX_UNZIPPED_BYTES, limits.expansion_limit(archive.stat().st_size))
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
                if info.flag_bits & 0x1:
                    raise BadInput(
                        f"zip member {info.filename!r} is encrypted (deliver it unencrypted)", file=str(archive)
                    )
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    # bzip2 and LZMA members are decompressed a whole block at a time,
                    # unbounded by the read size: only deflate streams stay bounded.
                    raise BadInput(
                        f"zip member {info.filename!r} uses compression method {info.compress_type} "
                        "(deliver zips compressed with deflate, or stored)",
                        file=str(archive),
                    )
                limit = limits.expansion_limit(info.compress_size)
                if info.file_size > limit:
                    raise BadInput(
                        limits.too_expanded(f"zip member {info.filename!r}", limit), file=str(archive)
                    )
                total += info.file_size
                if total > overall:
                    raise BadInput(limits.too_expanded("the zip", overall), file=str(archive))
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
    raw = read_bounded(manifest_path, label=mlabel, what="manifest")
    manifest = parse_manifest(raw, label=mlabel, json_format=manifest_path.suffix == ".json")
    checked = tuple(_check_file(root, entry, label) for entry in manifest.files)
    _refuse_same_file(checked, mlabel)
    return Delivery(label, root, manifest, hashlib.sha256(raw).hexdigest(), checked)


def reads_as_number(ident: str, region: str) -> bool:
    """True when the identifier ``ident`` holds a phone number: one the free-text scrubber
    would tokenize (dates and the like are not) whose digits, in some run of ``ident``,
    form a valid number of ``region`` or an international one, written in any form (nine
    digits of a French number included). Zero-padded counters (``0000012345``) are not
    valid numbers and pass."""
    if TEL not in personal_data_kinds(ident, region):
        return False
    for run in _DIGIT_RUN.findall(ident):
        e164 = phone_e164(run.replace("_", " "), region)
        if e164 is not None and phonenumbers.is_valid_number(phonenumbers.parse(e164)):
            return True
    return False


_DIGIT_RUN = re.compile(r"[0-9](?:[._-]?[0-9])*")


def parse_manifest(raw: bytes, *, label: str, json_format: bool = False) -> Manifest:
    """Parse manifest bytes (YAML or JSON) into a checked :class:`Manifest`.

    The bytes are read strictly (:mod:`origine.documents`: no YAML aliases, no key
    given twice, bounded size) and every key is checked against :data:`MANIFEST_SCHEMA`.
    """
    doc = load_document(raw, label=label, what="manifest", json_format=json_format)
    if not isinstance(doc, dict):
        raise BadInput("the manifest must be a mapping", file=label)
    check_keys(doc, MANIFEST_SCHEMA, label=label)

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
    for name, value in (("delivery_id", delivery_id), ("vendor", vendor)):
        # Unlike a file name, an identifier is not stored scrubbed: it is the delivery's
        # name in the ledger, Dagster's partitions and every export, and it must match the
        # vendor's own records. One that reads as a phone number is refused instead.
        if reads_as_number(value, country):
            raise BadInput(
                "reads as a phone number; it would name the delivery in the ledger, Dagster and "
                "every export: use an identifier that holds none",
                file=label, column=name,
            )
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
    # `a.csv`, `./a.csv` and `.//a.csv` name one file: read three times, it would count
    # its rows three times.
    seen: dict[str, int] = {}
    for i, f in enumerate(files, 1):
        same = seen.setdefault(normal_path(f.path), i)
        if same != i:
            raise BadInput(
                f"files[{i}] ({f.path!r}) is the same file as files[{same}] ({files[same - 1].path!r}): "
                "list each file once",
                file=label,
                column=f"files[{i}].path",
            )
    claims = doc.get("claims") or {}
    if not isinstance(claims, dict):
        raise BadInput("expected a mapping", file=label, column="claims")
    recipient = doc.get("recipient")
    recipient = str(recipient) if recipient not in (None, "") else None
    claims = _jsonable(claims)
    # Refused here, not at the commit after the whole read: the delivery leaf writes
    # them as JSON text (docs/ledger-format.md), which holds neither.
    for where, value in (("recipient", recipient), ("claims", claims)):
        bad = _unwritable(value, where)
        if bad:
            raise BadInput("a number that is not finite (NaN, infinity) or text that is not valid Unicode "
                           "(an unpaired surrogate): the ledger cannot record it", file=label, column=bad)
    return Manifest(
        delivery_id=delivery_id,
        vendor=vendor,
        recipient=recipient,
        delivered_at=delivered_at,
        country=country,
        files=files,
        claims=claims,
        timezone=tz_name,
    )


def normal_path(path: str) -> str:
    """A manifest path in one spelling: ``/``-separated, without ``.`` or empty parts.

    ``..`` is kept (it is refused later, as leaving the delivery).
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    prefix = "/" if path.startswith(("/", "\\")) else ""
    return prefix + "/".join(parts)


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


def _refuse_same_file(checked: tuple[CheckedFile, ...], label: str) -> None:
    """Refuse two entries that are one file on disk under names that differ in more than
    spelling: a hard link, or a case-insensitive file system (``Contacts.csv``)."""
    seen: dict[tuple[int, int], int] = {}
    for i, f in enumerate(checked, 1):
        st = f.local_path.stat()
        same = seen.setdefault((st.st_dev, st.st_ino), i)
        if same != i:
            raise BadInput(
                f"files[{i}] ({f.entry.path!r}) is the same file as files[{same}] "
                f"({checked[same - 1].entry.path!r}) on disk: list each file once",
                file=label,
                column=f"files[{i}].path",
            )


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


def _unwritable(value: Any, where: str) -> str | None:
    """The path (``claims.rate``) of the first value JSON text cannot carry: a float that
    is not finite, a string with an unpaired surrogate; None when there is none."""
    if isinstance(value, float):
        return None if value == value and value not in (float("inf"), float("-inf")) else where
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        if isinstance(k, str) and _unwritable(k, where):
            return where  # the key itself: not named (it cannot be printed)
        found = _unwritable(v, f"{where}.{k}" if isinstance(k, str) else f"{where}[{k}]")
        if found:
            return found
    return None


def peek_identity(path: Path) -> tuple[str, str]:
    """``(vendor, delivery_id)`` from a delivery's manifest, without reading its data.

    Used to name the Dagster partition before the heavy work starts.
    """
    m = peek_manifest(path)
    return m.vendor, m.delivery_id


def names_region(path: Path) -> str:
    """The region the numbers in a delivery's names are read in: its manifest's country,
    :data:`DEFAULT_REGION` when the manifest cannot be read (not there yet, or broken)."""
    try:
        return peek_manifest(path).country
    except BadInput:
        return DEFAULT_REGION


def peek_manifest(path: Path) -> Manifest:
    """A delivery's checked manifest, without reading (or hashing) its data files."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if PurePosixPath(n).name in MANIFEST_NAMES]
                names = [n for n in names if len(PurePosixPath(n).parts) <= 2 and "__MACOSX" not in n]
                if not names:
                    raise BadInput("zip holds no manifest.yaml or manifest.json", file=str(path))
                name = min(names, key=len)
                # Read no more than a manifest may hold, whatever the member claims to expand to.
                with zf.open(name) as member:
                    raw = member.read(MAX_DOCUMENT_BYTES + 1)
        except (EOFError, zlib.error) as exc:
            raise BadInput(f"truncated or corrupt zip: {exc}", file=str(path)) from None
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unknown compression
            raise BadInput(f"unreadable manifest in the zip: {exc}", file=str(path)) from None
        except zipfile.BadZipFile as exc:
            raise BadInput(f"corrupt zip: {exc}", file=str(path)) from None
        label = f"{path}/{name}"
    elif path.is_dir():
        manifest = next((path / n for n in MANIFEST_NAMES if (path / n).is_file()), None)
        if manifest is None:
            raise BadInput("no manifest.yaml or manifest.json", file=str(path))
        label, name = str(manifest), manifest.name
        raw = read_bounded(manifest, label=label, what="manifest")
    elif not path.exists():
        raise BadInput("no such delivery (folder or .zip)", file=str(path))
    else:
        raise BadInput(_not_a_delivery(path), file=str(path))
    return parse_manifest(raw, label=label, json_format=name.endswith(".json"))


def partition_key(vendor: str, delivery_id: str) -> str:
    """The Dagster partition key of a delivery."""
    return f"{vendor}/{delivery_id}"
