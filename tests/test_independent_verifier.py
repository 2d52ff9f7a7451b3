"""An independent verifier of origine's ledger, written in this file from the texts of
RFC 9162 (section 2.1: Merkle trees, inclusion and consistency proofs), C2SP
(tlog-checkpoint, signed-note) and docs/ledger-format.md (leaf format v2: the leaves'
members, their canonical bytes, evidence, list digests), with hashlib, json and
cryptography's Ed25519 only: it imports neither origine.merkle, origine.signing nor
origine.ledger. It checks what origine's CLI prints and what its bundles carry, and the
vectors in tests/vectors/ledger. Other tests (test_ledger_leaf_format.py) use its leaf
parser to prove the format page complete: every leaf origine writes must come back
byte for byte from the page's rules.
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


# ---------------------------------------------------------------- docs/ledger-format.md: leaves (v2)


class BadLeaf(Rejected):
    """A leaf that is not format v2: ``reason`` is ``canonical``, ``version``, ``shape``
    or ``evidence`` (tests/vectors/ledger/expected.json)."""

    def __init__(self, seq: int, reason: str, what: str) -> None:
        super().__init__(f"leaf {seq}: {reason}: {what}")
        self.seq, self.reason = seq, reason


_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def json_string(s: str, *, lower_hex: bool = False) -> str:
    """Section 1.5's table: the short escapes, other U+0000-U+001F as \\u00XX (uppercase
    hex; lowercase inside ``claims``, 1.6), everything else as is."""
    out = ['"']
    for ch in s:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ord(ch) < 0x20:
            out.append(("\\u%04x" if lower_hex else "\\u%04X") % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def claims_json(value: object) -> str:
    """Section 1.6: the claims object's form (nulls, empties and floats kept; Python's
    float repr; keys by code point; lowercase hex escapes)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("not finite")
        return repr(value)
    if isinstance(value, str):
        return json_string(value, lower_hex=True)
    if isinstance(value, list):
        return "[" + ",".join(claims_json(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ",".join(json_string(k, lower_hex=True) + ":" + claims_json(value[k]) for k in sorted(value)) + "}"


def leaf_json(value: object, *, top: bool = True) -> str:
    """Section 1.5: the canonical bytes (as text) of a parsed leaf; a delivery leaf's
    ``claims`` in 1.6's form."""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, list):
        return "[" + ",".join(leaf_json(v, top=False) for v in value) + "]"
    assert isinstance(value, dict), type(value)
    members = []
    for k in sorted(value):
        v = value[k]
        text = claims_json(v) if (top and k == "claims" and value.get("type") == "delivery") else leaf_json(v, top=False)
        members.append(json_string(k) + ":" + text)
    return "{" + ",".join(members) + "}"


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key given twice")
    return out


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_hex64(v: object) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _is_instant(v: object) -> bool:
    if not isinstance(v, str) or len(v) != 27:
        return False
    shape = "dddd-dd-ddTdd:dd:dd.ddddddZ"
    return all((c.isdigit() and c.isascii()) if p == "d" else c == p for c, p in zip(v, shape))


def _empty_or_null(value: object, where: str) -> str | None:
    """Where a null, or an empty object or list, or a false sits (none outside claims)."""
    if value is None:
        return where
    if isinstance(value, (dict, list)) and not value:
        return where
    if isinstance(value, dict):
        for k, v in value.items():
            if not (where == "" and k == "claims"):
                found = _empty_or_null(v, f"{where}.{k}")
                if found is not None:
                    return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _empty_or_null(v, f"{where}[{i}]")
            if found is not None:
                return found
    return None


_STR, _INT, _SECONDS, _HEX = "string", "int", "seconds", "hex64"
ROW_MEMBERS = {"at": _SECONDS, "cc": _INT, "consent": "consent", "ev": "ev", "from": _STR, "line": _STR,
               "opted_out": _SECONDS, "source": _STR, "subject": _HEX, "type": _STR, "v": _INT}
ROW_REQUIRED = {"ev", "subject", "type", "v"}
CONSENT_MEMBERS = {"at": _SECONDS, "bundled": "true", "proof": _STR, "purposes": "strings"}
DELIVERY_MEMBERS = {"at": _SECONDS, "claims": "object", "delivery": _STR, "files": "files", "key_id": _STR,
                    "recipient": _STR, "type": _STR, "v": _INT, "vendor": _STR}
DELIVERY_REQUIRED = {"at", "delivery", "files", "key_id", "type", "v", "vendor"}
EVENT_MEMBERS = {"at": "instant", "bundled": "bool", "campaign": _STR, "channel": _STR, "evidence": "evidence",
                 "from": _STR, "key_id": _STR, "origin": _STR, "proof": _STR, "purpose": _STR, "source": _STR,
                 "subject": _HEX, "to": _STR, "type": _STR, "v": _INT}
EVIDENCE_MEMBERS = {"delivery_id": _STR, "file": _STR, "file_sha256": _HEX, "kind": _STR, "row": _INT, "vendor": _STR}
# the members docs/ledger-format.md 1.3 says each event type sets
EVENT_REQUIRED = {
    "opted_out": {"subject", "key_id", "at", "channel", "origin", "evidence"},
    "consent_withdrawn": {"subject", "key_id", "at", "purpose", "origin", "evidence"},
    "targeted": {"subject", "key_id", "at", "channel", "campaign", "purpose", "evidence"},
    "erased": {"at", "origin", "source", "proof", "evidence"},
    "key_map": {"at", "origin", "proof", "evidence"},
}


def _shape_ok(kind: str, v: object) -> bool:
    if kind == _STR:
        return isinstance(v, str)
    if kind in (_INT, _SECONDS):
        return _is_int(v)
    if kind == _HEX:
        return _is_hex64(v)
    if kind == "instant":
        return _is_instant(v)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "true":
        return v is True
    if kind == "object":
        return isinstance(v, dict)
    if kind == "strings":
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    if kind == "ev":
        return isinstance(v, list) and len(v) == 3 and all(_is_int(x) and x >= 0 for x in v) and v[2] >= 1
    if kind == "files":
        return isinstance(v, list) and all(
            isinstance(f, dict) and set(f) == {"name", "rows", "sha256"} and isinstance(f["name"], str)
            and _is_int(f["rows"]) and f["rows"] >= 0 and _is_hex64(f["sha256"]) for f in v)
    if kind == "consent":
        return isinstance(v, dict) and _members_ok(v, CONSENT_MEMBERS, set())
    if kind == "evidence":
        return isinstance(v, dict) and _members_ok(v, EVIDENCE_MEMBERS, set())
    raise AssertionError(kind)


def _members_ok(obj: dict, members: dict[str, str], required: set[str]) -> bool:
    return required <= set(obj) and set(obj) <= set(members) and all(_shape_ok(members[k], v) for k, v in obj.items())


def parse_leaf(seq: int, data: bytes) -> dict:
    """A leaf's value once its bytes are format v2's canonical bytes and its members
    those of its type; :class:`BadLeaf` otherwise."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadLeaf(seq, "canonical", f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadLeaf(seq, "canonical", "not an object")
    found = _empty_or_null(value, "")
    if found is not None:
        raise BadLeaf(seq, "canonical", f"{found or 'the leaf'} is null or empty")
    try:
        again = leaf_json(value)
    except (AssertionError, ValueError) as exc:
        raise BadLeaf(seq, "canonical", f"not serializable ({exc})") from None
    if again != text:
        raise BadLeaf(seq, "canonical", "re-serialized, its bytes differ")
    if value.get("v") != 2 or not _is_int(value.get("v")):
        raise BadLeaf(seq, "version", f"v is {value.get('v')!r}, not 2")
    kind = value.get("type")
    if kind == "row":
        ok = _members_ok(value, ROW_MEMBERS, ROW_REQUIRED)
    elif kind == "delivery":
        ok = _members_ok(value, DELIVERY_MEMBERS, DELIVERY_REQUIRED)
    elif kind in EVENT_REQUIRED:
        ok = _members_ok(value, EVENT_MEMBERS, EVENT_REQUIRED[kind] | {"type", "v"})  # type: ignore[index]
    else:
        ok = False
    if not ok:
        raise BadLeaf(seq, "shape", f"members of a {kind!r} leaf")
    # false is never written in row and delivery leaves (section 1.5): their one boolean
    # is consent.bundled, and the shapes above admit only true there
    return value


def check_leaves(leaves: list[bytes], erased: dict[int, bytes] | None = None) -> list[dict | None]:
    """Every leaf parsed and checked (docs/ledger-format.md section 1), each row leaf's
    evidence naming an earlier delivery leaf and a file of it. ``erased``: the seqs
    whose bytes are gone (section 5), with their leaf hashes; they parse to None."""
    erased = erased or {}
    out: list[dict | None] = []
    for seq, data in enumerate(leaves):
        if seq in erased:
            out.append(None)
            continue
        value = parse_leaf(seq, data)
        if value["type"] == "row":
            d, f, _ = value["ev"]
            named = out[d] if d < seq else None
            if named is None or named["type"] != "delivery" or f >= len(named["files"]):
                raise BadLeaf(seq, "evidence", f"ev {value['ev']} names no earlier delivery leaf and file of it")
        out.append(value)
    return out


def list_digest(lines: list[str]) -> str:
    """Section 5: chunks of 65,536 lines, each hashed joined by \\n; the chunk digests
    (lowercase hex) hashed joined by \\n."""
    chunks = [lines[i:i + 65536] for i in range(0, len(lines), 65536)]
    digests = [hashlib.sha256("\n".join(c).encode()).hexdigest() for c in chunks]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()



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
    from pipelines.cli import main
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
        from origine.ingest import intake
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
        hashes = [bytes(x) for (x,) in con.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert len(notes) == 3
    for note in notes:
        origin, size, root = read_checkpoint(note.encode(), built["key"], "broker.example/ledger")
        assert mth_of_hashes(hashes[:size]) == root
    assert read_checkpoint(built["latest"], built["key"])[1] == len(hashes)


def test_every_leaf_origine_wrote_is_format_v2_and_hashes_to_the_signed_root(built: dict) -> None:
    """All the home's leaves, as `origine prove` prints their bytes: each parses as
    docs/ledger-format.md says, comes back byte for byte from its rules, and the row
    leaves' evidence names their delivery leaf; their hashes are the stored ones and
    MTH of them is the latest signed root."""
    from pipelines.cli import main  # the CLI only: the checks below are this file's own

    _, size, root = read_checkpoint(built["latest"], built["key"])
    proved = CliRunner().invoke(main, ["prove", *map(str, range(size)), "--home", str(built["home"])])
    assert proved.exit_code == 0, proved.output
    leaves = [p["leaf"].encode() for p in json.loads(proved.stdout)["proofs"]]
    parsed = check_leaves(leaves)
    kinds = [p["type"] for p in parsed if p]
    assert kinds.count("delivery") == 1 and kinds.count("row") == 3
    assert {"opted_out", "targeted"} <= set(kinds)
    delivery = parsed[0]
    assert delivery and delivery["type"] == "delivery" and delivery["files"][0]["rows"] == 3
    assert [p["ev"] for p in parsed if p and p["type"] == "row"] == [[0, 0, 1], [0, 0, 2], [0, 0, 3]]
    assert mth_of_hashes([leaf(x) for x in leaves]) == root
    con = duckdb.connect(str(built["home"] / "warehouse.duckdb"), read_only=True)
    try:
        stored = [bytes(x) for (x,) in con.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert stored == [leaf(x) for x in leaves]


def test_the_bundles_inclusion_proofs_verify_against_its_signed_checkpoint(built: dict) -> None:
    """Each leaf the bundle cites, with its classic audit path from `origine prove`,
    verifies against the bundle's signed checkpoint (the bundle's own batch proof is
    checked independently in tests/test_batch_proof.py)."""
    summary = json.loads((built["bundle"] / "summary.json").read_text())
    origin, size, root = read_checkpoint(summary["ledger"]["checkpoint"].encode(), built["key"])
    lines = (built["bundle"] / "ledger" / "events.jsonl").read_bytes().split(b"\n")[:-1]
    indices = [int(x) for x in (built["bundle"] / "ledger" / "leaves.txt").read_text().split()]
    assert lines and len(lines) == len(indices)
    from pipelines.cli import main  # the CLI only: the checks below are this file's own

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


def test_the_vector_leaves_valid_and_tampered() -> None:
    """The valid leaves pass the format check of docs/ledger-format.md; each tampered
    ledger beside them is rejected for the reason expected.json gives, though its own
    checkpoint (if any) is validly signed over exactly its bytes."""
    key = raw_key(vector("key.pub.pem"))
    valid = vector("leaves.txt").split(b"\n")[:-1]
    parsed = check_leaves(valid)
    assert [p["type"] for p in parsed if p] == [
        "delivery", "row", "row", "row", "row", "opted_out", "consent_withdrawn", "targeted", "erased", "key_map",
        "delivery", "row"]
    _, _, root = read_checkpoint(vector("checkpoint.note"), key)
    expected = json.loads(vector("expected.json"))
    assert expected and set(expected) == {p.name for p in VECTORS.glob("leaves.bad-*.txt")}
    for name, reason in expected.items():
        leaves = vector(name).split(b"\n")[:-1]
        note = VECTORS / name.replace(".txt", ".note")
        if reason == "root":
            check_leaves(leaves)  # well-formed, but not what was signed
            assert mth_of_hashes([leaf(x) for x in leaves]) != root
            continue
        _, size, signed = read_checkpoint(note.read_bytes(), key)
        assert (size, signed) == (len(leaves), mth_of_hashes([leaf(x) for x in leaves])), name
        with pytest.raises(BadLeaf) as caught:
            check_leaves(leaves)
        assert caught.value.reason == reason, (name, str(caught.value))


def test_the_vector_erasure_and_key_map_lists() -> None:
    """Leaf 8 (erased) and leaf 9 (key_map) state the count and list digest of
    erasures.json's seqs and key-map.txt's lines (docs/ledger-format.md 5, 6); the bad
    lists do not match."""
    parsed = check_leaves(vector("leaves.txt").split(b"\n")[:-1])

    def states(seq: int, lines: list[str]) -> bool:
        p = parsed[seq]
        assert p is not None
        return (p["evidence"]["row"], p["proof"]) == (len(lines), list_digest(lines))

    for name, ok in (("erasures.json", True), ("erasures.bad.json", False)):
        for seq, erased in json.loads(vector(name)).items():
            assert parsed[int(seq)]["type"] == "erased"  # type: ignore[index]
            assert states(int(seq), [str(s) for s in sorted(erased)]) is ok, name
    for name, ok in (("key-map.txt", True), ("key-map.bad.txt", False)):
        lines = vector(name).decode().split("\n")[:-1]
        assert states(9, lines) is ok, name
    assert list_digest([]) == hashlib.sha256(b"").hexdigest()
    assert list_digest(["2"]) == hashlib.sha256(hashlib.sha256(b"2").hexdigest().encode()).hexdigest()
