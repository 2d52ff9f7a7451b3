"""The bundle on ledger format v2 (issues 15, 16): it cites leaves, and verify re-derives
every verdict from the cited leaves' bytes alone.

Each tampering is a real edit of a real bundle, as a folder and as a zip, made by a
forger holding the operator's signing key (so the manifest signature holds and only
the ledger evidence can catch it): a leaf's bytes changed, a row leaf's ``line``
changed, a cited delivery leaf removed (its hash moved into the batch proof, so the
proof still gives the signed root). Each fails with exit 1 naming what.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from origine import bundle
from pipelines.cli import main
from origine.signing import load_signer
from tests.test_bundle import _forge, made  # noqa: F401  (the fixture: a real home and bundle)


def _leaves(out: Path) -> list[tuple[int, str]]:
    idx = (out / "ledger/leaves.txt").read_text().split()
    lines = (out / "ledger/events.jsonl").read_text().split("\n")[:-1]
    assert len(idx) == len(lines)
    return [(int(i), line) for i, line in zip(idx, lines)]


def _write_leaves(out: Path, leaves: list[tuple[int, str]]) -> None:
    (out / "ledger/leaves.txt").write_text("".join(f"{i}\n" for i, _ in leaves))
    (out / "ledger/events.jsonl").write_text("".join(f"{line}\n" for _, line in leaves))


def _resign(out: Path, home) -> None:
    bundle.sign_bundle(out, load_signer(home.keys))


def edit_leaf_bytes(out: Path, home) -> None:
    """One row leaf's consented purpose rewritten in its bytes (its hash changes)."""
    leaves = _leaves(out)
    n = next(k for k, (_, line) in enumerate(leaves) if '"type":"row"' in line and "political.electoral" in line)
    leaves[n] = (leaves[n][0], leaves[n][1].replace("political.electoral", "research.polling"))
    _write_leaves(out, leaves)
    _resign(out, home)


def edit_line(out: Path, home) -> None:
    """The landline's row leaf says ``mobile``, and its target is flipped to compliant
    (targets, counts and report made to agree, everything re-signed)."""
    leaves = _leaves(out)
    n = next(k for k, (_, line) in enumerate(leaves) if '"line":"fixed_line"' in line)
    leaves[n] = (leaves[n][0], leaves[n][1].replace('"line":"fixed_line"', '"line":"mobile"'))
    _write_leaves(out, leaves)
    _forge(out, home, _landline_to_compliant_mobile)


def _landline_to_compliant_mobile(rows) -> None:
    [landline] = [r for r in rows if r["line_type"] == "fixed_line"]
    landline["verdict"], landline["reasons"], landline["line_type"] = "compliant", "", "mobile"


def restate_line_type(out: Path, home) -> None:
    """The leaves untouched; targets.csv/parquet state the landline as a compliant
    mobile (counts and report made to agree, re-signed)."""
    _forge(out, home, _landline_to_compliant_mobile)


def remove_delivery_leaf(out: Path, home) -> None:
    """The delivery leaf the row leaves name dropped from events.jsonl and leaves.txt,
    its leaf hash added to the batch proof instead (the proof still holds)."""
    import hashlib

    leaves = _leaves(out)
    [(seq, line)] = [(s, x) for s, x in leaves if '"type":"delivery"' in x]
    _write_leaves(out, [(s, x) for s, x in leaves if s != seq])
    nodes = [n.split(" ") for n in (out / "ledger/proof-nodes.txt").read_text().split("\n") if n]
    nodes.append(["0", str(seq), hashlib.sha256(b"\x00" + line.encode()).hexdigest()])
    nodes.sort(key=lambda n: (int(n[0]), int(n[1])))
    (out / "ledger/proof-nodes.txt").write_text("".join(" ".join(n) + "\n" for n in nodes))
    doc = json.loads((out / "ledger/proof.json").read_text())
    doc["leaves"], doc["nodes"] = doc["leaves"] - 1, doc["nodes"] + 1
    (out / "ledger/proof.json").write_text(json.dumps(doc, indent=1) + "\n")
    _resign(out, home)


# tampering -> what the failure must name
TAMPERS: dict[str, tuple[Callable[[Path, object], None], tuple[str, ...]]] = {
    "leaf bytes changed": (edit_leaf_bytes, ("ledger/events.jsonl", "signed root")),
    "row leaf line changed": (edit_line, ("ledger/events.jsonl", "signed root")),
    "line type restated": (restate_line_type, ("WRONG_LINE_TYPE",)),
    "delivery leaf removed": (remove_delivery_leaf, ("names delivery leaf", "not cite")),
}


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_each_tampering_of_the_leaves_fails_naming_it(made, tmp_path, name, as_zip) -> None:  # noqa: F811
    home, out, _, _ = made
    assert bundle.verify_bundle(out, home_keys=home.keys).ok
    tamper, named = TAMPERS[name]
    forged = tmp_path / "forged"
    shutil.copytree(out, forged)
    tamper(forged, home)
    target = bundle.zip_bundle(forged, tmp_path / "forged.zip") if as_zip else forged
    result = CliRunner().invoke(main, ["verify", str(target), "--home", str(home.root), "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert not doc["ok"] and all(part in doc["problem"] for part in named), doc["problem"]


def test_the_bundle_cites_row_delivery_and_later_event_leaves(made) -> None:  # noqa: F811
    """Leaf indices are tree positions: every row leaf names a cited delivery leaf, the
    targets' own later leaves (``targeted``) are cited, and each line is exactly the
    stored leaf's bytes (the ledger's PAYLOAD_SQL)."""
    import duckdb

    from origine.ledger.events import PAYLOAD_SQL

    home, out, _, _ = made
    leaves = _leaves(out)
    docs = {seq: json.loads(line) for seq, line in leaves}
    types = sorted({d["type"] for d in docs.values()})
    assert types == ["delivery", "row", "targeted"]
    for seq, d in docs.items():
        if d["type"] == "row":
            assert docs[d["ev"][0]]["type"] == "delivery" and d["ev"][0] < seq
            assert d["line"] in ("mobile", "fixed_line")
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        stored = dict(con.execute(f"SELECT seq, {PAYLOAD_SQL} FROM ledger_leaves").fetchall())
    finally:
        con.close()
    assert all(stored[seq] == line for seq, line in leaves)


def test_opt_out_and_withdrawal_leaves_are_cited_and_give_their_reason(home, key, make_delivery, tmp_path) -> None:
    """Later event leaves of a target (a suppression's opted_out and consent_withdrawn)
    are cited and verify re-derives OPTED_OUT from them; a bundle that drops the
    reason fails, even re-signed."""
    import yaml

    from origine.ingest import intake
    from origine.export import audit_bundle
    from origine.suppressions import ingest_suppressions

    rows = "".join(f"06123456{i:02d},jeu,political.electoral,2024-01-02,proof-{i}\n" for i in range(4))
    path = make_delivery({"c.csv": ("phone,source,consent_purposes,consent_at,consent_proof\n" + rows).encode()},
                         delivery_id="D-1", delivered_at="2024-02-01T00:00:00Z")
    intake.commit(intake.prepare(path, home, key), home, label="x")
    stop = tmp_path / "stop.csv"
    stop.write_text("phone,at,channel,purpose\n0612345601,2024-03-01,sms,\n"
                    "0612345602,2024-03-01,sms,political.electoral\n")
    ingest_suppressions(stop, warehouse_path=home.warehouse, key=key)
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
        "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"}, "targets": {"deliveries": ["D-1"]},
    }))
    out = tmp_path / "bundle"
    result, _ = audit_bundle(campaign, home, key, out)
    assert result.summary["reasons"].get("OPTED_OUT") == 2
    cited = {json.loads(line)["type"] for _, line in _leaves(out)}
    assert {"opted_out", "consent_withdrawn"} <= cited
    assert bundle.verify_bundle(out, home_keys=home.keys).ok

    def drop(rows):
        r = next(r for r in rows if "OPTED_OUT" in r["reasons"])
        r["verdict"], r["reasons"] = "compliant", ""

    _forge(out, home, drop)
    check = bundle.verify_bundle(out, home_keys=home.keys)
    assert not check.ok and "OPTED_OUT" in check.problems[0], check.problems


LEDGER_VECTORS = Path(__file__).parent / "vectors" / "ledger"


@pytest.mark.parametrize("name", ["leaves.txt", *sorted(
    n for n, why in json.loads((LEDGER_VECTORS / "expected.json").read_text()).items()
    if n.startswith("leaves.") and why != "root")])
def test_verify_reads_the_ledger_vectors_leaves_and_refuses_each_bad_one(name) -> None:
    """The leaves of tests/vectors/ledger (quotes, backslashes, control characters,
    U+2028, claims with big integers, 1e-07 and nulls) read back to exactly their
    bytes; each tampered variant (non-canonical bytes, v1, an unknown type, a row leaf
    naming a later leaf, a leaf that is no delivery, a file its delivery does not
    list) is refused, naming its leaf."""
    import duckdb

    lines = (LEDGER_VECTORS / name).read_bytes().split(b"\n")[:-1]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        problem = bundle.read_leaves(con, lines, [str(i).encode() for i in range(len(lines))])
        if name == "leaves.txt":
            assert problem is None
            assert con.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0] == len(lines)
        else:
            assert problem is not None and problem.startswith(("leaf ", "row leaf ")), (name, problem)
    finally:
        con.close()


def test_a_line_type_restated_without_changing_any_reason_fails(made) -> None:  # noqa: F811
    """``mobile`` restated as ``fixed_line_or_mobile`` changes no SMS reason; the
    targets still must state the line type their row leaves say."""
    home, out, _, _ = made

    def restate(rows):
        row = next(r for r in rows if r["line_type"] == "mobile")
        row["line_type"] = "fixed_line_or_mobile"

    _forge(out, home, restate)
    check = bundle.verify_bundle(out, home_keys=home.keys)
    assert not check.ok and "line type fixed_line_or_mobile" in check.problems[0], check.problems
    assert "its row leaves say mobile" in check.problems[0]
