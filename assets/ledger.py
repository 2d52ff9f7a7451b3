"""The ledger as an asset: each materialization records the ledger's latest signed
C2SP checkpoint; its check proves, proportionally, that the ledger still extends it.

The whole-ledger recompute (every leaf, node and head) stays the weekly ``ledger_check``
job; the check here costs a signature and one consistency proof (O(log n) nodes).
"""


from typing import Any, Optional

import dagster as dg

from assets.audits import CAMPAIGN_AUDIT
from assets.ingest import warehouse_delivery
from assets.suppressions import suppression_list
from origine import ledger, merkle, signing, warehouse
from pipelines.resources import OrigineHome

LEDGER = dg.AssetKey("ledger")


@dg.asset(
    deps=[warehouse_delivery, suppression_list, CAMPAIGN_AUDIT],
    group_name="ledger",
    kinds={"duckdb"},
    pool="warehouse",
    automation_condition=dg.AutomationCondition.eager(),
    name="ledger",
)
def ledger_asset(context: dg.AssetExecutionContext, origine: OrigineHome) -> dg.MaterializeResult:
    """The ledger as of its latest signed checkpoint: tree size, root hash, origin and
    the checkpoint's note text (what a regulator keeps to check the ledger later)."""
    home = origine.get_home()
    head = None
    if home.warehouse.exists():
        with warehouse.session(home.warehouse, read_only=True) as con:
            head = ledger.latest_head(con)
    previous = _materialized_checkpoint(context.instance)
    metadata: dict[str, Any] = {
        "tree_size": head.tree_size if head else 0,
        "root_hash": head.root_hash if head else "",
        "origin": head.origin if head else "",
        "checkpoint": dg.MetadataValue.text(head.checkpoint if head else ""),
        "recorded_at": head.recorded_at if head else "",
        "reason": head.reason if head else "",
        # kept so the check can prove this checkpoint extends the one before it
        "previous_checkpoint": dg.MetadataValue.text(previous or ""),
    }
    context.log.info(f"ledger checkpoint: tree size {metadata['tree_size']}")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=ledger_asset, blocking=False)
def ledger_consistent(context: dg.AssetCheckExecutionContext, origine: OrigineHome) -> dg.AssetCheckResult:
    """The previously materialized checkpoint, the last materialized one and the
    warehouse's latest head each verify with the operator's key, each extends the one
    before it by an RFC 9162 consistency proof, and the stored tree has the latest root."""
    home = origine.get_home()
    event = context.instance.get_latest_materialization_event(LEDGER)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    chain = [_text(meta.get("previous_checkpoint")), _text(meta.get("checkpoint"))]
    if not home.warehouse.exists():
        ok = not any(chain)
        return dg.AssetCheckResult(passed=ok, description="no warehouse" + ("" if ok else ", yet a checkpoint"))
    with warehouse.session(home.warehouse, read_only=True) as con:
        public = signing.home_public_key(home.keys)
        head = ledger.latest_head(con)
        notes = [n for n in [*chain, head.checkpoint if head else ""] if n]
        problems = _check_chain(con, notes, public)
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) if problems else "the ledger extends its last checkpoint",
        metadata={"checkpoints_checked": len(notes), "tree_size": head.tree_size if head else 0},
    )


def _check_chain(con: Any, notes: list[str], public: Any) -> list[str]:
    """What is wrong with a sequence of signed checkpoints, oldest first (empty: nothing)."""
    problems: list[str] = []
    checkpoints = []
    for note in notes:
        try:
            checkpoints.append(ledger.verify_checkpoint(note, public))
        except ValueError as exc:
            problems.append(f"a checkpoint does not verify with the operator's key ({exc})")
    if problems or not checkpoints:
        return problems
    for old, new in zip(checkpoints, checkpoints[1:]):
        if old.origin != new.origin:
            problems.append(f"checkpoint of ledger {new.origin} follows one of {old.origin}")
        elif old.size > new.size:
            problems.append(f"the ledger shrank from {old.size} to {new.size} events")
        elif old.size and not merkle.verify_consistency(
            old.size, new.size, old.root, new.root, ledger.consistency(con, old.size, new.size)
        ):
            problems.append(f"no consistency proof from size {old.size} to size {new.size}")
    last = checkpoints[-1]
    if ledger.roots_at(con, [last.size]).get(last.size) != last.root and last.size:
        problems.append(f"the stored tree at size {last.size} has another root than its checkpoint")
    return problems


def _materialized_checkpoint(instance: dg.DagsterInstance) -> Optional[str]:
    event = instance.get_latest_materialization_event(LEDGER)
    if event is None or event.asset_materialization is None:
        return None
    return _text(event.asset_materialization.metadata.get("checkpoint")) or None


def _text(value: Any) -> str:
    return str(getattr(value, "value", value) or "") if value is not None else ""
