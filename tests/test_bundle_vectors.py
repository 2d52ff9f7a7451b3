"""tests/vectors/bundle: a regulator's bundle exactly as origine writes it (ledger format
v2), and tampered variants beside it, each with what its verification must say
(``expected.json``). Checked here three ways: ``origine verify`` accepts the valid ones
and fails each tampered one (exit 1) naming what; the batch proof is recomputed by the
verifier of tests/test_batch_proof.py (hashlib only); and every target's reasons are
re-derived by a verifier written here from docs/bundle-format.md §4-5 alone (JSON and
hashlib, nothing of origine).

Regenerate after a deliberate format change (bundle, ledger leaves or report):
``python -m tests.test_bundle_vectors``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

VECTORS = Path(__file__).parent / "vectors" / "bundle"
# A test key, public on purpose (bytes 0x20..0x3f): never an operator's.
SEED = bytes(range(32, 64))
OTHER_SEED = bytes(range(64, 96))

ROWS = [  # phone, source, consent_purposes, consent_at, consent_proof, acquired_from, opted_out_at
    ("0612345678", "jeu", "political.electoral", "2024-01-02", "proof-1", "", ""),
    ("0612345679", "jeu", "marketing.commercial", "2024-01-02", "proof-2", "", ""),
    ("0612345670", "jeu", "political.electoral", "2024-01-02", "", "", ""),
    ("0145454545", "jeu", "political.electoral", "2024-01-02", "proof-4", "", ""),
    ("0612345671", "jeu", "political.electoral", "2024-01-02", "proof-5", "broker-x", ""),
    ("0612345672", "jeu", "political.electoral", "2024-01-02", "proof-6", "", "2024-03-01"),
    ("0612345673", "quiz", "political.electoral", "2024-07-01", "proof-7", "", ""),
    ("0612345674", "quiz", "political.electoral|transfer.third_party", "2024-01-02", "proof-8", "broker-x", ""),
    ("0612345675", "quiz", "political.electoral", "2019-01-02", "proof-9", "", ""),
    ("0612345676", "quiz", "political.electoral", "2024-01-02", "proof-10", "", ""),
]
STOPS = "phone,at,channel,purpose\n0612345676,2024-04-01,sms,\n0612345678,2024-03-01,sms,political.electoral\n"
CAMPAIGN = {
    "campaign_id": "VEC24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
    "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
    "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"}, "targets": {"deliveries": ["VEC-1"]},
}


# ---------------------------------------------------------------- generating


def _build_bundle(work: Path) -> Path:
    """A real home (the public test keys), one delivery, one suppression list, and the
    campaign's bundle, through origine's own intake, suppressions and audit."""
    import yaml
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from origine.ingest import intake
    from origine.export import audit_bundle
    from origine.home import Home
    from origine.keys import HashKey
    from origine.signing import Signer
    from origine.suppressions import ingest_suppressions
    from tests.conftest import TEST_KEY_HEX

    home = Home(work / "home").ensure()
    os.environ.update(ORIGINE_HOME=str(home.root), DAGSTER_HOME=str(home.dagster), ORIGINE_HASH_KEY=TEST_KEY_HEX)
    for name in ("ORIGINE_HASH_KEY_FILE", "ORIGINE_HASH_KEY_LAYERS", "ORIGINE_SIGNING_KEY_FILE"):
        os.environ.pop(name, None)
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    home.keys.mkdir(parents=True, exist_ok=True)
    (home.keys / "operator_ed25519.pem").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (home.keys / "operator_ed25519.pub.pem").write_bytes(Signer(private).public_pem())
    key = HashKey(bytes.fromhex(TEST_KEY_HEX))
    delivery = work / "delivery"
    delivery.mkdir()
    header = "phone,source,consent_purposes,consent_at,consent_proof,acquired_from,opted_out_at\n"
    (delivery / "c.csv").write_text(header + "".join(",".join(r) + "\n" for r in ROWS))
    (delivery / "manifest.yaml").write_text(yaml.safe_dump({
        "delivery_id": "VEC-1", "vendor": "acme", "recipient": "party-a", "delivered_at": "2024-02-01T00:00:00Z",
        "country": "FR", "files": [{"path": "c.csv"}],
        # claims as the delivery leaf keeps them verbatim (a float, a big integer, a null)
        "claims": {"row_count": 10, "consent_rate": 0.9, "panel": {"size": 100000000000000000000, "ratio": 1e-07,
                                                                   "note": None}}}, sort_keys=False))
    intake.commit(intake.prepare(delivery, home, key), home, label="vectors")
    # a delivery the campaign does not target: its leaves are not cited (the proof holds nodes)
    other = work / "other"
    other.mkdir()
    (other / "d.csv").write_text(header + "".join(f"06111111{i:02d},jeu,political.electoral,2024-01-02,p,,\n"
                                                  for i in range(5)))
    (other / "manifest.yaml").write_text(yaml.safe_dump({
        "delivery_id": "VEC-2", "vendor": "other", "recipient": "party-b", "delivered_at": "2024-02-02T00:00:00Z",
        "country": "FR", "files": [{"path": "d.csv"}]}, sort_keys=False))
    intake.commit(intake.prepare(other, home, key), home, label="vectors-2")
    (work / "stops.csv").write_text(STOPS)
    ingest_suppressions(work / "stops.csv", warehouse_path=home.warehouse, key=key)
    campaign = work / "campaign.yaml"
    campaign.write_text(yaml.safe_dump(CAMPAIGN))
    out = work / "valid"
    audit_bundle(campaign, home, key, out)
    return out


def build(dest: Path = VECTORS) -> None:
    """Write the vectors: ``valid/`` and ``valid.zip``, each ``bad-*.zip`` (the valid
    bundle tampered, see TAMPERED), ``key.pub.pem`` and ``expected.json``."""
    from origine import bundle
    from origine.signing import Signer
    from tests import test_bundle_v2 as tampers
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    class _Home:  # what the tamper functions use of a home: its keys folder
        def __init__(self, keys: Path) -> None:
            self.keys = keys

    with tempfile.TemporaryDirectory(prefix="origine-bundle-vectors-") as tmp:
        work = Path(tmp)
        valid = _build_bundle(work)
        home = _Home(work / "home" / "keys")
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.iterdir():  # everything but the README is written here
            if old.name != "README.md":
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        shutil.copytree(valid, dest / "valid")
        bundle.zip_bundle(valid, dest / "valid.zip")
        (dest / "key.pub.pem").write_bytes(Signer(Ed25519PrivateKey.from_private_bytes(SEED)).public_pem())
        expected: dict[str, Any] = {"valid": None, "valid.zip": None}

        def unsigned_edit(out: Path, _home: Any) -> None:
            p = out / "summary.json"
            doc = json.loads(p.read_text())
            doc["verdicts"]["compliant"] += 1
            p.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")

        def other_signer(out: Path, _home: Any) -> None:
            keys = work / "other-keys"
            keys.mkdir(exist_ok=True)
            from cryptography.hazmat.primitives import serialization

            other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
            (keys / "operator_ed25519.pem").write_bytes(other.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            tampers._forge(out, _Home(keys), lambda rows: None)

        cases = {
            **{name: tampers.TAMPERS[title] for name, title in TAMPERED.items()},
            "bad-unsigned-edit.zip": (unsigned_edit, ("summary.json", "SHA-256 differs")),
            "bad-signature.zip": (other_signer, ("signature is not the operator's",)),
        }
        for name, (tamper, named) in cases.items():
            folder = work / name.removesuffix(".zip")
            shutil.copytree(valid, folder)
            tamper(folder, home)
            bundle.zip_bundle(folder, dest / name)
            expected[name] = list(named)
        (dest / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


# the tamperings of tests/test_bundle_v2.py, by vector name
TAMPERED = {
    "bad-leaf-bytes.zip": "leaf bytes changed",
    "bad-line.zip": "row leaf line changed",
    "bad-line-type.zip": "line type restated",
    "bad-delivery-removed.zip": "delivery leaf removed",
}


# ---------------------------------------------------------------- an independent re-derivation


def _unix(value: int) -> datetime:
    return datetime.fromtimestamp(value, timezone.utc)


def _rfc3339(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def independent_reasons(folder: Path) -> dict[str, set[str]]:
    """Every target's reasons from docs/bundle-format.md §4-5 alone: the leaves' JSON,
    the key map's lines, summary.json's campaign, targets.csv for targets without a
    row leaf. Raises AssertionError where the bundle breaks a rule of §5.1."""
    summary = json.loads((folder / "summary.json").read_text())
    camp = summary["campaign"]
    sent = datetime.fromisoformat(camp["sent_at"].replace("Z", "+00:00"))
    purpose, channel, days = camp["purpose"], camp["channel"], int(camp["validity_days"])
    idx = [int(x) for x in (folder / "ledger/leaves.txt").read_text().split()]
    leaves = {i: json.loads(line) for i, line in zip(idx, (folder / "ledger/events.jsonl").read_text().split("\n"))}
    mapping = {}
    for line in (folder / "ledger/key-map.txt").read_text().split("\n"):
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] not in ("digest", "chunk"):
            mapping[(parts[0] or None, parts[1])] = parts[2]
    events: dict[str, list[dict[str, Any]]] = {}

    def add(key_id: str | None, subject: str, **event: Any) -> None:
        events.setdefault(mapping.get((key_id, subject), subject), []).append(event)

    lines: dict[str, list[str]] = {}
    for seq, leaf in leaves.items():
        assert leaf["v"] == 2
        if leaf["type"] == "row":
            d = leaves.get(leaf["ev"][0])
            assert d is not None and d["type"] == "delivery", f"row leaf {seq}: its delivery leaf is not cited"
            group, kid, subject = (d["vendor"], d["delivery"]), d["key_id"], leaf["subject"]
            lines.setdefault(mapping.get((kid, subject), subject), []).append(leaf["line"])
            add(kid, subject, type="collected", group=group, at=_unix(leaf["at"]) if "at" in leaf else None)
            if "from" in leaf:
                add(kid, subject, type="transferred", group=group, at=None)
            consent = leaf.get("consent", {})
            when = _unix(consent["at"]) if "at" in consent else None
            for p in consent.get("purposes", []):
                add(kid, subject, type="consent_granted", group=group, at=when, purpose=p, proof=consent.get("proof"))
            if "opted_out" in leaf:
                add(kid, subject, type="opted_out", group=group, at=_unix(leaf["opted_out"]), channel="all")
            add(kid, subject, type="delivered", group=group, at=_unix(d["at"]))
        elif leaf["type"] in ("opted_out", "consent_withdrawn", "targeted"):
            ev = leaf.get("evidence", {})
            add(leaf.get("key_id"), leaf["subject"], type=leaf["type"], group=(ev.get("vendor"), ev.get("delivery_id")),
                at=_rfc3339(leaf["at"]), purpose=leaf.get("purpose"), channel=leaf.get("channel"))
    window = sent - timedelta(days=days)
    out: dict[str, set[str]] = {}
    for t in csv.DictReader(io.StringIO((folder / "targets.csv").read_text())):
        key = t["subject_key"]
        evs = events.get(key, [])
        before = [e for e in evs if e["at"] is not None and e["at"] <= sent]
        delivered_groups = {e["group"] for e in before if e["type"] == "delivered"}
        grants = [e for e in evs if e["type"] == "consent_granted" and e.get("purpose") == purpose]
        g = max((e["at"] for e in grants if e["at"] and e["at"] <= sent), default=None)
        g_proof = max((e["at"] for e in grants if e["at"] and e["at"] <= sent and e.get("proof")), default=None)
        g_after = any(e["at"] and e["at"] > sent for e in grants)
        undated = any(e["at"] is None for e in grants)
        w = max((e["at"] for e in before if e["type"] == "consent_withdrawn" and e.get("purpose") == purpose),
                default=None)
        tg = max((e["at"] for e in before if e["type"] == "consent_granted" and e.get("purpose") == "transfer.third_party"),
                 default=None)
        tw = max((e["at"] for e in before if e["type"] == "consent_withdrawn" and e.get("purpose") == "transfer.third_party"),
                 default=None)
        valid = g if g is not None and (w is None or g > w) else None
        withdrawn = g is not None and w is not None and w >= g
        fresh = valid if valid is not None and valid >= window else None
        proof = g_proof is not None and (w is None or g_proof > w) and g_proof >= window
        stated = [x for x in t["reasons"].lstrip("'").split("|") if x]
        invalid = not key or ("INVALID_NUMBER" in stated and key not in lines)
        line = min(lines[key]) if key in lines else (t["line_type"].lstrip("'") or None)
        if channel == "sms":
            wrong = (line or "unknown") not in ("mobile", "fixed_line_or_mobile")
        else:
            wrong = channel == "voice" and (line or "unknown") in ("pager", "unknown")
        reasons = {
            "NO_PROVENANCE": not delivered_groups,
            "INVALID_NUMBER": invalid,
            "PURPOSE_NOT_CONSENTED": valid is None and not withdrawn and not g_after and not undated,
            "CONSENT_AFTER_SEND": valid is None and not withdrawn and g_after,
            "CONSENT_UNDATED": valid is None and not withdrawn and undated,
            "CONSENT_EXPIRED": valid is not None and fresh is None,
            "OPTED_OUT": withdrawn or any(e["type"] == "opted_out" and e.get("channel") in (channel, "all")
                                          for e in before),
            "WRONG_LINE_TYPE": wrong and not invalid,
            "TRANSFER_NOT_CONSENTED": any(e["type"] == "transferred" and e["group"] in delivered_groups for e in evs)
                                      and not (tg is not None and (tw is None or tg > tw)),
            "NO_CONSENT_PROOF": fresh is not None and not proof,
        }
        out[key] = {r for r, holds in reasons.items() if holds}
    return out


def _stated(folder: Path) -> dict[str, set[str]]:
    rows = csv.DictReader(io.StringIO((folder / "targets.csv").read_text()))
    return {r["subject_key"]: {x for x in r["reasons"].lstrip("'").split("|") if x} for r in rows}


def _unzipped(archive: Path, tmp: Path) -> Path:
    folder = tmp / archive.stem
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    return folder


# ---------------------------------------------------------------- the checks


EXPECTED = json.loads((VECTORS / "expected.json").read_text()) if (VECTORS / "expected.json").is_file() else {}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_origine_verify_accepts_the_valid_and_names_each_tampering(name, tmp_path) -> None:
    from pipelines.cli import main

    result = CliRunner().invoke(main, ["verify", str(VECTORS / name), "--public-key", str(VECTORS / "key.pub.pem"),
                                       "--home", str(tmp_path / "regulator"), "--json"])
    doc = json.loads(result.stdout)
    if EXPECTED[name] is None:
        assert result.exit_code == 0 and doc["ok"], result.output
        assert doc["checked"]["reasons"] == 10 and doc["checked"]["targets"] == len(ROWS)
    else:
        assert result.exit_code == 1, result.output
        assert all(part in doc["problem"] for part in EXPECTED[name]), doc["problem"]


def test_the_vectors_are_all_there() -> None:
    assert set(EXPECTED) == {"valid", "valid.zip", *TAMPERED, "bad-unsigned-edit.zip", "bad-signature.zip"}
    readme = (VECTORS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in EXPECTED)


def test_an_independent_verifier_rederives_every_reason_of_the_valid_bundle() -> None:
    from tests.test_batch_proof import independent_root, read_bundle

    folder = VECTORS / "valid"
    leaves, nodes, size, root = read_bundle(folder)
    assert nodes, "the other delivery's leaves are not cited: the proof holds nodes"
    assert independent_root(leaves, nodes, size) == root
    derived, stated = independent_reasons(folder), _stated(folder)
    assert derived == stated
    # the vector exercises every reason a delivery and a suppression can give
    assert set().union(*stated.values()) == {
        "PURPOSE_NOT_CONSENTED", "NO_CONSENT_PROOF", "WRONG_LINE_TYPE", "TRANSFER_NOT_CONSENTED",
        "OPTED_OUT", "CONSENT_AFTER_SEND", "CONSENT_EXPIRED"}


def test_the_independent_verifier_catches_the_tampered_evidence(tmp_path) -> None:
    """The restated line type: the leaves still say fixed_line (WRONG_LINE_TYPE), the
    targets do not. The delivery leaf removed: a row leaf names an uncited leaf. A
    leaf's bytes changed: its hash no longer gives the signed root."""
    from tests.test_batch_proof import independent_root, read_bundle

    restated = _unzipped(VECTORS / "bad-line-type.zip", tmp_path)
    assert independent_reasons(restated) != _stated(restated)
    with pytest.raises(AssertionError, match="delivery leaf is not cited"):
        independent_reasons(_unzipped(VECTORS / "bad-delivery-removed.zip", tmp_path))
    for name in ("bad-leaf-bytes.zip", "bad-line.zip"):
        leaves, nodes, size, root = read_bundle(_unzipped(VECTORS / name, tmp_path))
        try:
            assert independent_root(leaves, nodes, size) != root
        except ValueError:
            pass


def test_the_valid_vector_is_what_origine_writes_today(tmp_path) -> None:
    """The same inputs give the same evidence bytes (leaves, indices, proof, key map):
    a change of the leaf format or of what a bundle cites must regenerate the vectors."""
    from tests.conftest import TEST_KEY_HEX  # noqa: F401  (the hash key the vectors were built with)

    saved = dict(os.environ)
    try:
        fresh = _build_bundle(tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for name in ("ledger/events.jsonl", "ledger/leaves.txt", "ledger/proof-nodes.txt", "ledger/key-map.txt",
                 "targets.csv"):
        assert (fresh / name).read_bytes() == (VECTORS / "valid" / name).read_bytes(), name


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else VECTORS)
    print(f"wrote {VECTORS if len(sys.argv) < 2 else sys.argv[1]}")
