"""Checks proportional to the work (issue 16 item 4): an ingest's and an audit's Great
Expectations checks validate what that run added; the weekly ledger check, everything."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.partitions import deliveries_partitions
from origine import stage_checks
from origine.ingest import DeliveryReport, intake
from origine.validation import ValidationError, ValidationRequest, validate
from pipelines.definitions import build_definitions
from pipelines.jobs import INGEST_JOB, delivery_run_config

HEADER = "phone,source,consent_purposes,consent_at,consent_proof"


def rows(start: int, n: int) -> bytes:
    lines = [f"06{start + i:08d},jeu,political.electoral,2024-01-02,proof-{i}" for i in range(n)]
    return (HEADER + "\n" + "\n".join(lines) + "\n").encode()


def run_ingest(instance: dg.DagsterInstance, path: Path) -> tuple[DeliveryReport, dg.AssetCheckEvaluation]:
    """The real ingest job for one delivery; its report and the warehouse check's evaluation."""
    doc = yaml.safe_load((path / "manifest.yaml").read_text())
    key = f"{doc['vendor']}|{doc['delivery_id']}"
    instance.add_dynamic_partitions(deliveries_partitions.name, [key])
    result = build_definitions().resolve_job_def(INGEST_JOB).execute_in_process(
        run_config=delivery_run_config(str(path)), instance=instance, partition_key=key, raise_on_error=False,
    )
    assert result.success
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "warehouse_expectations"]
    return DeliveryReport.from_dict(result.output_for_node("warehouse_delivery")), check


def suite_results(check: dg.AssetCheckEvaluation) -> dict[str, dict]:
    return {r["suite"]: r for r in check.metadata["results"].value}


def ledger_size(home) -> int:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0])
    finally:
        con.close()


def test_an_ingest_checks_its_own_events_and_the_weekly_job_checks_all(home, key, make_delivery) -> None:
    """The second delivery's warehouse check validates that delivery's events only (its
    row count is its event count, not the ledger's) and does not report the bad event an
    earlier delivery left; the weekly ledger_check job validates every event and does."""
    instance = dg.DagsterInstance.ephemeral()
    first, check1 = run_ingest(instance, make_delivery({"a.csv": rows(12345000, 6)}, delivery_id="D-1"))
    assert check1.passed
    assert suite_results(check1)["ledger_leaves"]["rows"] == first.events
    size1 = ledger_size(home)
    assert first.events and size1 == first.events

    # A bad event in the first delivery (a type outside the documented set).
    con = duckdb.connect(str(home.warehouse))
    con.execute("UPDATE ledger_leaves SET type = 'bogus' WHERE seq = 1")
    con.close()

    second, check2 = run_ingest(instance, make_delivery({"b.csv": rows(12346000, 9)}, delivery_id="D-2"))
    results = suite_results(check2)
    assert check2.passed, check2.metadata["failed_expectations"]
    assert second.events and results["ledger_leaves"]["rows"] == second.events
    assert results["ledger_leaves"]["rows"] != ledger_size(home) == size1 + second.events
    assert results["ledger_leaves"]["seq_range"] == [size1, size1 + second.events - 1]
    assert results["ledger_leaves"]["filters"] == {"of_delivery": size1}  # its delivery leaf and row leaves
    assert results["deliveries"]["rows"] == 1
    count = next(o for o in results["ledger_leaves"]["results"]
                 if o["expectation_type"] == "expect_table_row_count_to_equal")
    assert count["success"] and count["observed_value"] == second.events

    weekly = build_definitions().resolve_job_def("ledger_check").execute_in_process(
        instance=instance, raise_on_error=False
    )
    failure = next(e for e in weekly.all_node_events
                   if e.is_step_failure and e.step_key == "validate_ledger_op")
    error = failure.step_failure_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "ledger_leaves" in message and "expect_column_values_to_be_in_set type" in message
    assert "bogus" not in message  # the value itself is never echoed


def test_the_weekly_job_validates_the_whole_warehouse(home, key, make_delivery) -> None:
    instance = dg.DagsterInstance.ephemeral()
    run_ingest(instance, make_delivery({"a.csv": rows(12345000, 4)}, delivery_id="D-1"))
    run_ingest(instance, make_delivery({"b.csv": rows(12346000, 5)}, delivery_id="D-2"))
    weekly = build_definitions().resolve_job_def("ledger_check").execute_in_process(instance=instance)
    assert weekly.success
    assert weekly.output_for_node("validate_ledger_op") == {"deliveries": 2, "ledger_leaves": ledger_size(home)}


def test_committed_events_outside_the_delivery_fail_the_row_count(home, key, make_delivery) -> None:
    """A seq range that holds another delivery's events (or misses some of this one's)
    is a blocking failure, not a silently smaller batch."""
    a = intake.commit(intake.prepare(make_delivery({"a.csv": rows(12345000, 3)}, delivery_id="D-1"), home, key),
                      home, label="a")
    b = intake.commit(intake.prepare(make_delivery({"b.csv": rows(12346000, 3)}, delivery_id="D-2"), home, key),
                      home, label="b")
    right = stage_checks.appended_seq_range(b.ledger["tree_size"], b.events)
    ok = stage_checks.validate_committed(home.warehouse, b.vendor, "D-2", appended=right, context_root=None)
    assert not stage_checks.failure_summary(ok) and ok[1].rows == b.events

    wrong = (right[0] - 2, right[1])  # two of D-1's leaves inside the range
    bad = stage_checks.validate_committed(home.warehouse, b.vendor, "D-2", appended=wrong, context_root=None)
    failures = stage_checks.failure_summary(bad)
    # the batch is the leaves of the delivery leaf the range starts at: not D-2's count
    assert len(failures) == 1 and failures[0].startswith(
        "ledger_leaves: [blocking] expect_table_row_count_to_equal: failed, observed")
    assert not bad[1].passed and not bad[1].success

    # A duplicate appended nothing: only its delivery row is checked.
    dup = stage_checks.validate_committed(home.warehouse, a.vendor, "D-1", appended=None, context_root=None)
    assert [r.suite for r in dup] == ["deliveries"] and dup[0].rows == 1


def test_appended_seq_range() -> None:
    assert stage_checks.appended_seq_range(10, 4) == (6, 9)
    assert stage_checks.appended_seq_range(10, 0) is None
    assert stage_checks.appended_seq_range(None, 3) is None


def test_seq_range_must_be_ordered(tmp_path) -> None:
    with pytest.raises(ValidationError, match="first <= last"):
        ValidationRequest(tmp_path / "w.duckdb", "ledger_leaves", seq_range=(5, 4))
    with pytest.raises(TypeError):
        validate(ValidationRequest(tmp_path / "w.duckdb", "ledger_leaves"), "deliveries")


def test_an_audit_validates_its_verdicts_and_its_targeted_events(home, key, make_delivery, tmp_path) -> None:
    """validations.json: the ledger_leaves check covers the campaign's targeted events,
    not the ledger the deliveries wrote; a re-audit's checks read the same."""
    from origine.export import audit_bundle

    intake.commit(intake.prepare(make_delivery({"a.csv": rows(12345000, 5)}, delivery_id="D-1"), home, key),
                  home, label="a")
    intake.commit(intake.prepare(make_delivery({"b.csv": rows(12346000, 7)}, delivery_id="D-2"), home, key),
                  home, label="b")
    before = ledger_size(home)
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
        "sent_at": "2024-06-07T18:00:00+02:00", "targets": {"deliveries": ["D-1"]},
    }))
    out = tmp_path / "bundle"
    result, _ = audit_bundle(campaign, home, key, out)
    targeted = ledger_size(home) - before
    assert targeted == result.appended == 5
    checks = {v["suite"]: v for v in json.loads((out / "validations.json").read_text())}
    assert checks["audit_verdicts"]["rows"] == 5 and checks["audit_verdicts"]["passed"]
    assert checks["ledger_leaves"]["rows"] == targeted and checks["ledger_leaves"]["passed"]

    again = tmp_path / "again"
    audit_bundle(campaign, home, key, again)
    assert (again / "validations.json").read_bytes() == (out / "validations.json").read_bytes()


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    pick=st.integers(min_value=0, max_value=5),
    shift=st.integers(min_value=-3, max_value=3),
    quote=st.sampled_from(["D-1", "d'quote", "SC-2024-06-05-001"]),
)
def test_the_batch_is_exactly_the_events_in_range_and_of_the_delivery(sizes, pick, shift, quote) -> None:
    """batch_query with a seq range and delivery filters selects exactly the events with
    first <= seq <= last of that delivery, for any ledger of deliveries appended in turn
    (ids quoted as literals, whatever they hold)."""
    from origine.validation import batch_query

    ids = [f"{quote}{i}" for i in range(len(sizes))]
    con = duckdb.connect()
    con.execute("CREATE TABLE ledger_leaves (seq BIGINT, vendor VARCHAR, delivery_id VARCHAR)")
    seq = 0
    ranges = []
    for delivery_id, n in zip(ids, sizes):
        if n:
            con.executemany("INSERT INTO ledger_leaves VALUES (?, 'acme', ?)",
                            [[seq + i, delivery_id] for i in range(n)])
        ranges.append(stage_checks.appended_seq_range(seq + n, n))
        seq += n
    k = pick % len(sizes)
    if ranges[k] is None:
        return
    first, last = ranges[k][0] + shift, ranges[k][1] + shift
    if first > last or first < 0:
        return
    sql = batch_query(table="ledger_leaves", filters={"vendor": "acme", "delivery_id": ids[k]}, seq_range=(first, last))
    got = sorted(r[0] for r in con.execute(f"SELECT seq FROM ({sql})").fetchall())
    expected = [s for s in range(first, last + 1) if ranges[k][0] <= s <= ranges[k][1]]
    assert got == expected
    assert (len(got) == sizes[k]) == (shift == 0)
