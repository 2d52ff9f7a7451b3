"""Instants as vendors write them: ISO 8601, French day-first dates, spreadsheet cells."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone, tzinfo
from typing import Sequence

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
