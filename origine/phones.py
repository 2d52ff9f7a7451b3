"""Phone numbers as ``phonenumbers`` sees them: the reference, one value at a time.

Everything here is the *definition* of a result. The vectorized path of the
"broker scale" work must agree with :func:`normalize` on every input.

Before ``phonenumbers`` parses a value we undo what spreadsheets do to numbers:
a leading apostrophe or ``="..."`` used to force text, a float rendering
(``612345678.0``) and scientific notation (``6,12345678E+08``). A scientific
rendering that lost digits (Excel's ``6,12346E+08``) cannot be recovered and is
quarantined rather than guessed. A leading zero lost to a numeric cell needs no
repair: ``phonenumbers`` parses a national number without its trunk prefix when
given the delivery's region.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

# Quarantine reason codes for the phone column.
PHONE_MISSING = "PHONE_MISSING"
PHONE_UNPARSEABLE = "PHONE_UNPARSEABLE"
PHONE_INVALID = "PHONE_INVALID"
PHONE_PRECISION_LOST = "PHONE_PRECISION_LOST"

LINE_TYPES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}

_SCIENTIFIC = re.compile(r"^([+-]?)(\d+)(?:[.,](\d*))?[eE]\+?(\d{1,3})$")
_FLOAT_ZERO = re.compile(r"^(\+?\d+)[.,]0+$")
_EXCEL_TEXT = re.compile(r'^="(.*)"$')
# Invisible characters spreadsheets and web forms leave around numbers.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


@dataclass(frozen=True, slots=True)
class PhoneResult:
    """What one delivered value is as a phone number.

    ``e164`` is set whenever ``phonenumbers`` parsed the value (valid or not);
    ``reason`` is a quarantine code when the value cannot be used.
    """

    e164: str | None
    valid: bool
    country_code: int | None
    line_type: str | None
    reason: str | None


def clean_text(raw: object) -> tuple[str | None, str | None]:
    """Undo spreadsheet damage. Returns ``(text, None)`` or ``(None, reason)``."""
    if raw is None:
        return None, PHONE_MISSING
    if isinstance(raw, bool):
        return None, PHONE_UNPARSEABLE
    if isinstance(raw, int):
        return str(raw), None
    if isinstance(raw, float):
        if not math.isfinite(raw) or raw != int(raw):
            return None, PHONE_UNPARSEABLE
        return str(int(raw)), None
    if isinstance(raw, Decimal):
        if raw != raw.to_integral_value():
            return None, PHONE_UNPARSEABLE
        return str(int(raw)), None
    text = str(raw).translate(_INVISIBLE).strip()
    m = _EXCEL_TEXT.match(text)
    if m:
        text = m.group(1).strip()
    if text.startswith("'"):
        text = text[1:].strip()
    if not text:
        return None, PHONE_MISSING
    m = _FLOAT_ZERO.match(text)
    if m:
        return m.group(1), None
    m = _SCIENTIFIC.match(text)
    if m:
        return _expand_scientific(m)
    return text, None


def _expand_scientific(m: re.Match[str]) -> tuple[str | None, str | None]:
    sign, whole, frac, exp = m.group(1), m.group(2), m.group(3) or "", int(m.group(4))
    if sign == "-":
        return None, PHONE_UNPARSEABLE
    digits = (whole + frac).lstrip("0")
    try:
        value = Decimal(f"{whole}.{frac or '0'}e{exp}")
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        return None, PHONE_UNPARSEABLE
    if value != value.to_integral_value():
        return None, PHONE_UNPARSEABLE
    integer = str(int(value))
    # Fewer significant digits than the integer has: the tail was rounded away.
    if len(digits) < len(integer):
        return None, PHONE_PRECISION_LOST
    return integer, None


def normalize(raw: object, region: str) -> PhoneResult:
    """Normalize one delivered value with ``region`` as the default region.

    Valid means ``phonenumbers.is_valid_number``; the line type is
    ``phonenumbers.number_type``; ``e164`` is ``format_number(..., E164)``.
    """
    text, reason = clean_text(raw)
    if text is None:
        return PhoneResult(None, False, None, None, reason)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return PhoneResult(None, False, None, None, PHONE_UNPARSEABLE)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number):
        return PhoneResult(e164, False, number.country_code, None, PHONE_INVALID)
    line_type = LINE_TYPES.get(phonenumbers.number_type(number), "unknown")
    return PhoneResult(e164, True, number.country_code, line_type, None)
