"""An independent verifier of origine's ledger, written in this file from the texts of
RFC 9162 (section 2.1: Merkle trees, inclusion and consistency proofs) and C2SP
(tlog-checkpoint, signed-note), with hashlib and cryptography's Ed25519 only: it
imports neither origine.merkle, origine.signing nor origine.ledger. It checks what
origine's CLI prints and what its bundles carry, and the vectors in tests/vectors/ledger.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VECTORS = Path(__file__).parent / "vectors" / "ledger"


# ---------------------------------------------------------------- RFC 9162, section 2.1


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(entry: bytes) -> bytes:
    """MTH({d(0)}) = HASH(0x00 || d(0))."""
    return h(b"\x00" + entry)


def mth_of_hashes(hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes: k = the largest power of two smaller than n,
    MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    n = len(hashes)
    if n == 0:
        return h(b"")
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return h(b"\x01" + mth_of_hashes(hashes[:k]) + mth_of_hashes(hashes[k:]))


def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, path: list[bytes], root: bytes) -> bool:
    """Section 2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = h(b"\x01" + p + r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       consistency_path: list[bytes]) -> bool:
    """Section 2.1.4.2, step by step (0 < first < second)."""
    if not 0 < first < second or not consistency_path:
        return False
    path = list(consistency_path)
    if first & (first - 1) == 0:  # an exact power of 2
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    if fn % 2 == 1:
        while fn % 2 == 1:
            fn >>= 1
            sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = h(b"\x01" + c + fr)
            sr = h(b"\x01" + c + sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = h(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# ---------------------------------------------------------------- C2SP signed-note, tlog-checkpoint


class Rejected(Exception):
    pass


def note_key_id(name: str, raw_public: bytes) -> bytes:
    """key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + raw_public).digest()[:4]


def open_signed_note(note: bytes, name: str, raw_public: bytes) -> str:
    """The text of a signed note once the signature by (name, key) verifies."""
    try:
        s = note.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in s) or not s.endswith("\n"):
        raise Rejected("control character, or no final newline")
    split = s.rfind("\n\n")  # the text is separated from the signatures by the last empty line
    if split < 0:
        raise Rejected("no blank line")
    text, sigs = s[: split + 1], s[split + 2 :].split("\n")[:-1]
    key = Ed25519PublicKey.from_public_bytes(raw_public)
    wanted_id = note_key_id(name, raw_public)
    verified = False
    for line in sigs:
        if not line.startswith("\u2014 "):
            raise Rejected("a signature line does not start with an em dash and a space")
        parts = line[2:].split(" ")
        if len(parts) != 2 or not parts[0] or "+" in parts[0]:
            raise Rejected("malformed signature line")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise Rejected("signature is not base64") from None
        if parts[0] != name or blob[:4] != wanted_id:
            continue  # an unknown key: ignored
        try:
            key.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise Rejected("a signature from the known key fails") from None
        verified = True
    if not verified:
        raise Rejected("no signature from the known key")
    return text


def read_checkpoint(note: bytes, raw_public: bytes, origin: str | None = None) -> tuple[str, int, bytes]:
    """(origin, tree size, root hash) of a checkpoint whose log key name is its origin."""
    first = note.split(b"\n", 1)[0].decode("utf-8", "replace")
    text = open_signed_note(note, first, raw_public)
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or any(not x for x in lines):
        raise Rejected("a checkpoint has three non-empty lines")
    if origin is not None and lines[0] != origin:
        raise Rejected("another log's checkpoint")
    if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise Rejected("tree size is not a decimal without leading zeroes")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Rejected("root hash is not 32 bytes")
    return lines[0], int(lines[1]), root


def raw_key(pem: bytes) -> bytes:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, Ed25519PublicKey)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# ---------------------------------------------------------------- the checks


def test_the_verifier_agrees_with_the_rfc_vectors() -> None:
    """This verifier checked against the published CT vectors first."""
    doc = json.loads((Path(__file__).parent / "vectors" / "ct_rfc6962.json").read_text())
    hashes = [leaf(bytes.fromhex(x)) for x in doc["leaves"]]
    for size, root in enumerate(doc["roots"]):
        assert mth_of_hashes(hashes[:size]).hex() == root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A home built through origine's CLI: a delivery, a checkpoint kept outside, a
    STOP list, an audit bundle (with inclusion proofs), a consistency proof."""
    from origine.cli import main
    from tests.conftest import TEST_KEY_HEX

    root = tmp_path_factory.mktemp("independent")
    home = root / "home"
    env = {"ORIGINE_HOME": str(home), "ORIGINE_HASH_KEY": TEST_KEY_HEX, "ORIGINE_LEDGER_ORIGIN": "broker.example/ledger",
           "DAGSTER_HOME": str(home / "dagster")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        for k in ("ORIGINE_HASH_KEY_FILE", "ORIGINE_HASH_KEY_LAYERS", "ORIGINE_SIGNING_KEY_FILE"):
            mp.delenv(k, raising=False)
        from origine import intake
        from origine.home import Home
        from origine.keys import HashKey

        h = Home(home).ensure()
        delivery = root / "delivery"
        delivery.mkdir()
        (delivery / "contacts.csv").write_text(
            "phone,source,consent_purposes,consent_at,consent_proof\n"
            "0612345678,jeu-ete,propagande électorale,2024-01-02,ref-1\n"
            "0612345679,jeu-ete,sondages,2024-01-02,ref-2\n"
            "0612345670,jeu-ete,propagande électorale,2024-01-02,\n")
        (delivery / "manifest.yaml").write_text(yaml.safe_dump({
            "delivery_id": "D-1", "vendor": "acme", "recipient": "party-a",
            "delivered_at": "2024-06-05T09:00:00+02:00", "country": "FR", "files": [{"path": "contacts.csv"}]}))
        intake.commit(intake.prepare(delivery, h, HashKey(bytes.fromhex(TEST_KEY_HEX))), h, label="d")
        runner = CliRunner()
        first = runner.invoke(main, ["ledger", "checkpoint", "--home", str(home)])
        assert first.exit_code == 0, first.stderr
        stop = root / "stop.csv"
        stop.write_text("phone;channel;at;origin\n0612345678;sms;2024-05-01;stop-reply\n")
        assert runner.invoke(main, ["suppress", str(stop), "--home", str(home)]).exit_code == 0
        campaign = root / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "campaign_id": "EU24-SMS-01", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
            "sender": "PARTI-A", "message": "Parti A vous invite à voter le 9 juin. STOP au 36789",
            "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"},
            "targets": {"deliveries": ["D-1"]}}, allow_unicode=True), encoding="utf-8")
        audited = runner.invoke(main, ["audit", str(campaign), "--out", str(root / "bundle"), "--home", str(home)])
        assert audited.exit_code == 0, audited.stderr
        latest = runner.invoke(main, ["ledger", "checkpoint", "--home", str(home)])
        old_size = int(first.stdout.split("\n")[1])
        proof = runner.invoke(main, ["ledger", "consistency", "--from", str(old_size), "--home", str(home), "--json"])
        assert proof.exit_code == 0, proof.stderr
    return {"home": home, "bundle": root / "bundle", "first": first.stdout.encode(), "latest": latest.stdout.encode(),
            "consistency": json.loads(proof.stdout), "key": raw_key((home / "keys" / "operator_ed25519.pub.pem").read_bytes())}


def test_every_stored_checkpoint_verifies_and_roots_the_stored_leaves(built: dict) -> None:
    """Each tree head is a checkpoint signed by the operator whose root is MTH of the
    first tree-size leaf hashes: recomputed here from the raw leaf hash column."""
    con = duckdb.connect(str(built["home"] / "warehouse.duckdb"), read_only=True)
    try:
        notes = [n for (n,) in con.execute("SELECT checkpoint FROM tree_heads ORDER BY tree_size").fetchall()]
        hashes = [bytes(x) for (x,) in con.execute("SELECT leaf_hash FROM ledger_events ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert len(notes) == 3
    for note in notes:
        origin, size, root = read_checkpoint(note.encode(), built["key"], "broker.example/ledger")
        assert mth_of_hashes(hashes[:size]) == root
    assert read_checkpoint(built["latest"], built["key"])[1] == len(hashes)


def test_the_bundles_inclusion_proofs_verify_against_its_signed_checkpoint(built: dict) -> None:
    """Each leaf the bundle cites, with its classic audit path from `origine prove`,
    verifies against the bundle's signed checkpoint (the bundle's own batch proof is
    checked independently in tests/test_batch_proof.py)."""
    summary = json.loads((built["bundle"] / "summary.json").read_text())
    origin, size, root = read_checkpoint(summary["ledger"]["checkpoint"].encode(), built["key"])
    lines = (built["bundle"] / "ledger" / "events.jsonl").read_bytes().split(b"\n")[:-1]
    indices = [int(x) for x in (built["bundle"] / "ledger" / "leaves.txt").read_text().split()]
    assert lines and len(lines) == len(indices)
    from origine.cli import main  # the CLI only: the checks below are this file's own

    proved = CliRunner().invoke(main, ["prove", *map(str, indices), "--home", str(built["home"])])
    assert proved.exit_code == 0, proved.output
    doc = json.loads(proved.stdout)
    assert (doc["tree_size"], base64.b64decode(doc["root_hash"])) == (size, root)
    for index, line, entry in zip(indices, lines, doc["proofs"]):
        path = [base64.b64decode(x) for x in entry["audit_path"]]
        assert entry["leaf_index"] == index and entry["leaf"].encode() == line
        assert verify_inclusion(index, size, leaf(line), path, root)
        assert not verify_inclusion(index, size, leaf(line + b" "), path, root)


def test_the_consistency_proof_from_a_kept_checkpoint_verifies(built: dict) -> None:
    _, old_size, old_root = read_checkpoint(built["first"], built["key"])
    doc = built["consistency"]
    _, new_size, new_root = read_checkpoint(doc["checkpoint"].encode(), built["key"])
    assert (doc["old_size"], doc["new_size"]) == (old_size, new_size) and old_size < new_size
    path = [base64.b64decode(x) for x in doc["proof"]]
    assert verify_consistency(old_size, new_size, old_root, new_root, path)
    assert not verify_consistency(old_size, new_size, old_root, new_root, path[:-1])
    assert not verify_consistency(old_size, new_size, h(b"other"), new_root, path)


def test_a_tampered_checkpoint_is_rejected(built: dict) -> None:
    note = built["latest"]
    read_checkpoint(note, built["key"])
    size_line = note.split(b"\n")[1]
    for bad in (
        note.replace(b"\n" + size_line + b"\n", b"\n" + str(int(size_line) + 1).encode() + b"\n", 1),
        note.replace(b"broker.example/ledger", b"broker.example/other"),
        note[: note.rfind(b"\n\n") + 1],  # no signature
        note[:-3] + b"AA\n",  # signature bytes changed
    ):
        with pytest.raises((Rejected, ValueError)):
            read_checkpoint(bad, built["key"])


# ---------------------------------------------------------------- the vectors


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def test_the_vectors_valid_and_tampered() -> None:
    key = raw_key(vector("key.pub.pem"))
    entries = vector("leaves.txt").split(b"\n")[:-1]
    hashes = [leaf(e) for e in entries]
    origin, size, root = read_checkpoint(vector("checkpoint.note"), key)
    assert size == len(entries) and root == mth_of_hashes(hashes)
    _, old_size, old_root = read_checkpoint(vector("checkpoint-4.note"), key, origin)
    assert old_root == mth_of_hashes(hashes[:old_size])
    for name in sorted(p.name for p in VECTORS.glob("checkpoint.bad-*.note")):
        with pytest.raises((Rejected, ValueError)):
            read_checkpoint(vector(name), key, origin)
    inclusion = json.loads(vector("inclusion.json"))
    for e in inclusion["proofs"]:
        assert verify_inclusion(e["index"], inclusion["tree_size"], hashes[e["index"]],
                                [base64.b64decode(x) for x in e["path"]], root)
    for e in json.loads(vector("inclusion.bad.json"))["proofs"]:
        assert not verify_inclusion(e["index"], inclusion["tree_size"], hashes[e["index"]],
                                    [base64.b64decode(x) for x in e["path"]], root)
    consistency = json.loads(vector("consistency.json"))
    assert verify_consistency(old_size, size, old_root, root, [base64.b64decode(x) for x in consistency["proof"]])
    bad = json.loads(vector("consistency.bad.json"))
    assert not verify_consistency(old_size, size, old_root, root, [base64.b64decode(x) for x in bad["proof"]])
