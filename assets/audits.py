"""Campaign audits as assets, one dynamic partition per campaign spec: the audit (verdict
counts, findings) and the signed bundle it writes, checked by ``bundle_verifies``."""

from pathlib import Path
from typing import Any, Optional

import dagster as dg

from assets.privacy import errors_scrubbed
from origine.audit import DEFAULT_VALIDITY_DAYS, VERDICTS
from pipelines.resources import OrigineHome

# One partition per campaign spec, named by the spec's file stem (its bundles live under
# bundles/<stem>/<run id>/), registered by the campaigns sensor.
campaigns_partitions = dg.DynamicPartitionsDefinition(name="campaigns")

CAMPAIGN_AUDIT = dg.AssetKey("campaign_audit")
CAMPAIGN_BUNDLE = dg.AssetKey("campaign_bundle")


class CampaignAuditConfig(dg.Config):
    """The campaign spec to audit, how long a consent stays valid, and where the bundle goes
    (as ``origine audit``'s options)."""

    path: str
    validity_days: int = DEFAULT_VALIDITY_DAYS
    # the bundle folder (--out); default bundles/<spec stem>/<run id> in the home
    out: Optional[str] = None
    zip: bool = False  # also DIR.zip beside the folder (--zip)
    lang: Optional[str] = None  # report.html's language (--lang); default the campaign country's
    since: Optional[str] = None  # a checkpoint file the bundle proves consistency from (--since)
    # move a spec of the home's campaigns/ to audited/ and delete its raw number files; the
    # CLI says no: the user may audit a spec of the inbox by hand and still read it after
    retire: bool = True


def campaign_run_config(path: str) -> dict:
    """Run config pointing the campaign audit at one spec."""
    return {"ops": {"audit_campaign": {"config": {"path": path}}}}


@dg.multi_asset(
    # the step is named apart from the campaign_audit job: Dagster refuses a job and a
    # graph of the same name when it loads the code location
    name="audit_campaign",
    specs=[
        dg.AssetSpec(CAMPAIGN_AUDIT, partitions_def=campaigns_partitions, group_name="campaigns",
                     description="A campaign's audit: a verdict per target, appended to the ledger."),
        dg.AssetSpec(CAMPAIGN_BUNDLE, deps=[CAMPAIGN_AUDIT], partitions_def=campaigns_partitions,
                     group_name="campaigns", kinds={"zip"},
                     description="The audit's signed, self-verifying evidence bundle."),
    ],
    check_specs=[dg.AssetCheckSpec("bundle_verifies", asset=CAMPAIGN_BUNDLE)],
    # No `warehouse` pool: the step holds its slot for the whole audit and bundle (minutes
    # at millions of targets), so every commit waited for it; the audit takes the
    # warehouse's own lock for its append only, and an ingest commits meanwhile
    # (tests/test_bundle.py::test_an_ingest_started_while_an_audit_writes_its_bundle...).
    #
    # Subsettable only so a run can leave the check out: the two assets are one step (see the body).
    can_subset=True,
)
def campaign_audit(context: dg.AssetExecutionContext, config: CampaignAuditConfig, origine: OrigineHome):
    """Audit one campaign into a signed bundle in ``config.out`` (``origine audit`` runs this
    asset), by default under ``bundles/<spec>/<run id>``, then, unless the run leaves the check
    out, verify the bundle as a regulator would (``origine verify``).

    A spec from the home's ``campaigns/`` folder then moves to ``campaigns/audited/`` and
    the raw target and send-report files it named there are deleted (``origine.campaign_inbox``),
    unless ``config.retire`` is false.
    """
    from origine.bundle import archive_path
    from origine.campaign_inbox import Retired, retire_campaign
    from origine.export import audit_bundle

    if set(context.selected_asset_keys) != {CAMPAIGN_AUDIT, CAMPAIGN_BUNDLE}:
        # refused before the ledger records anything: the audit writes its bundle
        raise dg.Failure("campaign_audit and campaign_bundle are materialized together: select both")
    home, key = origine.get_home(), origine.get_key()
    spec = Path(config.path)
    out_dir = Path(config.out) if config.out else home.bundles / spec.stem / context.run_id
    with errors_scrubbed(key, _region(spec)):  # a target file or send report named after a number
        archive = archive_path(out_dir) if config.zip else None
        note = read_checkpoint(Path(config.since)) if config.since else None
        result, manifest = audit_bundle(spec, home, key, out_dir, validity_days=config.validity_days,
                                        archive=archive, lang=config.lang, since=note)
    s = result.summary
    retired = retire_campaign(spec, home.campaigns, s["campaign"]["file_sha256"]) if config.retire else Retired()
    context.log.info(f"campaign {s['campaign_id']}: {s['targets']} targets audited; bundle {out_dir}")
    if retired.spec is not None:
        context.log.info(f"spec moved to {retired.spec}; {len(retired.deleted)} raw number file(s) deleted, "
                         f"{len(retired.kept)} kept for specs still waiting")
    yield dg.MaterializeResult(asset_key=CAMPAIGN_AUDIT, metadata={
        "campaign_id": s["campaign_id"],
        "targets": s["targets"],
        **{verdict: int(s["verdicts"].get(verdict, 0)) for verdict in VERDICTS},
        "reasons": dg.MetadataValue.json({k: v for k, v in s["reasons"].items() if v}),
        "findings": findings_table(s["findings"]),
        "tree_size": s["ledger"]["tree_size"],
        "root_hash": s["ledger"]["root_hash"],
        "raw_files_deleted": len(retired.deleted),
        "raw_files_kept": len(retired.kept),
    })
    yield dg.MaterializeResult(asset_key=CAMPAIGN_BUNDLE, metadata={
        "bundle": dg.MetadataValue.path(str(out_dir)),
        "signer": manifest["signer"],
    })
    # a run may leave the check out (the CLI's: `origine verify` is the user's own step,
    # and verifying costs about twice the audit)
    if context.selected_asset_check_keys:
        yield bundle_verifies(out_dir, home.keys)


def _region(spec: Path) -> str:
    """The campaign's country, which reads its numbers; FR when the spec does not load (the
    audit then fails on it, naming it)."""
    from origine.campaign import load_campaign
    from origine.errors import OrigineError

    try:
        return load_campaign(spec).country
    except OrigineError:
        return "FR"


def read_checkpoint(path: Path) -> str:
    """The text of a checkpoint file the regulator holds (``--since``); BadInput when unreadable."""
    from origine.errors import BadInput

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise BadInput("unreadable checkpoint (not UTF-8 text)", file=str(path), column="--since") from None


def bundle_verifies(bundle: Path, keys: Path) -> dg.AssetCheckResult:
    """The ``bundle_verifies`` check: the bundle verifies offline with the home's public
    key, as a regulator would check it (``origine verify``)."""
    from origine.bundle import verify_bundle

    verification = verify_bundle(bundle, home_keys=keys)
    return dg.AssetCheckResult(
        asset_key=CAMPAIGN_BUNDLE, check_name="bundle_verifies", passed=verification.ok,
        severity=dg.AssetCheckSeverity.ERROR, description=verification.statement(),
    )


def findings_table(findings: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """The audit's findings per code, as a table (codes and counts only: a finding's
    details may name targets)."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[str(f.get("code", ""))] = counts.get(str(f.get("code", "")), 0) + 1
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"code": c, "findings": n}) for c, n in sorted(counts.items())],
        schema=dg.TableSchema(columns=[dg.TableColumn("code", "string"), dg.TableColumn("findings", "int")]),
    )
