"""From delivered values to phone results to subject keys: the one path every reader takes.

Ingest, a campaign's target file and send report, the send list and suppression
files all turn a column of cells into "which number is this, is it usable, whose
key is it". Each used to do it its own way (the batch normalizer here, the
per-value reference there, keys hashed one at a time or as a column), so a fix
in one reader could miss the others, and a file read by two of them could give
two answers. :func:`keyed` is that step once: :func:`origine.fastphone.normalize_batch`
(tested to equal :func:`origine.phones.normalize` value by value, which stays the
reference) and :meth:`origine.keys.HashKey.subject_keys` over the result.
"""

from __future__ import annotations

from typing import Sequence

import pyarrow as pa

from origine import fastphone
from origine.keys import HashKey

__all__ = ["SCHEMA", "keyed"]

# fastphone's result columns, then the subject key of ``e164``.
SCHEMA: pa.Schema = fastphone.SCHEMA.append(pa.field("subject_key", pa.string()))


def keyed(values: pa.Array | pa.ChunkedArray | Sequence[object], region: str, key: HashKey) -> pa.Table:
    """Normalize a column of delivered values and key each number, row for row.

    ``values`` is an Arrow column or, for readers that hold cells as Python values
    of mixed types (spreadsheets give ints, floats and text in one column), a
    sequence of them; ``region`` is the default region of national numbers.

    Row ``i`` of the result (:data:`SCHEMA`) holds ``phones.normalize(values[i],
    region)`` field by field (``e164``, ``valid``, ``country_code``,
    ``line_type``, ``reason``) and ``subject_key``: ``key.subject_key(e164)``
    whenever ``e164`` is set, valid or not (a quarantined invalid number is still
    counted against its subject), null when the value did not parse.
    """
    result = fastphone.normalize_batch(values, region)
    e164 = result.column("e164").combine_chunks()
    subject = key.subject_keys(e164) if len(e164) else pa.array([], pa.string())
    return result.append_column(SCHEMA.field("subject_key"), subject)
