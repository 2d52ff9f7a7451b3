"""Instants as vendors write them: ISO 8601, French day-first dates, spreadsheet cells."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone, tzinfo
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_DAY_FIRST = re.compile(
    r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2})[:h](\d{2})(?::(\d{2}))?)?$"
)


class UnreadableDate(ValueError):
    """A value that is not an instant (the message never repeats the value)."""


def parse_instant(
    value: object, tz: tzinfo = timezone.utc, formats: Sequence[str] = ()
) -> datetime | None:
    """An aware UTC datetime for ``value``; ``None`` for an empty value.

    Accepts ISO 8601 dates and datetimes (with or without offset), ``dd/mm/yyyy``
    with an optional ``HH:MM[:SS]`` (French exports are day-first), ``datetime`` and
    ``date`` objects from spreadsheets, and the vendor profile's ``formats`` first.
    Naive values are read in ``tz``.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return _aware(value, tz)
    if isinstance(value, date):
        return _aware(datetime.combine(value, time()), tz)
    text = str(value).strip()
    if not text:
        return None
    for fmt in formats:
        try:
            return _aware(datetime.strptime(text, fmt), tz)
        except ValueError:
            continue
    m = _DAY_FIRST.match(text)
    if m:
        d, mo, y, hh, mm, ss = m.groups()
        try:
            parsed = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        except ValueError:
            raise UnreadableDate("not a calendar date") from None
        return _aware(parsed, tz)
    iso = text.replace("Z", "+00:00") if text.endswith("Z") else text
    try:
        return _aware(datetime.fromisoformat(iso), tz)
    except ValueError:
        raise UnreadableDate("not a date (expected ISO 8601 or dd/mm/yyyy)") from None


def _aware(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(timezone.utc)


# ---------------------------------------------------------------- whole columns

# Exactly what ``str.strip()`` removes, so a column trimmed by Arrow reads as the
# reference reads each value.
PY_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())

# The shapes decided without Python, in RE2 (ASCII digits only: other digits go
# to the reference). Day-first is ``_DAY_FIRST``; ISO covers dates and
# minute/second datetimes with an optional ``Z`` or ``±HH:MM`` offset.
_DAY_FIRST_RE2 = (
    r"^(?P<d>\d{1,2})[/.-](?P<mo>\d{1,2})[/.-](?P<y>\d{4})"
    r"(?:[ T](?P<hh>\d{1,2})[:h](?P<mi>\d{2})(?::(?P<ss>\d{2}))?)?$"
)
_ISO_RE2 = (
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<hh>\d{2}):(?P<mi>\d{2})(?::(?P<ss>\d{2}))?(?P<off>Z|[+-]\d{2}:\d{2})?)?$"
)
_US_PER_S = 1_000_000
# The Arrow type of every stored instant (segments, warehouse loads, audit tables).
TS = pa.timestamp("us", tz="UTC")


def parse_instants(values: pa.Array, tz: tzinfo = timezone.utc, formats: Sequence[str] = ()) -> tuple[pa.Array, np.ndarray]:
    """:func:`parse_instant` over a whole column: ``(timestamps, unreadable)``.

    ``timestamps`` is ``timestamp[us, UTC]``, null where the value is empty or
    unreadable; ``unreadable`` is a boolean mask of the values
    :func:`parse_instant` rejects. Row for row the same result as the reference:
    plain day-first and ISO strings are parsed by Arrow, and everything else
    (other types, profile formats, non-ASCII digits, local times a clock change
    makes ambiguous or skips) goes through :func:`parse_instant` once per
    distinct value.
    """

    n = len(values)
    out = np.zeros(n, dtype="int64")
    isnull = np.zeros(n, dtype=bool)
    unreadable = np.zeros(n, dtype=bool)
    pending = np.ones(n, dtype=bool)  # rows the reference decides
    zone = _zone_name(tz)
    if (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) and not formats and zone:
        text = pc.utf8_trim(values, characters=PY_WHITESPACE)
        empty = _mask(pc.or_kleene(pc.is_null(text), pc.equal(text, "")))
        isnull |= empty
        pending &= ~empty

        def settle(rows: np.ndarray, local_us: np.ndarray, offset_s: np.ndarray, ok: np.ndarray) -> None:
            # Calendar errors (31/02) are the reference's to word; they are rare.
            rows, local_us, offset_s = rows[ok], local_us[ok], offset_s[ok]
            naive = offset_s == _NO_OFFSET
            fixed = ~naive
            out[rows[fixed]] = local_us[fixed] - offset_s[fixed] * _US_PER_S
            pending[rows[fixed]] = False
            if naive.any():
                utc_us, clear = _localize(local_us[naive], zone)
                done = rows[naive][clear]
                out[done] = utc_us[clear]
                pending[done] = False

        for rows, local_us, ok in _fixed_shapes(text, pending):
            settle(rows, local_us, np.full(len(rows), _NO_OFFSET, dtype="int64"), ok)
        for pattern, decode in ((_DAY_FIRST_RE2, _day_first_parts), (_ISO_RE2, _iso_parts)):
            if not pending.any():
                break
            rows = np.flatnonzero(pending)
            left = text.take(pa.array(rows)) if len(rows) < n else text
            hit = _mask(pc.match_substring_regex(left, pattern))
            if not hit.any():
                continue
            parts = pc.extract_regex(left.filter(pa.array(hit)), pattern)
            settle(rows[hit], *decode(parts))
    else:
        isnull |= _mask(pc.is_null(values)) if values.null_count else False
        pending &= ~isnull
    if pending.any():
        rows = np.flatnonzero(pending)
        cache: dict[Any, Any] = {}
        for i, value in zip(rows, values.take(pa.array(rows)).to_pylist()):
            try:
                hit = cache[value]
            except (KeyError, TypeError):
                try:
                    hit = parse_instant(value, tz, formats)
                except UnreadableDate as exc:
                    hit = exc
                try:
                    cache[value] = hit
                except TypeError:
                    pass
            if isinstance(hit, UnreadableDate):
                unreadable[i] = True
                isnull[i] = True
            elif hit is None:
                isnull[i] = True
            else:
                out[i] = epoch_us(hit)
    ts = pa.array(out, pa.timestamp("us"), mask=isnull).cast(TS)
    return ts, unreadable


# The shapes vendors write most, at fixed positions: each a subset of what
# ``_DAY_FIRST_RE2`` or ``_ISO_RE2`` match, without an offset (`d` an ASCII digit, a
# set of characters one of them, anything else itself). Read from the bytes with
# numpy, they skip RE2's extraction and the casts of its groups (at 2M values, 0.8 s
# of CPU a column); everything else still goes through the regular expressions.
_SHAPES = (
    ("dd/mm/yyyy", {"d": (0, 2), "mo": (3, 2), "y": (6, 4)}, {2: "/.-", 5: "/.-"}),
    ("dd/mm/yyyy HH:MM", {"d": (0, 2), "mo": (3, 2), "y": (6, 4), "hh": (11, 2), "mi": (14, 2)},
     {2: "/.-", 5: "/.-", 10: " T", 13: ":h"}),
    ("dd/mm/yyyy HH:MM:SS", {"d": (0, 2), "mo": (3, 2), "y": (6, 4), "hh": (11, 2), "mi": (14, 2), "ss": (17, 2)},
     {2: "/.-", 5: "/.-", 10: " T", 13: ":h", 16: ":"}),
    ("yyyy-mm-dd", {"y": (0, 4), "mo": (5, 2), "d": (8, 2)}, {4: "-", 7: "-"}),
    ("yyyy-mm-ddTHH:MM", {"y": (0, 4), "mo": (5, 2), "d": (8, 2), "hh": (11, 2), "mi": (14, 2)},
     {4: "-", 7: "-", 10: "T ", 13: ":"}),
    ("yyyy-mm-ddTHH:MM:SS", {"y": (0, 4), "mo": (5, 2), "d": (8, 2), "hh": (11, 2), "mi": (14, 2), "ss": (17, 2)},
     {4: "-", 7: "-", 10: "T ", 13: ":", 16: ":"}),
)


def _fixed_shapes(text: pa.Array, pending: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(rows, local_us, ok)`` for the pending values of ``text`` (trimmed strings)
    that have one of the :data:`_SHAPES`, as :func:`_civil` reads them."""
    if not len(text) or not pending.any():
        return []
    _, offsets_buf, data_buf = text.buffers()
    if data_buf is None or not len(data_buf):
        return []
    wide = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(offsets_buf, dtype=np.int64 if wide else np.int32)[text.offset:text.offset + len(text) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)
    starts = offsets[:-1].astype(np.int64)
    lengths = offsets[1:].astype(np.int64) - starts
    found = []
    for length in sorted({len(shape) for shape, _, _ in _SHAPES}):
        rows = np.flatnonzero((lengths == length) & pending)
        if not len(rows):
            continue
        first = starts[rows]
        if (first[-1] - first[0]) == length * (len(rows) - 1):  # back to back: a view
            cells = data[first[0]:first[0] + length * len(rows)].reshape(len(rows), length)
            byte = cells.__getitem__
        else:
            def byte(at: tuple[slice, int], first: np.ndarray = first) -> np.ndarray:
                return data[first + at[1]]
        taken = np.zeros(len(rows), dtype=bool)
        for shape, fields, separators in _SHAPES:
            if len(shape) != length:
                continue
            match = ~taken
            digits = {}
            for at in range(length):
                b = byte((slice(None), at))
                if at in separators:
                    match &= _ALLOWED[separators[at]][b]
                elif any(start <= at < start + width for start, width in fields.values()):
                    digits[at] = b - np.uint8(48)  # wraps: a digit is below 10, all else above
                    match &= digits[at] < 10
            if not match.any():
                continue
            taken |= match
            every = bool(match.all())
            count = len(rows) if every else int(match.sum())

            def number(name: str) -> np.ndarray:
                value = np.zeros(count, dtype=np.int64)
                if name in fields:
                    start, width = fields[name]
                    for i in range(start, start + width):
                        value = value * 10 + (digits[i] if every else digits[i][match])
                return value

            local_us, ok = _civil(*(number(name) for name in ("y", "mo", "d", "hh", "mi", "ss")))
            found.append((rows[match], local_us, ok))
    return found


def _allowed(chars: str) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(chars.encode("ascii"))] = True
    return table


_ALLOWED = {chars: _allowed(chars) for _, _, separators in _SHAPES for chars in separators.values()}


_NO_OFFSET = np.iinfo(np.int64).min  # "naive: read in the delivery's zone"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_us(value: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US_PER_S + delta.microseconds


def _zone_name(tz: tzinfo) -> str | None:
    """An IANA name Arrow can localize with, or None to leave the zone to Python."""
    if tz is timezone.utc:
        return "UTC"
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else None


def _mask(arr: Any) -> Any:

    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _ints(parts: Any, name: str) -> Any:
    """A captured group as integers; 0 where the group did not take part."""

    col = parts.field(name)
    col = pc.if_else(pc.equal(col, ""), None, col)
    return np.asarray(pc.cast(col, "int64").fill_null(0).to_numpy(zero_copy_only=False), dtype="int64")


def _ints_of(texts: Any, where: np.ndarray) -> np.ndarray:
    digits = pc.if_else(pa.array(where), texts, "0")
    return np.asarray(pc.cast(digits, "int64").to_numpy(zero_copy_only=False), dtype="int64")


def _civil(y: Any, mo: Any, d: Any, hh: Any, mi: Any, ss: Any) -> tuple[Any, Any]:
    """Microseconds since 1970 of naive civil times, and which ones are real dates."""

    ok = (y >= 1) & (mo >= 1) & (mo <= 12) & (d >= 1) & (hh < 24) & (mi < 60) & (ss < 60)
    y, mo = np.where(ok, y, 1970), np.where(ok, mo, 1)
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    ok &= d <= _MONTH_DAYS[mo] + ((mo == 2) & leap)
    d = np.where(ok, d, 1)
    # Days since 1970-01-01 in integer arithmetic (H. Hinnant's days_from_civil, a
    # year counted from March): numpy's datetime64 conversions took 4x as long.
    y = y - (mo <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((mo + 9) % 12) + 2) // 5 + d - 1
    days = era * 146_097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719_468
    return ((days * 86_400 + hh * 3600 + mi * 60 + ss) * _US_PER_S), ok


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _day_first_parts(parts: Any) -> tuple[Any, Any, Any]:

    local, ok = _civil(*(_ints(parts, name) for name in ("y", "mo", "d", "hh", "mi", "ss")))
    return local, np.full(len(local), _NO_OFFSET, dtype="int64"), ok


def _iso_parts(parts: Any) -> tuple[Any, Any, Any]:

    local, ok = _civil(*(_ints(parts, name) for name in ("y", "mo", "d", "hh", "mi", "ss")))
    off = parts.field("off")
    zulu = _mask(pc.equal(off, "Z"))
    signed = _mask(pc.equal(pc.utf8_length(off), 6))
    oh = _ints_of(pc.utf8_slice_codeunits(off, 1, 3), signed)
    om = _ints_of(pc.utf8_slice_codeunits(off, 4, 6), signed)
    ok &= (oh < 24) & (om < 60)  # an impossible offset is the reference's to word
    sign = np.where(_mask(pc.starts_with(off, "-")), -1, 1)
    offset = np.where(signed, sign * (oh * 3600 + om * 60), _NO_OFFSET)
    offset[zulu] = 0
    return local, offset, ok


def _localize(local_us: Any, zone: str) -> tuple[Any, Any]:
    """UTC microseconds of naive local times in ``zone``, and where that is unambiguous.

    A local time inside a clock change has two readings or none; Arrow is asked
    both ways and where they differ the reference decides (Python's ``fold=0``).
    """

    if zone == "UTC":
        return local_us, np.ones(len(local_us), dtype=bool)
    # Arrow's zone rules stop at 2037 where Python's go on with the zone's POSIX
    # rule, and old local mean times are best left to the reference too.
    settled = (local_us >= _ARROW_ZONES_FROM) & (local_us < _ARROW_ZONES_UNTIL)
    local_us = np.asarray(local_us, dtype=np.int64)
    # Per local day, not per value (a zone lookup each, twice: a third of a
    # date column's CPU): a day whose probes, every six hours from its first to
    # its last microsecond, all have one unambiguous offset has no clock change
    # (the zone database has no two changes undoing each other within six
    # hours), so each of its times is that offset away from UTC. Only the days
    # of a clock change are asked value by value.
    day, inverse = np.unique(local_us // _US_PER_DAY, return_inverse=True)
    inverse = inverse.reshape(-1)
    probes = (day * _US_PER_DAY)[:, None] + _DAY_PROBES[None, :]
    early, late = _assume(probes.reshape(-1), zone)
    offset = (probes.reshape(-1) - early).reshape(probes.shape)
    steady = (early == late).reshape(probes.shape).all(axis=1) & (offset == offset[:, :1]).all(axis=1)
    utc = local_us - offset[:, 0][inverse]
    clear = steady[inverse]
    changing = np.flatnonzero(~clear)
    if len(changing):
        early, late = _assume(local_us[changing], zone)
        utc[changing] = early
        clear[changing] = early == late
    return utc, settled & clear


def _assume(local_us: Any, zone: str) -> tuple[Any, Any]:
    """UTC microseconds of naive local times in ``zone``: the earliest and the latest
    reading (equal unless a clock change repeats or skips the time)."""
    naive = pa.array(local_us, pa.timestamp("us"))
    early = pc.assume_timezone(naive, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, timezone=zone, ambiguous="latest", nonexistent="latest")
    return early.cast(pa.int64()).to_numpy(), late.cast(pa.int64()).to_numpy()


_US_PER_DAY = 86_400 * _US_PER_S
_DAY_PROBES = np.array([0, 6, 12, 18, 24], dtype=np.int64) * 3600 * _US_PER_S - np.array([0, 0, 0, 0, 1])


_ARROW_ZONES_FROM = 2 * 365 * 86_400 * _US_PER_S  # 1972-01-01
_ARROW_ZONES_UNTIL = (datetime(2037, 1, 1) - datetime(1970, 1, 1)).days * 86_400 * _US_PER_S
