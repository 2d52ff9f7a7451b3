"""The campaigns folder sensor and the nightly re-validation of consents about to expire.

The plain functions (``scan_campaigns``, ``expiring_consents``) are tested directly; the
Dagster wiring with ``build_sensor_context`` and ``execute_in_process`` on a test instance.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from origine import warehouse
from origine.campaign import scan_campaigns
from origine.consents import expiring_consents
from pipelines.definitions import build_definitions
from pipelines.resources import OrigineHome
from tests.conftest import TEST_KEY_HEX, raw_forms
from tests.test_audit import GOOD_MESSAGE, SENT_AT, add_events, csv_bytes, ingest, national

AS_OF = datetime(2024, 6, 7, tzinfo=timezone.utc)
VALIDITY = 1095
A, B, C, D, E = "+33612345678", "+33612345679", "+33612345670", "+33612345671", "+33612345672"


def day(offset_from_expiry: int) -> str:
    """A consent date whose validity ends ``offset_from_expiry`` days after AS_OF."""
    return (AS_OF - timedelta(days=VALIDITY) + timedelta(days=offset_from_expiry)).strftime("%Y-%m-%d")


@pytest.fixture
def consents_home(home, key, make_delivery):
    rows = [
        f"{national(A)},jeu,propagande électorale|prospection commerciale,{day(10)}",  # both expire in 10 days
        f"{national(B)},jeu,propagande électorale,{day(400)}",  # valid for more than a year
        f"{national(C)},jeu,propagande électorale,{day(-5)}",  # expired 5 days ago
        f"{national(D)},jeu,propagande électorale,{day(20)}",  # expiring, but withdrawn below
        f"{national(E)},jeu,j'accepte de partager mes données,{day(5)}",  # bundled: consent for nothing
    ]
    ingest(make_delivery({"c.csv": csv_bytes("phone,source,consent_purposes,consent_at", rows)}), home, key)
    add_events(home, [{
        "type": "consent_withdrawn", "subject_key": key.subject_key(D), "key_id": key.key_id,
        "purpose": "political.electoral", "at": AS_OF - timedelta(days=30), "origin": "dpo-request",
        "evidence_kind": "suppression", "file": "dpo.csv", "file_sha256": "0" * 64, "row": 1,
    }])
    return home


def test_expiring_consents_follow_the_audit_rule(consents_home, key) -> None:
    with warehouse.session(consents_home.warehouse, read_only=True) as con:
        result = expiring_consents(con, as_of=AS_OF, within_days=30, validity_days=VALIDITY)
        wider = expiring_consents(con, as_of=AS_OF, within_days=500, validity_days=VALIDITY)
        longer = expiring_consents(con, as_of=AS_OF, within_days=30, validity_days=VALIDITY + 365)
    rows = result.table.to_pylist()
    assert {(r["subject_key"], r["purpose"]) for r in rows} == {
        (key.subject_key(A), "political.electoral"), (key.subject_key(A), "marketing.commercial"),
    }
    assert all(r["expires_at"] - r["granted_at"] == timedelta(days=VALIDITY) for r in rows)
    assert result.counts()["by_purpose"] == {"marketing.commercial": 1, "political.electoral": 1}
    assert (result.consents, result.subjects) == (2, 1)
    assert wider.by_purpose == {"marketing.commercial": 1, "political.electoral": 2}  # + B
    assert longer.consents == 0  # a longer validity pushes A's expiry out of the window


def test_expiring_consents_on_an_empty_warehouse() -> None:
    result = expiring_consents(duckdb.connect(), as_of=AS_OF)
    assert result.counts()["consents_expiring"] == 0 and result.by_purpose == {}
    with pytest.raises(ValueError):
        expiring_consents(duckdb.connect(), as_of=AS_OF.replace(tzinfo=None))


def test_consent_revalidation_job_records_counts_not_keys(consents_home, key) -> None:
    defs = build_definitions()
    assert defs.resolve_schedule_def("consent_revalidation_schedule").cron_schedule == "0 3 * * *"
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("consent_revalidation").execute_in_process(
            instance=instance,
            run_config={"ops": {"expiring_consents_op": {"config": {"within_days": 500, "as_of": AS_OF.isoformat()}}}},
        )
        assert result.success
        [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = output.event_specific_data.metadata
        assert metadata["by_purpose"].value == {"marketing.commercial": 1, "political.electoral": 2}
        assert metadata["subjects_expiring"].value == 2  # A and B; C expired, D withdrawn, E bundled
        listing = Path(metadata["list"].value)
        assert listing.parent == consents_home.reports and listing.exists()
        logs = " ".join(str(e.message) + str(e.dagster_event) for e in instance.all_logs(result.run_id))
        for e164 in (A, B):
            assert key.subject_key(e164) not in logs
            assert not any(form.decode() in logs for form in raw_forms(e164))


def test_scan_campaigns_skips_partial_and_non_specs(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    for name in ("b.yaml", "a.yml", ".c.yaml", "d.yaml.partial", "numbers.csv"):
        (folder / name).write_text("x")
    (folder / "sub.yaml").mkdir()
    found = scan_campaigns(folder)
    assert [f.path.name for f in found] == ["a.yml", "b.yaml"]
    before = found[1].run_key
    (folder / "b.yaml").write_text("xy")
    assert scan_campaigns(folder)[1].run_key != before  # an edited spec is audited again
    assert scan_campaigns(tmp_path / "missing") == []


@pytest.mark.slow
def test_campaigns_sensor_requests_an_audit_that_writes_a_bundle(home, key, make_delivery) -> None:
    rows = [f"{national(A)},jeu,propagande électorale,2024-01-10,form-1"]
    ingest(make_delivery({"c.csv": csv_bytes("phone,source,consent_purposes,consent_at,consent_proof", rows)},
                         delivery_id="D-1"), home, key)
    spec = {
        "campaign_id": "EU24-SMS-01", "sponsor": "Parti A", "channel": "sms",
        "purpose": "political.electoral", "sender": "PARTI-A", "message": GOOD_MESSAGE,
        "sent_at": SENT_AT, "targeting": {"age": "18-35"}, "targets": {"deliveries": ["D-1"]},
    }
    (home.campaigns / "eu24.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (home.campaigns / "next.yaml.partial").write_text("still copying")
    resources = {"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)}
    defs = build_definitions()
    assert defs.resolve_sensor_def("campaigns_sensor") is not None
    with dg.instance_for_test() as instance:
        from pipelines.sensors import campaigns_sensor

        [request] = list(campaigns_sensor(dg.build_sensor_context(instance=instance, resources=resources)))
        assert request.run_config["ops"]["audit_campaign"]["config"]["path"].endswith("eu24.yaml")
        assert request.partition_key == "eu24"
        assert instance.get_dynamic_partitions("campaigns") == ["eu24"]
        result = defs.resolve_job_def("campaign_audit").execute_in_process(
            instance=instance, run_config=request.run_config, partition_key=request.partition_key
        )
        assert result.success
        [audit] = result.asset_materializations_for_node("audit_campaign")[:1]
        [bundle_mat] = result.asset_materializations_for_node("audit_campaign")[1:]
        assert (audit.asset_key.path, bundle_mat.asset_key.path) == (["campaign_audit"], ["campaign_bundle"])
        assert audit.partition == "eu24"
        bundle = Path(bundle_mat.metadata["bundle"].value)
        assert bundle.parent == home.bundles / "eu24" and (bundle / "manifest.json").exists()
        metadata = audit.metadata
        assert metadata["compliant"].value == 1 and metadata["tree_size"].value > 0
        [check] = result.get_asset_check_evaluations()
        assert check.check_name == "bundle_verifies" and check.passed
        # the check fails on a bundle edited after signing
        from assets.audits import bundle_verifies

        report = bundle / "report.html"
        report.write_bytes(report.read_bytes() + b"<!-- edited -->")
        assert not bundle_verifies(bundle, home.keys).passed
        logs = " ".join(str(e.message) for e in instance.all_logs(result.run_id))
        assert key.subject_key(A) not in logs
