"""Suppression files read their phone column through ``numbers.keyed`` in chunks: every
row still gets the per-value reference's result (``phones.normalize`` then
``HashKey.subject_key``), across chunk seams and around malformed rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine import phones, suppressions, warehouse
from origine.errors import BadInput
from origine.home import Home
from origine.keys import HashKey
from origine.signing import load_signer

PHONES = ["06 12 34 56 78", "+33 1 23", "not a number", "", "0033698765432", "6,12345678E+08",
          "6,12346E+08", "07 00 00 00 01", "'0611223344", "+212 6 12 34 56 78"]
ROW = st.one_of(
    st.tuples(st.sampled_from(PHONES), st.sampled_from(["sms", "voix", "carrier pigeon"]),
              st.sampled_from(["2024-06-07 18:03", "yesterday"])),
    st.just(None),  # a row that does not split into the header's columns
)


def _reference(rows: list[tuple[str, str, str] | None], key: HashKey) -> tuple[dict[int, str], list[tuple]]:
    """(accepted row -> subject key, quarantine entries) row by row, the reference way."""
    accepted: dict[int, str] = {}
    quarantine: list[tuple] = []
    for n, row in enumerate(rows, 1):
        if row is None:
            quarantine.append((n, "MALFORMED_ROW", None, None))
            continue
        result = phones.normalize(row[0], "FR")
        subject = key.subject_key(result.e164) if result.e164 else None
        if result.reason:
            quarantine.append((n, result.reason, "phone", subject))
        elif row[1] == "carrier pigeon":
            quarantine.append((n, suppressions.INVALID_CHANNEL, "channel", subject))
        elif row[2] == "yesterday":
            quarantine.append((n, suppressions.INVALID_DATE, "at", subject))
        else:
            assert subject is not None
            accepted[n] = subject
    return accepted, quarantine


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=12), chunk=st.integers(1, 5))
def test_chunked_suppression_rows_equal_the_reference(
    rows: list[tuple[str, str, str] | None], chunk: int, tmp_path: Path, key: HashKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(suppressions, "CHUNK_ROWS", chunk)
    # One home for all examples (tmp_path is the test's): each file is read back by its hash.
    home = Home(tmp_path / "home").ensure()
    path = tmp_path / "stop.csv"
    path.write_text("phone;channel;at\n" + "".join(
        "a;b;c;d\n" if r is None else ";".join(r) + "\n" for r in rows), encoding="utf-8")
    report = suppressions.ingest_suppressions(path, warehouse_path=home.warehouse, key=key, region="FR",
                                              signer=load_signer(home.keys))
    accepted, quarantine = _reference(rows, key)
    assert (report.rows_read, report.rows_accepted) == (len(rows), len(accepted))
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        got: list[Any] = con.execute(
            'SELECT "row", reason, "column", subject_key FROM suppression_quarantine WHERE file_sha256 = ? '
            'ORDER BY "row"', [report.sha256]).fetchall()
        events = dict(con.execute(
            "SELECT \"row\", subject_key FROM ledger_events WHERE type = 'opted_out' AND file_sha256 = ?",
            [report.sha256]).fetchall())
    finally:
        con.close()
    assert got == quarantine
    assert events == accepted


def test_a_missing_phone_column_names_the_column_not_a_cell(home: Home, key: HashKey, tmp_path: Path) -> None:
    path = tmp_path / "stop.csv"
    path.write_text("numero;channel\n06 12 34 56 78;sms\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        suppressions.ingest_suppressions(path, warehouse_path=home.warehouse, key=key)
    assert caught.value.column == "phone" and "06 12" not in str(caught.value)
