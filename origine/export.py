"""The whole regulator export: audit, checks on its data, evidence, report, signature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from origine import bundle, memory, warehouse
from origine.audit import AuditResult, audit
from origine.home import Home
from origine.keys import HashKey
from origine.report import render_report
from origine.signing import load_signer
from origine.validation import validate


def audit_bundle(
    campaign: Path, home: Home, key: HashKey, out_dir: Path, *, validity_days: int = 1095
) -> tuple[AuditResult, dict[str, Any]]:
    """Run the audit and complete its folder into a signed, self-verifying bundle."""
    result = audit(campaign, home, key, out_dir, validity_days=validity_days)
    summary = result.summary
    validations = _validations(out_dir, home, summary)
    (out_dir / "validations.json").write_text(json.dumps(validations, indent=1, sort_keys=True, default=str) + "\n")
    with warehouse.session(home.warehouse) as con:
        bundle.write_evidence(con, out_dir, summary)
    (out_dir / "report.html").write_text(render_report(summary, validations), encoding="utf-8")
    signer = load_signer(home.keys)
    manifest = bundle.sign_bundle(out_dir, signer)
    return result, manifest


def _validations(out_dir: Path, home: Home, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """GX results behind the data used: the verdicts, and the ledger the audit read."""
    path = str(out_dir / "targets.parquet").replace("'", "''")
    campaign_id = str(summary["campaign_id"]).replace("'", "''")
    con = memory.bound(duckdb.connect())
    try:
        verdicts = validate(
            ":memory:", "audit_verdicts", connection=con, context_root=home.gx,
            query=f"SELECT '{campaign_id}' AS campaign_id, * FROM read_parquet('{path}')",
        )
    finally:
        con.close()
    ledger_result = validate(home.warehouse, "ledger_events", context_root=home.gx)
    # Timestamps and run ids differ per run; the bundle keeps what the checks found.
    keep = ("suite", "passed", "success", "rows", "blocking_failures", "warnings", "errors", "results")
    return [{k: r.to_dict().get(k) for k in keep} for r in (verdicts, ledger_result)]
