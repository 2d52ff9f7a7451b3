"""The reference normalization: spreadsheet damage undone, phonenumbers' verdicts kept."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origine.phones import (
    PHONE_INVALID,
    PHONE_MISSING,
    PHONE_PRECISION_LOST,
    PHONE_UNPARSEABLE,
    clean_text,
    normalize,
)

FR_MOBILE = "+33612345678"


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 78",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "+33 6 12 34 56 78",
        "0033612345678",
        "33612345678",  # Excel dropped the '+'
        "612345678",  # Excel dropped the leading zero
        612345678,  # ... in a numeric cell
        612345678.0,
        "612345678.0",
        "6.12345678E+08",  # scientific notation with every digit kept
        "'0612345678",  # apostrophe forcing text
        '="0612345678"',  # formula forcing text
        "\ufeff0612345678\u200b",
    ],
)
def test_excel_mangled_french_numbers_recover(raw: object) -> None:
    result = normalize(raw, "FR")
    assert (result.e164, result.valid, result.line_type, result.reason) == (FR_MOBILE, True, "mobile", None)


@pytest.mark.parametrize(
    "raw,reason",
    [
        (None, PHONE_MISSING),
        ("", PHONE_MISSING),
        ("   ", PHONE_MISSING),
        ("6,12346E+08", PHONE_PRECISION_LOST),  # Excel's 6 significant digits
        ("abc", PHONE_UNPARSEABLE),
        (612345678.5, PHONE_UNPARSEABLE),
        (True, PHONE_UNPARSEABLE),
        ("0000", PHONE_INVALID),
        ("+33 1 23", PHONE_INVALID),
    ],
)
def test_unusable_values_have_a_reason(raw: object, reason: str) -> None:
    assert normalize(raw, "FR").reason == reason


def test_region_is_the_default_for_national_numbers() -> None:
    assert normalize("0612345678", "MA").e164 == "+212612345678"
    assert normalize("771234567", "SN").e164 == "+221771234567"
    assert normalize("+221771234567", "FR").country_code == 221


def test_line_type_follows_phonenumbers() -> None:
    assert normalize("01 45 45 45 45", "FR").line_type == "fixed_line"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=True), st.none()))
def test_normalize_never_raises_and_agrees_with_phonenumbers(raw: object) -> None:
    result = normalize(raw, "FR")
    assert (result.reason is None) == result.valid
    if result.valid:
        text, _ = clean_text(raw)
        number = phonenumbers.parse(text, "FR")
        assert phonenumbers.is_valid_number(number)
        assert result.e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
