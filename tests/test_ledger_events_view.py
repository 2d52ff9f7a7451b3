"""The ``ledger_events`` view reads the leaves once.

It expanded each row leaf with one branch per event type, each scanning the leaves and
semi-joining a reader's key list: the audit's snapshot of 4.6M targets (5M-row
delivery) ran out of DuckDB's memory cap. Here 400k row leaves, every subject wanted,
under a 300 MB cap (the branch-per-type view needs more; this one ran in 200 MB).
"""

from __future__ import annotations

import duckdb

from origine import ledger

ROWS = 400_000


def test_every_subjects_events_under_a_small_memory_cap(tmp_path) -> None:
    con = duckdb.connect()
    ledger.install(con)
    con.execute("""INSERT INTO ledger_leaves (seq, type, vendor, delivery_id, key_id, party_to, "at", files, leaf_hash)
        VALUES (0, 'delivery', 'v', 'd', 'k', 'party', TIMESTAMPTZ '2024-06-01 00:00:00+00',
                [{'name': 'f.csv', 'rows': 1, 'sha256': 'ab'}], '\\x00'::BLOB)""")
    con.execute(f"""INSERT INTO ledger_leaves (seq, type, subject_key, "at", source, purposes, consent_at,
                                              party_from, delivery_seq, file_index, "row", leaf_hash)
        SELECT i, 'row', sha256(i::VARCHAR), TIMESTAMPTZ '2024-01-01 00:00:00+00', 'src', ['a', 'b'],
               TIMESTAMPTZ '2024-01-02 00:00:00+00', 'lead-co', 0, 0, i, '\\x00'::BLOB
        FROM range(1, {ROWS + 1}) r(i)""")
    con.execute("CREATE TABLE wanted AS SELECT subject_key FROM ledger_leaves WHERE type = 'row'")
    con.execute("SET memory_limit = '300MB'")
    con.execute("SET threads = 2")
    out = tmp_path / "events.parquet"
    con.execute(f"COPY (SELECT * FROM ledger_current_of('wanted')) TO '{out}' (FORMAT parquet)")
    counts = dict(con.execute(f"SELECT type, count(*) FROM read_parquet('{out}') GROUP BY ALL").fetchall())
    # collected, transferred, a consent per purpose, delivered: each with the delivery's constants
    assert counts == {"collected": ROWS, "transferred": ROWS, "consent_granted": 2 * ROWS, "delivered": ROWS}
    assert con.execute(
        f"SELECT count(*) FROM read_parquet('{out}') WHERE vendor <> 'v' OR file <> 'f.csv' OR key_id <> 'k'"
    ).fetchone() == (0,)
