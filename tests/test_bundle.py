"""The regulator's bundle: signed, self-verifying, and every tampering caught."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from origine import bundle
from origine.ingest import intake
from pipelines.cli import main
from origine.export import audit_bundle
from tests.conftest import raw_forms, scan_tree_for

NUMBERS = ["+33612345678", "+33612345679", "+33612345670", "+33145454545"]


@pytest.fixture
def made(home, key, make_delivery, tmp_path):
    rows = [
        "0612345678,jeu,political.electoral,2024-01-02,proof-1",
        "0612345679,jeu,marketing.commercial,2024-01-02,proof-2",
        "0612345670,jeu,political.electoral,2024-01-02,",
        "0145454545,jeu,political.electoral,2024-01-02,proof-4",
    ]
    path = make_delivery({"c.csv": ("phone,source,consent_purposes,consent_at,consent_proof\n" + "\n".join(rows) + "\n").encode()},
                         delivery_id="D-1", delivered_at="2024-02-01T00:00:00Z")
    intake.commit(intake.prepare(path, home, key), home, label="x")
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
        "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"},
        "targets": {"deliveries": ["D-1"]},
    }))
    out = tmp_path / "bundle"
    result, manifest = audit_bundle(campaign, home, key, out)
    return home, out, campaign, result


def test_bundle_verifies_and_holds_no_raw_number(made) -> None:
    home, out, _, result = made
    check = bundle.verify_bundle(out, home_keys=home.keys)
    assert check.ok, check.problems
    assert check.checked["targets"] == 4 and check.checked["proofs"] > 0
    for name in ("summary.json", "targets.csv", "targets.parquet", "report.html", "validations.json",
                 *bundle.EVIDENCE_FILES, "manifest.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    proof = json.loads((out / "ledger/proof.json").read_text())
    assert (proof["tree_size"], proof["root_hash"], proof["checkpoint"]) == (
        summary["ledger"]["tree_size"], summary["ledger"]["root_hash"], summary["ledger"]["checkpoint"])
    assert scan_tree_for(out, [f for n in NUMBERS for f in raw_forms(n)]) == []
    html = (out / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_verifies_from_a_fresh_home_with_the_public_key(made, tmp_path) -> None:
    home, out, _, _ = made
    archive = bundle.zip_bundle(out, tmp_path / "bundle.zip")
    pub = tmp_path / "operator.pub.pem"
    shutil.copy(home.keys / "operator_ed25519.pub.pem", pub)
    fresh = tmp_path / "regulator-home"
    runner = CliRunner()
    result = runner.invoke(main, ["verify", str(archive), "--public-key", str(pub), "--home", str(fresh)])
    assert result.exit_code == 0 and "bundle verified" in result.stdout, result.output
    # without any key to check against, it refuses
    result = runner.invoke(main, ["verify", str(archive), "--home", str(fresh)])
    assert result.exit_code == 1 and "public key" in result.stdout


def _rewrite_csv(path: Path, change) -> None:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    change(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def _flip_verdict(rows):
    rows[0]["verdict"] = "compliant" if rows[0]["verdict"] != "compliant" else "non_compliant"


def _edit_event(out: Path) -> None:
    p = out / "ledger/events.jsonl"
    p.write_text(p.read_text().replace("political.electoral", "research.polling", 1))


def _change_count(out: Path) -> None:
    p = out / "summary.json"
    doc = json.loads(p.read_text())
    doc["verdicts"]["compliant"] += 1
    p.write_text(json.dumps(doc))


def _drop_proof(out: Path) -> None:
    """A proof node dropped (or, when every leaf is cited and the proof is empty, a cited
    leaf dropped with its index: the root cannot be recomputed without it)."""
    nodes = out / "ledger/proof-nodes.txt"
    names = ["proof-nodes.txt"] if nodes.read_text() else ["leaves.txt", "events.jsonl"]
    for name in names:
        p = out / "ledger" / name
        p.write_text("".join(p.read_text().splitlines(keepends=True)[1:]))


TAMPERS = {
    "verdict flipped": lambda out: _rewrite_csv(out / "targets.csv", _flip_verdict),
    "event edited": _edit_event,
    "count changed": _change_count,
    "file removed": lambda out: (out / "report.html").unlink(),
    "file added": lambda out: (out / "extra.txt").write_text("x"),
    "proof truncated": _drop_proof,
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
@pytest.mark.parametrize("rehash", [False, True])
def test_every_tampering_is_caught(made, name, rehash) -> None:
    home, out, _, _ = made
    TAMPERS[name](out)
    if rehash:  # the forger recomputes the manifest's hashes (but cannot sign them)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["files"] = {p.relative_to(out).as_posix(): __import__("hashlib").sha256(p.read_bytes()).hexdigest()
                             for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}
        (out / "manifest.json").write_text(json.dumps(manifest))
    result = bundle.verify_bundle(out, home_keys=home.keys)
    assert not result.ok, name
    assert CliRunner().invoke(main, ["verify", str(out), "--home", str(home.root)]).exit_code == 1


def test_reasons_must_follow_from_events_even_when_resigned(made) -> None:
    """An operator who re-signs with its own key still cannot make a verdict that the
    cited events contradict."""
    home, out, _, _ = made
    from origine.signing import load_signer

    def drop_reasons(rows):
        for r in rows:
            if r["verdict"] == "non_compliant":
                r["verdict"], r["reasons"] = "compliant", ""
                break

    _rewrite_csv(out / "targets.csv", drop_reasons)
    bundle.sign_bundle(out, load_signer(home.keys))
    result = bundle.verify_bundle(out, home_keys=home.keys)
    assert not result.ok


def test_same_inputs_same_bytes(made, tmp_path) -> None:
    home, out, campaign, _ = made
    from origine.keys import load_key

    again = tmp_path / "again"
    audit_bundle(campaign, home, load_key(), again)
    for name in ("summary.json", "targets.csv", "targets.parquet", *bundle.EVIDENCE_FILES):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_every_suite_runs_clean_on_a_real_home(made) -> None:
    """The suites against what the pipeline really writes (not synthetic tables): no
    expectation may error, and the blocking ones hold, before and after retention."""
    from datetime import datetime, timezone

    from origine import warehouse
    from origine.retention import apply_retention
    from origine.validation import validate

    home, out, _, _ = made
    for doc in json.loads((out / "validations.json").read_text()):
        assert not doc["errors"] and doc["passed"], doc["suite"]
    with warehouse.session(home.warehouse) as con:
        apply_retention(con, now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    for suite in ("normalized_rows", "deliveries", "quarantine", "ledger_leaves"):
        result = validate(home.warehouse, suite)
        assert not result.errors and result.passed, (suite, [o.describe() for o in result.blocking_failures + result.errors])


def test_report_renders_its_charts_in_a_real_browser(made, tmp_path) -> None:
    """Headless Chromium (Debian's package, installed by .ci/run) renders report.html
    offline; the screenshot is kept next to the test's files."""
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    _, out, _, _ = made
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "report.html").as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    assert dom.stdout.count("<rect") >= 3 and 'aria-label="Verdicts"' in dom.stdout
    assert "Audit de la campagne EU24" in dom.stdout  # a French campaign: report in French
    subprocess.run([chromium, *flags, "--window-size=1100,1600", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_audit_cli_zip_and_fingerprint(made, tmp_path) -> None:
    home, _, campaign, _ = made
    out = tmp_path / "cli-bundle"
    result = CliRunner().invoke(main, ["audit", str(campaign), "--out", str(out), "--home", str(home.root), "--zip",
                                       "--fail-on", "non_compliant"])
    from origine.signing import load_signer

    assert result.exit_code == 1  # one target is non-compliant: --fail-on says so
    assert load_signer(home.keys).fingerprint in result.stdout
    assert bundle.verify_bundle(tmp_path / "cli-bundle.zip", home_keys=home.keys).ok


# ---------------------------------------------------------------- issue 16: what verify re-derives


def _forge(out: Path, home, change) -> None:
    """A forger holding the operator's key: targets.csv and targets.parquet changed alike,
    summary.json's counts recomputed, report.html rendered again, everything re-signed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from origine.report import lang_of, render_report
    from origine.signing import load_signer

    _rewrite_csv(out / "targets.csv", change)
    rows = list(csv.DictReader(io.StringIO((out / "targets.csv").read_text())))
    by_key = {r["subject_key"]: r for r in rows}
    table = pq.read_table(out / "targets.parquet").to_pylist()
    for t in table:
        r = by_key[t["subject_key"] or ""]
        t["verdict"], t["reasons"] = r["verdict"], [x for x in r["reasons"].split("|") if x]
        t["line_type"] = r["line_type"] or None
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(out / "targets.parquet")), out / "targets.parquet")
    summary = json.loads((out / "summary.json").read_text())
    summary["verdicts"] = {v: sum(r["verdict"] == v for r in rows) for v in summary["verdicts"]}
    summary["reasons"] = {k: sum(k in r["reasons"].split("|") for r in rows) for k in summary["reasons"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    page = (out / "report.html").read_text()
    (out / "report.html").write_text(render_report(summary, json.loads((out / "validations.json").read_text()),
                                                   lang_of(page)))
    bundle.sign_bundle(out, load_signer(home.keys))


def test_a_landline_flipped_to_compliant_and_resigned_fails(made) -> None:
    home, out, _, _ = made

    def flip(rows):
        [landline] = [r for r in rows if r["line_type"] == "fixed_line"]
        assert "WRONG_LINE_TYPE" in landline["reasons"]
        landline["verdict"], landline["reasons"] = "compliant", ""

    before = bundle.verify_bundle(out, home_keys=home.keys)
    assert before.ok and before.checked["reasons"] == 10, before.problems
    _forge(out, home, flip)
    result = bundle.verify_bundle(out, home_keys=home.keys)
    assert not result.ok and "WRONG_LINE_TYPE" in result.problems[0], result.problems


@pytest.mark.parametrize("reason", ["NO_CONSENT_PROOF", "PURPOSE_NOT_CONSENTED", "NO_PROVENANCE"])
def test_a_reason_added_or_dropped_against_the_leaves_fails(made, reason) -> None:
    home, out, _, _ = made

    def change(rows):
        row = next(r for r in rows if r["line_type"] != "fixed_line")
        listed = [x for x in row["reasons"].split("|") if x]
        row["reasons"] = "|".join([x for x in listed if x != reason] if reason in listed else [*listed, reason])
        row["verdict"] = ("non_compliant" if any(bundle_rules()[x] == "non_compliant" for x in row["reasons"].split("|") if x)
                          else "unverifiable" if row["reasons"] else "compliant")

    _forge(out, home, change)
    result = bundle.verify_bundle(out, home_keys=home.keys)
    assert not result.ok and reason in result.problems[0], result.problems


def bundle_rules() -> dict[str, str]:
    from origine.audit import RULES

    return RULES


def test_a_rotated_homes_bundle_verifies(home, key, make_delivery, tmp_path, monkeypatch) -> None:
    """Leaves keep the subject keys of their generation, targets carry current keys: the
    bundle carries the key-map chunks that link them, checked against the key_map leaf."""
    from origine.keys import load_key
    from tests.test_rotation import LAYER, rotate_cli

    rows = "".join(f"06123456{i:02d},jeu,political.electoral,2024-01-02,proof-{i}\n" for i in range(8))
    path = make_delivery({"c.csv": ("phone,source,consent_purposes,consent_at,consent_proof\n" + rows).encode()},
                         delivery_id="D-1", delivered_at="2024-02-01T00:00:00Z")
    intake.commit(intake.prepare(path, home, key), home, label="x")
    rotate_cli(home, LAYER, monkeypatch)
    monkeypatch.setenv("ORIGINE_HASH_KEY_LAYERS", LAYER)
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
        "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"}, "targets": {"deliveries": ["D-1"]},
    }))
    out = tmp_path / "bundle"
    result, _ = audit_bundle(campaign, home, load_key(), out)
    assert result.count("compliant") == 8
    km = (out / "ledger" / "key-map.txt").read_text()
    assert km.startswith("digest 0 8 ") and "\nchunk 0\n" in km
    check = bundle.verify_bundle(out, home_keys=home.keys)
    assert check.ok, check.problems
    # the links are what verify relies on: one changed current key breaks the chunk's digest
    lines = km.split("\n")
    lines[2] = lines[2][:-1] + ("0" if lines[2][-1] != "0" else "1")
    (out / "ledger" / "key-map.txt").write_text("\n".join(lines))
    from origine.signing import load_signer

    bundle.sign_bundle(out, load_signer(home.keys))
    check = bundle.verify_bundle(out, home_keys=home.keys)
    assert not check.ok and "key-map" in check.problems[0]


def test_a_200_kb_field_gives_a_clean_exit(made) -> None:
    home, out, _, _ = made

    def huge(rows):
        rows[0]["sources"] = "x" * 200_000

    _rewrite_csv(out / "targets.csv", huge)
    from origine.signing import load_signer

    bundle.sign_bundle(out, load_signer(home.keys))
    result = CliRunner().invoke(main, ["verify", str(out), "--home", str(home.root), "--json"])
    assert result.exit_code in (0, 1) and result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    doc = json.loads(result.stdout)
    assert doc["checked"]["targets"] == 4


def test_a_zip_expanding_past_the_cap_is_unusable_input(made, tmp_path, monkeypatch) -> None:
    import zipfile

    home, out, _, _ = made
    archive = bundle.zip_bundle(out, tmp_path / "bundle.zip")
    assert CliRunner().invoke(main, ["verify", str(archive), "--home", str(home.root)]).exit_code == 0
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "ledger/events.jsonl":
                data += b"\n" * (300 << 20)  # 300 MiB of newlines: ~300 KiB compressed
            dst.writestr(info, data)
    monkeypatch.setenv("ORIGINE_MAX_EXPANSION_RATIO", "50")
    monkeypatch.setenv("ORIGINE_MAX_EXPANDED_BYTES", "64M")
    result = CliRunner().invoke(main, ["verify", str(bomb), "--home", str(home.root)])
    assert result.exit_code == 2, result.output
    assert "expands past" in result.output and "Traceback" not in result.output


def test_verify_json_and_since(made, tmp_path) -> None:
    """--json says what was checked; --since needs the bundle to extend the held checkpoint."""
    home, out, campaign, _ = made
    runner = CliRunner()
    held = tmp_path / "held.txt"
    held.write_text(runner.invoke(main, ["ledger", "checkpoint", "--home", str(home.root)]).stdout)
    doc = json.loads(runner.invoke(main, ["verify", str(out), "--home", str(home.root), "--json"]).stdout)
    assert doc["ok"] and doc["checked"]["proofs"] > 0 and doc["checked"]["reasons"] == 10
    assert runner.invoke(main, ["verify", str(out), "--home", str(home.root), "--since", str(held)]).exit_code == 0
    # a later audit, proven against a checkpoint that extends the held one
    later = tmp_path / "later.yaml"
    later.write_text(campaign.read_text().replace("EU24", "EU24-2"))
    again = tmp_path / "again"
    audited = runner.invoke(main, ["audit", str(later), "--out", str(again), "--home", str(home.root),
                                   "--since", str(held)])
    assert audited.exit_code == 0, audited.output
    ok = runner.invoke(main, ["verify", str(again), "--home", str(home.root), "--since", str(held), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["checked"]["since"] > 0, ok.output
    # a held checkpoint the bundle's tree does not extend: same size claimed, another root
    lines = held.read_text().split("\n")
    assert runner.invoke(main, ["verify", str(again), "--home", str(home.root), "--since", str(out / "summary.json")]).exit_code == 2
    assert lines[1].isdigit()


@pytest.mark.slow
def test_an_ingest_started_while_an_audit_writes_its_bundle_commits_without_waiting(home, key, tmp_path) -> None:
    """Real processes: the audit pauses once its evidence is exported (the rest of the
    bundle still to write); an ingest started then commits while the audit is still
    running, and the bundle, proven against the audit's own checkpoint, still verifies."""
    from tests.processes import cli_env, ingest_here, ledger_check_ok, start_cli, wait_for, write_delivery

    first = write_delivery(tmp_path / "in", "P-1", 300, seed=3)
    later = write_delivery(tmp_path / "in", "P-2", 300, seed=4, vendor="other")
    ingest_here(home, first)
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
        "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"}, "targets": {"deliveries": ["P-1"]},
    }))
    out, resume = tmp_path / "bundle", tmp_path / "resume"
    auditing = start_cli(home, "audit", str(campaign), "--out", str(out), env=cli_env(
        home, ORIGINE_FAULT_POINT="bundle.after_evidence", ORIGINE_FAULT_PAUSE="600", ORIGINE_FAULT_RESUME=str(resume)))
    try:
        wait_for(lambda: (out / "ledger" / "proof.json").is_file(), timeout=300, what="the evidence", proc=auditing)
        ingesting = start_cli(home, "ingest", str(later), "--json", env=cli_env(home, ORIGINE_LOCK_WAIT="0"))
        _, err = ingesting.communicate(timeout=300)
        assert ingesting.returncode == 0, err
        assert auditing.poll() is None, "the audit was still writing its bundle"
    finally:
        resume.write_text("go")
    stdout, stderr = auditing.communicate(timeout=300)
    assert auditing.returncode == 0, stderr
    check = bundle.verify_bundle(out, home_keys=home.keys)
    assert check.ok, check.problems
    summary = json.loads((out / "summary.json").read_text())
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        size = con.execute("SELECT max(tree_size) FROM tree_heads").fetchone()[0]
    finally:
        con.close()
    assert size > summary["ledger"]["tree_size"], "the ingest committed after the audit's checkpoint"
    ledger_check_ok(home)


def test_leaves_copied_part_by_part_are_the_same_bytes(made, tmp_path, monkeypatch) -> None:
    """Cited leaves are sorted per range of indices (bounded memory): parts of 3 leaves
    give the bytes one part gives, and the bundle verifies."""
    home, out, campaign, _ = made
    from origine.keys import load_key

    monkeypatch.setattr(bundle, "_LEAVES_PER_PART", 3)
    small = tmp_path / "small-parts"
    audit_bundle(campaign, home, load_key(), small)
    lines = (out / "ledger/events.jsonl").read_bytes()
    assert lines.count(b"\n") > 6
    for name in bundle.EVIDENCE_FILES:
        assert (small / name).read_bytes() == (out / name).read_bytes(), name
    assert bundle.verify_bundle(small, home_keys=home.keys).ok


def test_targeted_leaves_are_appended_in_subject_key_order(made) -> None:
    """The audit sorts its targets' keys, not their payloads (memory); the ledger still
    gets them in key order, so the same campaign gives the same tree."""
    import duckdb

    home, _, _, result = made
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        keys = [k for (k,) in con.execute(
            "SELECT subject_key FROM ledger_events WHERE type = 'targeted' ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert len(keys) == 4 and keys == sorted(keys)


def test_prove_prints_classic_proofs_and_refuses_a_leaf_beyond_the_tree(made) -> None:
    import base64

    from origine import merkle

    home, out, _, _ = made
    runner = CliRunner()
    doc = json.loads(runner.invoke(main, ["prove", "0", "5", "--home", str(home.root)]).stdout)
    root = base64.b64decode(doc["root_hash"])
    for entry in doc["proofs"]:
        path = [base64.b64decode(x) for x in entry["audit_path"]]
        assert merkle.verify_inclusion(merkle.leaf_hash(entry["leaf"].encode()), entry["leaf_index"],
                                       doc["tree_size"], path, root)
    beyond = runner.invoke(main, ["prove", str(doc["tree_size"]), "--home", str(home.root)])
    assert beyond.exit_code == 2 and "Traceback" not in beyond.output
