"""Property: whatever rows or bytes a vendor sends, origine gives a clean error or a full
accounting (rows_read = accepted + quarantined), never a crash and never a lost row."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine.errors import BadInput
from origine.keys import HashKey
from origine.manifest import load_delivery
from origine.profiles import default_profile
from tests.conftest import TEST_KEY_HEX
from tests.row_reference import ENGINES, prepare_delivery

KEY = HashKey(bytes.fromhex(TEST_KEY_HEX))
MANIFEST = (
    "delivery_id: P-1\nvendor: fuzz\ndelivered_at: 2024-06-05T09:00:00Z\ncountry: FR\n"
    "files: [{path: %s}]\n"
)

cell = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["0612345678", "+33 6 12 34 56 78", "6,12346E+08", "", "n/a", "politique|sondages"]),
)


def run(name: str, data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        root.mkdir()
        (root / name).write_bytes(data)
        (root / "manifest.yaml").write_text(MANIFEST % name)
        delivery = load_delivery(root)
        return prepare_delivery(
            delivery, key=KEY, profile=default_profile("fuzz"), segments_root=Path(tmp) / "seg"
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.lists(cell, min_size=1, max_size=4), max_size=25),
    delimiter=st.sampled_from([";", ",", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
)
def test_written_csv_is_fully_accounted(rows, delimiter, encoding) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["phone", "source", "consent_purposes", "note"])
    writer.writerows(rows)
    data = buf.getvalue().encode(encoding, errors="replace")
    report = run("a.csv", data)  # well-formed CSV: never an error
    assert report.balanced
    # every record is read, none lost; only a record of one blank cell is a blank line
    blank = [r for r in rows if len(r) == 1 and not r[0].strip()]
    assert report.rows_read == len(rows) - len(blank)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=400),
    name=st.sampled_from(["a.csv", "a.csv.gz", "a.jsonl", "a.xlsx", "a.parquet", "a.tsv"]),
)
def test_random_bytes_give_a_clean_error_or_an_accounting(data, name) -> None:
    try:
        report = run(name, b"phone\n" + data if name.endswith((".csv", ".tsv")) else data)
    except BadInput as exc:
        assert exc.file and name in exc.file
        return
    assert report.balanced


# Letters whose cp1252 bytes (0xE0-0xFF) are UTF-8 lead bytes never followed by a
# continuation byte here: a cp1252 row of them is never valid UTF-8 by accident.
_FRENCH = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789-.éèàçùâêîôëïü"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(st.text(_FRENCH, max_size=15), st.booleans(), st.sampled_from(["\n", "\r\n"])),
        min_size=1, max_size=30,
    ),
    bom=st.booleans(),
)
def test_each_row_is_decoded_in_its_own_encoding(rows, bom) -> None:
    """A UTF-8 file with rows pasted in from cp1252: every row reads back as written
    (never mojibake), whichever encoding each row is in; the cp1252 rows are counted."""
    from origine.readers import MIXED_UTF8_CP1252, open_batches, open_records

    lines = [b"\xef\xbb\xbf" * bom + b"phone;note\n"] + [
        f"0612345678;{text}{end}".encode("cp1252" if cp else "utf-8") for text, cp, end in rows
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.csv"
        path.write_bytes(b"".join(lines))
        shape, records = open_records(path, "a.csv")
        got = [r.values["note"] for r in records]
        assert got == [text for text, _, _ in rows]
        mixed = any(cp and not t.isascii() for t, cp, _ in rows) and any(
            not cp and not t.isascii() for t, cp, _ in rows
        )
        if mixed:
            assert shape.encoding == MIXED_UTF8_CP1252
            assert shape.rows_not_utf8 == sum(1 for t, cp, _ in rows if cp and not t.isascii())
        _, batches = open_batches(path, "a.csv")
        column = [b.columns["note"] for b in batches]
        assert [v for c in column for v in (c if isinstance(c, list) else c.to_pylist())] == got


_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(["0612345678", "+33 6 12 34 56 78", "sondages", "propagande électorale"]),
)
_json_value = st.recursive(
    _json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)


def _rows_of(report) -> list[dict]:
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(report.segment) / "rows.parquet").to_pylist()
    quarantine = pq.read_table(Path(report.segment) / "quarantine.parquet").to_pylist()
    return sorted(rows, key=lambda r: r["row"]) + sorted(quarantine, key=lambda r: r["row"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.dictionaries(st.sampled_from(["phone", "source", "consent_purposes", "consent_at", "extra"]), _json_value),
        min_size=1, max_size=12,
    )
)
def test_any_json_values_are_accounted_for_and_both_engines_agree(lines) -> None:
    """Whatever JSON value each cell holds: every line is accepted or quarantined, the
    column engine gives the row engine's rows value for value, and a stored text value is
    never Python's repr of a list or dict."""
    import json

    data = "".join(json.dumps({"phone": "0612345678", **line}) + "\n" for line in lines).encode()
    reports = []
    for engine in ("rows", "columns"):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "d"
            root.mkdir()
            (root / "a.jsonl").write_bytes(data)
            (root / "manifest.yaml").write_text(MANIFEST % "a.jsonl")
            report = prepare_delivery(
                load_delivery(root), key=KEY, profile=default_profile("fuzz"), segments_root=Path(tmp) / "seg",
                row_engine=ENGINES[engine],
            )
            reports.append((report, _rows_of(report)))
    (by_rows, rows_a), (by_columns, rows_b) = reports
    assert by_rows.balanced and by_rows.rows_read == len(lines)
    assert rows_a == rows_b
    assert (by_rows.findings, by_rows.flags) == (by_columns.findings, by_columns.flags)
    for row in rows_a:
        assert not (row.get("source") or "").startswith(("['", "{'"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sheets=st.lists(
        st.tuples(
            st.sampled_from(["visible", "hidden", "veryHidden"]),
            st.lists(st.one_of(st.just(None), st.sampled_from(["0612345678", "n/a", "+33 7 12 34 56 78"])), max_size=6),
            st.booleans(),  # a header row at all
        ),
        min_size=1, max_size=4,
    )
)
def test_every_sheet_of_a_workbook_is_accounted_for(sheets) -> None:
    """Any number of sheets, in any state, with blank rows anywhere: every non-blank row of
    every sheet with a header is read once, numbered on across sheets, and the sheets'
    reports add up to the file's rows (``None`` stands for a blank row)."""
    import io

    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for i, (state, cells, has_header) in enumerate(sheets):
        sheet = wb.create_sheet(f"s{i}")
        sheet.sheet_state = state
        if has_header:
            sheet.append(["phone"])
        for cell in cells:
            sheet.append([cell])
    if all(state != "visible" for state, _, _ in sheets):
        wb.create_sheet("visible")  # Excel needs one visible sheet
    buf = io.BytesIO()
    wb.save(buf)
    headers, data = [], []
    for _, cells, has_header in sheets:
        values = [c for c in cells if c is not None]
        headers.append("phone" if has_header else (values[0] if values else None))
        data.append(values if has_header else values[1:])
    with_rows = [h is not None and bool(d) for h, d in zip(headers, data)]
    columns = {h for h, w in zip(headers, with_rows) if w} or {next((h for h in headers if h is not None), None)}
    try:
        report = run("a.xlsx", buf.getvalue())
    except BadInput as exc:
        if all(h is None for h in headers):
            assert "no sheet has a header row" in exc.message
        else:
            assert "phone" not in columns and "required column missing" in exc.message
        return
    assert "phone" in columns
    file_report = report.files[0]
    assert report.balanced
    assert [s["rows"] for s in file_report.format["sheets"][: len(sheets)]] == [
        len(d) if w else 0 for d, w in zip(data, with_rows)
    ]
    assert file_report.rows_read == sum(len(d) for d, w in zip(data, with_rows) if w)
    first = 1
    for sheet in file_report.format["sheets"]:
        if sheet["rows"]:
            assert (sheet["first_row"], sheet["last_row"]) == (first, first + sheet["rows"] - 1)
            first += sheet["rows"]
