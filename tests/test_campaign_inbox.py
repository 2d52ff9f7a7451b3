"""The home's campaigns/ folder keeps no raw number once its specs are audited (issue 17 item 6)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from origine.campaign_inbox import AUDITED, retire_campaign
from pipelines.definitions import build_definitions
from pipelines.resources import OrigineHome
from tests.conftest import TEST_KEY_HEX
from tests.privacy import Scanner
from tests.test_audit import GOOD_MESSAGE, SENT_AT, csv_bytes, ingest, national

A, B, C = "+33612345678", "+33612345679", "+33698765432"


def spec_doc(campaign_id: str, **targets: object) -> dict:
    return {"campaign_id": campaign_id, "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
            "sender": "PARTI-A", "message": GOOD_MESSAGE, "sent_at": SENT_AT, **targets}


def drop(folder: Path, name: str, doc: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "campaigns"
    f.mkdir()
    (f / "targets.csv").write_bytes(csv_bytes("phone", [national(A), national(B)]))
    (f / "report-1.csv").write_bytes(csv_bytes("phone,sent_at,stop_reply_at", [f"{national(A)},{SENT_AT},"]))
    (f / "report-2.csv").write_bytes(csv_bytes("phone,sent_at,stop_reply_at", [f"{national(C)},{SENT_AT},"]))
    return f


def test_a_raw_file_is_kept_while_a_waiting_spec_names_it(folder: Path) -> None:
    one = drop(folder, "one.yaml", spec_doc("ONE", targets={"file": "targets.csv"}, send_report="report-1.csv"))
    two = drop(folder, "two.yaml", spec_doc("TWO", targets={"file": "targets.csv"}, send_report="report-2.csv"))
    done = retire_campaign(one, folder, sha(one))
    assert done.spec == folder / AUDITED / f"one.{sha(done.spec)[:12]}.yaml" and not one.exists()
    assert [p.name for p in done.deleted] == ["report-1.csv"] and [p.name for p in done.kept] == ["targets.csv"]
    done = retire_campaign(two, folder, sha(two))
    assert sorted(p.name for p in done.deleted) == ["report-2.csv", "targets.csv"]
    assert sorted(p.name for p in folder.iterdir()) == [AUDITED]
    assert Scanner([A, B, C]).scan_tree(folder) == []


def test_nothing_moves_for_an_edited_spec_a_spec_elsewhere_or_an_unreadable_waiting_spec(folder: Path,
                                                                                        tmp_path: Path) -> None:
    one = drop(folder, "one.yaml", spec_doc("ONE", targets={"file": "targets.csv"}, send_report="report-1.csv"))
    assert retire_campaign(one, folder, "0" * 64).spec is None and one.exists()  # edited since its audit
    elsewhere = drop(tmp_path, "mine.yaml", spec_doc("MINE", targets={"file": str(folder / "report-2.csv")}))
    assert retire_campaign(elsewhere, folder, sha(elsewhere)).spec is None and elsewhere.exists()
    outside = tmp_path / "outside.csv"
    outside.write_bytes(csv_bytes("phone", [national(C)]))
    (folder / "broken.yaml").write_text("campaign_id: [unclosed\n")
    done = retire_campaign(one, folder, sha(one))
    assert done.spec is not None and done.deleted == []  # the broken spec may name any file
    assert (folder / "targets.csv").exists() and (folder / "report-1.csv").exists()
    (folder / "broken.yaml").unlink()
    three = drop(folder, "three.yaml", spec_doc("THREE", targets={"file": str(outside)}))
    done = retire_campaign(three, folder, sha(three))
    assert done.deleted == [] and outside.exists()  # the user's file outside the home


@pytest.mark.slow
def test_the_campaigns_sensors_audit_leaves_no_raw_number_in_the_home(home, key, make_delivery) -> None:
    """Through Dagster: the raw target list and send reports the sensor's audits read are gone
    once every spec naming them is audited; the specs are kept under campaigns/audited/."""
    ingest(make_delivery({"c.csv": csv_bytes("phone,source,consent_purposes,consent_at,consent_proof",
                                             [f"{national(A)},jeu,propagande électorale,2024-01-10,form-1"])},
                         delivery_id="D-1"), home, key)
    (home.campaigns / "targets.csv").write_bytes(csv_bytes("phone", [national(A), national(B)]))
    (home.campaigns / "report-1.csv").write_bytes(csv_bytes("phone,sent_at,stop_reply_at", [f"{national(A)},{SENT_AT},"]))
    drop(home.campaigns, "one.yaml", spec_doc("ONE", targets={"deliveries": ["D-1"], "file": "targets.csv"},
                                              send_report="report-1.csv"))
    drop(home.campaigns, "two.yaml", spec_doc("TWO", targets={"file": "targets.csv"}))
    resources = {"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)}
    defs = build_definitions()
    from pipelines.sensors import campaigns_sensor

    with dg.instance_for_test() as instance:
        requests = list(campaigns_sensor(dg.build_sensor_context(instance=instance, resources=resources)))
        assert len(requests) == 2
        first = defs.resolve_job_def("campaign_audit").execute_in_process(
            instance=instance, run_config=requests[0].run_config, partition_key=requests[0].partition_key)
        assert first.success
        assert sorted(p.name for p in home.campaigns.iterdir() if p.is_file()) == ["targets.csv", "two.yaml"]
        second = defs.resolve_job_def("campaign_audit").execute_in_process(
            instance=instance, run_config=requests[1].run_config, partition_key=requests[1].partition_key)
        assert second.success
        [audit, _bundle] = second.asset_materializations_for_node("audit_campaign")
        assert audit.metadata["raw_files_deleted"].value == 1
        # nothing left for the sensor, nothing raw left in the folder
        assert list(campaigns_sensor(dg.build_sensor_context(instance=instance, resources=resources))) == []
    assert sorted(p.name for p in (home.campaigns / AUDITED).iterdir()) == sorted(
        p.name for p in (home.campaigns / AUDITED).glob("*.yaml"))
    assert [p.name for p in home.campaigns.iterdir()] == [AUDITED]
    assert Scanner([A, B]).scan_tree(home.root, exclude=["landing"]) == []
    # the access letter still names the sponsors of the campaigns that targeted a number
    from origine.letter import campaign_sponsors

    assert campaign_sponsors(home, ["ONE", "TWO"]) == {"ONE": "Parti A", "TWO": "Parti A"}
