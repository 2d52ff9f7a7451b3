"""Measure the row leaf proposed for ledger format v2 (issue 15 item 1) on the
benchmark's rows, against today's leaves (format v1: one leaf per event).

This is a measurement of a proposal, not origine's format: origine still writes v1
(docs/ledger-format.md). It prepares a delivery of N benchmark rows (bench/ingest.py's
generator) into a segment without Dagster, times v1's event building and hashing
(``ledger.write_events``, as the ingest runs it), then builds the proposed v2 row
leaves from the same ``rows.parquet`` in SQL and prints their size (median, p99, max)
for the encodings weighed, and the time to build and hash them.

Every v2 encoding here is canonical JSON: keys in sorted order, no whitespace, no
null or absent field (``concat_ws`` skips them), strings escaped by DuckDB's
``to_json`` as in v1. ``ev`` is [delivery leaf index, file index, row]; the delivery
leaf index is taken as 0 (a fresh home), the file index as 0 (one file).

    .venv/bin/python bench/ledger_v2_sizes.py --rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))

import ingest as bench_ingest  # noqa: E402  (bench/ingest.py: the generator)

from origine import ingest  # noqa: E402
from origine.keys import HashKey  # noqa: E402
from origine.manifest import open_delivery  # noqa: E402
from origine.profiles import load_profile  # noqa: E402


def _field(key: str, value_sql: str) -> str:
    # NULL when the value is: concat_ws then drops the field, key and all.
    return f"""CASE WHEN ({value_sql}) IS NOT NULL THEN '"{key}":' || to_json({value_sql}) END"""


def _object(fields: dict[str, str]) -> str:
    parts = ", ".join(_field(k, fields[k]) for k in sorted(fields))  # sorted: canonical order
    return f"('{{' || concat_ws(',', {parts}) || '}}')"


def _rfc3339(col: str) -> str:
    # whole seconds unless the instant has a fraction (then 6 digits)
    return (f"CASE WHEN microsecond({col}) % 1000000 = 0 THEN strftime({col}, '%Y-%m-%dT%H:%M:%SZ') "
            f"ELSE strftime({col}, '%Y-%m-%dT%H:%M:%S.%fZ') END")


def _epoch(col: str) -> str:
    return f"epoch({col})::BIGINT"


def row_leaf_sql(*, instant: str = "epoch", key_id_per_row: bool = False, subject: str = "hex") -> str:
    """The proposed v2 row leaf of a ``rows.parquet`` row, as a SQL expression."""
    ts = _epoch if instant == "epoch" else _rfc3339
    consent = _object({
        "at": ts("consent_at"),
        "bundled": "CASE WHEN bundled_consent THEN true END",
        "proof": "consent_proof",
        "purposes": "CASE WHEN len(consent_purposes) > 0 THEN consent_purposes END",
    })
    fields = {
        "at": ts("collected_at"),
        "cc": "country_code",
        "consent": f"CASE WHEN consent_at IS NOT NULL OR len(consent_purposes) > 0 OR bundled_consent "
                   f"THEN {consent}::JSON END",
        "ev": '[0, 0, "row"]',
        "from": "acquired_from",
        "line": "line_type",
        "opted_out": ts("opted_out_at"),
        "source": "source",
        "subject": "subject_key" if subject == "hex" else "rtrim(to_base64(unhex(subject_key)), '=')",
        "t": "'row'",
        "v": "2",
    }
    if key_id_per_row:
        fields["key_id"] = "key_id"
    return _object(fields)


ENCODINGS = {
    "A: RFC 3339 instants, key id in every row": dict(instant="rfc3339", key_id_per_row=True),
    "B: RFC 3339 instants, key id in the delivery leaf": dict(instant="rfc3339"),
    "C: Unix seconds, key id in the delivery leaf (proposed)": dict(instant="epoch"),
    "D: as B, subject key in base64": dict(instant="rfc3339", subject="base64"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="origine-leaf-v2-"))
    try:
        delivery_dir = bench_ingest.generate(tmp / "delivery", args.rows)
        timings: dict[str, float] = {}
        write_events = ingest._write_events

        def timed(*a: object) -> int:
            start = time.perf_counter()
            n = write_events(*a)  # type: ignore[arg-type]
            timings["v1"] = time.perf_counter() - start
            return n

        ingest._write_events = timed  # type: ignore[assignment]
        start = time.perf_counter()
        with open_delivery(delivery_dir) as delivery:
            report = ingest.prepare_delivery(
                delivery, key=HashKey(bytes.fromhex("ab" * 32)),
                profile=load_profile("bench", tmp / "profiles"), segments_root=tmp / "segments",
            )
        prepare = time.perf_counter() - start
        rows = Path(report.segment) / "rows.parquet"
        events = Path(report.segment) / "events.parquet"
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        v1_bytes = con.execute(
            "SELECT median(n), quantile_disc(n, 0.99) FROM (SELECT octet_length(encode(payload)) n FROM ("
            f"SELECT {ingest_payload_sql()} AS payload FROM read_parquet(?)))", [str(events)]
        ).fetchone()
        print(f"{report.rows_accepted:,} accepted rows; prepare {prepare:.1f}s, of which v1 events "
              f"{timings['v1']:.1f}s ({report.events:,} leaves, {report.events / report.rows_accepted:.2f} per row, "
              f"median {v1_bytes[0]:.0f} B, p99 {v1_bytes[1]} B)")
        for label, options in ENCODINGS.items():
            median, p99, biggest, example = con.execute(
                "SELECT median(n), quantile_disc(n, 0.99), max(n), any_value(p) FROM ("
                f"SELECT octet_length(encode(p)) AS n, p FROM (SELECT {row_leaf_sql(**options)} AS p "  # type: ignore[arg-type]
                "FROM read_parquet(?)))", [str(rows)]
            ).fetchone()
            print(f"{label}: row leaf median {median:.0f} B, p99 {p99} B, max {biggest} B\n    e.g. {example}")
        start = time.perf_counter()
        reading = con.cursor()  # its own connection: the reader stays open while batches are hashed
        reader = reading.sql(
            f"SELECT '\\x00'::BLOB || encode({row_leaf_sql()}) AS p FROM read_parquet($1)", params=[str(rows)]
        ).to_arrow_reader(1 << 17)
        built = hashed = 0.0
        leaves = 0
        while True:
            t = time.perf_counter()
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            payloads = batch.column(0).to_pylist()
            built += time.perf_counter() - t
            t = time.perf_counter()
            for p in payloads:
                hashlib.sha256(p).digest()
            hashed += time.perf_counter() - t
            leaves += len(payloads)
        reading.close()
        print(f"v2 (C) row leaves: {leaves:,} built in {built:.1f}s, hashed in {hashed:.1f}s "
              f"(v1: {report.events:,} events in {timings['v1']:.1f}s, built, hashed and written)")
        missing, extra = same_facts(con, rows, events)
        print(f"v2 (C) row leaves state every v1 row event (delivered: the delivery leaf's): "
              f"{missing == extra == 0} (v1 facts missing {missing}, extra {extra})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# The facts a v1 delivery's events state of each row, but ``delivered`` (vendor,
# recipient, time: the delivery leaf's) and the evidence constants (the delivery
# leaf's too): what a row leaf must state.
_V1_FACTS = """
    SELECT type, subject_key, "at", purpose, bundled, proof, party_from, source, channel, origin, "row"
    FROM read_parquet($1) WHERE type <> 'delivered'
"""
# The same facts read back from the v2 (C) row leaves' bytes, with DuckDB's JSON
# functions only (as a verifier would, without origine's code).
_V2_FACTS = """
    WITH l AS (SELECT p::JSON AS j FROM (SELECT {leaf} AS p FROM read_parquet($2))),
    r AS (SELECT j->>'subject' AS s, (j->'ev'->>2)::BIGINT AS "row", j->'consent' AS c, j FROM l)
    SELECT 'collected', s, to_timestamp((j->>'at')::BIGINT), NULL, NULL, NULL, NULL, j->>'source', NULL, NULL, "row" FROM r
    UNION ALL SELECT 'transferred', s, NULL, NULL, NULL, NULL, j->>'from', NULL, NULL, NULL, "row" FROM r
        WHERE (j->>'from') IS NOT NULL
    UNION ALL SELECT 'consent_granted', s, to_timestamp((c->>'at')::BIGINT), unnest(from_json(c->'purposes', '["VARCHAR"]')),
        false, c->>'proof', NULL, NULL, NULL, NULL, "row" FROM r WHERE (c->'purposes') IS NOT NULL
    UNION ALL SELECT 'consent_granted', s, to_timestamp((c->>'at')::BIGINT), NULL, true, c->>'proof', NULL, NULL, NULL,
        NULL, "row" FROM r WHERE (c->>'bundled')::BOOLEAN
    UNION ALL SELECT 'opted_out', s, to_timestamp((j->>'opted_out')::BIGINT), NULL, NULL, NULL, NULL, NULL, 'all',
        'vendor-flag', "row" FROM r WHERE (j->>'opted_out') IS NOT NULL
"""


def same_facts(con: duckdb.DuckDBPyConnection, rows: Path, events: Path) -> tuple[int, int]:
    """(v1 facts the v2 row leaves do not state, facts they state that v1 does not), as multisets."""
    v2 = _V2_FACTS.format(leaf=row_leaf_sql())
    missing, extra = con.execute(
        f"WITH a AS ({_V1_FACTS}), b AS ({v2}) "
        "SELECT (SELECT count(*) FROM (FROM a EXCEPT ALL FROM b)), (SELECT count(*) FROM (FROM b EXCEPT ALL FROM a))",
        [str(events), str(rows)],
    ).fetchone()  # type: ignore[misc]
    return int(missing), int(extra)


def ingest_payload_sql() -> str:
    """v1's payload (origine.ledger.PAYLOAD_SQL) over an events file's flat columns."""
    from origine.ledger import PAYLOAD_SQL

    return PAYLOAD_SQL


if __name__ == "__main__":
    main()
