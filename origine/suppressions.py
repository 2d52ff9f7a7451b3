"""Suppressions: STOP replies, DPO requests and do-not-call lists as ledger events.

A suppression file (any format the delivery readers take) has columns
``phone``, ``channel`` (sms, voice, email, all), ``at`` and ``origin``
(stop-reply, dpo-request, do-not-call, vendor-flag…), and optionally
``purpose``: a row with a purpose withdraws the consent for that purpose
(``consent_withdrawn``), a row without one opts the number out of the channel
(``opted_out``). Accounting and privacy are those of deliveries: every row is
accepted or quarantined with a reason, and only keyed hashes are stored:
``channel`` is one of a closed set of words (anything else is quarantined as
``INVALID_CHANNEL``, the cell never stored), and the free-text ``origin`` is
stored with every number, e-mail and IP address in it replaced by its keyed
token (:func:`origine.freetext.scrub_text`, as ingest does for ``source``).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from origine import ledger, numbers, warehouse
from origine.dates import UnreadableDate, parse_instant
from origine.errors import BadInput
from origine.freetext import Scrubbed, describe_columns, scrub_text
from origine.keys import HashKey
from origine.manifest import sha256_file
from origine.profiles import column_key
from origine.purposes import default_purposes
from origine.readers import MALFORMED_ROW, Record, open_records

CHANNELS = ("sms", "voice", "email", "all")
CHANNEL_WORDS = {"sms": "sms", "texto": "sms", "voice": "voice", "voix": "voice", "appel": "voice",
                 "telephone": "voice", "email": "email", "mail": "email", "courriel": "email",
                 "all": "all", "tous": "all", "tout": "all"}
INVALID_CHANNEL = "INVALID_CHANNEL"
INVALID_DATE = "INVALID_DATE"
UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
# Rows normalized and keyed per batch call.
CHUNK_ROWS = 1 << 16

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppression_files (
    file VARCHAR NOT NULL,
    sha256 VARCHAR PRIMARY KEY,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    report JSON NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS suppression_quarantine (
    file_sha256 VARCHAR NOT NULL,
    row BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    "column" VARCHAR,
    subject_key VARCHAR
);
"""


@dataclass
class SuppressionReport:
    """What ``origine suppress`` prints for one file."""

    file: str
    sha256: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    duplicate: bool = False
    ledger: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


# `origine suppress` reads naive times in this zone unless told otherwise: the lists it
# takes are mostly French exports written in local time.
DEFAULT_TIMEZONE = "Europe/Paris"


def check_timezone(name: str) -> ZoneInfo:
    """The zone named ``name``; BadInput (naming ``--timezone``) when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput("not an IANA time zone (e.g. Europe/Paris, UTC)", column="--timezone") from None


def ingest_suppressions(
    path: Path,
    *,
    warehouse_path: Path,
    key: HashKey,
    region: str = "FR",
    default_origin: str | None = None,
    default_channel: str | None = None,
    signer: Any = None,
    tz: str = "UTC",
) -> SuppressionReport:
    """Read a suppression file and append its events to the ledger in one transaction.

    Dates without an offset are read in ``tz`` (an IANA zone name).
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput("no such suppression file", file=str(path))
    digest, _ = sha256_file(path)
    # A file named after a number ("stop-06 11 22 33 99.csv") would put it in the ledger,
    # the warehouse and the report: the stored name is scrubbed; errors keep the real path.
    name = scrub_text(path.name, key, region).text
    report = SuppressionReport(file=name, sha256=digest)
    with warehouse.session(warehouse_path) as con:
        con.execute(SCHEMA)
        stored = con.execute("SELECT report FROM suppression_files WHERE sha256 = ?", [digest]).fetchone()
        if stored:
            again = SuppressionReport(**json.loads(stored[0]))
            again.duplicate = True
            return again
    accepted, quarantined = _read(path, name, digest, key, region, default_origin, default_channel, check_timezone(tz), report)
    with tempfile.TemporaryDirectory(prefix="suppress-") as tmp:
        events_path = Path(tmp) / "events.parquet"
        with warehouse.session(warehouse_path) as con:
            con.execute(SCHEMA)
            con.register("_supp", accepted)
            ledger.write_events(con, _events_query(), [], events_path)
            con.unregister("_supp")
            with warehouse.transaction(con):
                warehouse.check_key(con, key.key_id)
                if con.execute("SELECT 1 FROM suppression_files WHERE sha256 = ?", [digest]).fetchone():
                    report.duplicate = True
                    return report
                head = ledger.append_events(con, events_path, reason=f"suppressions {name}", signer=signer)
                report.ledger = {"tree_size": head.tree_size, "root_hash": head.root_hash}
                con.register("_q", quarantined)
                con.execute("INSERT INTO suppression_quarantine SELECT * FROM _q")
                con.unregister("_q")
                con.execute(
                    "INSERT INTO suppression_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [name, digest, report.rows_read, report.rows_accepted, report.rows_quarantined,
                     json.dumps(report.summary()), datetime.now(timezone.utc)],
                )
    return report


def _events_query() -> str:
    cols = dict(
        subject_key="subject_key", key_id="key_id", at='"at"', evidence_kind="'suppression'",
        file="file", file_sha256="file_sha256", row="row", origin="origin",
    )
    withdrawn = ledger.flat_columns(type="'consent_withdrawn'", purpose="purpose", **cols)
    opted = ledger.flat_columns(type="'opted_out'", channel="channel", **cols)
    select = (
        f"SELECT {withdrawn}, row AS ord FROM _supp WHERE purpose IS NOT NULL "
        f"UNION ALL SELECT {opted}, row AS ord FROM _supp WHERE purpose IS NULL"
    )
    return ledger.events_sql(select)


def _read(
    path: Path, name: str, digest: str, key: HashKey, region: str, default_origin: str | None,
    default_channel: str | None, tz: Any, report: SuppressionReport,
) -> tuple[pa.Table, pa.Table]:
    shape, records = open_records(path, str(path))
    purposes = default_purposes()
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    events: Counter[str] = Counter()
    # `origin` is free text ("appel de 06 11 22 33 99", a DPO's address) stored in the
    # ledger as written: scrubbed like ingest's `source`; lists repeat a few origins.
    scrubbed: dict[str, Scrubbed] = {}

    def reject(row: int, reason: str, column: str | None, subject: str | None) -> None:
        reasons[reason] += 1
        quarantine.append({"file_sha256": digest, "row": row, "reason": reason, "column": column, "subject_key": subject})

    def accept(record: Record, columns: dict[str, str], subject: str | None, why: str | None) -> None:
        """One row, its number already normalized and keyed (``why``: the phone's reason)."""
        report.rows_read += 1
        if record.values is None:
            reject(record.row, MALFORMED_ROW, None, None)
            return
        v = record.values

        def cell(name: str) -> Any:
            return v.get(columns.get(column_key(name), ""), None)

        if why:
            reject(record.row, why, "phone", subject)
            return
        channel_raw = str(cell("channel") or default_channel or "").strip()
        channel = CHANNEL_WORDS.get(column_key(channel_raw)) if channel_raw else None
        if channel is None:
            reject(record.row, INVALID_CHANNEL, "channel", subject)
            return
        try:
            at = parse_instant(cell("at"), tz)
        except UnreadableDate:
            at = None
        if at is None:
            reject(record.row, INVALID_DATE, "at", subject)
            return
        purpose_raw = cell("purpose")
        purpose = None
        if purpose_raw not in (None, ""):
            purpose = purposes.lookup(str(purpose_raw))
            if purpose is None or purpose == "bundled":
                reject(record.row, UNKNOWN_PURPOSE, "purpose", subject)
                return
        origin = str(cell("origin") or default_origin or "unspecified").strip()
        hit = scrubbed.get(origin)
        if hit is None:
            hit = scrub_text(origin, key, region)
            if len(scrubbed) < 100_000:
                scrubbed[origin] = hit
        origin = hit.text
        rows.append({
            "subject_key": subject, "key_id": key.key_id, "at": at, "channel": channel,
            "origin": origin, "purpose": purpose, "file": name, "file_sha256": digest, "row": record.row,
        })
        events["consent_withdrawn" if purpose else "opted_out"] += 1
        report.rows_accepted += 1

    first = next(records, None)
    if first is not None:
        # The header as known at the first row (JSON Lines learns its keys as it reads).
        columns = {column_key(c): c for c in shape.columns}
        if column_key("phone") not in columns:
            raise BadInput(
                f"required column missing (found: {describe_columns(shape.columns)})",
                file=str(path), column="phone",
            )
        phone = columns[column_key("phone")]
        for chunk in _chunks(itertools.chain([first], records)):
            # The chunk's phone cells as one column through the shared path; a malformed
            # row gives None (read as missing) and is rejected before its result is read.
            keyed = numbers.keyed([(r.values or {}).get(phone) for r in chunk], region, key)
            for record, subject, why in zip(chunk, keyed.column("subject_key").to_pylist(),
                                            keyed.column("reason").to_pylist()):
                accept(record, columns, subject, why)
    elif not shape.columns:
        raise BadInput("file is empty: no header row", file=str(path), column="phone")
    report.rows_quarantined = sum(reasons.values())
    report.quarantine_reasons = dict(sorted(reasons.items()))
    report.events = dict(sorted(events.items()))
    accepted = pa.Table.from_pylist(rows, schema=pa.schema([
        ("subject_key", pa.string()), ("key_id", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
        ("channel", pa.string()), ("origin", pa.string()), ("purpose", pa.string()),
        ("file", pa.string()), ("file_sha256", pa.string()), ("row", pa.int64()),
    ]))
    q = pa.Table.from_pylist(quarantine, schema=pa.schema([
        ("file_sha256", pa.string()), ("row", pa.int64()), ("reason", pa.string()),
        ("column", pa.string()), ("subject_key", pa.string()),
    ]))
    return accepted, q


def _chunks(records: Iterator[Record]) -> Iterator[list[Record]]:
    """``records`` in lists of :data:`CHUNK_ROWS`: batched for the phone column, bounded
    so a long do-not-call list is not held twice (records and accepted rows) at once."""
    while chunk := list(itertools.islice(records, CHUNK_ROWS)):
        yield chunk
