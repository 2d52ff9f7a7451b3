"""Running an audit: a snapshot read, verdicts computed with the warehouse closed, an
append against the snapshot's state (see the package docstring).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from origine import faults, ledger, memory, merkle, warehouse
from origine.audit.claims import CLAIM_MISMATCH, check_claims
from origine.audit.findings import (
    REPORT_EVENTS_SQL,
    message_findings,
    send_report_stats,
    stops_after,
    targeting_findings,
)
from origine.audit.inputs import build_targets, read_send_report, read_target_file, resolve_deliveries
from origine.audit.outputs import (
    atomic_write,
    build_summary,
    refuse_edited_spec,
    stops_in_ledger,
    targeted_count,
    write_stop_leaves,
    write_targeted_leaves,
    write_targets,
)
from origine.audit.rules import DEFAULT_VALIDITY_DAYS, aggregate_events, evaluate, target_events_sql
from origine.campaign import Campaign, load_campaign
from origine.errors import BadInput, OrigineError
from origine.home import Home
from origine.keys import HashKey


# Snapshots read before the audit refuses, when each time the ledger recorded leaves
# about the campaign's numbers before the verdicts could be appended.
SNAPSHOT_ATTEMPTS = 2


@dataclass
class AuditResult:
    """What :func:`audit` produced: the summary (as written) and the bundle's paths."""

    summary: dict[str, Any]
    out_dir: Path
    summary_path: Path
    targets_csv: Path
    targets_parquet: Path
    appended: int = 0  # targeted events appended to the ledger by this run (0 on a re-audit)
    files: list[Path] = field(default_factory=list)
    # Seconds this run held the warehouse open (an ingest in another process waits that long).
    warehouse_seconds: float = 0.0

    def count(self, verdict: str) -> int:
        """Targets with ``verdict``."""
        return int(self.summary["verdicts"].get(verdict, 0))

    def fails_on(self, verdicts: Sequence[str]) -> bool:
        """True when any target has one of ``verdicts`` (for ``--fail-on``)."""
        return any(self.count(v) for v in verdicts)


class LedgerMoved(OrigineError):
    """The ledger recorded leaves about the campaign's numbers (or an erasure or a key
    rotation) between the audit's read and its append, on every attempt: the audit
    recorded nothing and wrote no file (exit 1; run it again)."""


# The snapshot's files (in the audit's work folder).
_TARGETS = "targets.parquet"  # _targets: subject key, invalid, line type

_REPORT_ROWS = "report_rows.parquet"  # _report_rows: the send report's usable rows

_EVENTS = "target_events.parquet"  # what the ledger says of the targets

_REPORT_EVENTS = "report_events.parquet"  # opt-outs and consents of the send report's numbers


@dataclass
class _Snapshot:
    """What the audit read from the warehouse (files under ``work``), and at which state."""

    work: Path
    tree_size: int  # leaves in the ledger when read
    head: ledger.TreeHead | None  # its latest signed tree head then
    claims: list[dict[str, Any]]
    targeted: int  # targeted leaves of this campaign spec already in the ledger
    stops_recorded: bool  # the send report's STOP replies already in the ledger
    held: float  # seconds the warehouse was open


@dataclass
class _Computed:
    """The verdicts' outputs, computed from a snapshot, not yet published."""

    summary: dict[str, Any]
    pending: list[tuple[Path, Path]]  # (written, final name) of targets.parquet and .csv
    targeted_leaves: Path
    targeted_count: int  # 0 when the ledger already holds this spec's targeted leaves
    stop_leaves: Path
    stop_count: int  # 0 when there is no send report or its STOPs are recorded

    def publish(self) -> None:
        """Give the written target files their names."""
        for written, final in self.pending:
            os.replace(written, final)

    def discard(self) -> None:
        """Remove the written target files (the audit records nothing)."""
        for written, _ in self.pending:
            written.unlink(missing_ok=True)


def audit(
    campaign_path: Path,
    home: Home,
    key: HashKey,
    out_dir: Path,
    *,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
) -> AuditResult:
    """Audit the campaign at ``campaign_path`` against ``home``'s ledger; write the bundle.

    The warehouse is open only while :func:`_snapshot` reads (read-only) and while
    :func:`_record` appends; see the module docstring. :class:`LedgerMoved` when the
    ledger kept recording leaves about the campaign's numbers meanwhile.
    """
    if isinstance(validity_days, bool) or not isinstance(validity_days, int) or validity_days <= 0:
        raise BadInput("the consent validity must be a positive number of days", column="validity_days")
    campaign = load_campaign(Path(campaign_path))
    home.ensure()
    # The heavy Python part (reading and hashing numbers) runs before opening the warehouse.
    file_targets, file_stats = read_target_file(campaign, key) if campaign.target_file else (None, None)
    report, report_stats = read_send_report(campaign, key) if campaign.send_report else (None, None)
    digest = None
    if campaign.send_report is not None:
        from origine.manifest import sha256_file

        digest, _ = sha256_file(campaign.send_report)
    out_dir = Path(out_dir)
    home.scratch.mkdir(parents=True, exist_ok=True)
    # Named like a segment's partial folder: what a killed audit leaves (hashed keys,
    # never numbers) is removed by `intake.sweep_dead_partials`.
    work = Path(tempfile.mkdtemp(prefix=f"audit.partial-{os.getpid()}-", dir=home.scratch))
    held = 0.0
    try:
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            snap = _snapshot(home, campaign, key, file_targets, report, digest, work)
            held += snap.held
            stats = dict(report_stats) if report_stats is not None else None
            computed = _compute(snap, campaign, key, validity_days, file_stats, stats, digest, out_dir)
            try:
                appended, recorded, stops, head, seconds = _record(home, campaign, key, snap, computed)
            except LedgerMoved as moved:
                computed.discard()
                if attempt == SNAPSHOT_ATTEMPTS:
                    raise LedgerMoved(
                        f"{moved} on each of {SNAPSHOT_ATTEMPTS} attempts: the audit recorded nothing; "
                        "run it again once those writes are done"
                    ) from None
                continue
            except BaseException:
                computed.discard()
                raise
            held += seconds
            break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = computed.summary
    if stats is not None:
        stats["opted_out_recorded"] = stops
    summary["targeted_events"] = recorded
    summary["ledger"] = ({"tree_size": head.tree_size, "root_hash": head.root_hash, "checkpoint": head.checkpoint}
                         if head else {"tree_size": 0, "root_hash": merkle.EMPTY_ROOT.hex()})
    computed.publish()
    (parquet_path, _), (csv_path, _) = [(final, written) for written, final in computed.pending]
    summary_path = out_dir / "summary.json"
    atomic_write(summary_path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return AuditResult(
        summary=summary,
        out_dir=out_dir,
        summary_path=summary_path,
        targets_csv=csv_path,
        targets_parquet=parquet_path,
        appended=appended,
        files=[summary_path, csv_path, parquet_path],
        warehouse_seconds=held,
    )


def _snapshot(
    home: Home,
    campaign: Campaign,
    key: HashKey,
    file_targets: pa.Table | None,
    report: pa.Table | None,
    digest: str | None,
    work: Path,
) -> _Snapshot:
    """Read what the verdicts need into Parquet files under ``work``, in one read-only
    session: the targets, what the ledger says of them (through ``ledger_current_of``),
    the send report's numbers' opt-outs and consents, the vendor claims measured; and
    the ledger's size and head the verdicts will be appended against."""
    for left in work.iterdir():  # an earlier attempt's files
        left.unlink()
    with warehouse.session(home.warehouse, read_only=True) as con:
        opened = time.monotonic()
        warehouse.check_key_readonly(con, key.key_id)
        refuse_edited_spec(con, campaign)
        refs = resolve_deliveries(con, campaign)
        build_targets(con, campaign, refs, file_targets, report)
        _copy(con, "SELECT * FROM _targets", work / _TARGETS)
        _copy(con, "SELECT * FROM _report_rows", work / _REPORT_ROWS)
        _copy(con, target_events_sql("_target_keys"), work / _EVENTS)
        _copy(con, REPORT_EVENTS_SQL, work / _REPORT_EVENTS,
              {"channel": campaign.channel, "purpose": campaign.purpose})
        if refs:
            deliveries = sorted(set(refs))
        else:  # a target file: the deliveries its targets came from, by the send
            deliveries = sorted((str(v), str(d)) for v, d in con.execute(
                f"SELECT DISTINCT vendor, delivery_id FROM read_parquet('{warehouse.sql_text(work / _EVENTS)}') "
                "WHERE type = 'delivered' AND \"at\" <= ? AND vendor IS NOT NULL AND delivery_id IS NOT NULL",
                [campaign.sent_at],
            ).fetchall())
        claims = check_claims(con, deliveries)
        targeted = targeted_count(con, campaign)
        stops_recorded = digest is not None and stops_in_ledger(con, campaign, digest)
        # Nothing changes the warehouse while this session reads it (a writer in another
        # process waits): the size and head read last are those of every read above.
        tree_size = ledger.tree_size(con)
        head = ledger.latest_head(con)
        held = time.monotonic() - opened
    return _Snapshot(work=work, tree_size=tree_size, head=head, claims=claims, targeted=targeted,
                     stops_recorded=stops_recorded, held=held)


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path, params: dict[str, Any] | None = None) -> None:
    # Snappy (DuckDB's default), not zstd: these files live for one audit, and writing
    # them is most of the time the warehouse is held (zstd: ~25% slower at 5M events).
    con.execute(f"COPY ({select}) TO '{warehouse.sql_text(path)}' (FORMAT parquet)", params)


def _local_db(work: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB of the audit's own (in memory, spilling under ``work``), UTC, bounded."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    memory.bound(con)
    con.execute(f"SET temp_directory = '{warehouse.sql_text(work / 'spill')}'")
    con.execute("SET preserve_insertion_order = true")
    return con


def _compute(
    snap: _Snapshot,
    campaign: Campaign,
    key: HashKey,
    validity_days: int,
    file_stats: dict[str, Any] | None,
    report_stats: dict[str, Any] | None,
    digest: str | None,
    out_dir: Path,
) -> _Computed:
    """Verdicts, findings and summary from the snapshot's files, the warehouse closed;
    the target files written under temporary names, the leaves to append prepared."""
    faults.pause("audit.verdicts")
    con = _local_db(snap.work)
    try:
        for view, name in (("_targets", _TARGETS), ("_report_rows", _REPORT_ROWS), ("_ev", _REPORT_EVENTS)):
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{warehouse.sql_text(snap.work / name)}')")
        aggregate_events(con, campaign, f"read_parquet('{warehouse.sql_text(snap.work / _EVENTS)}')")
        evaluate(con, campaign, validity_days)
        con.execute("DROP TABLE _per")
        findings = message_findings(campaign) + targeting_findings(campaign)
        if report_stats is not None:
            report_stats.update(send_report_stats(con, campaign))
            after_stop = stops_after(con, campaign)
            if after_stop:
                findings.append(after_stop)
        findings.extend(
            {"code": CLAIM_MISMATCH, "vendor": c["vendor"], "delivery_id": c["delivery_id"],
             "claim": c["claim"], "claimed": c["claimed"], "measured": c["measured"]}
            for c in snap.claims if c["ok"] is False
        )
        summary = build_summary(con, campaign, validity_days, findings, snap.claims, file_stats, report_stats, 0)
        out_dir.mkdir(parents=True, exist_ok=True)
        pending = write_targets(con, out_dir)
        con.execute("DROP TABLE _verdicts")  # its memory goes to the leaves
        targeted_leaves, stop_leaves = snap.work / "targeted-leaves.parquet", snap.work / "stop-leaves.parquet"
        try:
            targeted = 0 if snap.targeted else write_targeted_leaves(con, campaign, key, targeted_leaves)
            stops = (write_stop_leaves(con, campaign, key, digest, stop_leaves)
                     if digest is not None and not snap.stops_recorded else 0)
        except BaseException:
            for written, _ in pending:
                written.unlink(missing_ok=True)
            raise
    finally:
        con.close()
    return _Computed(summary=summary, pending=pending, targeted_leaves=targeted_leaves, targeted_count=targeted,
                     stop_leaves=stop_leaves, stop_count=stops)


def _record(
    home: Home, campaign: Campaign, key: HashKey, snap: _Snapshot, computed: _Computed
) -> tuple[int, int, int, ledger.TreeHead | None, float]:
    """Append the ``targeted`` leaves (once per campaign spec bytes) and the STOP replies
    (once per send report bytes), against the state the verdicts were computed from.

    Returns ``(targeted appended now, targeted leaves of this spec in the ledger, STOP
    leaves appended now, the head to prove the bundle against, seconds the warehouse was
    open)``. Nothing to append (a re-audit): the warehouse is not opened, the head is
    the snapshot's. :class:`LedgerMoved` when leaves appended since the snapshot concern
    the campaign (see :func:`_moved_since`).
    """
    if not computed.targeted_count and not computed.stop_count:
        return 0, snap.targeted, 0, snap.head, 0.0
    from origine.signing import load_signer

    with warehouse.session(home.warehouse) as con:
        opened = time.monotonic()
        # Another spec under this campaign id may have been audited meanwhile.
        refuse_edited_spec(con, campaign)
        moved = _moved_since(con, snap)
        if moved:
            raise LedgerMoved(f"the ledger recorded {moved} leaves about this campaign's numbers (or an erasure "
                              "or a key rotation) while the audit computed its verdicts")
        signer = load_signer(home.keys)  # every checkpoint is signed, the audit's too
        appended, recorded = 0, snap.targeted
        if computed.targeted_count:
            with warehouse.transaction(con):
                recorded = targeted_count(con, campaign)
                if not recorded:  # else another run got there first
                    warehouse.check_key(con, key.key_id)
                    ledger.append_events(con, computed.targeted_leaves, reason=f"campaign {campaign.campaign_id}",
                                         scratch=home.scratch, signer=signer)
                    appended = recorded = computed.targeted_count
        stops = 0
        if computed.stop_count:
            assert campaign.send_report is not None
            from origine.manifest import sha256_file

            digest, _ = sha256_file(campaign.send_report)
            with warehouse.transaction(con):
                if not stops_in_ledger(con, campaign, digest):  # else another run got there first
                    warehouse.check_key(con, key.key_id)
                    ledger.append_events(con, computed.stop_leaves,
                                         reason=f"stop replies of campaign {campaign.campaign_id}",
                                         scratch=home.scratch, signer=signer)
                    stops = computed.stop_count
        head = ledger.latest_head(con)
        return appended, recorded, stops, head, time.monotonic() - opened


def _moved_since(con: duckdb.DuckDBPyConnection, snap: _Snapshot) -> int:
    """How many leaves appended since ``snap`` concern the audit: about one of its
    subject keys (targets and send report numbers, under their current key), or an
    erasure or key map (they change what earlier leaves say). Other ``targeted`` leaves
    and leaves about other numbers change no verdict. A ledger that shrank, or whose
    head at the same size differs, counts as moved (its history was rewritten)."""
    size = ledger.tree_size(con)
    if size == snap.tree_size:
        head = ledger.latest_head(con)
        same = (head.root_hash if head else None) == (snap.head.root_hash if snap.head else None)
        return 0 if same else 1
    if size < snap.tree_size:
        return snap.tree_size - size
    targets = warehouse.sql_text(snap.work / _TARGETS)
    report = warehouse.sql_text(snap.work / _REPORT_ROWS)
    # Leaves are stored in seq order: the seq filter skips the older row groups.
    return int(con.execute(
        f"""
        WITH new AS (SELECT "type", subject_key FROM ledger_leaves WHERE seq >= $size),
        about AS (
            SELECT subject_key FROM new WHERE subject_key IS NOT NULL AND "type" <> 'targeted'
            UNION
            SELECT m.current_key FROM subject_key_map m JOIN new n USING (subject_key) WHERE n."type" <> 'targeted'
        )
        SELECT (SELECT count(*) FROM new WHERE "type" IN ('erased', 'key_map'))
             + (SELECT count(*) FROM (SELECT subject_key FROM read_parquet('{targets}')
                                      UNION SELECT subject_key FROM read_parquet('{report}'))
                WHERE subject_key IN (SELECT subject_key FROM about))
        """,
        {"size": snap.tree_size},
    ).fetchone()[0])  # type: ignore[index]
