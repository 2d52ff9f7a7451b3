"""``numbers.keyed``, the one path from cells to subject keys, against the per-value reference:
``phones.normalize`` then ``HashKey.subject_key``, for any value, Python or Arrow, any key."""

from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine import numbers, phones
from origine.keys import HashKey
from tests.conftest import TEST_KEY_HEX
from tests.test_fastphone import REGIONS, VALUES, phone_like

KEY = HashKey(bytes.fromhex(TEST_KEY_HEX))
ROTATED = KEY.with_layer(b"a rotation layer of at least 32 bytes!!")
FIELDS = ("e164", "valid", "country_code", "line_type", "reason")


def _reference(values: Sequence[Any], region: str, key: HashKey) -> list[dict[str, Any]]:
    out = []
    for v in values:
        r = phones.normalize(v, region)
        row = {f: getattr(r, f) for f in FIELDS}
        row["subject_key"] = key.subject_key(r.e164) if r.e164 is not None else None
        out.append(row)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values=st.lists(VALUES, max_size=60), region=st.sampled_from(REGIONS), key=st.sampled_from([KEY, ROTATED]))
def test_keyed_python_values_equal_the_reference(values: list[Any], region: str, key: HashKey) -> None:
    table = numbers.keyed(values, region, key)
    assert table.schema == numbers.SCHEMA
    assert table.to_pylist() == _reference(values, region, key)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(phone_like(), st.none()), max_size=80), region=st.sampled_from(REGIONS),
       split=st.integers(0, 80))
def test_keyed_arrow_columns_equal_the_reference(values: list[str | None], region: str, split: int) -> None:
    # Chunked as a reader's batches arrive; row order must survive the chunk seams.
    split = min(split, len(values))
    column = pa.chunked_array([pa.array(values[:split], pa.string()), pa.array(values[split:], pa.string())])
    assert numbers.keyed(column, region, KEY).to_pylist() == _reference(values, region, KEY)


@given(values=st.lists(st.one_of(st.none(), st.integers(0, 10**12)), max_size=40))
def test_keyed_integer_columns_equal_the_reference(values: list[int | None]) -> None:
    # A numeric spreadsheet column: the leading zero is gone, the region puts it back.
    assert numbers.keyed(pa.array(values, pa.int64()), "FR", KEY).to_pylist() == _reference(values, "FR", KEY)


def test_keyed_keys_invalid_numbers_and_not_unparsed_values() -> None:
    table = numbers.keyed(["06 12 34 56 78", "+33 1 23", "not a number", None], "FR", KEY).to_pylist()
    assert table[0]["subject_key"] == KEY.subject_key("+33612345678") and table[0]["valid"]
    # Parsed but invalid: keyed, so its quarantine entry still names the subject.
    assert table[1]["reason"] == phones.PHONE_INVALID and table[1]["subject_key"] == KEY.subject_key("+33123")
    assert [r["subject_key"] for r in table[2:]] == [None, None]
    assert [r["reason"] for r in table[2:]] == [phones.PHONE_UNPARSEABLE, phones.PHONE_MISSING]


def test_keyed_empty_column() -> None:
    assert numbers.keyed(pa.array([], pa.string()), "FR", KEY).schema == numbers.SCHEMA
    assert numbers.keyed([], "FR", KEY).num_rows == 0
