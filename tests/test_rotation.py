"""Hashing-key rotation: a new secret layered over the stored digests, no raw number
needed, and every reader (lookup, audit, consent state, retention) still sees one
subject across rotations while the ledger stays exactly as signed."""

from __future__ import annotations

import hmac
import json
from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from origine import ledger, warehouse
from origine.ingest import intake
from origine.ledger import digests
from pipelines.cli import main
from origine.errors import HashKeyError
from origine.keys import HashKey, layer_over, load_key
from origine.retention import apply_retention
from tests.conftest import TEST_KEY_HEX
from tests.test_audit import A, B, campaign, deliver, national, run, targets_by_key  # noqa: F401

LAYER = "5c" * 32
LAYER2 = "a7" * 32


def rotate_cli(home, layer_hex: str, monkeypatch, layers: str = "") -> dict:
    monkeypatch.setenv("ORIGINE_NEW_KEY_LAYER", layer_hex)
    monkeypatch.setenv("ORIGINE_HASH_KEY_LAYERS", layers)
    result = CliRunner().invoke(main, ["key", "rotate", "--home", str(home.root), "--json"])
    monkeypatch.delenv("ORIGINE_NEW_KEY_LAYER")
    assert result.exit_code == 0, result.stderr
    for secret in (layer_hex, TEST_KEY_HEX, *layers.split(",")):
        if secret:
            assert secret not in result.stdout + result.stderr
    return json.loads(result.stdout)


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=80),
    layers=st.lists(st.binary(min_size=32, max_size=40), max_size=3, unique=True),
    numbers=st.lists(st.one_of(st.none(), st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)), max_size=20),
)
def test_a_layer_is_an_hmac_over_the_previous_digest(secret, layers, numbers) -> None:
    if secret in layers:
        return
    chain = HashKey(secret, layers=tuple(layers))
    base = HashKey(secret)
    for e164 in (n for n in numbers if n is not None):
        expected = hmac.digest(secret, e164.encode(), "sha256").hex()
        for layer in layers:
            expected = hmac.digest(layer, expected.encode(), "sha256").hex()
        assert chain.subject_key(e164) == expected
        if layers:
            assert chain.subject_key(e164) == layer_over(layers[-1], chain.generations()[-2].subject_key(e164))
    # the column path (HMAC in DuckDB, key as joined pads) agrees with the scalar one
    column = chain.subject_keys(pa.array(numbers, pa.string())).to_pylist()
    assert column == [chain.subject_key(n) if n is not None else None for n in numbers]
    ids = [g.key_id for g in chain.generations()]
    assert ids[0] == base.key_id and ids[-1] == chain.key_id and len(set(ids)) == len(ids)


def test_a_layer_must_be_new_and_long_enough(key) -> None:
    with pytest.raises(HashKeyError):
        key.with_layer(b"short")
    with pytest.raises(HashKeyError):
        key.with_layer(key.secret)
    once = key.with_layer(bytes.fromhex(LAYER))
    with pytest.raises(HashKeyError):
        once.with_layer(bytes.fromhex(LAYER))


def test_layers_load_from_the_environment_oldest_first(key) -> None:
    env = {"ORIGINE_HASH_KEY": TEST_KEY_HEX, "ORIGINE_HASH_KEY_LAYERS": f"{LAYER}, {LAYER2}"}
    loaded = load_key(env=env)
    assert loaded == key.with_layer(bytes.fromhex(LAYER)).with_layer(bytes.fromhex(LAYER2))
    with pytest.raises(HashKeyError, match="rotation layer 2") as info:
        load_key(env={**env, "ORIGINE_HASH_KEY_LAYERS": f"{LAYER},tooshort"})
    assert LAYER not in str(info.value)


def test_rotation_rekeys_without_numbers_and_readers_follow_across_generations(
    home, key, make_delivery, campaign, tmp_path, monkeypatch  # noqa: F811
) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},jeu-ete,propagande électorale,2024-01-02,ref-1",
                                       f"{national(B)},jeu-ete,sondages,2024-01-02,ref-2"])
    with warehouse.session(home.warehouse) as con:
        events_before = con.execute("SELECT * FROM ledger_events ORDER BY seq, part").fetchall()
        heads_before = con.execute("SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size").fetchall()

    out = rotate_cli(home, LAYER, monkeypatch)
    new = key.with_layer(bytes.fromhex(LAYER))
    assert (out["from_key_id"], out["to_key_id"]) == (key.key_id, new.key_id)
    assert out["rows_rekeyed"]["delivery_rows"] == 2 and out["ledger_subjects_mapped"] == 2
    assert out["segments_removed"] == 1 and not list(home.segments.glob("*/*/*/report.json"))

    with warehouse.session(home.warehouse) as con:
        rows = {r[0]: r[1] for r in con.execute("SELECT subject_key, key_id FROM delivery_rows").fetchall()}
        assert rows == {new.subject_key(A): new.key_id, new.subject_key(B): new.key_id}
        # the ledger's events are as signed, followed by one key_map leaf committing to
        # the map the rotation produced (from and to key ids, row count, list digest)
        events_after = con.execute("SELECT * FROM ledger_events ORDER BY seq, part").fetchall()
        assert events_after[:-1] == events_before
        rotation = con.execute(
            "SELECT type, origin, party_from, party_to, \"row\", proof, subject_key FROM ledger_events "
            "ORDER BY seq DESC LIMIT 1").fetchone()
        map_lines = [f"{k or ''} {s} {c}" for k, s, c in con.execute(
            "SELECT key_id, subject_key, current_key FROM subject_key_map ORDER BY key_id NULLS FIRST, subject_key"
        ).fetchall()]
        assert rotation == ("key_map", "rotation", key.key_id, new.key_id, 2, digests.list_digest(map_lines), None)
        heads_after = con.execute("SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size").fetchall()
        leaves = con.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0]
        assert heads_after[:-1] == heads_before and heads_after[-1][0] == leaves == heads_before[-1][0] + 1
        assert ledger.check_ledger(con).ok
        # a map row changed behind the ledger's back is caught; put back, the check passes
        saved = con.execute("SELECT * FROM subject_key_map").fetchall()
        con.execute("UPDATE subject_key_map SET current_key = 'f' || current_key[2:]")
        assert "subject_key_map" in ledger.check_ledger(con).describe()
        con.execute("DELETE FROM subject_key_map")
        con.executemany("INSERT INTO subject_key_map VALUES (?, ?, ?)", saved)
        assert ledger.check_ledger(con).ok
        current = {r[0] for r in con.execute("SELECT subject_key FROM ledger_current WHERE type <> 'key_map'").fetchall()}
        assert current == {new.subject_key(A), new.subject_key(B)}

    # the old key alone is refused, by name of both generations
    with pytest.raises(HashKeyError, match="ORIGINE_HASH_KEY_LAYERS"):
        deliver(home, key, make_delivery, [f"{national(A)},x,sondages,2024-02-02,r"], delivery_id="D-9")

    # a new delivery under the rotated key: the same person, one subject
    deliver(home, new, make_delivery, [f"{national(A)},carte,sondages,2024-03-03,ref-3"],
            vendor="other", delivery_id="D-2")
    monkeypatch.setenv("ORIGINE_HASH_KEY_LAYERS", LAYER)
    answer = CliRunner().invoke(main, ["lookup", A, "--home", str(home.root), "--json"])
    assert answer.exit_code == 0, answer.stderr
    events = json.loads(answer.stdout)["events"]
    assert {(e["vendor"], e["type"]) for e in events} >= {("acme", "collected"), ("other", "collected")}

    # the audit (targets hashed under the new key) finds the consent recorded under the old one
    result = run(campaign(), home, new, tmp_path)
    assert targets_by_key(result)[new.subject_key(A)]["verdict"] == "compliant"

    # a second rotation maps every older generation onward
    out2 = rotate_cli(home, LAYER2, monkeypatch, layers=LAYER)
    newer = new.with_layer(bytes.fromhex(LAYER2))
    assert out2["to_key_id"] == newer.key_id
    with warehouse.session(home.warehouse) as con:
        state = ledger.state_as_of(con, datetime(2025, 1, 1, tzinfo=timezone.utc), [newer.subject_key(A)])
        assert set(state[newer.subject_key(A)].consented) == {"political.electoral", "research.polling"}
        assert ledger.check_ledger(con).ok
        # retention erases the subject's events of every generation, and the links between them
        erased = apply_retention(con, days=30, now=datetime(2030, 1, 1, tzinfo=timezone.utc))
        assert erased.subjects == 2
        assert con.execute(
            "SELECT count(*) FROM ledger_current WHERE erased_at IS NULL AND subject_key IS NOT NULL"
        ).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM subject_key_map").fetchone()[0] == 0
        assert ledger.check_ledger(con).ok


def test_rotation_needs_the_current_key_and_a_new_layer(home, key, make_delivery, monkeypatch) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},jeu-ete,sondages,2024-01-02,ref-1"])
    monkeypatch.delenv("ORIGINE_NEW_KEY_LAYER", raising=False)
    missing = CliRunner().invoke(main, ["key", "rotate", "--home", str(home.root)])
    assert missing.exit_code != 0 and "ORIGINE_NEW_KEY_LAYER" in missing.stderr
    monkeypatch.setenv("ORIGINE_NEW_KEY_LAYER", LAYER)
    monkeypatch.setenv("ORIGINE_HASH_KEY_LAYERS", LAYER2)  # not this home's chain
    wrong = CliRunner().invoke(main, ["key", "rotate", "--home", str(home.root)])
    assert wrong.exit_code != 0 and key.key_id in wrong.stderr
    with warehouse.session(home.warehouse) as con:  # nothing changed
        assert con.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()[0] == key.key_id
        assert con.execute("SELECT count(*) FROM subject_key_map").fetchone()[0] == 0


def test_no_layer_key_or_pad_bytes_anywhere_in_the_home_after_rotation(
    home, key, make_delivery, monkeypatch
) -> None:
    """The layer reaches DuckDB only as joined HMAC pads (never in SQL text): neither
    it, the base key, nor those pads may end up in the warehouse file, its WAL, the
    Dagster storage or any other file of the home."""
    from origine.keys import hmac_pads
    from tests.conftest import scan_tree_for

    deliver(home, key, make_delivery, [f"{national(A)},jeu-ete,propagande électorale,2024-01-02,ref-1"])
    layer_hex = "3f9c1e0a7b5d42e8a1c6f0b9d3e7a2c58e4b1f6d0a9c3e7b2d5f8a1c4e7b0d3f"
    out = rotate_cli(home, layer_hex, monkeypatch)
    assert out["rows_rekeyed"]["delivery_rows"] == 1
    needles = []
    for secret in (bytes.fromhex(layer_hex), key.secret):
        pads = hmac_pads(secret)
        needles += [secret, secret.hex().encode(), secret.hex().upper().encode(),
                    pads.column("ipad")[0].as_py(), pads.column("opad")[0].as_py()]
    assert scan_tree_for(home.root, needles) == []


def test_a_home_from_before_rotation_is_upgraded_on_a_read_only_open(home, key, make_delivery) -> None:
    """Readers (lookup, audit) open the warehouse read-only and query ``ledger_current``
    and ``ledger_current_of``: a warehouse written by an origine without them gets
    them on that open, once."""
    deliver(home, key, make_delivery, [f"{national(A)},jeu-ete,sondages,2024-01-02,ref-1"])
    with warehouse.session(home.warehouse) as con:
        con.execute("DROP MACRO TABLE ledger_current_of")  # as an older origine left it
        con.execute("DROP VIEW ledger_current")
    with warehouse.session(home.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ledger_current").fetchone()[0] > 0
        con.execute("CREATE TEMP TABLE k AS SELECT subject_key FROM delivery_rows")
        assert con.execute("SELECT count(*) FROM ledger_current_of('k')").fetchone()[0] > 0
    with warehouse.session(home.warehouse, read_only=True) as con:  # and a plain open since
        assert con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'ledger_current_of'"
        ).fetchone()[0] == 1


REFERENCE_CURRENT = """
    SELECT e.seq, coalesce(m.current_key, e.subject_key) AS subject_key, e.subject_key AS stored_subject_key
    FROM ledger_events e
    LEFT JOIN subject_key_map m ON m.key_id IS NOT DISTINCT FROM e.key_id AND m.subject_key = e.subject_key
"""


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from([None, "g0", "g1", "g2"]), st.sampled_from([None, "a", "b", "c", "d"])),
                    max_size=30),
    mapped=st.sets(st.tuples(st.sampled_from([None, "g0", "g1"]), st.sampled_from(["a", "b", "c", "d"])), max_size=8),
    wanted=st.sets(st.sampled_from(["a", "b", "c", "d", "A", "B", "C", "D"]), max_size=4),
)
def test_ledger_current_and_its_keyed_form_equal_the_reference_join(events, mapped, wanted) -> None:
    """Whatever the map holds (keys of any generation, a NULL key id, none at all), the
    view and the macro give each event once, under coalesce(mapped key, stored key)."""
    con = duckdb.connect()
    ledger.install(con)
    con.register("given_events", pa.table({"key_id": pa.array([k for k, _ in events], pa.string()),
                                           "subject_key": pa.array([s for _, s in events], pa.string())}))
    con.execute("INSERT INTO ledger_leaves (seq, type, key_id, subject_key, leaf_hash) "
                "SELECT row_number() OVER (), 'collected', key_id, subject_key, '\\x00'::BLOB FROM given_events")
    con.register("given_map", pa.table({"key_id": pa.array([k for k, _ in mapped], pa.string()),
                                        "subject_key": pa.array([s for _, s in mapped], pa.string())}))
    con.execute("INSERT INTO subject_key_map SELECT key_id, subject_key, upper(subject_key) FROM given_map")
    reference = sorted(con.execute(REFERENCE_CURRENT).fetchall(), key=repr)
    view = sorted(con.execute("SELECT seq, subject_key, stored_subject_key FROM ledger_current").fetchall(), key=repr)
    assert view == reference
    con.register("wanted", pa.table({"subject_key": pa.array(sorted(wanted), pa.string())}))
    keyed = sorted(con.execute(
        "SELECT seq, subject_key, stored_subject_key FROM ledger_current_of('wanted')"
    ).fetchall(), key=repr)
    assert keyed == [r for r in reference if r[1] in wanted]
