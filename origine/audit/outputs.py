"""What the audit writes: the summary, ``targets.parquet`` and ``targets.csv``, and the
leaves it records in the ledger (``targeted`` per target, ``opted_out`` per STOP reply).
"""

from __future__ import annotations

import os
from datetime import timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from origine import ledger, warehouse
from origine.audit.findings import scrub
from origine.audit.inputs import stored_name
from origine.audit.rules import REASONS, RULES, VERDICTS
from origine.campaign import Campaign
from origine.dates import TS
from origine.errors import BadInput
from origine.keys import HashKey


TARGETS_SCHEMA = pa.schema(
    [
        ("subject_key", pa.string()),
        ("verdict", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("sources", pa.list_(pa.string())),
        ("vendors", pa.list_(pa.string())),
        ("delivery_ids", pa.list_(pa.string())),
        ("consent_at", TS),
        ("line_type", pa.string()),
    ]
)


def _targeted_query(campaign: Campaign, key: HashKey, *, ordered: bool = False) -> tuple[str, list[Any]]:
    given = {
        "type": "'targeted'", "subject_key": "subject_key", "key_id": "$1", "at": "$2",
        "channel": "$3", "campaign_id": "$4", "purpose": "$5", "evidence_kind": "'campaign'",
        "file": "$6", "file_sha256": "$7",
    }
    cols = ledger.flat_columns(**given)
    # Sorted on the subject keys alone, before the payloads exist: a sort of the
    # payloads (events_sql's ordered form) held a million of them in memory (+1.3 GB).
    # write_targeted_leaves checks the order it relies on.
    select = (
        f"SELECT {cols}, row_number() OVER (ORDER BY subject_key) AS ord "
        "FROM (SELECT DISTINCT subject_key FROM _targets WHERE subject_key IS NOT NULL ORDER BY subject_key)"
    )
    params = [key.key_id, campaign.sent_at, campaign.channel, campaign.campaign_id, campaign.purpose,
              campaign.file_name, campaign.sha256]
    return ledger.events_sql(select, ordered=ordered), params


def targeted_count(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> int:
    """``targeted`` events of this campaign spec (its bytes) in the ledger."""
    return int(con.execute(
        "SELECT count(*) FROM ledger_events WHERE type = 'targeted' AND campaign_id = ? AND file_sha256 = ?",
        [campaign.campaign_id, campaign.sha256],
    ).fetchone()[0])  # type: ignore[index]


def write_targeted_leaves(con: duckdb.DuckDBPyConnection, campaign: Campaign, key: HashKey, out: Path) -> int:
    """One ``targeted`` leaf per target in ``_targets``, in subject key order, to ``out``;
    returns how many."""
    query, params = _targeted_query(campaign, key)
    count = ledger.write_events(con, query, params, out)
    path = warehouse.sql_text(out)
    unsorted = con.execute(
        f"SELECT count(*) FROM (SELECT subject_key < lag(subject_key) OVER (ORDER BY file_row_number) AS back "
        f"FROM read_parquet('{path}', file_row_number = true)) WHERE back"
    ).fetchone()[0]  # type: ignore[index]
    if unsorted:  # the plan did not keep the keys' order: sort the payloads after all
        query, params = _targeted_query(campaign, key, ordered=True)
        count = ledger.write_events(con, query, params, out)
    return count


def refuse_edited_spec(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """BadInput when the ledger records ``campaign_id`` targeted by a spec of other bytes.

    A campaign is one send: an edited spec under the same id would append a second set
    of ``targeted`` events (other targets, another time) for what the ledger already
    states happened. The same spec again is a re-audit and appends nothing.
    """
    # ledger_events is a view (ledger format v2), installed on every warehouse open:
    # a check for it among the tables skipped this refusal once it became one.
    other = con.execute(
        "SELECT 1 FROM ledger_events WHERE type = 'targeted' AND campaign_id = ? AND file_sha256 <> ? LIMIT 1",
        [campaign.campaign_id, campaign.sha256],
    ).fetchone()
    if other:
        raise BadInput(
            f"campaign {campaign.campaign_id!r} was already audited from a different spec: the ledger "
            "records its targets as sent; give an edited or new send its own campaign_id "
            f"(e.g. {campaign.campaign_id}-v2)",
            file=str(campaign.path), column="campaign_id",
        )


def stop_origin(campaign: Campaign) -> str:
    """The ``origin`` of the opt-outs a campaign's send report records."""
    return f"campaign:{campaign.campaign_id}"


def stops_in_ledger(con: duckdb.DuckDBPyConnection, campaign: Campaign, digest: str) -> bool:
    """Whether the ledger holds the STOP replies of the send report of SHA-256 ``digest``."""
    return con.execute(
        "SELECT 1 FROM ledger_events WHERE type = 'opted_out' AND origin = ? AND file_sha256 = ? LIMIT 1",
        [stop_origin(campaign), digest],
    ).fetchone() is not None


def write_stop_leaves(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, key: HashKey, digest: str, out: Path
) -> int:
    """One ``opted_out`` leaf per number of ``_report_rows`` that replied STOP, to ``out``;
    returns how many.

    The channel is the campaign's, the time the earliest STOP, the origin
    ``campaign:<id>``, the evidence the send report's file, SHA-256 and row: a STOP
    given to one campaign binds every later one on that channel.
    """
    assert campaign.send_report is not None
    cols = ledger.flat_columns(
        type="'opted_out'", subject_key="subject_key", key_id="$1", at="stop_at", channel="$2", origin="$3",
        evidence_kind="'send_report'", file="$4", file_sha256="$5", row="row",
    )
    select = (
        f"SELECT {cols}, row_number() OVER (ORDER BY stop_at, row) AS ord FROM ("
        "SELECT subject_key, min(stop_reply_at) AS stop_at, arg_min(row, stop_reply_at) AS row "
        "FROM _report_rows WHERE stop_reply_at IS NOT NULL GROUP BY subject_key)"
    )
    return ledger.write_events(con, ledger.events_sql(select),
                               [key.key_id, campaign.channel, stop_origin(campaign),
                                stored_name(campaign.send_report, key, campaign.country), digest],
                               out)


def build_summary(
    con: duckdb.DuckDBPyConnection,
    campaign: Campaign,
    validity_days: int,
    findings: list[dict[str, Any]],
    claims: list[dict[str, Any]],
    file_stats: dict[str, Any] | None,
    report_stats: dict[str, Any] | None,
    recorded: int,
) -> dict[str, Any]:
    total = int(con.execute("SELECT count(*) FROM _verdicts").fetchone()[0])  # type: ignore[index]
    verdicts = {v: 0 for v in VERDICTS}
    verdicts.update({v: int(n) for v, n in con.execute("SELECT verdict, count(*) FROM _verdicts GROUP BY 1").fetchall()})
    reasons = {r: 0 for r in REASONS}
    reasons.update({r: int(n) for r, n in con.execute(
        "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM _verdicts) GROUP BY 1").fetchall()})

    def breakdown(column: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, verdict, n in con.execute(
            f"SELECT x, verdict, count(*) FROM (SELECT unnest({column}) AS x, verdict FROM _verdicts) "
            "GROUP BY ALL ORDER BY x, verdict"
        ).fetchall():
            out.setdefault(scrub(str(name)), {v: 0 for v in VERDICTS})[verdict] = int(n)
        return out

    return {
        "campaign_id": campaign.campaign_id,
        "campaign": {
            "campaign_id": campaign.campaign_id,
            "sponsor": scrub(campaign.sponsor),
            "channel": campaign.channel,
            "purpose": campaign.purpose,
            "sent_at": campaign.sent_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "file": campaign.file_name,
            "file_sha256": campaign.sha256,
            "targeted_deliveries": [r.label() for r in campaign.deliveries],
            "validity_days": validity_days,
            # report.html shows times in the campaign's zone and writes in its country's language
            "timezone": campaign.timezone,
            "country": campaign.country,
        },
        "targets": total,
        "verdicts": verdicts,
        "reasons": reasons,
        "rules": dict(RULES),
        "sources": breakdown("sources"),
        "vendors": breakdown("vendors"),
        "findings": findings,
        "claims": [
            {"vendor": c["vendor"], "delivery_id": c["delivery_id"], "claim": c["claim"],
             "claimed": c["claimed"], "measured": c["measured"], "ok": c["ok"]}
            for c in claims
        ],
        "target_file": file_stats,
        "send_report": report_stats,
        "targeted_events": recorded,
    }


# A spreadsheet runs a cell starting with one of these as a formula: prefix a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_CELL = (
    "CASE WHEN left({x}, 1) IN ("
    + ", ".join(f"chr({ord(c)})" for c in _FORMULA_STARTS)
    + ") THEN chr(39) || {x} ELSE {x} END"
)


def _cell(expr: str) -> str:
    return _CELL.format(x=expr)


def write_targets(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[tuple[Path, Path]]:
    """targets.parquet and targets.csv, sorted by subject key (the same inputs give the same
    bytes), written under temporary names: ``[(written, final name)]`` for each, the
    Parquet file first (the audit names them once the ledger recorded the audit)."""
    # Rows with no subject key (unparseable file values) are identical: the subject
    # key alone gives one order. Insertion order is not relied on (parallel scans).
    order = "ORDER BY subject_key NULLS LAST"
    parquet_path = out_dir / "targets.parquet"
    csv_path = out_dir / "targets.csv"
    table = con.sql(
        f"SELECT subject_key, verdict, reasons, sources, vendors, delivery_ids, consent_at, line_type "
        f"FROM _verdicts {order}"
    )
    table = arrow_table(table).cast(TARGETS_SCHEMA)
    parquet_tmp = parquet_path.with_name(parquet_path.name + ".tmp")
    pq.write_table(table, parquet_tmp, compression="zstd")
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    con.execute(
        f"""COPY (
            SELECT subject_key, verdict,  -- hex and fixed words: nothing to escape
                   {_cell("array_to_string(reasons, '|')")} AS reasons,
                   {_cell("array_to_string(sources, '|')")} AS sources,
                   {_cell("array_to_string(vendors, '|')")} AS vendors,
                   {_cell("array_to_string(delivery_ids, '|')")} AS delivery_ids,
                   strftime(consent_at, '%Y-%m-%dT%H:%M:%SZ') AS consent_at,
                   {_cell('line_type')} AS line_type
            FROM _verdicts {order}
        ) TO '{warehouse.sql_text(tmp)}' (FORMAT csv, HEADER true)"""
    )
    return [(parquet_tmp, parquet_path), (tmp, csv_path)]


def arrow_table(result: Any) -> pa.Table:
    """The result as an Arrow table, across DuckDB versions."""
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        fn = getattr(result, name, None)
        if fn is not None:
            table = fn()
            return table.read_all() if isinstance(table, pa.RecordBatchReader) else table
    raise RuntimeError("this DuckDB cannot return Arrow tables")  # pragma: no cover


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
