"""The audit holds the warehouse only to read its snapshot and to append (issue 16).

It reads the targets and what the ledger says of them in one read-only session,
computes the verdicts with the warehouse closed, and opens it for writing only to
append its ``targeted`` leaves, against the state the verdicts were computed from:
leaves about other numbers are let be, a leaf about a target makes it read a fresh
snapshot and compute again, and a ledger that keeps moving is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from origine.audit import run as audit_run
from origine import ledger
from origine.audit import LedgerMoved, audit
from origine.errors import OrigineError
from origine.home import Home
from origine.keys import HashKey
from tests.test_audit import (  # noqa: F401  (campaign: the fixture writing campaign specs)
    A,
    B,
    C,
    D,
    add_events,
    campaign,
    csv_bytes,
    deliver,
    national,
    suppression,
    targets_by_key,
    verdict_of,
)

HEADER = "phone,source,consent_purposes,consent_at,consent_proof"


def _targeted(home: Home) -> list[tuple[int, str]]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return [(int(s), str(k)) for s, k in con.execute(
            "SELECT seq, subject_key FROM ledger_events WHERE type = 'targeted' ORDER BY seq").fetchall()]
    finally:
        con.close()


def _size(home: Home) -> int:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return ledger.tree_size(con)
    finally:
        con.close()


def _between(monkeypatch: pytest.MonkeyPatch, action: Callable[[int], None]) -> list[int]:
    """Run ``action(attempt)`` after each snapshot, the warehouse released, before the
    verdicts are computed; returns the tree size each snapshot was read at."""
    sizes: list[int] = []
    real = audit_run._compute

    def compute(snap: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(snap.tree_size)
        action(len(sizes))
        return real(snap, *args, **kwargs)

    monkeypatch.setattr(audit_run, "_compute", compute)
    return sizes


def _two_targets(home: Home, key: HashKey, make_delivery: Any) -> None:
    deliver(home, key, make_delivery, [f"{national(n)},jeu,electoral,2024-01-02,proof" for n in (A, B)],
            header=HEADER)


def test_leaves_about_other_numbers_change_nothing_and_are_let_be(
    home, key, make_delivery, campaign, tmp_path, monkeypatch
) -> None:
    """An opt-out for a number the campaign does not target, recorded while the audit
    computes: one snapshot, the verdicts of the state read, appended after that leaf."""
    _two_targets(home, key, make_delivery)
    before = _size(home)
    sizes = _between(monkeypatch, lambda attempt: add_events(home, [suppression(key, C, "2024-03-01T00:00:00+00:00")]))
    result = audit(campaign(), home, key, tmp_path / "out")
    assert sizes == [before]
    assert verdict_of(result, key, A) == ("compliant", []) and verdict_of(result, key, B) == ("compliant", [])
    assert result.appended == 2
    targeted = _targeted(home)
    assert [seq for seq, _ in targeted] == [before + 1, before + 2]  # after the other number's leaf
    assert result.summary["ledger"]["tree_size"] == before + 3 == _size(home)


def test_a_leaf_about_a_target_recorded_meanwhile_makes_the_audit_compute_again(
    home, key, make_delivery, campaign, tmp_path, monkeypatch
) -> None:
    """A's opt-out (before the send) lands between the audit's read and its append: the
    verdicts read before it would call A compliant against a ledger saying otherwise.
    The audit reads again and A is non-compliant; its targeted leaves are appended once."""
    _two_targets(home, key, make_delivery)
    before = _size(home)

    def opt_out_once(attempt: int) -> None:
        if attempt == 1:
            add_events(home, [suppression(key, A, "2024-03-01T00:00:00+00:00")])

    sizes = _between(monkeypatch, opt_out_once)
    result = audit(campaign(), home, key, tmp_path / "out")
    assert sizes == [before, before + 1]
    assert verdict_of(result, key, A) == ("non_compliant", ["OPTED_OUT"])
    assert verdict_of(result, key, B) == ("compliant", [])
    assert result.appended == 2 and len(_targeted(home)) == 2
    assert result.summary["ledger"]["tree_size"] == before + 3
    saved = json.loads(result.summary_path.read_text())
    assert saved["verdicts"] == {"compliant": 1, "non_compliant": 1, "unverifiable": 0}


def test_an_erasure_or_key_map_leaf_meanwhile_counts_as_moved(
    home, key, make_delivery, campaign, tmp_path, monkeypatch
) -> None:
    """Erasure and key-map leaves name no target but change what earlier leaves say."""
    _two_targets(home, key, make_delivery)
    before = _size(home)

    def erased_once(attempt: int) -> None:
        if attempt == 1:
            add_events(home, [{"type": "erased", "at": "2024-07-01T00:00:00+00:00", "origin": "retention",
                               "evidence_kind": "retention"}])

    sizes = _between(monkeypatch, erased_once)
    result = audit(campaign(), home, key, tmp_path / "out")
    assert sizes == [before, before + 1] and result.appended == 2


def test_a_ledger_moving_on_every_attempt_is_refused_and_nothing_is_recorded(
    home, key, make_delivery, campaign, tmp_path, monkeypatch
) -> None:
    _two_targets(home, key, make_delivery)
    before = _size(home)
    moving = [True]

    def opt_out(attempt: int) -> None:
        if moving[0]:
            add_events(home, [suppression(key, B, "2024-03-01T00:00:00+00:00")])

    sizes = _between(monkeypatch, opt_out)
    out = tmp_path / "out"
    path = campaign()
    with pytest.raises(LedgerMoved, match=r"while the audit computed its verdicts on each of 2 attempts: "
                                          r"the audit recorded nothing; run it again"):
        audit(path, home, key, out)
    assert sizes == [before, before + 1]
    assert _targeted(home) == [] and _size(home) == before + 2
    assert sorted(p.name for p in out.iterdir()) == []  # no summary, no target file (not even half-written)
    assert [p.name for p in home.scratch.iterdir() if p.name.startswith("audit.")] == []
    # once the writes are done, the same spec audits (and sees the opt-outs of its target)
    moving[0] = False
    result = audit(path, home, key, out)
    assert verdict_of(result, key, B) == ("non_compliant", ["OPTED_OUT"]) and result.appended == 2


def test_a_reaudit_only_reads_the_warehouse(home, key, make_delivery, campaign, tmp_path, monkeypatch) -> None:
    """Another process holds the warehouse read-only (no process may write then): a
    re-audit appends nothing and so never asks for the write lock; a first audit must."""
    _two_targets(home, key, make_delivery)
    path = campaign()
    first = audit(path, home, key, tmp_path / "first")
    ready, stop = tmp_path / "reader-ready", tmp_path / "reader-stop"
    reader = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, pathlib, time, sys\n"
        f"con = duckdb.connect({str(home.warehouse)!r}, read_only=True)\n"
        f"pathlib.Path({str(ready)!r}).write_text('ready')\n"
        f"while not pathlib.Path({str(stop)!r}).exists(): time.sleep(0.02)\n"
        "con.close()\n"
    )])
    try:
        from tests.processes import wait_for

        wait_for(ready.exists, timeout=60, what="the reader")
        monkeypatch.setenv("ORIGINE_LOCK_WAIT", "0")
        again = audit(path, home, key, tmp_path / "again")
        assert again.appended == 0 and again.summary == first.summary
        assert (tmp_path / "again" / "targets.csv").read_bytes() == first.targets_csv.read_bytes()
        with pytest.raises(OrigineError, match="locked by another process"):
            audit(campaign(), home, key, tmp_path / "other")
        assert list((tmp_path / "other").iterdir()) == []
    finally:
        stop.write_text("stop")
        reader.wait(timeout=60)


@pytest.mark.slow
def test_an_ingest_started_while_the_audit_computes_its_verdicts_commits_without_waiting(
    home, key, make_delivery, tmp_path
) -> None:
    """Real processes: `origine audit` pauses once it has read its snapshot (the warehouse
    released); `origine ingest` of a delivery holding a target's opt-out, started then
    with no lock wait at all, commits while the audit is still running. The audit then
    finds the ledger moved about its target, reads again, and says so in its verdict."""
    from tests.processes import cli_env, ledger_check_ok, start_cli, wait_for

    _two_targets(home, key, make_delivery)
    later = make_delivery({"c.csv": csv_bytes("phone,consent_purposes,consent_at,opted_out_at",
                                              [f"{national(A)},electoral,2024-01-02,2024-05-01",
                                               f"{national(D)},electoral,2024-01-02,"])},
                          delivery_id="LATER", vendor="other")
    spec = tmp_path / "campaign.yaml"
    spec.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
        "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"}, "targets": {"deliveries": ["D-1"]},
    }))
    out, paused, resume = tmp_path / "bundle", tmp_path / "paused", tmp_path / "resume"
    auditing = start_cli(home, "audit", str(spec), "--out", str(out), env=cli_env(
        home, ORIGINE_FAULT_POINT="audit.verdicts", ORIGINE_FAULT_PAUSE="600",
        ORIGINE_FAULT_PAUSED=str(paused), ORIGINE_FAULT_RESUME=str(resume)))
    try:
        wait_for(paused.exists, timeout=300, what="the audit's snapshot", proc=auditing)
        ingesting = start_cli(home, "ingest", str(later), "--json", env=cli_env(home, ORIGINE_LOCK_WAIT="0"))
        _, err = ingesting.communicate(timeout=300)
        assert ingesting.returncode == 0, err
        assert auditing.poll() is None, "the audit was still computing its verdicts"
    finally:
        resume.write_text("go")
    _, stderr = auditing.communicate(timeout=300)
    assert auditing.returncode == 0, stderr
    rows = {r["subject_key"]: r for r in pq.read_table(out / "targets.parquet").to_pylist()}
    assert rows[key.subject_key(A)]["reasons"] == ["OPTED_OUT"]
    assert rows[key.subject_key(B)]["verdict"] == "compliant"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ledger"]["tree_size"] == _size(home)  # the ingest's leaves, then the audit's
    assert [seq for seq, _ in _targeted(home)] == [_size(home) - 2, _size(home) - 1]
    ledger_check_ok(home)
