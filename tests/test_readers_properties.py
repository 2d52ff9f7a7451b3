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
from origine.ingest import prepare_delivery
from origine.keys import HashKey
from origine.manifest import load_delivery
from origine.profiles import default_profile
from tests.conftest import TEST_KEY_HEX

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
