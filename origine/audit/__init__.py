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

The package, one concern per module:

* :mod:`origine.audit.inputs` — the campaign's target file and send report, the
  deliveries it names, its targets;
* :mod:`origine.audit.rules` — the rule table above and the SQL that applies it;
* :mod:`origine.audit.claims` — the vendor claims checked against the rows;
* :mod:`origine.audit.findings` — the campaign findings (message, targeting, contacts
  after a STOP);
* :mod:`origine.audit.outputs` — the summary, the target files and the leaves recorded;
* :mod:`origine.audit.run` — :func:`audit`: snapshot, verdicts, append.
"""

from __future__ import annotations

from origine.audit.claims import CLAIM_MISMATCH
from origine.audit.findings import (
    CONTACTED_AFTER_STOP,
    NO_OPT_OUT_IN_MESSAGE,
    NO_SENDER_ID,
    SPECIAL_CATEGORY_TARGETING,
    has_opt_out,
    names_sender,
    scrub,
)
from origine.audit.outputs import refuse_edited_spec, stop_origin
from origine.audit.rules import (
    COMPLIANT,
    DEFAULT_VALIDITY_DAYS,
    NON_COMPLIANT,
    REASONS,
    RULES,
    TRANSFER_PURPOSE,
    UNVERIFIABLE,
    VERDICTS,
)
from origine.audit.run import SNAPSHOT_ATTEMPTS, AuditResult, LedgerMoved, audit

__all__ = [
    "AuditResult",
    "CLAIM_MISMATCH",
    "COMPLIANT",
    "CONTACTED_AFTER_STOP",
    "DEFAULT_VALIDITY_DAYS",
    "LedgerMoved",
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
