"""Tampering with a real home's warehouse, as someone who can write the DuckDB file but
does not hold the operator's signing key would: every edit is caught by
``origine ledger check`` (exit 1, naming what), and an untouched home passes.

One home is built through the real ingest, suppression and audit; each test edits a
copy of it with DuckDB directly, closes it, and runs the CLI on it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from origine import ledger, merkle
from origine.ingest import intake
from origine.audit import audit
from pipelines.cli import main
from origine.home import Home
from origine.keys import HashKey
from origine.signing import Signer, load_signer, note_key_id
from origine.suppressions import ingest_suppressions
from tests.conftest import TEST_KEY_HEX

A, B, C = "+33612345678", "+33612345679", "+33612345670"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a delivery, a STOP list and a campaign audit, each a signed append."""
    root = tmp_path_factory.mktemp("tamper")
    with pytest.MonkeyPatch.context() as mp:
        home = Home(root / "home").ensure()
        mp.setenv("ORIGINE_HOME", str(home.root))
        mp.setenv("ORIGINE_HASH_KEY", TEST_KEY_HEX)
        for name in ("ORIGINE_HASH_KEY_FILE", "ORIGINE_HASH_KEY_LAYERS", "ORIGINE_LEDGER_ORIGIN",
                     "ORIGINE_SIGNING_KEY_FILE"):
            mp.delenv(name, raising=False)
        key = HashKey(bytes.fromhex(TEST_KEY_HEX))
        delivery = root / "delivery"
        delivery.mkdir()
        (delivery / "contacts.csv").write_text(
            "phone,source,consent_purposes,consent_at,consent_proof\n"
            + "".join(f"0{n[3:]},jeu-ete,propagande électorale|sondages,2024-01-02,ref-{i}\n"
                      for i, n in enumerate((A, B, C)))
        )
        (delivery / "manifest.yaml").write_text(yaml.safe_dump({
            "delivery_id": "D-1", "vendor": "acme", "recipient": "party-a",
            "delivered_at": "2024-06-05T09:00:00+02:00", "country": "FR", "files": [{"path": "contacts.csv"}],
        }))
        intake.commit(intake.prepare(delivery, home, key), home, label="delivery")
        stop = root / "stop.csv"
        stop.write_text("phone;channel;at;origin\n0612345678;sms;2024-05-01;stop-reply\n")
        ingest_suppressions(stop, warehouse_path=home.warehouse, key=key, signer=load_signer(home.keys))
        campaign = root / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "campaign_id": "EU24-SMS-01", "sponsor": "Parti A", "channel": "sms",
            "purpose": "political.electoral", "sender": "PARTI-A",
            "message": "Parti A vous invite à voter le 9 juin. STOP au 36789",
            "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"},
            "targets": {"deliveries": ["D-1"]},
        }, allow_unicode=True), encoding="utf-8")
        audit(campaign, home, key, root / "bundle")
    return home.root


@pytest.fixture
def home(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the built home to edit."""
    copy = tmp_path / "home"
    shutil.copytree(pristine, copy)
    monkeypatch.setenv("ORIGINE_HOME", str(copy))
    monkeypatch.delenv("ORIGINE_LEDGER_ORIGIN", raising=False)
    monkeypatch.delenv("ORIGINE_SIGNING_KEY_FILE", raising=False)
    return copy


def edit(home: Path, *statements: str, params: list | None = None) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        for sql in statements:
            con.execute(sql, params)
    finally:
        con.close()


def check(home: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ledger", "check", "--home", str(home), *extra])
    return result.exit_code, result.stdout + result.stderr


def rows(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def save_checkpoint(home: Path, where: Path) -> Path:
    result = CliRunner().invoke(main, ["ledger", "checkpoint", "--home", str(home)])
    assert result.exit_code == 0, result.stderr
    where.write_text(result.stdout, encoding="utf-8")
    return where


def rebuild_tree(con: duckdb.DuckDBPyConnection) -> merkle.MemoryNodeStore:
    """What a careful forger does after editing events: every node recomputed."""
    leaves = [bytes(h) for (h,) in con.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").fetchall()]
    store = merkle.MemoryNodeStore()
    merkle.Frontier().extend(leaves, store)
    con.execute("DELETE FROM ledger_nodes")
    nodes = [(lv, i, store.get(lv, i)) for lv in range(len(leaves).bit_length()) for i in range(store.count(lv))]
    con.executemany("INSERT INTO ledger_nodes VALUES (?, ?, ?)", nodes)
    return store


def test_an_untouched_home_passes_with_and_without_anchors(home: Path, tmp_path: Path) -> None:
    code, out = check(home)
    assert code == 0 and out.startswith("ledger ok:"), out
    events, heads = rows(home, "SELECT (SELECT count(*) FROM ledger_leaves), (SELECT count(*) FROM tree_heads)")[0]
    assert f"{events} leaves, {heads} signed checkpoints" in out and heads == 3
    anchor = save_checkpoint(home, tmp_path / "anchor.txt")
    code, out = check(home, "--checkpoint", str(anchor), "--public-key", str(home / "keys" / "operator_ed25519.pub.pem"))
    assert code == 0 and f"extends the given checkpoint of size {events}" in out, out


def test_the_full_rewrite_with_recomputed_leaves_nodes_and_roots_and_old_signatures(home: Path, tmp_path: Path) -> None:
    """The attack of issue 15: the subject's opt-out deleted, events renumbered, leaf
    hashes, nodes, head roots and frontiers recomputed, the old signatures kept."""
    anchor = save_checkpoint(home, tmp_path / "anchor.txt")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    [(gone,)] = con.execute("SELECT seq FROM ledger_leaves WHERE type = 'opted_out'").fetchall()
    con.execute("DELETE FROM ledger_leaves WHERE type = 'opted_out'")
    con.execute("UPDATE ledger_leaves SET seq = seq - 1 WHERE seq > ?", [gone])
    con.execute(f"UPDATE ledger_leaves SET leaf_hash = {ledger.LEAF_SQL}")
    store = rebuild_tree(con)
    for size, recorded_at in con.execute("SELECT tree_size, recorded_at FROM tree_heads").fetchall():
        new = size - 1 if size > gone else size
        con.execute(
            "UPDATE tree_heads SET tree_size = ?, root_hash = ?, frontier = ? WHERE recorded_at = ?",
            [new, merkle.root_at(new, store).hex(),
             json.dumps(merkle.Frontier.from_store(new, store).to_dict()), recorded_at],
        )
    con.close()
    code, out = check(home)
    assert code == 1 and "head size" in out and "signed checkpoint says" in out, out
    code, out = check(home, "--checkpoint", str(anchor))
    assert code == 1 and "diverges from the given checkpoint" in out, out


def test_a_forged_signature_is_refused(home: Path) -> None:
    """A note signed by another key, even under the operator's key name and key ID."""
    size, note = rows(home, "SELECT tree_size, checkpoint FROM tree_heads ORDER BY tree_size DESC LIMIT 1")[0]
    text, origin = note.split("\n\n")[0] + "\n", note.split("\n", 1)[0]
    forged = Signer(Ed25519PrivateKey.generate()).sign_note(text, origin)
    own_id = note_key_id(origin, load_signer(home / "keys").public)
    import base64

    dash, name, sig = forged.rstrip("\n").split("\n")[-1].split(" ")
    raw = base64.b64decode(sig)
    forged = forged.replace(sig, base64.b64encode(own_id + raw[4:]).decode())
    edit(home, "UPDATE tree_heads SET checkpoint = $1 WHERE tree_size = $2", params=[forged, size])
    code, out = check(home)
    assert code == 1 and f"head size {size}: its checkpoint is not signed by the operator's key" in out, out
    assert "does not verify" in out


@pytest.mark.parametrize("how", ["null", "stripped"])
def test_a_null_or_stripped_signature_is_refused(home: Path, how: str) -> None:
    size, note = rows(home, "SELECT tree_size, checkpoint FROM tree_heads ORDER BY tree_size LIMIT 1")[0]
    if how == "null":
        edit(home, "ALTER TABLE tree_heads ALTER COLUMN checkpoint DROP NOT NULL",
             f"UPDATE tree_heads SET checkpoint = NULL WHERE tree_size = {size}")
    else:  # the checkpoint's text without its signature line
        edit(home, "UPDATE tree_heads SET checkpoint = $1 WHERE tree_size = $2", params=[note.split("\n\n")[0] + "\n", size])
    code, out = check(home)
    assert code == 1 and f"head size {size}: its checkpoint is not signed" in out, out


def test_erased_at_set_without_an_erasure_leaf(home: Path) -> None:
    """Marking the opt-out erased would hide it from every later audit."""
    [(seq,)] = rows(home, "SELECT seq FROM ledger_leaves WHERE type = 'opted_out'")
    edit(home, "UPDATE ledger_leaves SET erased_at = now() WHERE type = 'opted_out'")
    code, out = check(home)
    assert code == 1 and f"leaf seq {seq}: marked erased, but no erasure leaf records it" in out, out
    # listing it in erasures under some other event does not help
    edit(home, f"INSERT INTO erasures VALUES ({seq - 1}, {seq})")
    code, out = check(home)
    assert code == 1 and f"leaf seq {seq}: listed as erased by seq {seq - 1}" in out, out


def test_a_key_map_row_inserted(home: Path) -> None:
    """A map row would make ledger_current read one subject's events as another's."""
    key = HashKey(bytes.fromhex(TEST_KEY_HEX))
    edit(home, "INSERT INTO subject_key_map VALUES ($1, $2, $3)",
         params=[key.key_id, key.subject_key(A), key.subject_key(B)])
    code, out = check(home)
    assert code == 1 and "subject_key_map holds 1 row(s) but no key_map leaf" in out, out


def test_an_interior_node_corrupted(home: Path) -> None:
    edit(home, "UPDATE ledger_nodes SET hash = unhex(sha256('forged')) WHERE level = 2 AND idx = 1")
    code, out = check(home)
    assert code == 1 and "tree node (level 2, index 1) is not the hash of its two children" in out, out


def test_an_interior_node_deleted(home: Path) -> None:
    """Once made the next audit crash with KeyError: (4, 4)."""
    edit(home, "DELETE FROM ledger_nodes WHERE level = 3 AND idx = 0")
    code, out = check(home)
    assert code == 1 and "tree node (level 3, index 0) is missing" in out, out


def test_the_tail_truncated_is_caught_with_a_checkpoint_kept_outside(home: Path, tmp_path: Path) -> None:
    """Cut the audit's events, their nodes and their head: what is left is a valid,
    signed, shorter ledger, which only a checkpoint kept outside the home exposes."""
    anchor = save_checkpoint(home, tmp_path / "anchor.txt")
    sizes = [s for (s,) in rows(home, "SELECT tree_size FROM tree_heads ORDER BY tree_size")]
    cut = sizes[-2]
    edit(home, f"DELETE FROM ledger_leaves WHERE seq >= {cut}",
         f"DELETE FROM ledger_nodes WHERE idx >= ({cut}::BIGINT >> level)",
         f"DELETE FROM tree_heads WHERE tree_size > {cut}")
    code, out = check(home)
    assert code == 0, out  # self-consistent: the reason to keep checkpoints outside
    code, out = check(home, "--checkpoint", str(anchor))
    assert code == 1 and f"diverges from the given checkpoint at size {cut}" in out, out
    assert "tail truncated" in out


def test_two_events_swapped(home: Path) -> None:
    edit(home, "UPDATE ledger_leaves SET seq = CASE seq WHEN 3 THEN 4 WHEN 4 THEN 3 ELSE seq END")
    code, out = check(home)
    assert code == 1 and "leaf seq 3: its leaf hash differs from the tree's leaf" in out, out


def test_a_leaf_edited_with_its_node_recomputed_names_the_seq(home: Path) -> None:
    """Columns, leaf hash and level-0 node changed together: the level-1 node above
    no longer matches, and the check names the event."""
    edit(home, "UPDATE ledger_leaves SET source = 'forged' WHERE seq = 5",
         f"UPDATE ledger_leaves SET leaf_hash = {ledger.LEAF_SQL} WHERE seq = 5",
         "UPDATE ledger_nodes SET hash = (SELECT leaf_hash FROM ledger_leaves WHERE seq = 5) "
         "WHERE level = 0 AND idx = 5")
    code, out = check(home)
    assert code == 1 and "seq 5 was edited with its leaf hash recomputed" in out, out
    assert out.startswith("ledger check FAILED: tree node (level 1, index 2)")


def test_a_checkpoint_of_another_key_or_ledger_is_refused(home: Path, tmp_path: Path) -> None:
    other = Signer(Ed25519PrivateKey.generate())
    pem = tmp_path / "other.pub.pem"
    pem.write_bytes(other.public_pem())
    code, out = check(home, "--public-key", str(pem))
    assert code == 1 and "not signed by the operator's key" in out, out
    foreign = tmp_path / "foreign.txt"
    origin = rows(home, "SELECT checkpoint FROM tree_heads LIMIT 1")[0][0].split("\n", 1)[0]
    signer = load_signer(home / "keys")
    foreign.write_text(signer.sign_note(ledger.Checkpoint("elsewhere.example/log", 1, b"\1" * 32).text(),
                                        "elsewhere.example/log"))
    code, out = check(home, "--checkpoint", str(foreign))
    assert code == 1 and f"not of this one ({origin})" in out, out


def test_a_v1_home_is_refused_clearly(home: Path) -> None:
    edit(home, "ALTER TABLE tree_heads DROP COLUMN checkpoint")
    code, out = check(home)
    assert code != 0 and "format v1" in out and "Traceback" not in out, out


def test_a_home_with_one_leaf_per_event_is_refused_by_every_command(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home written before ledger format v2 stored its leaves (one per event) in the
    table ledger_events: every command refuses it naming the format and what to do,
    instead of reading it as v2 or failing deep inside."""
    edit(home, "DROP VIEW ledger_events", "CREATE TABLE ledger_events AS SELECT * FROM ledger_leaves",
         "DROP TABLE ledger_leaves")
    code, out = check(home)
    assert code != 0 and "format v1" in out and "new home" in out and "Traceback" not in out, out
    monkeypatch.setenv("ORIGINE_HASH_KEY", TEST_KEY_HEX)
    for args in (["ledger", "head"], ["lookup", "0612345678"]):
        result = CliRunner().invoke(main, [*args, "--home", str(home)])
        assert result.exit_code != 0 and "format v1" in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_check_head_and_checkpoint_work_on_a_read_only_copy(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17 item 10: a regulator's copy is read-only (chmod -R a-w; and root ignores
    modes, so every DuckDB open must be read-only too); nothing in it changes."""
    opens: list[bool] = []
    real = duckdb.connect

    def spy(database: str = ":memory:", read_only: bool = False, **kw):
        if str(database).endswith("warehouse.duckdb"):
            opens.append(read_only)
        return real(database, read_only=read_only, **kw)

    monkeypatch.setattr(duckdb, "connect", spy)
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    for p in [home, *home.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        code, out = check(home)
        assert code == 0 and out.startswith("ledger ok"), out
        for command in (["head"], ["head", "--json"], ["checkpoint"], ["consistency", "--from", "1"]):
            result = CliRunner().invoke(main, ["ledger", *command, "--home", str(home)])
            assert result.exit_code == 0, result.stdout + result.stderr
    finally:
        for p in [home, *home.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert opens and all(opens), opens
    after = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert after == before
    assert os.path.exists(home / "warehouse.duckdb")


def test_unusable_key_or_checkpoint_files_are_bad_input(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot a key\n")
    code, out = check(home, "--public-key", str(junk))
    assert code == 2 and "junk.pem" in out and "Traceback" not in out, out
    binary = tmp_path / "checkpoint.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    code, out = check(home, "--checkpoint", str(binary))
    assert code == 2 and "checkpoint.bin" in out, out
    garbage = tmp_path / "checkpoint.txt"
    garbage.write_text("not a checkpoint\n")
    code, out = check(home, "--checkpoint", str(garbage))
    assert code == 1 and "the given checkpoint does not verify" in out, out


@pytest.mark.parametrize("frontier", ['{"size": 1, "nodes": ["%s"]}' % ("00" * 32), '{"nodes": 3}'])
def test_the_frontier_the_next_append_extends_is_checked(home: Path, frontier: str) -> None:
    [(size,)] = rows(home, "SELECT max(tree_size) FROM tree_heads")
    edit(home, "UPDATE tree_heads SET frontier = $1 WHERE tree_size = $2", params=[frontier, size])
    code, out = check(home)
    assert code == 1 and f"head size {size}: the stored frontier" in out, out
