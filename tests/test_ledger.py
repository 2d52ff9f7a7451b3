"""The provenance ledger: events over time, suppressions, custody, retention, tamper evidence."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import duckdb
import pytest
from click.testing import CliRunner

from origine import ledger, merkle, warehouse
from origine.ingest import intake
from pipelines.cli import main
from origine.retention import apply_retention
from origine.ledger import digests
from origine.signing import load_signer, note_key_id
from origine.suppressions import ingest_suppressions
from tests.test_merkle import ref_mth, ref_path, ref_proof, ref_verify_consistency, ref_verify_inclusion

MOBILE = "+33612345678"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def ingest(home, key, make_delivery, text: str, **fields) -> None:
    path = make_delivery({"a.csv": text.encode()}, **fields)
    intake.commit(intake.prepare(path, home, key), home, label=str(path))


def con_for(home) -> duckdb.DuckDBPyConnection:
    return warehouse.connect(home.warehouse)


@pytest.fixture
def populated(home, key, make_delivery):
    ingest(home, key, make_delivery,
           "phone,source,consent_purposes,consent_at,consent_proof,acquired_from\n"
           "0612345678,jeu-concours,political.electoral|marketing.commercial,2023-01-10,optin-1,leads-sarl\n"
           "0612345679,carte-fidelite,marketing.commercial,2023-02-01,,\n",
           vendor="broker-a", delivery_id="A-1", delivered_at="2023-03-01T00:00:00Z")
    ingest(home, key, make_delivery,
           "phone,source,consent_purposes,consent_at\n0612345678,sondage,research.polling,2023-06-01\n",
           vendor="broker-b", delivery_id="B-1", delivered_at="2023-07-01T00:00:00Z", recipient="party-b")
    return home


def test_consent_per_purpose_over_time_and_withdrawal(populated, key, tmp_path) -> None:
    s = key.subject_key(MOBILE)
    con = con_for(populated)
    before = ledger.state_as_of(con, utc(2023, 1, 1), [s])
    assert s not in before or before[s].consented == {}
    mid = ledger.state_as_of(con, utc(2023, 2, 1), [s])[s]
    assert set(mid.consented) == {"political.electoral", "marketing.commercial"}
    later = ledger.state_as_of(con, utc(2023, 12, 1), [s])[s]
    assert set(later.consented) == {"political.electoral", "marketing.commercial", "research.polling"}
    con.close()
    stop = tmp_path / "dpo.csv"
    stop.write_text("phone;channel;at;origin;purpose\n06 12 34 56 78;all;2024-01-05;dpo-request;propagande électorale\n")
    ingest_suppressions(stop, warehouse_path=populated.warehouse, key=key)
    con = con_for(populated)
    after = ledger.state_as_of(con, utc(2024, 2, 1), [s])[s]
    assert "political.electoral" not in after.consented
    assert "marketing.commercial" in after.consented
    # the audit evaluates at the send time: before the withdrawal it still held
    assert "political.electoral" in ledger.state_as_of(con, utc(2024, 1, 4), [s])[s].consented


def test_suppressions_become_opt_outs_with_accounting(populated, key, tmp_path) -> None:
    stop = tmp_path / "stop.csv"
    stop.write_text("phone;channel;at;origin\n0612345678;SMS;2024-05-01;stop-reply\nn/a;sms;2024-05-01;stop-reply\n"
                    "0612345679;sms;not a date;stop-reply\n")
    report = ingest_suppressions(stop, warehouse_path=populated.warehouse, key=key)
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (3, 1, 2)
    assert report.quarantine_reasons == {"INVALID_DATE": 1, "PHONE_UNPARSEABLE": 1}
    assert ingest_suppressions(stop, warehouse_path=populated.warehouse, key=key).duplicate
    con = con_for(populated)
    s = key.subject_key(MOBILE)
    assert ledger.state_as_of(con, utc(2024, 6, 1), [s])[s].opted_out == {"sms": "2024-05-01T00:00:00+00:00"}
    assert ledger.state_as_of(con, utc(2024, 4, 1), [s])[s].opted_out == {}
    assert con.execute("SELECT count(*) FROM ledger_events WHERE type = 'opted_out'").fetchall() == [(1,)]


def test_suppress_cli_json(populated, key, tmp_path) -> None:
    stop = tmp_path / "stop.csv"
    stop.write_text("phone\n0612345678\n")
    result = CliRunner().invoke(main, ["suppress", str(stop), "--home", str(populated.root), "--json",
                                       "--origin", "do-not-call", "--channel", "voice"])
    assert result.exit_code == 0, result.output
    # no 'at' column: every row quarantined as INVALID_DATE, none lost
    assert '"INVALID_DATE": 1' in result.stdout


def test_custody_chain(populated, key) -> None:
    con = con_for(populated)
    s = key.subject_key(MOBILE)
    chain = ledger.state_as_of(con, utc(2024, 1, 1), [s])[s].custody
    assert [(h["party_from"], h["party_to"]) for h in chain] == [
        ("leads-sarl", "broker-a"), ("broker-a", "party-a"), ("broker-b", "party-b")
    ]
    assert len(ledger.state_as_of(con, utc(2023, 4, 1), [s])[s].custody) == 2


def test_unknown_purpose_word_is_a_finding(home, key, make_delivery) -> None:
    path = make_delivery({"a.csv": b"phone,consent_purposes,consent_at\n0612345678,jeu concours|sondages,2023-01-01\n"})
    report = intake.commit(intake.prepare(path, home, key), home, label="x")
    assert {"code": "UNKNOWN_PURPOSE", "word": "jeu concours", "rows": 1} in report.findings
    con = con_for(home)
    assert con.execute("SELECT purpose FROM ledger_events WHERE type = 'consent_granted'").fetchall() == [
        ("research.polling",)
    ]


def _entries(con) -> list[bytes]:
    return [p.encode() for (p,) in con.execute(f"SELECT {ledger.PAYLOAD_SQL} FROM ledger_leaves ORDER BY seq").fetchall()]


def test_proofs_verified_by_an_independent_verifier(populated) -> None:
    con = con_for(populated)
    heads = con.execute("SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size").fetchall()
    entries = _entries(con)
    (old_size, old_root), (new_size, new_root) = heads[0], heads[-1]
    assert ref_mth(entries).hex() == new_root and ref_mth(entries[:old_size]).hex() == old_root
    for index in range(new_size):
        proof = ledger.inclusion_proofs(con, [index], new_size)[index]
        assert proof == ref_path(index, entries)
        leaf = hashlib.sha256(b"\x00" + entries[index]).digest()
        assert ref_verify_inclusion(leaf, index, new_size, proof, bytes.fromhex(new_root))
    proof = ledger.consistency(con, old_size, new_size)
    assert proof == ref_proof(old_size, entries)
    assert ref_verify_consistency(old_size, new_size, bytes.fromhex(old_root), bytes.fromhex(new_root), proof)


def test_tree_heads_are_signed_checkpoints_of_the_operator(populated) -> None:
    """Every head is a C2SP checkpoint (origin, size, base64 root) in a signed note,
    key name = origin, key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    import base64

    con = con_for(populated)
    signer = load_signer(populated.keys)
    rows = con.execute("SELECT tree_size, root_hash, checkpoint FROM tree_heads ORDER BY tree_size").fetchall()
    assert len(rows) == 2
    for size, root_hex, note in rows:
        body, _, sig_line = note.partition("\n\n")
        text = body + "\n"  # the note text ends with its newline; a blank line follows
        origin, size_line, root_b64, end = text.split("\n")
        assert origin == ledger.checkpoint.default_origin(signer.public) and end == ""
        assert (int(size_line), base64.b64decode(root_b64).hex()) == (size, root_hex)
        dash, name, sig = sig_line.rstrip("\n").split(" ")
        raw = base64.b64decode(sig)
        assert (dash, name, raw[:4]) == ("\u2014", origin, note_key_id(origin, signer.public))
        signer.public.verify(raw[4:], text.encode())
        assert ledger.verify_checkpoint(note, signer.public).size == size
        with pytest.raises(ValueError):
            ledger.verify_checkpoint(note.replace(f"\n{size}\n", f"\n{size + 1}\n"), signer.public)
    assert ledger.latest_head(con).checkpoint == rows[-1][2]


def test_the_origin_is_configurable_and_then_fixed(home, key, make_delivery, monkeypatch) -> None:
    monkeypatch.setenv("ORIGINE_LEDGER_ORIGIN", "broker.example/ledger")
    ingest(home, key, make_delivery, "phone\n0612345678\n", delivery_id="O-1")
    con = con_for(home)
    assert ledger.latest_head(con).origin == "broker.example/ledger"
    con.close()
    monkeypatch.setenv("ORIGINE_LEDGER_ORIGIN", "other.example/ledger")
    with pytest.raises(Exception, match="keeps its origin"):
        ingest(home, key, make_delivery, "phone\n0612345679\n", delivery_id="O-2")
    monkeypatch.setenv("ORIGINE_LEDGER_ORIGIN", "has space")
    with pytest.raises(Exception, match="ORIGINE_LEDGER_ORIGIN"):
        ingest(home, key, make_delivery, "phone\n0612345679\n", delivery_id="O-3")


def test_an_append_onto_a_rewritten_history_is_refused(populated) -> None:
    """A log never signs a tree inconsistent with one it signed: an append after the
    stored frontier or nodes were rewritten fails instead of signing the forgery."""
    con = con_for(populated)
    top = ledger.tree_size(con).bit_length() - 1  # the frontier's first node: what an append extends
    con.execute("UPDATE ledger_nodes SET hash = unhex(sha256('x')) WHERE level = ? AND idx = 0", [top])
    with pytest.raises(Exception, match="refusing to append"):
        apply_retention(con, now=utc(2030, 1, 1), days=30)
    assert con.execute("SELECT count(*) FROM ledger_leaves WHERE type = 'erased'").fetchone() == (0,)


def test_retention_erases_attributes_and_keeps_old_heads_verifiable(populated, key) -> None:
    con = con_for(populated)
    old = ledger.latest_head(con)
    old_leaves = [bytes(h) for (h,) in con.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").fetchall()]
    s2 = key.subject_key("+33612345679")  # last contact 2023-03-01
    result = apply_retention(con, now=utc(2026, 3, 15), days=3 * 365)
    assert result.subjects == 1 and result.events > 0
    assert con.execute("SELECT count(*) FROM ledger_leaves WHERE subject_key = ?", [s2]).fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM delivery_rows WHERE subject_key = ?", [s2]).fetchall() == [(0,)]
    erased = con.execute("SELECT type, subject_key, proof FROM ledger_leaves WHERE seq = ?", [result.erasure_seq]).fetchall()
    assert erased[0][0] == "erased" and erased[0][2] is not None
    check = ledger.check_ledger(con)
    assert check.ok, check.describe()
    # the head recorded before erasure is still provable: same leaves, same root
    assert ledger.consistency(con, old.tree_size, result.tree_size)
    proof = ledger.inclusion_proofs(con, [0], old.tree_size)[0]
    assert ref_verify_inclusion(old_leaves[0], 0, old.tree_size, proof, bytes.fromhex(old.root_hash))
    # a rerun erases nothing more
    assert apply_retention(con, now=utc(2026, 3, 15), days=3 * 365).events == 0


@pytest.mark.parametrize(
    "tamper,first_bad",
    [
        # seq 0 delivery A-1, 1 and 2 its row leaves, 3 delivery B-1, 4 its row leaf
        ("UPDATE ledger_leaves SET purposes = ['research.polling'] WHERE seq = 1", 1),
        ("UPDATE ledger_leaves SET vendor = replace(vendor, 'broker-a', 'broker-z') WHERE seq = 0", 0),
        ("UPDATE ledger_leaves SET leaf_hash = unhex(sha256('forged')) WHERE seq = 2", 2),
        ("UPDATE ledger_leaves SET leaf_hash = sha256('forged')::BLOB WHERE seq = 3", 3),  # 64 bytes
        ("UPDATE ledger_leaves SET consent_at = consent_at - INTERVAL 1 DAY WHERE seq = 4", 4),
        ("DELETE FROM ledger_leaves WHERE seq = 2", 2),
        ("UPDATE ledger_leaves SET seq = CASE seq WHEN 1 THEN 2 WHEN 2 THEN 1 ELSE seq END", 1),
    ],
)
def test_edit_delete_reorder_are_detected(populated, tamper, first_bad) -> None:
    con = con_for(populated)
    assert ledger.check_ledger(con).ok
    con.execute(tamper)
    check = ledger.check_ledger(con)
    assert not check.ok and check.first_bad_seq == first_bad, check.describe()
    con.close()
    result = CliRunner().invoke(main, ["ledger", "check", "--home", str(populated.root)])
    assert result.exit_code == 1 and f"seq {first_bad}" in result.stdout.split(";")[0]


def test_consistent_rewrite_is_caught_by_the_heads(populated) -> None:
    """An operator who rewrites an event and its leaf hash together is still
    caught: the recorded (signed) tree heads no longer match."""
    con = con_for(populated)
    con.execute("UPDATE ledger_leaves SET source = 'forged' WHERE seq = 1")
    con.execute(f"UPDATE ledger_leaves SET leaf_hash = {ledger.LEAF_SQL} WHERE seq = 1")
    con.execute("UPDATE ledger_nodes SET hash = (SELECT leaf_hash FROM ledger_leaves WHERE seq = 1) WHERE level = 0 AND idx = 1")
    check = ledger.check_ledger(con)
    assert not check.ok and check.first_bad_node == (1, 0), check.describe()
    # with every node above recomputed too, the signed roots differ
    size = ledger.tree_size(con)
    store = merkle.MemoryNodeStore()
    leaves = [bytes(h) for (h,) in con.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").fetchall()]
    merkle.Frontier().extend(leaves, store)
    con.execute("DELETE FROM ledger_nodes")
    for level in range(size.bit_length()):
        for i in range(store.count(level)):
            con.execute("INSERT INTO ledger_nodes VALUES (?, ?, ?)", [level, i, store.get(level, i)])
    check = ledger.check_ledger(con)
    assert not check.ok and any("history rewritten" in p for p in check.problems), check.describe()


def test_stored_nodes_are_the_reference_trees_across_appends_and_row_groups(
    home, key, make_delivery, monkeypatch
) -> None:
    """Nodes go to the warehouse through a Parquet file written a row group at a
    time: tiny row groups and appends starting at odd sizes must still store exactly
    the reference tree's nodes, each once."""
    monkeypatch.setattr(ledger.ParquetNodeWriter, "ROW_GROUP", 3)
    for n, size in enumerate((5, 2, 9)):
        rows = "".join(f"06123456{n}{i},jeu,marketing.commercial,2023-01-10\n" for i in range(size))
        ingest(home, key, make_delivery, "phone,source,consent_purposes,consent_at\n" + rows,
               vendor="broker-a", delivery_id=f"A-{n}", delivered_at="2023-03-01T00:00:00Z")
    con = con_for(home)
    leaves = [bytes(r[0]) for r in con.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").fetchall()]
    reference = merkle.MemoryNodeStore()
    merkle.Frontier().extend(leaves, reference)
    stored = con.execute("SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx").fetchall()
    assert len(stored) == len({(lv, i) for lv, i, _ in stored})
    expected = [(lv, i, reference.get(lv, i)) for lv in range(64) for i in range(reference.count(lv))]
    assert [(lv, i, bytes(h)) for lv, i, h in stored] == expected
    assert ledger.check_ledger(con).ok
    with pytest.raises(TypeError):
        ledger.DuckDBNodeStore(con).put_many(1, 0, [b"\0" * 32])


def test_write_events_streams_many_batches_and_queries_with_the_sql_leaf(tmp_path) -> None:
    """write_events overlaps DuckDB, hashing and Parquet in threads: the file must
    still hold every event in query order, each leaf equal to ``LEAF_SQL``'s, across
    batch boundaries, with an empty query in the middle and a failing one refused."""
    con = duckdb.connect()
    n = 300_001  # more than two of write_events' 2^17-row batches
    evidence = dict(evidence_kind="'delivery'", vendor="$1::VARCHAR", delivery_id="'D-1'", file="'f.csv'",
                    file_sha256="'00'", subject_key="printf('%064x', i)", key_id="'k'", row="i")
    collected = ledger.flat_columns(type="'collected'", source="'s' || (i % 7)", **evidence)
    delivered = ledger.flat_columns(type="'delivered'", **evidence)
    to_party = ledger.flat_columns(type="'delivered'", party_to="$2::VARCHAR", **evidence)
    first = ledger.events_sql(f"SELECT {collected}, i AS ord FROM range({n}) t(i)")
    empty = ledger.events_sql(f"SELECT {delivered}, i AS ord FROM range(0) t(i)")
    last = ledger.events_sql(f"SELECT {to_party}, i AS ord FROM range(5) t(i)")
    out = tmp_path / "events.parquet"
    assert ledger.write_events(con, [first, empty, last], ["v", "party-a"], out) == n + 5
    mismatched, rows, types, parties = con.execute(
        f"SELECT count(*) FILTER (WHERE leaf_hash <> {ledger.LEAF_SQL}), count(*), "
        "list(DISTINCT type ORDER BY type), list(DISTINCT party_to) FILTER (WHERE party_to IS NOT NULL) "
        "FROM read_parquet(?)", [str(out)]
    ).fetchone()
    assert (mismatched, rows, types, parties) == (0, n + 5, ["collected", "delivered"], ["party-a"])
    order = con.execute(
        "SELECT list(row ORDER BY file_row_number) FROM read_parquet(?, file_row_number = true) "
        "WHERE type = 'collected'", [str(out)]
    ).fetchone()[0]
    assert order == list(range(n))
    with pytest.raises(duckdb.Error):
        ledger.write_events(con, [first, "SELECT error('boom') AS payload"], [], tmp_path / "bad.parquet")
    con.execute("SELECT 1").fetchone()  # the connection is usable after the failure


def test_large_erasures_rewrite_the_ledger_with_the_same_result_as_in_place(populated, monkeypatch, tmp_path) -> None:
    """Beyond IN_PLACE_MAX erased events retention rewrites ledger_leaves in one
    statement instead of updating it (bounded memory): the ledger, the erasure record
    and its proof must be exactly what the in-place path gives, in seq order."""
    import shutil

    from origine import retention

    twin = tmp_path / "twin.duckdb"
    shutil.copy(populated.warehouse, twin)
    now = utc(2030, 1, 1)  # everyone expires

    def erase(path, in_place_max):
        monkeypatch.setattr(retention, "IN_PLACE_MAX", in_place_max)
        con = warehouse.connect(path)
        result = apply_retention(con, now=now, days=30, signer=load_signer(populated.keys))
        # an in-place UPDATE of list columns moves rows: compared in seq order, and the
        # rewrite (which must keep seq order physically) checked apart
        rows = con.execute("SELECT * FROM ledger_leaves").fetchall()
        if in_place_max:
            rows.sort(key=lambda r: r[0])
        erasures = con.execute("SELECT * FROM erasures ORDER BY event_seq").fetchall()
        check = ledger.check_ledger(con, public_key=load_signer(populated.keys).public)
        constraints = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'ledger_leaves' AND constraint_type = 'NOT NULL'"
        ).fetchone()[0]
        con.close()
        return result, rows, erasures, check, constraints

    in_place = erase(populated.warehouse, 1_000_000)
    rewritten = erase(twin, 0)
    assert in_place[0].events > 1 and in_place[0].events == rewritten[0].events
    seqs = [r[0] for r in rewritten[1]]
    assert seqs == sorted(seqs)
    assert rewritten[1] == in_place[1] and rewritten[2] == in_place[2]
    assert rewritten[3].ok and in_place[3].ok, rewritten[3].describe()
    assert rewritten[4] == in_place[4] > 0  # NOT NULL constraints kept by the rewrite
    # the erasure's proof: the list digest of the erased sequence numbers
    erased = [r[1] for r in rewritten[2]]
    proof = [r for r in rewritten[1] if r[1] == "erased"][0][12]
    assert proof == digests.list_digest(map(str, erased))


def test_write_events_interrupted_while_hashing_leaves_no_thread_writing(tmp_path, monkeypatch) -> None:
    """An error in the hashing stage (the caller's thread) must reach the caller after
    the prefetch and the pending Parquet write have ended, with the connection idle."""
    import threading

    con = duckdb.connect()
    evidence = dict(evidence_kind="'delivery'", vendor="'v'", subject_key="printf('%064x', i)", row="i")
    cols = ledger.flat_columns(type="'collected'", **evidence)
    query = ledger.events_sql(f"SELECT {cols}, i AS ord FROM range(600000) t(i)")
    calls = 0
    real = hashlib.sha256

    def failing(data: bytes):
        nonlocal calls
        calls += 1
        if calls > 300_000:  # in the third batch, with a write of the second in flight
            raise RuntimeError("hashing failed")
        return real(data)

    monkeypatch.setattr(ledger.hashlib, "sha256", failing)
    with pytest.raises(RuntimeError, match="hashing failed"):
        ledger.write_events(con, query, [], tmp_path / "events.parquet")
    assert not [t for t in threading.enumerate() if t.name.startswith("origine-events")]
    assert con.execute("SELECT 42").fetchone() == (42,)


def test_an_erasure_cannot_be_extended_behind_the_ledgers_back(populated, key) -> None:
    """An erasure leaf commits to the events it erased: listing one more under it (with
    the erasure's own time, so every other rule holds) breaks its count and digest."""
    con = con_for(populated)
    result = apply_retention(con, now=utc(2026, 3, 15), days=3 * 365)
    assert result.events and ledger.check_ledger(con).ok
    at = con.execute('SELECT "at" FROM ledger_leaves WHERE seq = ?', [result.erasure_seq]).fetchone()[0]
    target = con.execute("SELECT min(seq) FROM ledger_leaves WHERE subject_key = ?",
                         [key.subject_key(MOBILE)]).fetchone()[0]
    con.execute("UPDATE ledger_leaves SET erased_at = ? WHERE seq = ?", [at, target])
    con.execute("INSERT INTO erasures VALUES (?, ?)", [result.erasure_seq, target])
    check = ledger.check_ledger(con)
    assert not check.ok
    assert check.problems == [
        f"leaf seq {target}: erased, but it still holds attributes (its leaf can no longer be checked; "
        "erased data must be gone)",
        f"leaf seq {result.erasure_seq}: the erasure leaf and the leaves listed as erased by it disagree "
        "(count or digest)"], check.describe()


def test_list_digest_in_duckdb_is_the_documented_one() -> None:
    """Chunked at 65,536 lines: DuckDB's set-wise digest equals the Python one past a chunk."""
    con = duckdb.connect()
    for n in (0, 1, 3, 65_536, 65_537, 140_000):
        count, digest = con.execute(digests.list_digest_sql(f"range({n}) t(seq)", *digests.ERASED_SEQS)).fetchone()
        assert (int(count or 0), digest or digests.empty_digest()) == (n, digests.list_digest(map(str, range(n))))
        # the streamed form (rotation, retention, the key-map check) gives the same pair,
        # whatever order the rows are stored in
        shuffled = f"(SELECT * FROM range({n}) t(seq) ORDER BY hash(seq))"
        assert digests.list_digest_stream(con, shuffled, *digests.ERASED_SEQS) == (
            n, digests.list_digest(map(str, range(n))))


def test_key_map_digest_streams_in_bounded_memory(tmp_path) -> None:
    """A key map past what a window ``row_number()`` sorted under a small cap (it ran out
    of a 2 GB cap at 15M rows at scale; here 600k rows under 64 MB) is digested by the
    streamed sort, equal to the Python digest of the documented lines."""
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("CREATE TABLE subject_key_map AS SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE 'k1' END AS key_id, "
                "sha256(i::VARCHAR) AS subject_key, sha256((i * 7)::VARCHAR) AS current_key FROM range(600000) t(i)")
    con.execute("SET memory_limit = '64MB'")
    con.execute("SET threads = 1")
    rows = con.execute("SELECT coalesce(key_id, ''), subject_key, current_key FROM subject_key_map "
                       "ORDER BY key_id NULLS FIRST, subject_key, current_key").fetchall()
    assert digests.list_digest_stream(con, "subject_key_map", *digests.KEY_MAP) == (
        600_000, digests.list_digest(" ".join(r) for r in rows))


def test_ledger_consistency_and_checkpoint_commands(populated) -> None:
    """`ledger consistency --from M` prints the RFC 9162 proof from M to the latest size,
    which verifies between the two signed checkpoints; a size out of range is bad input."""
    import base64

    runner = CliRunner()
    con = con_for(populated)
    (old, old_root), (new, new_root) = con.execute(
        "SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size").fetchall()
    con.close()
    out = runner.invoke(main, ["ledger", "consistency", "--from", str(old), "--home", str(populated.root)])
    assert out.exit_code == 0, out.stderr
    first, *hashes = out.stdout.splitlines()
    assert first == f"consistency {old} {new}"
    proof = [base64.b64decode(h) for h in hashes]
    assert ref_verify_consistency(old, new, bytes.fromhex(old_root), bytes.fromhex(new_root), proof)
    note = runner.invoke(main, ["ledger", "checkpoint", "--home", str(populated.root)]).stdout
    assert note.split("\n")[1] == str(new) and base64.b64decode(note.split("\n")[2]).hex() == new_root
    for bad in ("0", str(new + 1)):
        refused = runner.invoke(main, ["ledger", "consistency", "--from", bad, "--home", str(populated.root)])
        assert refused.exit_code == 2 and "--from" in refused.stderr, refused.stderr
