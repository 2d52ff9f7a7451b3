"""tests/vectors/ledger: checkpoints, notes and proofs as origine writes them, with
tampered variants beside them. Checked here with origine's own implementation (and in
test_independent_verifier.py with one written from the specifications); origine must
still write the valid ones byte for byte (Ed25519 signatures are deterministic).

Regenerate after a deliberate format change: ``python -m tests.test_ledger_vectors``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from origine import merkle
from origine.ledger import Checkpoint, verify_checkpoint
from origine.signing import Signer, load_public_key

VECTORS = Path(__file__).parent / "vectors" / "ledger"
ORIGIN = "origine.test/vectors"
# A test key, public on purpose: never an operator's.
SEED = bytes(range(32))
LEAVES = [
    '{"at":"2024-01-02T00:00:00.000000Z","subject":"%064x","type":"collected","v":1}' % i for i in range(5)
] + ['{"at":"2024-05-01T00:00:00.000000Z","channel":"sms","subject":"%064x","type":"opted_out","v":1}' % 0,
     '{"at":"2030-01-01T00:00:00.000000Z","proof":"%s","row":1,"type":"erased","v":1}' % ("0" * 64)]


def build() -> dict[str, bytes]:
    """Every vector file's bytes, as origine writes them."""
    signer = Signer(Ed25519PrivateKey.from_private_bytes(SEED))
    entries = [e.encode() for e in LEAVES]
    store = merkle.MemoryNodeStore()
    merkle.Frontier().extend(merkle.leaf_hashes(entries), store)
    size = len(entries)

    def note(n: int) -> str:
        return signer.sign_note(Checkpoint(ORIGIN, n, merkle.root_at(n, store)).text(), ORIGIN)

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
        "leaves.txt": b"".join(e + b"\n" for e in entries),
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
    return files


def test_origine_still_writes_the_vectors_byte_for_byte() -> None:
    for name, data in build().items():
        assert (VECTORS / name).read_bytes() == data, name


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


def test_the_readme_lists_every_vector() -> None:
    readme = (VECTORS / "README.md").read_text()
    for path in VECTORS.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name


if __name__ == "__main__":  # regenerate
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name, data in build().items():
        (VECTORS / name).write_bytes(data)
