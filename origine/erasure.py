"""Erasure on request (GDPR art. 17): a data subject's attributes removed, the erasure signed.

``origine erase NUMBER --reason TEXT`` (or ``--batch FILE``) erases exactly as
retention does (:func:`origine.retention.erase_listed`): every attribute of the
subject's events is cleared (their leaf hashes stay, so older checkpoints still
verify), its normalized and quarantined rows go, and one ``erased`` leaf of origin
``request`` commits to the events erased. The request is recorded even when the
home held nothing on the number (the operator can show the request was honoured).

The reason text is stored in that leaf forever (an erasure cannot itself be erased):
it must not hold personal data. A reason in which the free-text scrubber
(:mod:`origine.freetext`) finds a phone number, an e-mail or IP address, or that has
6 or more digits, is refused rather than scrubbed: a keyed token of the subject's
number kept next to its erasure would still single the person out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from origine import warehouse
from origine.errors import BadInput
from origine.keys import HashKey
from origine.retention import Erased, erase_listed

if TYPE_CHECKING:
    from origine.home import Home

MAX_REASON = 200


# What one request erased: the same facts as a retention run, without its cutoff.
ErasureResult = Erased


def check_reason(reason: str | None, key: HashKey, region: str) -> str:
    """The reason text to record; BadInput (naming ``--reason``) when missing or personal."""
    from origine.freetext import scrub_text

    text = " ".join((reason or "").split())
    if not text:
        raise BadInput("an erasure needs a reason text (e.g. 'art. 17 request received by mail, ref R-12')",
                       column="--reason")
    if len(text) > MAX_REASON:
        raise BadInput(f"the reason text is longer than {MAX_REASON} characters", column="--reason")
    if sum(c.isdigit() for c in text) >= 6 or scrub_text(text, key, region).text != text:
        raise BadInput("the reason text may hold personal data (a number, an e-mail or IP address, 6+ digits): "
                       "it is kept in the ledger forever; write it without", column="--reason")
    return text


def erase_subjects(
    home: "Home", subject_keys: list[str], *, reason: str, key: HashKey, region: str = "FR",
    now: datetime | None = None, signer: Any = None,
) -> ErasureResult:
    """Erase ``subject_keys`` (current keys) on request, recording ``reason`` in a signed leaf."""
    from origine.signing import load_signer

    text = check_reason(reason, key, region)
    now = now or datetime.now(timezone.utc)
    signer = signer or load_signer(home.keys)
    with warehouse.session(home.warehouse) as con:
        con.register("_asked", pa.table({"subject_key": pa.array(sorted(set(subject_keys)), pa.string())}))
        with warehouse.transaction(con):
            warehouse.check_key(con, key.key_id)
            con.execute("CREATE OR REPLACE TEMP TABLE _expired AS SELECT subject_key FROM _asked")
            done = erase_listed(con, now=now, origin="request", source=f"request: {text}",
                                evidence_kind="request", signer=signer, always_record=True)
        con.unregister("_asked")
    return done
