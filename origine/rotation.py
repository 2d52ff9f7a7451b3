"""Key rotation: a new secret layered over the stored digests, without the raw numbers.

After ``rotate(con, key, layer)`` the warehouse's key is ``key.with_layer(layer)``:

* the working tables (``delivery_rows``, ``quarantine``, ``suppression_quarantine``)
  hold ``HMAC(layer, old subject key)``, so nothing in them links to the old key;
* the ledger is append-only and its events are leaves of a signed tree: they keep the
  subject key and key id they were recorded with. ``subject_key_map`` gives each
  stored (key id, subject key) its key under the current generation, and the
  ``ledger_current`` view reads events through it, so audits, lookups, consent
  state and retention see one subject across every rotation; a ``key_map`` leaf
  (from and to key ids, the map's row count and list digest) commits to the map the
  rotation produced, so ``origine ledger check`` notices any row added or changed;
* prepared segments still under an older key are removed (they are re-made from the
  delivery if it comes again).

The whole rotation is one transaction: it happens entirely or not at all.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from origine import ledger, warehouse
from origine.ledger import digests
from origine.errors import HashKeyError
from origine.ingest import segment_key_id
from origine.keys import HMAC_SQL, HashKey, hmac_pads

NEW_LAYER_ENV = "ORIGINE_NEW_KEY_LAYER"

# Tables whose subject keys are re-keyed in place (the ledger's are mapped instead).
REKEYED_TABLES = ("delivery_rows", "quarantine", "suppression_quarantine")

ROTATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS key_rotations (
    from_key_id VARCHAR NOT NULL,
    to_key_id VARCHAR NOT NULL,
    rotated_at TIMESTAMPTZ NOT NULL,
    counts JSON NOT NULL
);
"""


@dataclass
class RotationResult:
    """What a rotation changed (counts and public key ids only)."""

    from_key_id: str
    to_key_id: str
    rotated_at: str
    rows_rekeyed: dict[str, int]
    ledger_subjects_mapped: int
    segments_removed: int

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


def rotate(
    con: duckdb.DuckDBPyConnection, key: HashKey, layer: bytes, *, segments: Path | None = None,
    signer: Any = None,
) -> tuple[HashKey, RotationResult]:
    """Layer ``layer`` over every stored subject key; return the new key and what changed.

    ``key`` must be the warehouse's current key (its id is checked). ``segments`` is
    the home's segment folder, whose segments under older keys are removed. The
    ``key_map`` leaf's checkpoint is signed by ``signer`` (default: the home's key).
    """
    new = key.with_layer(layer)
    ledger.install(con)
    con.execute(ROTATIONS_SCHEMA)
    now = datetime.now(timezone.utc)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    counts: dict[str, int] = {}
    con.register("_origine_pads", hmac_pads(layer))
    try:
        with warehouse.transaction(con):
            stored = con.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
            if stored is None:
                raise HashKeyError("nothing to rotate: this warehouse holds no subject keys yet")
            warehouse.check_key(con, key.key_id)
            # Every stored ledger key (of any older generation) to its key under `new`:
            # one layer over what the previous generation mapped it to.
            mapped = warehouse.rewrite_table(
                con,
                "subject_key_map",
                lambda before: f"""SELECT s.key_id, s.subject_key, {HMAC_SQL.format(x='s.current_key')}
                    FROM (
                        SELECT DISTINCT e.key_id, e.subject_key,
                               coalesce(m.current_key, e.subject_key) AS current_key
                        FROM ledger_events e
                        LEFT JOIN {before} m
                            ON m.key_id IS NOT DISTINCT FROM e.key_id AND m.subject_key = e.subject_key
                        WHERE e.subject_key IS NOT NULL
                    ) s CROSS JOIN _origine_pads p""",
            )
            for table in REKEYED_TABLES:
                if table not in tables:
                    continue
                select = warehouse.select_list(con, table, "t", {
                    "subject_key": f"CASE WHEN t.subject_key IS NOT NULL THEN {HMAC_SQL.format(x='t.subject_key')} END",
                    "key_id": f"CASE WHEN t.subject_key IS NOT NULL THEN '{new.key_id}' ELSE t.key_id END",
                })
                warehouse.rewrite_table(con, table, lambda before: f"SELECT {select} FROM {before} t CROSS JOIN _origine_pads p")
                counts[table] = con.execute(
                    f"SELECT count(*) FROM {table} WHERE subject_key IS NOT NULL"
                ).fetchone()[0]  # type: ignore[index]
            con.execute("UPDATE meta SET value = ? WHERE name = 'key_id'", [new.key_id])
            _record_key_map(con, key.key_id, new.key_id, now, signer)
            result = RotationResult(key.key_id, new.key_id, now.isoformat(), counts, int(mapped), 0)
            con.execute(
                "INSERT INTO key_rotations VALUES (?, ?, ?, ?)",
                [key.key_id, new.key_id, now, json.dumps({"rows_rekeyed": counts, "ledger_subjects_mapped": mapped})],
            )
    finally:
        con.unregister("_origine_pads")
    if segments is not None:
        result.segments_removed = remove_stale_segments(segments, new.key_id)
    return new, result


def _record_key_map(
    con: duckdb.DuckDBPyConnection, from_id: str, to_id: str, now: datetime, signer: Any
) -> None:
    """Append the ``key_map`` leaf committing to the map as it now stands."""
    count, digest = digests.list_digest_stream(con, "subject_key_map", *digests.KEY_MAP)
    flat = ledger.flat_columns(
        type="'key_map'", at="$1::TIMESTAMPTZ", origin="'rotation'", party_from="$2::VARCHAR",
        party_to="$3::VARCHAR", proof="$4::VARCHAR", evidence_kind="'rotation'", row=str(int(count or 0)),
    )
    with tempfile.TemporaryDirectory(prefix="rotation-") as tmp:
        path = Path(tmp) / "key_map.parquet"
        ledger.write_events(con, ledger.events_sql(f"SELECT {flat}, 0 AS ord"),
                            [now, from_id, to_id, digest or digests.empty_digest()], path)
        ledger.append_events(con, path, reason=f"key rotation {from_id} -> {to_id}", signer=signer)


def remove_stale_segments(segments: Path, key_id: str) -> int:
    """Remove prepared segments whose report names a key other than ``key_id``.

    They hold subject keys of an older generation: a commit would refuse them, and
    kept on disk they would still link to the old key.
    """
    removed = 0
    for report in segments.glob("*/*/*/report.json"):
        stored = segment_key_id(report.parent)
        if stored is not None and stored != key_id:
            shutil.rmtree(report.parent, ignore_errors=True)
            removed += 1
    return removed
