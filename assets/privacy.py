"""What a step lets Dagster store of a domain error.

A step's error is written to Dagster's event log (and shown in the UI). origine's errors
never echo a cell, but they name the file as given, and a suppression file, target file
or send report may be named after a phone number ("stop-06 11 22 33 99.csv"): the
ledger stores such names scrubbed, so Dagster's storage must too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from origine.errors import OrigineError
from origine.freetext import scrub_text
from origine.keys import HashKey


def stored_error(exc: OrigineError, key: HashKey, region: str) -> OrigineError:
    """``exc`` with every number, e-mail or IP address in its text as a keyed token (as
    ``scrub_text`` writes them in the ledger); ``exc`` itself when there is none."""
    text = str(exc)
    scrubbed = scrub_text(text, key, region).text
    if scrubbed == text:
        return exc
    # the one-line text is what a run's error carries (pipelines.runs rebuilds it from that)
    return type(exc)(scrubbed)


@contextmanager
def errors_scrubbed(key: HashKey, region: str) -> Iterator[None]:
    """Raise the domain errors of the block as :func:`stored_error` gives them (without
    the original as their cause, which Dagster would store too)."""
    try:
        yield
    except OrigineError as exc:
        stored = stored_error(exc, key, region)
        if stored is exc:
            raise
        raise stored from None
