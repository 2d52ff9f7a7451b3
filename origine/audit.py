"""The campaign audit: a verdict per target, findings per campaign, and the bundle files.

Given a campaign spec (:mod:`origine.campaign`) and the warehouse, :func:`audit`
decides for every target, at the campaign's ``sent_at``, whether the send was
``compliant``, ``non_compliant`` or ``unverifiable``, with every reason that
applies, and checks the campaign itself (sender, opt-out, targeting, send report,
vendor claims). It records one ``targeted`` event per target in the ledger (once
per campaign spec bytes) and writes ``summary.json``, ``targets.csv`` and
``targets.parquet`` into the output folder.

All per-target work is SQL over DuckDB: one semi-join scan of ``ledger_events`` on
the targets' subject keys, then aggregates over the (small) matching events. No
Python loop ever runs over the ledger.

The warehouse is held only to read and to append, so an ingest in another process
waits seconds, not the whole audit: one read-only session copies the targets and
their events into Parquet files (a snapshot of the ledger at one tree size), the
verdicts are computed over those files in a DuckDB of the audit's own, and the
warehouse is opened for writing only to append the ``targeted`` leaves. The append
is made against the state the verdicts come from: leaves appended in between about
the campaign's numbers (or an erasure or a key rotation) make the audit read a fresh
snapshot and compute again, once; if the ledger moved again it refuses
(:class:`LedgerMoved`). Leaves about other numbers change no verdict and are let be.

Rules (reason -> verdict), evaluated at ``sent_at`` ("before" means at or before):

=========================  ============  ==================================================
reason                     verdict       when
=========================  ============  ==================================================
NO_PROVENANCE              non_compliant no delivery holding the number was delivered before
                                         the send (a sender who cannot say where a number
                                         came from cannot show consent either)
INVALID_NUMBER             non_compliant a target-file value that is not a valid number
PURPOSE_NOT_CONSENTED      non_compliant no consent for the campaign's purpose at all (a
                                         bundled or other-purpose consent does not count)
CONSENT_AFTER_SEND         non_compliant consent for the purpose exists, only dated after
CONSENT_UNDATED            unverifiable  consent for the purpose exists, but without a date
                                         (and none dated before the send)
CONSENT_EXPIRED            non_compliant the latest valid consent is older than the window
OPTED_OUT                  non_compliant an opt-out for the channel or ``all`` before the send
                                         (any origin), or the purpose's consent withdrawn
                                         after its grant and before the send
WRONG_LINE_TYPE            non_compliant SMS to a line that is not mobile (or
                                         fixed_line_or_mobile); voice to pager/unknown
TRANSFER_NOT_CONSENTED     non_compliant a ``transferred`` hop in the chain of custody (from
                                         deliveries received before the send) without a
                                         valid ``transfer.third_party`` consent before it
NO_CONSENT_PROOF           unverifiable  no consent relied on (valid, within the window)
                                         carries a proof
=========================  ============  ==================================================

A target is ``non_compliant`` if any of its reasons is, else ``unverifiable`` if it
has any reason, else ``compliant``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from origine import faults, fastphone, ledger, memory, merkle, warehouse
from origine.campaign import Campaign, DeliveryRef, load_campaign
from origine.dates import TS, UnreadableDate, parse_instant
from origine.errors import BadInput, OrigineError
from origine.freetext import describe_columns, scrub_text
from origine.home import Home
from origine.keys import HashKey
from origine.profiles import column_key, default_profile
from origine.purposes import BUNDLED, default_purposes, fold
from origine.readers import open_records
from origine.special_categories import special_category

DEFAULT_VALIDITY_DAYS = 1095
TRANSFER_PURPOSE = "transfer.third_party"

COMPLIANT = "compliant"
NON_COMPLIANT = "non_compliant"
UNVERIFIABLE = "unverifiable"
VERDICTS = (COMPLIANT, NON_COMPLIANT, UNVERIFIABLE)

# Reason code -> verdict it forces; the order is the order reasons are listed in.
RULES: dict[str, str] = {
    "NO_PROVENANCE": NON_COMPLIANT,
    "INVALID_NUMBER": NON_COMPLIANT,
    "PURPOSE_NOT_CONSENTED": NON_COMPLIANT,
    "CONSENT_AFTER_SEND": NON_COMPLIANT,
    "CONSENT_UNDATED": UNVERIFIABLE,
    "CONSENT_EXPIRED": NON_COMPLIANT,
    "OPTED_OUT": NON_COMPLIANT,
    "WRONG_LINE_TYPE": NON_COMPLIANT,
    "TRANSFER_NOT_CONSENTED": NON_COMPLIANT,
    "NO_CONSENT_PROOF": UNVERIFIABLE,
}
REASONS = tuple(RULES)

# Campaign findings.
NO_SENDER_ID = "NO_SENDER_ID"
NO_OPT_OUT_IN_MESSAGE = "NO_OPT_OUT_IN_MESSAGE"
SPECIAL_CATEGORY_TARGETING = "SPECIAL_CATEGORY_TARGETING"
CONTACTED_AFTER_STOP = "CONTACTED_AFTER_STOP"
CLAIM_MISMATCH = "CLAIM_MISMATCH"

SMS_LINE_TYPES = ("mobile", "fixed_line_or_mobile")
VOICE_BAD_LINE_TYPES = ("pager", "unknown")
# |claimed - measured| up to this is a matching consent rate (half a percentage point).
CONSENT_RATE_TOLERANCE = 0.005
# Subject keys listed in a finding, at most (the count is always complete).
MAX_KEYS_IN_FINDING = 100
_DIGIT_RUN = re.compile(r"\d[\d .\-()/]{5,}\d")
# Snapshots read before the audit refuses, when each time the ledger recorded leaves
# about the campaign's numbers before the verdicts could be appended.
SNAPSHOT_ATTEMPTS = 2

TARGETS_SCHEMA = pa.schema(
    [
        ("subject_key", pa.string()),
        ("verdict", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("sources", pa.list_(pa.string())),
        ("vendors", pa.list_(pa.string())),
        ("delivery_ids", pa.list_(pa.string())),
        ("consent_at", TS),
        ("line_type", pa.string()),
    ]
)


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
    file_targets, file_stats = _read_target_file(campaign, key) if campaign.target_file else (None, None)
    report, report_stats = _read_send_report(campaign, key) if campaign.send_report else (None, None)
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
    _atomic_write(summary_path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
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
        refs = _resolve_deliveries(con, campaign)
        _build_targets(con, campaign, refs, file_targets, report)
        _copy(con, "SELECT * FROM _targets", work / _TARGETS)
        _copy(con, "SELECT * FROM _report_rows", work / _REPORT_ROWS)
        _copy(con, _target_events_sql("_target_keys"), work / _EVENTS)
        _copy(con, _REPORT_EVENTS_SQL, work / _REPORT_EVENTS,
              {"channel": campaign.channel, "purpose": campaign.purpose})
        if refs:
            deliveries = sorted(set(refs))
        else:  # a target file: the deliveries its targets came from, by the send
            deliveries = sorted((str(v), str(d)) for v, d in con.execute(
                f"SELECT DISTINCT vendor, delivery_id FROM read_parquet('{warehouse.sql_text(work / _EVENTS)}') "
                "WHERE type = 'delivered' AND \"at\" <= ? AND vendor IS NOT NULL AND delivery_id IS NOT NULL",
                [campaign.sent_at],
            ).fetchall())
        claims = _claims(con, deliveries)
        targeted = _targeted_count(con, campaign)
        stops_recorded = digest is not None and _stops_recorded(con, campaign, digest)
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
        _aggregate_events(con, campaign, f"read_parquet('{warehouse.sql_text(snap.work / _EVENTS)}')")
        _evaluate(con, campaign, validity_days)
        con.execute("DROP TABLE _per")
        findings = _message_findings(campaign) + _targeting_findings(campaign)
        if report_stats is not None:
            report_stats.update(_send_report_stats(con, campaign))
            after_stop = _stops_after(con, campaign)
            if after_stop:
                findings.append(after_stop)
        findings.extend(
            {"code": CLAIM_MISMATCH, "vendor": c["vendor"], "delivery_id": c["delivery_id"],
             "claim": c["claim"], "claimed": c["claimed"], "measured": c["measured"]}
            for c in snap.claims if c["ok"] is False
        )
        summary = _summary(con, campaign, validity_days, findings, snap.claims, file_stats, report_stats, 0)
        out_dir.mkdir(parents=True, exist_ok=True)
        pending = _write_targets(con, out_dir)
        con.execute("DROP TABLE _verdicts")  # its memory goes to the leaves
        targeted_leaves, stop_leaves = snap.work / "targeted-leaves.parquet", snap.work / "stop-leaves.parquet"
        try:
            targeted = 0 if snap.targeted else _write_targeted_leaves(con, campaign, key, targeted_leaves)
            stops = (_write_stop_leaves(con, campaign, key, digest, stop_leaves)
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
                recorded = _targeted_count(con, campaign)
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
                if not _stops_recorded(con, campaign, digest):  # else another run got there first
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


# ---------------------------------------------------------------- reading the campaign's files


def _phone_column(columns: list[str], name: str) -> str:
    mapping = default_profile("campaign").map_columns(columns, name)
    if "phone" not in mapping:
        raise BadInput(
            f"required column missing (found: {describe_columns(columns)})", file=name, column="phone"
        )
    return mapping["phone"]


def _read_rows(path: Path, wanted: dict[str, tuple[str, ...]]) -> tuple[str, dict[str, str | None], list[Any]]:
    """Rows of a campaign file as tuples of the wanted columns (``phone`` first)."""
    name = str(path)
    shape, records = open_records(path, name)
    columns: dict[str, str | None] | None = None
    rows: list[Any] = []
    for record in records:
        if columns is None:
            columns = _match_columns(shape.columns, name, wanted)
        if record.values is None:
            raise BadInput("row does not split into the header's columns", file=name, row=record.row)
        values = record.values
        rows.append((record.row, *(values.get(c) if c else None for c in columns.values())))
    if columns is None:  # no data rows: the header must still be right
        columns = _match_columns(shape.columns, name, wanted)
    return name, columns, rows


def _match_columns(columns: list[str], name: str, wanted: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {"phone": _phone_column(columns, name)}
    for canonical, aliases in wanted.items():
        keys = {column_key(canonical), *(column_key(a) for a in aliases)}
        found[canonical] = next((c for c in columns if column_key(c) in keys), None)
    return found


def _normalize(values: list[Any], region: str) -> pa.Table:
    """``phones.normalize`` over a column (:func:`fastphone.normalize_batch` gives the same, faster)."""
    return fastphone.normalize_batch(values, region)


def _stored_name(path: Path, key: HashKey, region: str) -> str:
    """``path``'s name as stored (summary, ledger): a file named after a number
    (``0612345678.csv``) would carry it there, so its numbers become tokens."""
    return scrub_text(path.name, key, region).text


def _read_target_file(campaign: Campaign, key: HashKey) -> tuple[pa.Table, dict[str, Any]]:
    assert campaign.target_file is not None
    _, _, rows = _read_rows(campaign.target_file, {})
    phones_ = [r[1] for r in rows]
    norm = _normalize(phones_, campaign.country)
    e164 = norm.column("e164").to_pylist()
    valid = norm.column("valid").to_pylist()
    line_type = norm.column("line_type").to_pylist()
    reason = norm.column("reason").to_pylist()
    keys: list[str | None] = []
    invalid: list[bool] = []
    lines: list[str | None] = []
    blank = unparseable = bad = 0
    for e, v, lt, why in zip(e164, valid, line_type, reason):
        if why == "PHONE_MISSING":
            blank += 1
            continue
        if not v:
            bad += 1
            if e is None:
                unparseable += 1
        keys.append(key.subject_key(e) if e is not None else None)
        invalid.append(not v)
        lines.append(lt)
    table = pa.table(
        {"subject_key": pa.array(keys, pa.string()), "invalid": pa.array(invalid, pa.bool_()),
         "line_type": pa.array(lines, pa.string())}
    )
    stats = {
        "file": _stored_name(campaign.target_file, key, campaign.country),
        "rows": len(rows),
        "blank_rows": blank,
        "invalid_numbers": bad,
        "unparseable_numbers": unparseable,
    }
    return table, stats


def _read_send_report(campaign: Campaign, key: HashKey) -> tuple[pa.Table, dict[str, Any]]:
    """The send report's usable rows: subject key, send time, STOP time, row number.

    A row's STOP time is its ``stop_reply_at``; else, when its reply text is a STOP
    (:mod:`origine.replies`), its ``replied_at``; else its send time (a reply answers
    a send, so it came after it). Dates without an offset are in the campaign's zone.
    """
    from origine.replies import START, STOP, classify_reply

    assert campaign.send_report is not None
    wanted = {
        "sent_at": ("sent", "date envoi", "envoye le", "sent date"),
        "stop_reply_at": ("stop_at", "stop reply", "stop", "date stop", "stop date", "reponse stop"),
        "reply": ("reply_text", "reply text", "reponse", "texte reponse", "message recu", "sms recu"),
        "replied_at": ("reply_at", "replied", "date reponse", "repondu le", "reponse le"),
    }
    name, columns, rows = _read_rows(campaign.send_report, wanted)
    norm = _normalize([r[1] for r in rows], campaign.country)
    e164 = norm.column("e164").to_pylist()
    valid = norm.column("valid").to_pylist()
    tz = campaign.tzinfo
    keys: list[str] = []
    sent: list[Any] = []
    stop: list[Any] = []
    numbers: list[int] = []
    unusable = stops = resubscribes = 0
    for (row, _phone, sent_raw, stop_raw, reply_raw, replied_raw), e, v in zip(rows, e164, valid):
        if not v or e is None:
            unusable += 1
            continue
        when: list[Any] = []
        for column, raw in (("sent_at", sent_raw), ("stop_reply_at", stop_raw), ("replied_at", replied_raw)):
            try:
                when.append(parse_instant(raw, tz))
            except UnreadableDate as exc:
                raise BadInput(str(exc), file=name, row=row, column=columns[column]) from None
        sent_at = when[0] or campaign.sent_at
        stop_at = when[1]
        reply = classify_reply(reply_raw)
        if stop_at is None and reply == STOP:
            stop_at = when[2] or sent_at
        stops += stop_at is not None
        resubscribes += reply == START
        keys.append(key.subject_key(e))
        sent.append(sent_at)
        stop.append(stop_at)
        numbers.append(row)
    table = pa.table(
        {"subject_key": pa.array(keys, pa.string()), "sent_at": pa.array(sent, TS),
         "stop_reply_at": pa.array(stop, TS), "row": pa.array(numbers, pa.int64())}
    )
    return table, {"file": _stored_name(campaign.send_report, key, campaign.country), "rows": len(rows), "unusable_rows": unusable,
                   "stop_replies": stops, "resubscribe_replies": resubscribes}


# ---------------------------------------------------------------- targets and their events


def _resolve_deliveries(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> list[tuple[str, str]]:
    """``(vendor, delivery_id)`` of each targeted delivery; unknown or ambiguous ids are bad input."""
    out: list[tuple[str, str]] = []
    for i, ref in enumerate(campaign.deliveries, 1):
        found = _lookup_delivery(con, ref)
        column = f"targets.deliveries[{i}]"
        if not found:
            raise BadInput(f"no delivery {ref.label()!r} in the warehouse (ingest it first)",
                           file=str(campaign.path), column=column)
        if len(found) > 1:
            vendors = ", ".join(v for v, _ in found)
            raise BadInput(f"delivery id {ref.delivery_id!r} exists for several vendors ({vendors}): "
                           "write it as vendor/delivery_id", file=str(campaign.path), column=column)
        if found[0] not in out:
            out.append(found[0])
    return out


def _lookup_delivery(con: duckdb.DuckDBPyConnection, ref: DeliveryRef) -> list[tuple[str, str]]:
    if ref.vendor is not None:
        rows = con.execute("SELECT vendor, delivery_id FROM deliveries WHERE vendor = ? AND delivery_id = ?",
                           [ref.vendor, ref.delivery_id]).fetchall()
    else:
        rows = con.execute("SELECT vendor, delivery_id FROM deliveries WHERE delivery_id = ? ORDER BY vendor",
                           [ref.delivery_id]).fetchall()
    return [(str(v), str(d)) for v, d in rows]


def _build_targets(
    con: duckdb.DuckDBPyConnection,
    campaign: Campaign,
    refs: list[tuple[str, str]],
    file_targets: pa.Table | None,
    report: pa.Table | None,
) -> None:
    """``_targets``: one row per distinct subject key (plus one per unparseable file value)."""
    con.register("_refs", pa.table({"vendor": [v for v, _ in refs], "delivery_id": [d for _, d in refs]},
                                   schema=pa.schema([("vendor", pa.string()), ("delivery_id", pa.string())])))
    con.register("_file", file_targets if file_targets is not None else
                 pa.table({"subject_key": pa.array([], pa.string()), "invalid": pa.array([], pa.bool_()),
                           "line_type": pa.array([], pa.string())}))
    con.register("_report", report if report is not None else
                 pa.table({"subject_key": pa.array([], pa.string()), "sent_at": pa.array([], TS),
                           "stop_reply_at": pa.array([], TS), "row": pa.array([], pa.int64())}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _targets AS
        WITH d AS (
            SELECT subject_key, min(line_type) AS line_type
            FROM delivery_rows JOIN _refs USING (vendor, delivery_id)
            GROUP BY subject_key
        ), f AS (
            SELECT subject_key, bool_or(invalid) AS invalid, min(line_type) AS line_type
            FROM _file WHERE subject_key IS NOT NULL GROUP BY subject_key
        )
        SELECT subject_key, coalesce(f.invalid, false) AS invalid,
               CASE WHEN f.subject_key IS NOT NULL THEN f.line_type ELSE d.line_type END AS line_type
        FROM d FULL OUTER JOIN f USING (subject_key)
        UNION ALL
        SELECT NULL, true, NULL FROM _file WHERE subject_key IS NULL
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE _report_rows AS SELECT * FROM _report")
    con.execute("CREATE OR REPLACE TEMP TABLE _target_keys AS "
                "SELECT subject_key FROM _targets WHERE subject_key IS NOT NULL")
    for name in ("_refs", "_file", "_report"):
        con.unregister(name)


def _target_events_sql(keys: str) -> str:
    """The targets' live events (one semi-join scan of ``ledger_events`` on the keys in
    table ``keys``, through the rotation map), with the columns the verdicts read."""
    # Apart from the aggregate, not in one statement: with the type filters beside it,
    # DuckDB 2.0 plans the map join of a rotated ledger badly (47M events, 1M targets:
    # 22 s, against 7 s so).
    return f"""
        SELECT subject_key, vendor, delivery_id, type, "at", purpose, bundled, channel, proof, source
        FROM ledger_current_of('{keys}')
        WHERE erased_at IS NULL
    """


def _collect_events(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """``_per`` from the ledger on ``con`` for the keys in ``_target_keys`` (the
    verifier's path: its DuckDB holds the cited leaves; the audit reads the same
    events into its snapshot instead, :func:`_snapshot`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _target_events AS {_target_events_sql('_target_keys')}")
    _aggregate_events(con, campaign, "_target_events")
    con.execute("DROP TABLE _target_events")


def _aggregate_events(con: duckdb.DuckDBPyConnection, campaign: Campaign, events: str) -> None:
    """``_per``: what the ledger says of each target, per (subject, vendor, delivery).

    ``events`` is a relation of the targets' events (:func:`_target_events_sql`'s
    columns), aggregated per (subject key, vendor, delivery id): events from a delivery
    share its evidence, and events of other origins (suppression lists, DPO requests)
    form their own group.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _per AS
        SELECT subject_key, vendor, delivery_id,
               bool_or(type = 'delivered' AND "at" <= $ts) AS delivered_before,
               string_agg(replace(source, chr(31), ' '), chr(31)) FILTER (WHERE type = 'collected' AND source IS NOT NULL) AS sources,
               bool_or(type = 'transferred') AS transferred,
               max("at") FILTER (WHERE type = 'consent_granted' AND purpose = $purpose AND "at" <= $ts) AS g,
               max("at") FILTER (WHERE type = 'consent_granted' AND purpose = $purpose AND "at" <= $ts
                                   AND proof IS NOT NULL) AS g_proof,
               min("at") FILTER (WHERE type = 'consent_granted' AND purpose = $purpose AND "at" > $ts) AS g_after,
               bool_or(type = 'consent_granted' AND purpose = $purpose AND "at" IS NULL) AS g_undated,
               max("at") FILTER (WHERE type = 'consent_withdrawn' AND purpose = $purpose AND "at" <= $ts) AS w,
               max("at") FILTER (WHERE type = 'consent_granted' AND purpose = $transfer AND "at" <= $ts) AS tg,
               max("at") FILTER (WHERE type = 'consent_withdrawn' AND purpose = $transfer AND "at" <= $ts) AS tw,
               bool_or(type = 'opted_out' AND "at" <= $ts) AS opted_out
        FROM {events}
        WHERE (type IN ('collected', 'transferred', 'delivered')
               OR (type = 'opted_out' AND channel IN ($channel, 'all'))
               OR (type = 'consent_granted' AND purpose IN ($purpose, $transfer) AND NOT coalesce(bundled, false))
               OR (type = 'consent_withdrawn' AND purpose IN ($purpose, $transfer)))
        GROUP BY subject_key, vendor, delivery_id
        """,
        {"ts": campaign.sent_at, "channel": campaign.channel, "purpose": campaign.purpose,
         "transfer": TRANSFER_PURPOSE},
    )


def _evaluate(con: duckdb.DuckDBPyConnection, campaign: Campaign, validity_days: int) -> None:
    """``_verdicts``: every target with its reasons, verdict and provenance.

    Per subject: the latest grant for the purpose at or before the send counts when
    no withdrawal came at or after it (so does a consent's proof, judged on the
    latest grant that has one); a delivery is provenance when it was delivered by
    the send; its collection sources and transfers count from then on.
    """
    if campaign.channel == "sms":
        wrong_line = f"coalesce(t.line_type, 'unknown') NOT IN {_sql_tuple(SMS_LINE_TYPES)}"
    elif campaign.channel == "voice":
        wrong_line = f"coalesce(t.line_type, 'unknown') IN {_sql_tuple(VOICE_BAD_LINE_TYPES)}"
    else:
        wrong_line = "false"
    non_compliant = _sql_list([r for r, v in RULES.items() if v == NON_COMPLIANT])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _verdicts AS
        WITH s AS (
            SELECT subject_key,
                   bool_or(delivered_before) AS known,
                   -- lists travel as unit-separated text: far cheaper to aggregate than lists
                   string_agg(sources, chr(31)) FILTER (WHERE delivered_before) AS sources_text,
                   string_agg(vendor || '/' || delivery_id, chr(31)) FILTER (WHERE delivered_before) AS deliveries_text,
                   bool_or(transferred AND delivered_before) AS transferred,
                   max(g) AS g, max(g_proof) AS g_proof, min(g_after) AS g_after, bool_or(g_undated) AS g_undated,
                   max(w) AS w, max(tg) AS tg, max(tw) AS tw, bool_or(opted_out) AS opted_out
            FROM _per GROUP BY subject_key
        ), c AS (
            SELECT *,
                   list_sort(list_distinct(string_split(sources_text, chr(31)))) AS sources,
                   list_sort(list_distinct(string_split(deliveries_text, chr(31)))) AS delivery_ids,
                   CASE WHEN g IS NOT NULL AND (w IS NULL OR g > w) THEN g END AS valid_at,
                   g IS NOT NULL AND w IS NOT NULL AND w >= g AS withdrawn,
                   g_proof IS NOT NULL AND (w IS NULL OR g_proof > w) AND g_proof >= $ts - to_days($days) AS proof,
                   tg IS NOT NULL AND (tw IS NULL OR tg > tw) AS transfer_consented
            FROM s
        ), j AS (
            SELECT t.subject_key, t.invalid, t.line_type,
                   coalesce(c.known, false) AS known, c.sources, c.delivery_ids,
                   list_sort(list_distinct(list_transform(c.delivery_ids, lambda d: split_part(d, '/', 1))))
                       AS vendors,
                   coalesce(c.transferred, false) AS transferred,
                   c.valid_at IS NOT NULL AS consented,
                   CASE WHEN c.valid_at >= $ts - to_days($days) THEN c.valid_at END AS fresh_at,
                   c.valid_at, c.g_after AS first_after,
                   coalesce(c.withdrawn, false) AS withdrawn,
                   coalesce(c.g_undated, false) AS undated,
                   coalesce(c.proof, false) AS proof,
                   coalesce(c.transfer_consented, false) AS transfer_consented,
                   coalesce(c.opted_out, false) AS opted_out,
                   {wrong_line} AND NOT t.invalid AS wrong_line
            FROM _targets t LEFT JOIN c ON c.subject_key = t.subject_key
        ), r AS (
            SELECT *, list_filter([
                CASE WHEN NOT known THEN 'NO_PROVENANCE' END,
                CASE WHEN invalid THEN 'INVALID_NUMBER' END,
                CASE WHEN NOT consented AND NOT withdrawn AND first_after IS NULL AND NOT undated
                     THEN 'PURPOSE_NOT_CONSENTED' END,
                CASE WHEN NOT consented AND NOT withdrawn AND first_after IS NOT NULL THEN 'CONSENT_AFTER_SEND' END,
                CASE WHEN NOT consented AND NOT withdrawn AND undated THEN 'CONSENT_UNDATED' END,
                CASE WHEN consented AND fresh_at IS NULL THEN 'CONSENT_EXPIRED' END,
                CASE WHEN opted_out OR withdrawn THEN 'OPTED_OUT' END,
                CASE WHEN wrong_line THEN 'WRONG_LINE_TYPE' END,
                CASE WHEN transferred AND NOT transfer_consented THEN 'TRANSFER_NOT_CONSENTED' END,
                CASE WHEN fresh_at IS NOT NULL AND NOT proof THEN 'NO_CONSENT_PROOF' END
            ], lambda x: x IS NOT NULL) AS reasons
            FROM j
        )
        SELECT subject_key,
               CASE WHEN len(list_intersect(reasons, {non_compliant})) > 0 THEN '{NON_COMPLIANT}'
                    WHEN len(reasons) > 0 THEN '{UNVERIFIABLE}' ELSE '{COMPLIANT}' END AS verdict,
               reasons,
               coalesce(sources, []::VARCHAR[]) AS sources,
               coalesce(vendors, []::VARCHAR[]) AS vendors,
               coalesce(delivery_ids, []::VARCHAR[]) AS delivery_ids,
               coalesce(fresh_at, valid_at, first_after) AS consent_at,
               line_type
        FROM r
        """,
        {"ts": campaign.sent_at, "days": validity_days},
    )


def _sql_tuple(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _sql_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# ---------------------------------------------------------------- campaign findings


def _words(text: str) -> str:
    """Folded words (case, accents, punctuation ignored), space-padded for whole-word search."""
    return " " + " ".join(fold(text).replace(".", " ").split()) + " "


_OPT_OUT = re.compile(
    r"\bstop\s+(?:(?:au|to|at|a|on|par sms au|sms au)\s+)?\d(?:\s?[\dx]){3,}\b"  # STOP 36789, STOP au 36xxx
    r"|\bstop\s+sms\b"  # Stop SMS
    r"|\b(?:repondez|repondre|repondant|envoyez|envoyer|tapez|reply|text|send|txt)\s+stop\b"
    r"|\b(?:unsubscribe|unsubscribing|desinscription|desinscrire|desinscrivez|desabonnement|desabonner"
    r"|desabonnez|opt\s?out|optout)\b"
)


def has_opt_out(message: str) -> bool:
    """True when the message carries a STOP code or an opt-out / unsubscribe link (fr, en)."""
    return bool(_OPT_OUT.search(_words(message)))


def names_sender(message: str, names: Sequence[str]) -> bool:
    """True when the message names one of ``names`` (whole words, folded)."""
    words = _words(message)
    return any(_words(n).strip() and _words(n) in words for n in names)


def _message_findings(campaign: Campaign) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not campaign.sender.strip():
        out.append({"code": NO_SENDER_ID, "detail": "the campaign declares no sender"})
    elif not names_sender(campaign.message, [campaign.sender, campaign.sponsor]):
        out.append({"code": NO_SENDER_ID, "detail": "the message names neither the sender nor the sponsor"})
    if not has_opt_out(campaign.message):
        out.append({"code": NO_OPT_OUT_IN_MESSAGE,
                    "detail": "no STOP code, opt-out or unsubscribe link in the message"})
    return out


def _targeting_findings(campaign: Campaign) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for criterion in campaign.targeting:
        hits = [("criterion", special_category(criterion.name))]
        hits += [("value", special_category(v)) for v in criterion.values]
        for where, category in hits:
            if category and (criterion.name, category, where) not in seen:
                seen.add((criterion.name, category, where))
                out.append({"code": SPECIAL_CATEGORY_TARGETING, "criterion": scrub(criterion.name),
                            "category": category, "matched_in": where})
    return out


def scrub(text: str) -> str:
    """``text`` with any run of digits long enough to be a phone number masked."""
    return _DIGIT_RUN.sub("[digits]", text)


def _send_report_stats(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> dict[str, Any]:
    numbers, not_targeted = con.execute(
        """SELECT count(DISTINCT subject_key),
                  count(DISTINCT subject_key) FILTER (WHERE subject_key NOT IN
                      (SELECT subject_key FROM _targets WHERE subject_key IS NOT NULL))
           FROM _report_rows"""
    ).fetchone()  # type: ignore[misc]
    return {"numbers": int(numbers), "not_targeted": int(not_targeted)}


# The send report's numbers' opt-outs (the campaign's channel or all) and consents
# and withdrawals for its purpose (parameters $channel, $purpose): ``_ev``.
_REPORT_EVENTS_SQL = """
    SELECT type, subject_key, "at", purpose FROM ledger_current_of('_report_rows')
    WHERE erased_at IS NULL
      AND ((type = 'opted_out' AND channel IN ($channel, 'all'))
           OR (type = 'consent_granted' AND purpose = $purpose AND NOT coalesce(bundled, false))
           OR (type = 'consent_withdrawn' AND purpose = $purpose))
"""


def _stops_after(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> dict[str, Any] | None:
    """The CONTACTED_AFTER_STOP finding from ``_report_rows`` and their events ``_ev``:
    numbers sent to after their STOP reply or an opt-out (or withdrawal) in the ledger."""
    rows = con.execute(
        """
        WITH stops AS (
            SELECT subject_key, min(stop_reply_at) AS stop_at FROM _report_rows GROUP BY subject_key
        ), per_send AS (
            SELECT r.subject_key, r.sent_at, s.stop_at,
                   (SELECT min("at") FROM _ev e WHERE e.subject_key = r.subject_key AND e.type = 'opted_out'
                        AND e."at" <= r.sent_at) AS opted_out_at,
                   (SELECT max("at") FROM _ev e WHERE e.subject_key = r.subject_key
                        AND e.type = 'consent_withdrawn' AND e.purpose = $purpose AND e."at" <= r.sent_at) AS withdrawn_at,
                   (SELECT max("at") FROM _ev e WHERE e.subject_key = r.subject_key
                        AND e.type = 'consent_granted' AND e.purpose = $purpose AND e."at" <= r.sent_at) AS granted_at
            FROM _report_rows r JOIN stops s USING (subject_key)
        ), flagged AS (
            SELECT subject_key,
                   bool_or(stop_at IS NOT NULL AND sent_at > stop_at) AS after_stop,
                   bool_or(opted_out_at IS NOT NULL
                           OR (withdrawn_at IS NOT NULL AND (granted_at IS NULL OR withdrawn_at >= granted_at))) AS after_optout
            FROM per_send GROUP BY subject_key
        )
        SELECT subject_key, after_stop, after_optout FROM flagged
        WHERE after_stop OR after_optout ORDER BY subject_key
        """,
        {"purpose": campaign.purpose},
    ).fetchall()
    if not rows:
        return None
    return {
        "code": CONTACTED_AFTER_STOP,
        "numbers": len(rows),
        "after_stop_reply": sum(1 for r in rows if r[1]),
        "after_ledger_opt_out": sum(1 for r in rows if r[2]),
        "subject_keys": [r[0] for r in rows[:MAX_KEYS_IN_FINDING]],
    }


# ---------------------------------------------------------------- vendor claims


def _claimed_purposes(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value).split("|") if value is not None else []
    pmap = default_purposes()
    out = []
    for item in items:
        word = str(item).strip()
        if not word:
            continue
        code = pmap.lookup(word)
        out.append(code if code and code != BUNDLED else word)
    return sorted(set(out))


def _claimed_rate(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().replace(",", ".")
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        return number / 100 if percent else (number / 100 if number > 1 else number)
    if isinstance(value, (int, float)):
        return float(value) / 100 if value > 1 else float(value)
    return None


def _claims(con: duckdb.DuckDBPyConnection, deliveries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every claim of the campaign's own ``deliveries`` (those it targets; for a campaign
    given only a target file, the deliveries its targets came from), against the rows.

    A delivery the campaign did not target is not its business: a number it shares with
    a targeted one must not bring that delivery's claims (and mismatches) into the audit.
    """
    if not deliveries:
        return []
    con.register("_used", pa.table({"vendor": [v for v, _ in deliveries], "delivery_id": [d for _, d in deliveries]},
                                   schema=pa.schema([("vendor", pa.string()), ("delivery_id", pa.string())])))
    try:
        meta = con.execute(
            "SELECT vendor, delivery_id, rows_read, rows_accepted, claims FROM deliveries JOIN _used USING (vendor, delivery_id)"
        ).fetchall()
        wanted: list[dict[str, Any]] = []
        for vendor, delivery_id, rows_read, rows_accepted, claims_json in meta:
            claims = json.loads(claims_json) if claims_json else {}
            if claims:
                purposes = _claimed_purposes(claims.get("consent_purposes")) if "consent_purposes" in claims else []
                wanted.append({"vendor": vendor, "delivery_id": delivery_id, "rows_read": int(rows_read),
                               "rows_accepted": int(rows_accepted), "claims": claims, "purposes": purposes})
    finally:
        con.unregister("_used")
    if not wanted:
        return []
    con.register("_claimed", pa.table(
        {"vendor": [w["vendor"] for w in wanted], "delivery_id": [w["delivery_id"] for w in wanted],
         "purposes": pa.array([w["purposes"] for w in wanted], pa.list_(pa.string()))}))
    try:
        present_by = {
            (v, d): list(p or [])
            for v, d, p in con.execute(
                """
                SELECT vendor, delivery_id, list(DISTINCT p ORDER BY p) FROM (
                    SELECT r.vendor, r.delivery_id, unnest(r.consent_purposes) AS p
                    FROM delivery_rows r JOIN _claimed c USING (vendor, delivery_id)
                ) GROUP BY vendor, delivery_id
                """
            ).fetchall()
        }
        measured = {
            (v, d): (int(n), int(consented), present_by.get((v, d), []), list(sources or []))
            for v, d, n, consented, sources in con.execute(
                """
                SELECT r.vendor, r.delivery_id, count(*),
                       count(*) FILTER (WHERE CASE WHEN len(c.purposes) > 0
                                                   THEN list_has_all(r.consent_purposes, c.purposes)
                                                   ELSE len(r.consent_purposes) > 0 END),
                       list(DISTINCT r.source ORDER BY r.source) FILTER (WHERE r.source IS NOT NULL)
                FROM delivery_rows r JOIN _claimed c USING (vendor, delivery_id)
                GROUP BY r.vendor, r.delivery_id
                """
            ).fetchall()
        }
    finally:
        con.unregister("_claimed")
    out: list[dict[str, Any]] = []
    order = ["row_count", "consent_purposes", "consent_rate", "sources"]
    for w in sorted(wanted, key=lambda w: (w["vendor"], w["delivery_id"])):
        n, consented, present, sources = measured.get((w["vendor"], w["delivery_id"]), (0, 0, [], []))
        claims = w["claims"]
        names = [c for c in order if c in claims] + sorted(c for c in claims if c not in order)
        for name in names:
            claimed = claims[name]
            value: Any = None
            ok: bool | None = None
            if name == "row_count":
                value = w["rows_read"]
                ok = isinstance(claimed, int) and not isinstance(claimed, bool) and claimed == value
            elif name == "consent_purposes":
                value = present
                ok = set(w["purposes"]) <= set(present) and bool(w["purposes"])
                claimed = w["purposes"]
            elif name == "consent_rate":
                rate = _claimed_rate(claimed)
                value = round(consented / n, 4) if n else None
                ok = rate is not None and value is not None and abs(rate - value) <= CONSENT_RATE_TOLERANCE
            elif name == "sources":
                items = claimed if isinstance(claimed, list) else [claimed]
                claimed = sorted({str(s).strip() for s in items if s is not None and str(s).strip()})
                value = sources
                ok = set(claimed) == set(sources)
            out.append({"vendor": w["vendor"], "delivery_id": w["delivery_id"], "claim": name,
                        "claimed": _scrub_json(claimed), "measured": _scrub_json(value), "ok": ok})
    return out


def _scrub_json(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_json(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- the ledger


def _targeted_query(campaign: Campaign, key: HashKey, *, ordered: bool = False) -> tuple[str, list[Any]]:
    given = {
        "type": "'targeted'", "subject_key": "subject_key", "key_id": "$1", "at": "$2",
        "channel": "$3", "campaign_id": "$4", "purpose": "$5", "evidence_kind": "'campaign'",
        "file": "$6", "file_sha256": "$7",
    }
    cols = ledger.flat_columns(**given)
    # Sorted on the subject keys alone, before the payloads exist: a sort of the
    # payloads (events_sql's ordered form) held a million of them in memory (+1.3 GB).
    # _write_targeted_leaves checks the order it relies on.
    select = (
        f"SELECT {cols}, row_number() OVER (ORDER BY subject_key) AS ord "
        "FROM (SELECT DISTINCT subject_key FROM _targets WHERE subject_key IS NOT NULL ORDER BY subject_key)"
    )
    params = [key.key_id, campaign.sent_at, campaign.channel, campaign.campaign_id, campaign.purpose,
              campaign.file_name, campaign.sha256]
    return ledger.events_sql(select, ordered=ordered), params


def _targeted_count(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> int:
    """``targeted`` events of this campaign spec (its bytes) in the ledger."""
    return int(con.execute(
        "SELECT count(*) FROM ledger_events WHERE type = 'targeted' AND campaign_id = ? AND file_sha256 = ?",
        [campaign.campaign_id, campaign.sha256],
    ).fetchone()[0])  # type: ignore[index]


def _write_targeted_leaves(con: duckdb.DuckDBPyConnection, campaign: Campaign, key: HashKey, out: Path) -> int:
    """One ``targeted`` leaf per target in ``_targets``, in subject key order, to ``out``;
    returns how many."""
    query, params = _targeted_query(campaign, key)
    count = ledger.write_events(con, query, params, out)
    path = warehouse.sql_text(out)
    unsorted = con.execute(
        f"SELECT count(*) FROM (SELECT subject_key < lag(subject_key) OVER (ORDER BY file_row_number) AS back "
        f"FROM read_parquet('{path}', file_row_number = true)) WHERE back"
    ).fetchone()[0]  # type: ignore[index]
    if unsorted:  # the plan did not keep the keys' order: sort the payloads after all
        query, params = _targeted_query(campaign, key, ordered=True)
        count = ledger.write_events(con, query, params, out)
    return count


def refuse_edited_spec(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """BadInput when the ledger records ``campaign_id`` targeted by a spec of other bytes.

    A campaign is one send: an edited spec under the same id would append a second set
    of ``targeted`` events (other targets, another time) for what the ledger already
    states happened. The same spec again is a re-audit and appends nothing.
    """
    # ledger_events is a view (ledger format v2), installed on every warehouse open:
    # a check for it among the tables skipped this refusal once it became one.
    other = con.execute(
        "SELECT 1 FROM ledger_events WHERE type = 'targeted' AND campaign_id = ? AND file_sha256 <> ? LIMIT 1",
        [campaign.campaign_id, campaign.sha256],
    ).fetchone()
    if other:
        raise BadInput(
            f"campaign {campaign.campaign_id!r} was already audited from a different spec: the ledger "
            "records its targets as sent; give an edited or new send its own campaign_id "
            f"(e.g. {campaign.campaign_id}-v2)",
            file=str(campaign.path), column="campaign_id",
        )


def stop_origin(campaign: Campaign) -> str:
    """The ``origin`` of the opt-outs a campaign's send report records."""
    return f"campaign:{campaign.campaign_id}"


def _stops_recorded(con: duckdb.DuckDBPyConnection, campaign: Campaign, digest: str) -> bool:
    """Whether the ledger holds the STOP replies of the send report of SHA-256 ``digest``."""
    return con.execute(
        "SELECT 1 FROM ledger_events WHERE type = 'opted_out' AND origin = ? AND file_sha256 = ? LIMIT 1",
        [stop_origin(campaign), digest],
    ).fetchone() is not None


def _write_stop_leaves(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, key: HashKey, digest: str, out: Path
) -> int:
    """One ``opted_out`` leaf per number of ``_report_rows`` that replied STOP, to ``out``;
    returns how many.

    The channel is the campaign's, the time the earliest STOP, the origin
    ``campaign:<id>``, the evidence the send report's file, SHA-256 and row: a STOP
    given to one campaign binds every later one on that channel.
    """
    assert campaign.send_report is not None
    cols = ledger.flat_columns(
        type="'opted_out'", subject_key="subject_key", key_id="$1", at="stop_at", channel="$2", origin="$3",
        evidence_kind="'send_report'", file="$4", file_sha256="$5", row="row",
    )
    select = (
        f"SELECT {cols}, row_number() OVER (ORDER BY stop_at, row) AS ord FROM ("
        "SELECT subject_key, min(stop_reply_at) AS stop_at, arg_min(row, stop_reply_at) AS row "
        "FROM _report_rows WHERE stop_reply_at IS NOT NULL GROUP BY subject_key)"
    )
    return ledger.write_events(con, ledger.events_sql(select),
                               [key.key_id, campaign.channel, stop_origin(campaign),
                                _stored_name(campaign.send_report, key, campaign.country), digest],
                               out)


# ---------------------------------------------------------------- the bundle


def _summary(
    con: duckdb.DuckDBPyConnection,
    campaign: Campaign,
    validity_days: int,
    findings: list[dict[str, Any]],
    claims: list[dict[str, Any]],
    file_stats: dict[str, Any] | None,
    report_stats: dict[str, Any] | None,
    recorded: int,
) -> dict[str, Any]:
    total = int(con.execute("SELECT count(*) FROM _verdicts").fetchone()[0])  # type: ignore[index]
    verdicts = {v: 0 for v in VERDICTS}
    verdicts.update({v: int(n) for v, n in con.execute("SELECT verdict, count(*) FROM _verdicts GROUP BY 1").fetchall()})
    reasons = {r: 0 for r in REASONS}
    reasons.update({r: int(n) for r, n in con.execute(
        "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM _verdicts) GROUP BY 1").fetchall()})

    def breakdown(column: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, verdict, n in con.execute(
            f"SELECT x, verdict, count(*) FROM (SELECT unnest({column}) AS x, verdict FROM _verdicts) "
            "GROUP BY ALL ORDER BY x, verdict"
        ).fetchall():
            out.setdefault(scrub(str(name)), {v: 0 for v in VERDICTS})[verdict] = int(n)
        return out

    return {
        "campaign_id": campaign.campaign_id,
        "campaign": {
            "campaign_id": campaign.campaign_id,
            "sponsor": scrub(campaign.sponsor),
            "channel": campaign.channel,
            "purpose": campaign.purpose,
            "sent_at": campaign.sent_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "file": campaign.file_name,
            "file_sha256": campaign.sha256,
            "targeted_deliveries": [r.label() for r in campaign.deliveries],
            "validity_days": validity_days,
            # report.html shows times in the campaign's zone and writes in its country's language
            "timezone": campaign.timezone,
            "country": campaign.country,
        },
        "targets": total,
        "verdicts": verdicts,
        "reasons": reasons,
        "rules": dict(RULES),
        "sources": breakdown("sources"),
        "vendors": breakdown("vendors"),
        "findings": findings,
        "claims": [
            {"vendor": c["vendor"], "delivery_id": c["delivery_id"], "claim": c["claim"],
             "claimed": c["claimed"], "measured": c["measured"], "ok": c["ok"]}
            for c in claims
        ],
        "target_file": file_stats,
        "send_report": report_stats,
        "targeted_events": recorded,
    }


# A spreadsheet runs a cell starting with one of these as a formula: prefix a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CELL = (
    "CASE WHEN left({x}, 1) IN ("
    + ", ".join(f"chr({ord(c)})" for c in _FORMULA_STARTS)
    + ") THEN chr(39) || {x} ELSE {x} END"
)


def _cell(expr: str) -> str:
    return _CELL.format(x=expr)


def _write_targets(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[tuple[Path, Path]]:
    """targets.parquet and targets.csv, sorted by subject key (the same inputs give the same
    bytes), written under temporary names: ``[(written, final name)]`` for each, the
    Parquet file first (the audit names them once the ledger recorded the audit)."""
    # Rows with no subject key (unparseable file values) are identical: the subject
    # key alone gives one order. Insertion order is not relied on (parallel scans).
    order = "ORDER BY subject_key NULLS LAST"
    parquet_path = out_dir / "targets.parquet"
    csv_path = out_dir / "targets.csv"
    table = con.sql(
        f"SELECT subject_key, verdict, reasons, sources, vendors, delivery_ids, consent_at, line_type "
        f"FROM _verdicts {order}"
    )
    table = _arrow(table).cast(TARGETS_SCHEMA)
    parquet_tmp = parquet_path.with_name(parquet_path.name + ".tmp")
    pq.write_table(table, parquet_tmp, compression="zstd")
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    con.execute(
        f"""COPY (
            SELECT subject_key, verdict,  -- hex and fixed words: nothing to escape
                   {_cell("array_to_string(reasons, '|')")} AS reasons,
                   {_cell("array_to_string(sources, '|')")} AS sources,
                   {_cell("array_to_string(vendors, '|')")} AS vendors,
                   {_cell("array_to_string(delivery_ids, '|')")} AS delivery_ids,
                   strftime(consent_at, '%Y-%m-%dT%H:%M:%SZ') AS consent_at,
                   {_cell('line_type')} AS line_type
            FROM _verdicts {order}
        ) TO '{warehouse.sql_text(tmp)}' (FORMAT csv, HEADER true)"""
    )
    return [(parquet_tmp, parquet_path), (tmp, csv_path)]


def _arrow(result: Any) -> pa.Table:
    """The result as an Arrow table, across DuckDB versions."""
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        fn = getattr(result, name, None)
        if fn is not None:
            table = fn()
            return table.read_all() if isinstance(table, pa.RecordBatchReader) else table
    raise RuntimeError("this DuckDB cannot return Arrow tables")  # pragma: no cover




def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = [
    "AuditResult",
    "CLAIM_MISMATCH",
    "LedgerMoved",
    "COMPLIANT",
    "CONTACTED_AFTER_STOP",
    "DEFAULT_VALIDITY_DAYS",
    "NON_COMPLIANT",
    "NO_OPT_OUT_IN_MESSAGE",
    "NO_SENDER_ID",
    "REASONS",
    "RULES",
    "SNAPSHOT_ATTEMPTS",
    "SPECIAL_CATEGORY_TARGETING",
    "UNVERIFIABLE",
    "VERDICTS",
    "audit",
    "has_opt_out",
    "names_sender",
]
