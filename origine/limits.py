"""Bounds on what a compressed input may expand to, and on the length of a text line.

A delivery is data, not a bomb: a few kilobytes of gzip or deflate can expand to
gigabytes (deflate reaches about 1,000:1), and one endless line would be held whole
in memory by any line-oriented reader. Every decompression origine does (a ``.gz``
data file, a zip delivery's members, the parts of an XLSX workbook) is held to
:func:`expansion_limit` of its compressed size, and every line of delimited text or
JSON Lines to :func:`max_line_bytes`; past either the input is refused with
:class:`~origine.errors.BadInput` (exit 2) naming the file.

The limits are read from the environment at each use, so an operator can raise them
for one run:

``ORIGINE_MAX_EXPANDED_BYTES``   absolute cap on the bytes one compressed input (a
                                 ``.gz`` file, a zip delivery, a workbook) expands to;
                                 default 64 GiB.
``ORIGINE_MAX_EXPANSION_RATIO``  cap on expanded / compressed size, applied past the
                                 first 256 MiB; default 200 (real contact files compress
                                 about 20:1, bombs about 1,000:1).
``ORIGINE_MAX_LINE_BYTES``       longest line of delimited text or JSON Lines; default
                                 8 MiB (a contact row is a few hundred bytes).

Sizes accept a plain byte count or a suffix ``K``, ``M``, ``G`` (powers of 1024).
"""

from __future__ import annotations

import os

from origine.errors import BadInput

MAX_EXPANDED_ENV = "ORIGINE_MAX_EXPANDED_BYTES"
MAX_RATIO_ENV = "ORIGINE_MAX_EXPANSION_RATIO"
MAX_LINE_ENV = "ORIGINE_MAX_LINE_BYTES"

DEFAULT_MAX_EXPANDED = 64 << 30
DEFAULT_MAX_RATIO = 200
DEFAULT_MAX_LINE = 8 << 20
# Below this, any ratio is admitted: small files of repeated values compress far
# better than 200:1 and cannot hurt.
RATIO_FLOOR = 256 << 20

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip().upper().removesuffix("B").removesuffix("I")
    if not raw:
        return default
    unit = _UNITS.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        value = int(float(number) * unit)
    except ValueError:
        raise BadInput(f"must be a size in bytes (e.g. 8M, 64G), not {os.environ[env]!r}", file=f"${env}") from None
    if value <= 0:
        raise BadInput("must be a positive size", file=f"${env}")
    return value


def max_expanded_bytes() -> int:
    """``$ORIGINE_MAX_EXPANDED_BYTES``: what one compressed input may expand to at most."""
    return _size(MAX_EXPANDED_ENV, DEFAULT_MAX_EXPANDED)


def max_expansion_ratio() -> float:
    """``$ORIGINE_MAX_EXPANSION_RATIO``: expanded / compressed size, past :data:`RATIO_FLOOR`."""
    raw = os.environ.get(MAX_RATIO_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_RATIO
    try:
        ratio = float(raw)
    except ValueError:
        raise BadInput(f"must be a number, not {raw!r}", file=f"${MAX_RATIO_ENV}") from None
    if not ratio >= 1:
        raise BadInput("must be at least 1", file=f"${MAX_RATIO_ENV}")
    return ratio


def max_line_bytes() -> int:
    """``$ORIGINE_MAX_LINE_BYTES``: the longest line of text a reader accepts."""
    return _size(MAX_LINE_ENV, DEFAULT_MAX_LINE)


def expansion_limit(compressed_size: int) -> int:
    """The most bytes an input of ``compressed_size`` bytes may expand to."""
    by_ratio = max(RATIO_FLOOR, int(compressed_size * max_expansion_ratio()))
    return min(max_expanded_bytes(), by_ratio)


def too_expanded(what: str, limit: int) -> str:
    """The message of a refused expansion (names the limits and how to raise them)."""
    return (
        f"{what} expands past {limit:,} bytes (a decompression bomb, or raise "
        f"${MAX_EXPANDED_ENV} / ${MAX_RATIO_ENV})"
    )
