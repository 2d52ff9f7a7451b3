"""`origine suppress` and `origine audit` run the pipeline's assets (issue 19): each is a real
run of the home's Dagster instance materializing suppression_list / campaign_audit and
campaign_bundle, in the partition the sensors would use, with the CLI's output and exit
statuses as when the commands called the domain directly."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pipelines.cli import main
from origine.freetext import tel_token
from pipelines import runs
from tests.privacy import Scanner, assert_no_raw_number
from tests.test_cli import TARGETS, campaign_folder  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

IN_NAME = "+33611223399"  # the good suppression file's name holds it
IN_BAD_NAME = "+33622334455"  # the refused one's
ROW = "+33612345678"


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _runs(home) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        return list(reversed(instance.get_runs()))


def test_suppress_is_a_run_of_suppression_list_and_keeps_numbers_in_names_out_of_dagster(home, key,
                                                                                      tmp_path) -> None:
    # "..." and a number in the name: the partition is the scrubbed name, "..." spelled apart
    good = tmp_path / "stop...0611223399.csv"
    good.write_text("phone;at\n06 12 34 56 78;07/06/2024 18:03\n", encoding="utf-8")
    result = cli("suppress", str(good), "--channel", "sms", "--origin", "stop-reply", "--json",
                 "--home", str(home.root))
    assert result.exit_code == 0, result.stderr
    [report] = json.loads(result.stdout)
    stored = f"stop...{tel_token(IN_NAME, key)}.csv"
    assert report["file"] == stored and report["rows_accepted"] == 1 and report["duplicate"] is False
    partition = stored.replace("...", "._.")

    bad = tmp_path / "dpo 06 22 33 44 55.csv"
    bad.write_text("numero;canal\n06 12 34 56 78;sms\n", encoding="utf-8")
    refused = cli("suppress", str(bad), "--home", str(home.root))
    assert refused.exit_code == 2
    # one line naming the file as the user gave it (not the link the run read it through)
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"origine: error: {bad}, ") and "Traceback" not in refused.output

    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        done, failed = reversed(instance.get_runs())
        assert (done.job_name, done.status, done.tags["origine/source"]) == (
            "suppressions_job", dg.DagsterRunStatus.SUCCESS, "cli")
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert instance.get_dynamic_partitions("suppression_files") == [
            partition, f"dpo {tel_token(IN_BAD_NAME, key)}.csv"]
        [event] = instance.fetch_materializations(dg.AssetKey("suppression_list"), limit=5).records
        assert event.partition_key == partition
        assert event.asset_materialization.metadata["rows_accepted"].value == 1
    # the run config, partition keys, tags and error events in Dagster's storage, the ledger:
    # no number of a file's name, nor of its rows
    assert_no_raw_number(Scanner([IN_NAME, IN_BAD_NAME, ROW]).scan_tree(home.root))
    assert not list(home.scratch.iterdir())  # the links are gone


def test_audit_is_a_run_of_the_campaign_assets_and_leaves_the_inbox_alone(home, key, campaign_folder,
                                                                         tmp_path) -> None:
    # the spec in the home's inbox: a sensor run would retire it; a hand run leaves it
    for f in campaign_folder.iterdir():
        shutil.copy(f, home.campaigns / f.name)
    spec, out = home.campaigns / "campaign.yaml", tmp_path / "out"
    result = cli("audit", str(spec), "--out", str(out), "--zip", "--json", "--fail-on", "unverifiable",
                 "--home", str(home.root))
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["targets"] == len(TARGETS)
    assert result.exit_code == (1 if summary["verdicts"].get("unverifiable") else 0), result.stderr
    assert sorted(p.name for p in home.campaigns.iterdir()) == ["campaign.yaml", "report.csv", "targets.csv"]
    assert tmp_path.joinpath("out.zip").is_file()

    text = cli("audit", str(spec), "--out", str(out), "--home", str(home.root))  # a re-audit, as text
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[0].startswith(f"campaign EU24: {len(TARGETS)} targets")
    assert text.stdout.splitlines()[-1].startswith(f"bundle {out} signed by ")

    (out / "notes.txt").write_text("mine")
    refused = cli("audit", str(spec), "--out", str(out), "--home", str(home.root))
    assert refused.exit_code == 2 and "not part of an origine bundle" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.output

    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        runs_ = list(reversed(instance.get_runs()))
        assert [(r.job_name, r.status) for r in runs_] == [
            ("campaign_audit", dg.DagsterRunStatus.SUCCESS), ("campaign_audit", dg.DagsterRunStatus.SUCCESS),
            ("campaign_audit", dg.DagsterRunStatus.FAILURE)]
        assert instance.get_dynamic_partitions("campaigns") == ["campaign"]
        for asset in ("campaign_audit", "campaign_bundle"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=5).records
            assert [r.partition_key for r in records] == ["campaign", "campaign"]
        [audited, _] = instance.fetch_materializations(dg.AssetKey("campaign_audit"), limit=5).records
        assert audited.asset_materialization.metadata["targets"].value == len(TARGETS)
        # the check is left out of CLI runs: `origine verify` is the user's step
        check = dg.AssetCheckKey(dg.AssetKey("campaign_bundle"), "bundle_verifies")
        assert not instance.event_log_storage.get_asset_check_execution_history(check, limit=5)


def test_a_bad_send_report_named_after_a_number_is_named_as_given_and_scrubbed_in_dagster(
        home, key, make_delivery, tmp_path) -> None:
    """The audit's error names the send report by its path; through a run, the step's error
    put "0622334455" in Dagster's event log and run storage."""
    from tests.test_file_names_privacy import REPORT_NUMBER, TARGET_NUMBER, _campaign, _deliver

    _deliver(home, key, make_delivery)
    spec = _campaign(tmp_path / "campaign")
    report = tmp_path / "campaign" / "0622334455.csv"
    report.write_text("phone;sent_at;reponse;date reponse\n06 12 34 56 78;not a date;STOP;07/06/2024 18:03\n",
                      encoding="utf-8")
    result = cli("audit", str(spec), "--out", str(tmp_path / "out"), "--home", str(home.root))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"origine: error: {report}, row 1, column 'sent_at': ")
    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE
        [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        assert f"{tel_token(REPORT_NUMBER, key)}.csv, row 1" in failure.dagster_event.step_failure_data.error.cause.message
    assert_no_raw_number(Scanner([REPORT_NUMBER, TARGET_NUMBER, ROW]).scan_tree(home.root))


def test_an_unreadable_since_is_bad_input_before_the_ledger(home, key, campaign_folder, tmp_path) -> None:
    held = tmp_path / "held.bin"
    held.write_bytes(b"\xff\xfe not a checkpoint")
    result = cli("audit", str(campaign_folder / "campaign.yaml"), "--out", str(tmp_path / "o"),
                 "--since", str(held), "--home", str(home.root))
    assert result.exit_code == 2
    assert result.stderr == f"origine: error: {held}, column '--since': unreadable checkpoint (not UTF-8 text)\n"
    assert not (tmp_path / "o").exists()


def test_the_two_campaign_assets_are_materialized_together(home, key, campaign_folder) -> None:
    """can_subset lets a run leave the check out; one asset alone is refused before the audit."""
    from pipelines.definitions import build_definitions

    job = build_definitions().resolve_job_def("campaign_audit")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("campaigns", ["campaign"])
        result = job.execute_in_process(
            run_config={"ops": {"audit_campaign": {"config": {"path": str(campaign_folder / "campaign.yaml")}}}},
            instance=instance, partition_key="campaign", asset_selection=[dg.AssetKey("campaign_audit")],
            raise_on_error=False)
    assert not result.success
    assert "select both" in str(runs._run_error(result, campaign_folder))
    assert not home.bundles.exists() or not any(home.bundles.iterdir())


def test_every_origine_error_keeps_its_class_and_exit_status_through_a_run() -> None:
    """Only four classes were rebuilt from a failed run: an audit's LedgerMoved (exit 1, "run it
    again") or a ValidationError (exit 2) came back as "internal error in step ..."."""
    from origine.audit import LedgerMoved
    from origine.validation.errors import SuiteError

    for cls, code in ((LedgerMoved, 1), (SuiteError, 2)):
        @dg.op(name=f"raises_{cls.__name__}")
        def raises() -> None:
            raise cls("the message")  # noqa: B023 (run at once)

        result = dg.GraphDefinition(name="g", node_defs=[raises]).to_job().execute_in_process(raise_on_error=False)
        exc = runs._run_error(result, "x")
        assert (type(exc), exc.exit_code, str(exc)) == (cls, code, "the message")


@given(st.text(alphabet=st.characters(blacklist_characters="/\0"), max_size=60))
def test_a_file_name_is_always_a_valid_partition_key(name: str) -> None:
    key = runs.file_partition_key(name)
    dg.StaticPartitionsDefinition([key])  # refuses what Dagster takes for a range, or a control character
    assert key and (key == name or not name.isprintable() or "..." in name or not name)
