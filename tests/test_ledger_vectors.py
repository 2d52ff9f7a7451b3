"""tests/vectors/ledger: a small ledger in format v2 (docs/ledger-format.md) with its
checkpoints, signed notes and RFC 9162 proofs as origine writes them, and tampered
variants beside them. Checked here with origine's own implementation (and in
test_independent_verifier.py with one written from the specifications); origine must
still write the valid ones byte for byte: the leaves come out of origine's own leaf
SQL (origine.ledger.events) from fixed inputs, and Ed25519 signatures are
deterministic.

Regenerate after a deliberate format change: ``python -m tests.test_ledger_vectors``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from origine import merkle
from origine.canonical import ROW_LEAF_COLUMNS
from origine.ledger import Checkpoint, delivery_leaves_queries, events_sql, flat_columns, verify_checkpoint
from origine.ledger.digests import list_digest
from origine.signing import Signer, load_public_key

VECTORS = Path(__file__).parent / "vectors" / "ledger"
ORIGIN = "origine.test/vectors"
# A test key, public on purpose: never an operator's.
SEED = bytes(range(32))
KEY_ID = "k-0123456789abcdef"
NEW_KEY_ID = "k-fedcba9876543210"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def _subject(n: int) -> str:
    return hashlib.sha256(f"subject {n}".encode()).hexdigest()


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


# The rows of the first delivery, as a segment's rows.parquet holds them: what each row
# leaf is built from. Strings with quotes, backslashes, '/', accents, control
# characters and U+2028 on purpose (the escaping rules of docs/ledger-format.md).
ROWS = [
    dict(subject_key=_subject(1), collected_at=_utc("2023-07-14T10:11:12+00:00"), source="jeu-été/2023",
         consent_purposes=["political.electoral", "research.polling"], consent_at=_utc("2023-07-14T10:11:12+00:00"),
         bundled_consent=False, consent_proof='formulaire "B" \\ v2', acquired_from='broker "x"',
         opted_out_at=_utc("2024-02-01T00:00:00+00:00"), country_code=33, line_type="mobile", file="contacts.csv", row=1),
    dict(subject_key=_subject(2), collected_at=None, source=None, consent_purposes=[], consent_at=None,
         bundled_consent=False, consent_proof=None, acquired_from=None, opted_out_at=None, country_code=33,
         line_type="fixed_line", file="contacts.csv", row=2),
    dict(subject_key=_subject(3), collected_at=_utc("1969-12-31T23:59:59+00:00"), source="tab\there\x0b\x1f\x7f\u2028!",
         consent_purposes=[], consent_at=_utc("2023-01-02T00:00:00+00:00"), bundled_consent=True, consent_proof=None,
         acquired_from=None, opted_out_at=None, country_code=212, line_type="mobile", file="contacts.csv", row=4),
    dict(subject_key=_subject(4), collected_at=_utc("2023-03-04T05:06:07+00:00"), source="a\\b",
         consent_purposes=["commercial.prospecting"], consent_at=_utc("2023-03-04T05:06:07+00:00"),
         bundled_consent=False, consent_proof="ref-4", acquired_from=None, opted_out_at=None, country_code=221,
         line_type="mobile", file="more/extra.csv", row=1),
]
ROWS_SCHEMA = pa.schema([
    ("subject_key", pa.string()), ("collected_at", pa.timestamp("us", tz="UTC")), ("source", pa.string()),
    ("consent_purposes", pa.list_(pa.string())), ("consent_at", pa.timestamp("us", tz="UTC")),
    ("bundled_consent", pa.bool_()), ("consent_proof", pa.string()), ("acquired_from", pa.string()),
    ("opted_out_at", pa.timestamp("us", tz="UTC")), ("country_code", pa.int32()), ("line_type", pa.string()),
    ("file", pa.string()), ("row", pa.int64()),
])
CLAIMS: dict[str, Any] = {
    "row_count": 4, "consent_rate": 0.9, "consent_purposes": ["political.electoral"],
    # other claims are kept verbatim: nulls, empty lists and objects, floats, big integers, control characters
    "note": 'vt\x0b "q" \\ é\u2028', "nested": {"nothing": None, "empty": [], "obj": {}, "small": 1e-07,
                                             "big": 10 ** 20, "half": 0.5, "flag": False},
}
KEY_MAP_LINES = [f"{KEY_ID} {_subject(n)} {hashlib.sha256(f'rotated {n}'.encode()).hexdigest()}" for n in (1, 4)]
ERASED = {8: [2]}  # erasure leaf seq -> the seqs it erased


def _delivery(con: duckdb.DuckDBPyConnection, tmp: Path, rows: list[dict[str, Any]], *, seq: int, **meta: Any) -> list[str]:
    parquet = tmp / f"rows-{seq}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ROWS_SCHEMA), parquet)
    out = []
    for sql, params in delivery_leaves_queries(parquet, delivery_seq=seq, row_columns=ROW_LEAF_COLUMNS, **meta):
        out += [p for (p,) in con.execute(f"SELECT payload FROM ({sql})", list(params)).fetchall()]
    return out


def _event(con: duckdb.DuckDBPyConnection, **values: Any) -> str:
    """One event leaf's bytes, from origine's SQL, the values given as parameters."""
    names = list(values)
    cols = flat_columns(**{n: f"${i}" for i, n in enumerate(names, 1)})
    (payload,) = con.execute(f"SELECT payload FROM ({events_sql(f'SELECT {cols}, 0 AS ord')})",
                             [values[n] for n in names]).fetchone()  # type: ignore[misc]
    return payload


def build_leaves(tmp: Path) -> list[str]:
    """The vector ledger's leaves, as origine writes them (one string per leaf)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    leaves = _delivery(
        con, tmp, ROWS, seq=0, vendor="acme", delivery_id="D-2024-06", recipient='party "A"/é',
        delivered_at=_utc("2024-06-05T09:00:00.750+02:00"), key_id=KEY_ID,
        files=[{"name": "contacts.csv", "rows": 4, "sha256": _sha("contacts.csv")},
               {"name": "more/extra.csv", "rows": 1, "sha256": _sha("more/extra.csv")}],
        claims=CLAIMS)
    at = _utc("2024-05-01T08:30:00.123456+00:00")
    leaves += [
        _event(con, type="opted_out", subject_key=_subject(1), key_id=KEY_ID, at=at, channel="sms",
               origin="stop-reply", evidence_kind="suppression", file="stop.csv", file_sha256=_sha("stop.csv"), row=1),
        _event(con, type="consent_withdrawn", subject_key=_subject(4), key_id=KEY_ID, at=at,
               purpose="commercial.prospecting", origin="dpo-request", evidence_kind="suppression", file="stop.csv",
               file_sha256=_sha("stop.csv"), row=2),
        _event(con, type="targeted", subject_key=_subject(1), key_id=KEY_ID, at=_utc("2024-06-07T18:00:00+02:00"),
               channel="sms", campaign_id="EU24-SMS-01", purpose="political.electoral", evidence_kind="campaign",
               file="campaign.yaml", file_sha256=_sha("campaign.yaml")),
        _event(con, type="erased", at=_utc("2030-01-01T00:00:00+00:00"), origin="request", evidence_kind="request",
               source="request: courrier du 2029-12-30", proof=list_digest(str(s) for s in ERASED[8]), row=len(ERASED[8])),
        _event(con, type="key_map", at=_utc("2030-02-01T00:00:00+00:00"), origin="rotation", party_from=KEY_ID,
               party_to=NEW_KEY_ID, evidence_kind="rotation", proof=list_digest(KEY_MAP_LINES), row=len(KEY_MAP_LINES)),
    ]
    assert len(leaves) == 10
    leaves += _delivery(
        con, tmp, [dict(ROWS[1], subject_key=_subject(5), file="b.csv", row=1)], seq=10, vendor="acme",
        delivery_id="D-2030-03", recipient=None, delivered_at=_utc("2030-03-01T00:00:00+00:00"), key_id=NEW_KEY_ID,
        files=[{"name": "b.csv", "rows": 1, "sha256": _sha("b.csv")}], claims=None)
    con.close()
    return leaves


def _edit(leaves: list[str], seq: int, old: str, new: str) -> list[str]:
    assert leaves[seq].count(old) == 1, (seq, old)
    return [leaf.replace(old, new) if i == seq else leaf for i, leaf in enumerate(leaves)]


def bad_leaves(leaves: list[str]) -> dict[str, tuple[list[str], str]]:
    """Tampered ledgers: name -> (leaves, the reason a verifier must give)."""
    return {
        # a byte of a leaf changed: the signed root no longer matches
        "edited": (_edit(leaves, 1, "jeu-été/2023", "jeu-ete/2023"), "root"),
        # evidence that names no earlier delivery leaf, or no file of it
        "ev-not-delivery": (_edit(leaves, 3, '"ev":[0,', '"ev":[1,'), "evidence"),
        "ev-later": (_edit(leaves, 3, '"ev":[0,', '"ev":[10,'), "evidence"),
        "ev-file": (_edit(leaves, 4, '"ev":[0,1,', '"ev":[0,2,'), "evidence"),
        # bytes that are JSON but not the canonical form
        "null": (_edit(leaves, 2, '"line":"fixed_line"', '"line":"fixed_line","source":null'), "canonical"),
        "unsorted": (_edit(leaves, 2, '{"cc":33,"ev":[0,0,2],', '{"ev":[0,0,2],"cc":33,'), "canonical"),
        "space": (_edit(leaves, 2, '"cc":33', '"cc": 33'), "canonical"),
        "escape": (_edit(leaves, 3, "\\u000B", "\\u000b"), "canonical"),
        "solidus": (_edit(leaves, 1, "jeu-été/2023", "jeu-été\\/2023"), "canonical"),
        "empty": (_edit(leaves, 2, '"ev":', '"consent":{},"ev":'), "canonical"),
        "claims-float": (_edit(leaves, 0, '"consent_rate":0.9', '"consent_rate":0.90'), "canonical"),
        # a leaf of format v1 (every field, nulls included)
        "v1": (_edit(leaves, 5, '"v":2', '"v":1'), "version"),
        # a row leaf's member of the wrong JSON type
        "type": (_edit(leaves, 2, '"cc":33', '"cc":"33"'), "shape"),
    }


def build() -> dict[str, bytes]:
    """Every vector file's bytes, as origine writes them."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        leaves = build_leaves(Path(tmp))
    signer = Signer(Ed25519PrivateKey.from_private_bytes(SEED))
    entries = [e.encode() for e in leaves]
    store = merkle.MemoryNodeStore()
    merkle.Frontier().extend(merkle.leaf_hashes(entries), store)
    size = len(entries)

    def note(n: int) -> str:
        return signer.sign_note(Checkpoint(ORIGIN, n, merkle.root_at(n, store)).text(), ORIGIN)

    def signed_over(lines: list[str]) -> str:
        hashes = merkle.leaf_hashes([x.encode() for x in lines])
        return signer.sign_note(Checkpoint(ORIGIN, len(lines), merkle.root_from_leaf_hashes(hashes)).text(), ORIGIN)

    def lines(items: list[str]) -> bytes:
        return "".join(x + "\n" for x in items).encode()

    valid = note(size)
    text, sig_line = valid.split("\n\n")
    sig = sig_line.rstrip("\n").split(" ")[2]
    raw = base64.b64decode(sig)
    other = Signer(Ed25519PrivateKey.from_private_bytes(bytes(reversed(SEED))))
    b64 = lambda hs: [base64.b64encode(x).decode() for x in hs]  # noqa: E731
    inclusion = [{"index": i, "path": b64(merkle.inclusion_proof(i, size, store))} for i in range(size)]
    bad_inclusion = [{**e, "path": b64([bytes(32)] + [base64.b64decode(p) for p in e["path"][1:]])}
                     for e in inclusion if e["path"]]
    proof = merkle.consistency_proof(4, size, store)
    files = {
        "key.pub.pem": signer.public_pem(),
        "leaves.txt": lines(leaves),
        "key-map.txt": lines(KEY_MAP_LINES),
        "key-map.bad.txt": lines([KEY_MAP_LINES[0], KEY_MAP_LINES[1].replace(KEY_ID, NEW_KEY_ID, 1)]),
        "erasures.json": (json.dumps({str(k): v for k, v in ERASED.items()}) + "\n").encode(),
        "erasures.bad.json": (json.dumps({str(k): v + [3] for k, v in ERASED.items()}) + "\n").encode(),
        "checkpoint.note": valid.encode(),
        "checkpoint-4.note": note(4).encode(),
        # what the signature covers changed, the signature kept
        "checkpoint.bad-size.note": valid.replace(f"\n{size}\n", f"\n{size - 1}\n", 1).encode(),
        "checkpoint.bad-root.note": valid.replace(text.split("\n")[2], base64.b64encode(bytes(32)).decode()).encode(),
        "checkpoint.bad-origin.note": valid.replace(ORIGIN, "origine.test/other").encode(),
        # the signature itself
        "checkpoint.bad-signature.note": valid.replace(
            sig, base64.b64encode(raw[:4] + bytes([raw[4] ^ 1]) + raw[5:]).decode()).encode(),
        "checkpoint.bad-key.note": other.sign_note(text + "\n", ORIGIN).encode(),
        "checkpoint.bad-unsigned.note": (text + "\n").encode(),
        "checkpoint.bad-control.note": valid.replace(ORIGIN, ORIGIN + "\t", 1).encode(),
        "inclusion.json": (json.dumps({"tree_size": size, "proofs": inclusion}, indent=1) + "\n").encode(),
        "inclusion.bad.json": (json.dumps({"tree_size": size, "proofs": bad_inclusion}, indent=1) + "\n").encode(),
        "consistency.json": (json.dumps({"old_size": 4, "new_size": size, "proof": b64(proof)}, indent=1) + "\n").encode(),
        "consistency.bad.json": (json.dumps({"old_size": 4, "new_size": size, "proof": b64([bytes(32)] + proof[1:])},
                                            indent=1) + "\n").encode(),
    }
    expected = {}
    for name, (bad, reason) in bad_leaves(leaves).items():
        files[f"leaves.bad-{name}.txt"] = lines(bad)
        # signed by the operator's key over exactly these bytes, so only the format
        # check can catch them; but "edited", checked against checkpoint.note
        if reason != "root":
            files[f"leaves.bad-{name}.note"] = signed_over(bad).encode()
        expected[f"leaves.bad-{name}.txt"] = reason
    files["expected.json"] = (json.dumps(expected, indent=1, sort_keys=True) + "\n").encode()
    return files


def test_origine_still_writes_the_vectors_byte_for_byte() -> None:
    built = build()
    for name, data in built.items():
        assert (VECTORS / name).read_bytes() == data, name
    assert {p.name for p in VECTORS.iterdir()} == set(built) | {"README.md"}


def test_origines_implementation_accepts_the_valid_vectors_and_rejects_the_tampered() -> None:
    public = load_public_key(VECTORS / "key.pub.pem")
    entries = (VECTORS / "leaves.txt").read_bytes().split(b"\n")[:-1]
    hashes = merkle.leaf_hashes(entries)
    cp = verify_checkpoint((VECTORS / "checkpoint.note").read_text(), public)
    old = verify_checkpoint((VECTORS / "checkpoint-4.note").read_text(), public)
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, len(entries), merkle.root_from_leaf_hashes(hashes))
    for path in sorted(VECTORS.glob("checkpoint.bad-*.note")):
        with pytest.raises(ValueError):
            verify_checkpoint(path.read_text(), public)
    inclusion = json.loads((VECTORS / "inclusion.json").read_text())
    for e in inclusion["proofs"]:
        assert merkle.verify_inclusion(hashes[e["index"]], e["index"], cp.size,
                                       [base64.b64decode(p) for p in e["path"]], cp.root)
    for e in json.loads((VECTORS / "inclusion.bad.json").read_text())["proofs"]:
        assert not merkle.verify_inclusion(hashes[e["index"]], e["index"], cp.size,
                                           [base64.b64decode(p) for p in e["path"]], cp.root)
    for name, ok in (("consistency.json", True), ("consistency.bad.json", False)):
        proof = [base64.b64decode(p) for p in json.loads((VECTORS / name).read_text())["proof"]]
        assert merkle.verify_consistency(old.size, cp.size, old.root, cp.root, proof) is ok, name
    edited = (VECTORS / "leaves.bad-edited.txt").read_bytes().split(b"\n")[:-1]
    assert merkle.root_from_leaf_hashes(merkle.leaf_hashes(edited)) != cp.root


def test_the_erasure_and_key_map_leaves_commit_to_their_lists_with_origines_digest() -> None:
    leaves = [json.loads(x) for x in (VECTORS / "leaves.txt").read_bytes().split(b"\n")[:-1]]
    key_map = (VECTORS / "key-map.txt").read_text().split("\n")[:-1]
    (erasure_seq, erased), = json.loads((VECTORS / "erasures.json").read_text()).items()
    assert leaves[int(erasure_seq)]["proof"] == list_digest(str(s) for s in erased)
    assert leaves[9]["type"] == "key_map" and leaves[9]["proof"] == list_digest(key_map)
    assert list_digest((VECTORS / "key-map.bad.txt").read_text().split("\n")[:-1]) != leaves[9]["proof"]


def test_the_readme_lists_every_vector() -> None:
    readme = (VECTORS / "README.md").read_text()
    for path in VECTORS.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name


if __name__ == "__main__":  # regenerate
    VECTORS.mkdir(parents=True, exist_ok=True)
    for old in VECTORS.iterdir():
        if old.name != "README.md":
            old.unlink()
    for name, data in build().items():
        (VECTORS / name).write_bytes(data)
