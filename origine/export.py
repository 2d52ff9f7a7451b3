"""The whole regulator export: audit, checks on its data, evidence, report, signature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from origine import bundle, faults, memory, warehouse
from origine.audit import AuditResult, audit
from origine.campaign import load_campaign
from origine.home import Home
from origine.keys import HashKey
from origine.report import render_report
from origine.signing import load_signer


def audit_bundle(
    campaign: Path, home: Home, key: HashKey, out_dir: Path, *, validity_days: int = 1095,
    archive: Path | None = None, lang: str | None = None, since: str | None = None,
) -> tuple[AuditResult, dict[str, Any]]:
    """Run the audit and complete its folder into a signed, self-verifying bundle.

    ``out_dir`` must be new, empty, or an earlier bundle of the same campaign (which
    the new one replaces); anything else is refused before the audit appends to the
    ledger (:func:`origine.bundle.check_out_dir`). With ``archive``, the bundle is also
    written there as one zip.
    """
    out_dir = Path(out_dir)
    spec = load_campaign(Path(campaign))
    earlier = bundle.check_out_dir(out_dir, spec.campaign_id, archive=archive)
    result = audit(campaign, home, key, out_dir, validity_days=validity_days)
    summary = result.summary
    validations = _validations(out_dir, home, summary)
    (out_dir / "validations.json").write_text(json.dumps(validations, indent=1, sort_keys=True, default=str) + "\n")
    with warehouse.session(home.warehouse) as con:
        bundle.write_evidence(con, out_dir, summary, since=since)
    faults.pause("bundle.after_evidence")
    # Rendered from the files as written, as `origine verify` renders it again to compare
    # (``lang``: default, the campaign country's language).
    (out_dir / "report.html").write_text(
        render_report(json.loads(result.summary_path.read_text("utf-8")),
                      json.loads((out_dir / "validations.json").read_text()), lang), encoding="utf-8")
    written = sorted({p.relative_to(out_dir).as_posix() for p in result.files}
                     | {"validations.json", "report.html", *bundle.EVIDENCE_FILES})
    for name in set(earlier) - set(written) - {bundle.MANIFEST}:  # what an earlier bundle left behind
        (out_dir / name).unlink(missing_ok=True)
    signer = load_signer(home.keys)
    manifest = bundle.sign_bundle(out_dir, signer, written)
    if archive is not None:
        bundle.zip_bundle(out_dir, archive)
    return result, manifest


def _validations(out_dir: Path, home: Home, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """GX results behind the data used: the verdicts, and the audit's ``targeted`` events
    (not the whole ledger: the weekly ledger check validates that)."""
    from origine.stage_checks import validate_audit  # loads Great Expectations

    results = validate_audit(home.warehouse, out_dir / "targets.parquet", summary["campaign"], context_root=home.gx)
    # Timestamps and run ids differ per run; the bundle keeps what the checks found.
    keep = ("suite", "passed", "success", "rows", "blocking_failures", "warnings", "errors", "results")
    return [{k: r.to_dict().get(k) for k in keep} for r in results]
