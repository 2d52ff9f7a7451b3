"""Reading a campaign's inputs: its target file and send report (numbers normalized and
hashed before the warehouse is opened), the deliveries it names, and its targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from origine import numbers
from origine.campaign import Campaign, DeliveryRef
from origine.dates import TS, UnreadableDate, parse_instant
from origine.errors import BadInput
from origine.freetext import describe_columns, scrub_text
from origine.keys import HashKey
from origine.phones import PHONE_MISSING
from origine.profiles import column_key, default_profile
from origine.readers import open_records


def _phone_column(columns: list[str], name: str) -> str:
    mapping = default_profile("campaign").map_columns(columns, name)
    if "phone" not in mapping:
        raise BadInput(
            f"required column missing (found: {describe_columns(columns)})", file=name, column="phone"
        )
    return mapping["phone"]


def read_rows(path: Path, wanted: dict[str, tuple[str, ...]]) -> tuple[str, dict[str, str | None], list[Any]]:
    """Rows of a campaign file as tuples of the wanted columns (``phone`` first)."""
    name = str(path)
    shape, records = open_records(path, name)
    columns: dict[str, str | None] | None = None
    rows: list[Any] = []
    for record in records:
        if columns is None:
            columns = _match_columns(shape.columns, name, wanted)
        if record.values is None:
            raise BadInput("row does not split into the header's columns", file=name, row=record.row)
        values = record.values
        rows.append((record.row, *(values.get(c) if c else None for c in columns.values())))
    if columns is None:  # no data rows: the header must still be right
        columns = _match_columns(shape.columns, name, wanted)
    return name, columns, rows


def _match_columns(columns: list[str], name: str, wanted: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {"phone": _phone_column(columns, name)}
    for canonical, aliases in wanted.items():
        keys = {column_key(canonical), *(column_key(a) for a in aliases)}
        found[canonical] = next((c for c in columns if column_key(c) in keys), None)
    return found


def stored_name(path: Path, key: HashKey, region: str) -> str:
    """``path``'s name as stored (summary, ledger): a file named after a number
    (``0612345678.csv``) would carry it there, so its numbers become tokens."""
    return scrub_text(path.name, key, region).text


def read_target_file(campaign: Campaign, key: HashKey) -> tuple[pa.Table, dict[str, Any]]:
    """The target file's numbers as subject key, invalid flag and line type (blank rows
    left out, one null key per unparseable value), and the file's counts."""
    assert campaign.target_file is not None
    _, _, rows = read_rows(campaign.target_file, {})
    norm = numbers.keyed([r[1] for r in rows], campaign.country, key)
    subject = norm.column("subject_key").to_pylist()
    valid = norm.column("valid").to_pylist()
    line_type = norm.column("line_type").to_pylist()
    reason = norm.column("reason").to_pylist()
    keys: list[str | None] = []
    invalid: list[bool] = []
    lines: list[str | None] = []
    blank = unparseable = bad = 0
    for k, v, lt, why in zip(subject, valid, line_type, reason):
        if why == PHONE_MISSING:
            blank += 1
            continue
        if not v:
            bad += 1
            if k is None:
                unparseable += 1
        keys.append(k)
        invalid.append(not v)
        lines.append(lt)
    table = pa.table(
        {"subject_key": pa.array(keys, pa.string()), "invalid": pa.array(invalid, pa.bool_()),
         "line_type": pa.array(lines, pa.string())}
    )
    stats = {
        "file": stored_name(campaign.target_file, key, campaign.country),
        "rows": len(rows),
        "blank_rows": blank,
        "invalid_numbers": bad,
        "unparseable_numbers": unparseable,
    }
    return table, stats


def read_send_report(campaign: Campaign, key: HashKey) -> tuple[pa.Table, dict[str, Any]]:
    """The send report's usable rows: subject key, send time, STOP time, row number.

    A row's STOP time is its ``stop_reply_at``; else, when its reply text is a STOP
    (:mod:`origine.replies`), its ``replied_at``; else its send time (a reply answers
    a send, so it came after it). Dates without an offset are in the campaign's zone.
    """
    from origine.replies import START, STOP, classify_reply

    assert campaign.send_report is not None
    wanted = {
        "sent_at": ("sent", "date envoi", "envoye le", "sent date"),
        "stop_reply_at": ("stop_at", "stop reply", "stop", "date stop", "stop date", "reponse stop"),
        "reply": ("reply_text", "reply text", "reponse", "texte reponse", "message recu", "sms recu"),
        "replied_at": ("reply_at", "replied", "date reponse", "repondu le", "reponse le"),
    }
    name, columns, rows = read_rows(campaign.send_report, wanted)
    norm = numbers.keyed([r[1] for r in rows], campaign.country, key)
    subject = norm.column("subject_key").to_pylist()
    valid = norm.column("valid").to_pylist()
    tz = campaign.tzinfo
    keys: list[str] = []
    sent: list[Any] = []
    stop: list[Any] = []
    row_numbers: list[int] = []
    unusable = stops = resubscribes = 0
    for (row, _phone, sent_raw, stop_raw, reply_raw, replied_raw), k, v in zip(rows, subject, valid):
        if not v or k is None:
            unusable += 1
            continue
        when: list[Any] = []
        for column, raw in (("sent_at", sent_raw), ("stop_reply_at", stop_raw), ("replied_at", replied_raw)):
            try:
                when.append(parse_instant(raw, tz))
            except UnreadableDate as exc:
                raise BadInput(str(exc), file=name, row=row, column=columns[column]) from None
        sent_at = when[0] or campaign.sent_at
        stop_at = when[1]
        reply = classify_reply(reply_raw)
        if stop_at is None and reply == STOP:
            stop_at = when[2] or sent_at
        stops += stop_at is not None
        resubscribes += reply == START
        keys.append(k)
        sent.append(sent_at)
        stop.append(stop_at)
        row_numbers.append(row)
    table = pa.table(
        {"subject_key": pa.array(keys, pa.string()), "sent_at": pa.array(sent, TS),
         "stop_reply_at": pa.array(stop, TS), "row": pa.array(row_numbers, pa.int64())}
    )
    return table, {"file": stored_name(campaign.send_report, key, campaign.country), "rows": len(rows), "unusable_rows": unusable,
                   "stop_replies": stops, "resubscribe_replies": resubscribes}


def resolve_deliveries(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> list[tuple[str, str]]:
    """``(vendor, delivery_id)`` of each targeted delivery; unknown or ambiguous ids are bad input."""
    out: list[tuple[str, str]] = []
    for i, ref in enumerate(campaign.deliveries, 1):
        found = _lookup_delivery(con, ref)
        column = f"targets.deliveries[{i}]"
        if not found:
            raise BadInput(f"no delivery {ref.label()!r} in the warehouse (ingest it first)",
                           file=str(campaign.path), column=column)
        if len(found) > 1:
            vendors = ", ".join(v for v, _ in found)
            raise BadInput(f"delivery id {ref.delivery_id!r} exists for several vendors ({vendors}): "
                           "write it as vendor/delivery_id", file=str(campaign.path), column=column)
        if found[0] not in out:
            out.append(found[0])
    return out


def _lookup_delivery(con: duckdb.DuckDBPyConnection, ref: DeliveryRef) -> list[tuple[str, str]]:
    if ref.vendor is not None:
        rows = con.execute("SELECT vendor, delivery_id FROM deliveries WHERE vendor = ? AND delivery_id = ?",
                           [ref.vendor, ref.delivery_id]).fetchall()
    else:
        rows = con.execute("SELECT vendor, delivery_id FROM deliveries WHERE delivery_id = ? ORDER BY vendor",
                           [ref.delivery_id]).fetchall()
    return [(str(v), str(d)) for v, d in rows]


def build_targets(
    con: duckdb.DuckDBPyConnection,
    campaign: Campaign,
    refs: list[tuple[str, str]],
    file_targets: pa.Table | None,
    report: pa.Table | None,
) -> None:
    """``_targets``: one row per distinct subject key (plus one per unparseable file value)."""
    con.register("_refs", pa.table({"vendor": [v for v, _ in refs], "delivery_id": [d for _, d in refs]},
                                   schema=pa.schema([("vendor", pa.string()), ("delivery_id", pa.string())])))
    con.register("_file", file_targets if file_targets is not None else
                 pa.table({"subject_key": pa.array([], pa.string()), "invalid": pa.array([], pa.bool_()),
                           "line_type": pa.array([], pa.string())}))
    con.register("_report", report if report is not None else
                 pa.table({"subject_key": pa.array([], pa.string()), "sent_at": pa.array([], TS),
                           "stop_reply_at": pa.array([], TS), "row": pa.array([], pa.int64())}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _targets AS
        WITH d AS (
            SELECT subject_key, min(line_type) AS line_type
            FROM delivery_rows JOIN _refs USING (vendor, delivery_id)
            GROUP BY subject_key
        ), f AS (
            SELECT subject_key, bool_or(invalid) AS invalid, min(line_type) AS line_type
            FROM _file WHERE subject_key IS NOT NULL GROUP BY subject_key
        )
        SELECT subject_key, coalesce(f.invalid, false) AS invalid,
               CASE WHEN f.subject_key IS NOT NULL THEN f.line_type ELSE d.line_type END AS line_type
        FROM d FULL OUTER JOIN f USING (subject_key)
        UNION ALL
        SELECT NULL, true, NULL FROM _file WHERE subject_key IS NULL
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE _report_rows AS SELECT * FROM _report")
    con.execute("CREATE OR REPLACE TEMP TABLE _target_keys AS "
                "SELECT subject_key FROM _targets WHERE subject_key IS NOT NULL")
    for name in ("_refs", "_file", "_report"):
        con.unregister(name)
