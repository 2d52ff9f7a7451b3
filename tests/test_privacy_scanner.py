"""The raw-number scanner the privacy tests rely on (tests/privacy.py): it must find every
written form of a number in every format origine writes, and never a digit run inside hex."""

from __future__ import annotations

import gzip
import hashlib
import io
import sqlite3
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.privacy import Scanner, written_forms

FR = "+33612345678"


def test_written_forms_cover_the_usual_writings() -> None:
    forms = set(written_forms(FR))
    for expected in ("+33612345678", "0612345678", "612345678", "06 12 34 56 78", "06.12.34.56.78",
                     "06-12-34-56-78", "+33 6 12 34 56 78", "0033612345678", "33612345678",
                     "0033 6 12 34 56 78", "+33 (0)6 12 34 56 78", "06\u00a012\u00a034\u00a056\u00a078"):
        assert expected in forms, expected
    senegal = set(written_forms("+221771234567"))  # no trunk prefix
    assert {"771234567", "77 123 45 67", "+221 77 123 45 67", "00221771234567"} <= senegal
    assert "0771234567" not in senegal


@given(form=st.sampled_from(written_forms(FR)), before=st.sampled_from(["", " ", ",", "\"", "tel:", "(", "\n"]),
       after=st.sampled_from(["", " ", ",", "\"", ";", ")", "\n", "."]))
def test_every_form_is_found_between_usual_delimiters(form: str, before: str, after: str) -> None:
    text = f"zz{before}{form}{after}zz"
    hits = Scanner([FR]).scan_text(text, "t")
    assert [(h.number, h.form) for h in hits] == [(FR, form)]
    assert form in hits[0].context


@settings(max_examples=200)
@given(st.binary(min_size=0, max_size=24), st.binary(min_size=0, max_size=24))
def test_digit_runs_inside_hex_are_not_numbers(left: bytes, right: bytes) -> None:
    """A subject key or signature that happens to hold the digits is not a leak."""
    hexed = "k=" + left.hex() + "a612345678b" + right.hex() + ";"
    assert Scanner([FR]).scan_bytes(hexed.encode(), "h") == []


def test_hex_values_do_not_count_but_other_neighbours_do() -> None:
    s = Scanner([FR])
    digest = hashlib.sha256(b"x").hexdigest()
    assert s.scan_text(f"{digest[:20]}612345678{digest[20:]}", "t") == []
    assert s.scan_text(f"key=a0612345678f", "t") == []
    assert len(s.scan_text("rowid=0612345678;", "t")) == 1
    assert s.scan_text("06123456789", "t") == []  # another, longer number
    assert s.scan_text("106 12 34 56 78", "t") == []


def test_found_inside_gzip_zip_parquet_duckdb_and_sqlite(tmp_path: Path) -> None:
    s = Scanner([FR])
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"x 06.12.34.56.78 y"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("in/b.json", '{"n": "+33 6 12 34 56 78"}' + " " * 5000)
        zf.writestr("c.csv.gz", gzip.compress(b"phone\n0612345678\n"))
    (tmp_path / "bundle.zip").write_bytes(buf.getvalue())
    # compressed pages and a database: found through their readers, not only as bytes
    table = pa.table({"k": [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)],
                      "v": ["x"] * 1999 + ["tel 0612345678"]})
    pq.write_table(table, tmp_path / "seg.parquet", compression="zstd")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE t AS SELECT i, 'row ' || i AS v FROM range(100000) r(i)")
    con.execute("INSERT INTO t VALUES (7, '+33612345678')")
    con.execute("CHECKPOINT")
    con.close()
    lite = sqlite3.connect(tmp_path / "runs.db")
    lite.execute("CREATE TABLE e (body TEXT)")
    lite.execute("INSERT INTO e VALUES (?)", ["y" * 4090 + "06 12 34 56 78" + "z" * 9000])  # overflow pages
    lite.commit()
    lite.close()
    (tmp_path / "clean.txt").write_text("nothing here " + hashlib.sha256(b"y").hexdigest())
    hits = s.scan_tree(tmp_path)
    where = {(Path(h.where.split("::")[0]).name, h.form) for h in hits}
    assert ("a.txt.gz", "06.12.34.56.78") in where
    assert ("bundle.zip", "+33 6 12 34 56 78") in where and ("bundle.zip", "0612345678") in where
    whole = {(h.where.split("/")[-1], h.form) for h in hits}
    assert ("seg.parquet::rows", "0612345678") in whole
    assert ("w.duckdb::main.t", "+33612345678") in whole
    assert ("runs.db::e", "06 12 34 56 78") in whole
    assert not [h for h in hits if "clean.txt" in h.where]
    assert [h for h in s.scan_tree(tmp_path, exclude=["bundle.zip"]) if "bundle.zip" in h.where] == []


def test_extra_strings_are_found_too() -> None:
    s = Scanner([FR], extra=["3312300", "x@example.org"])
    assert [h.form for h in s.scan_text("a 3312300 b x@example.org c", "t")] == ["3312300", "x@example.org"]


def test_a_scanner_of_extra_strings_only() -> None:
    assert Scanner([], extra=["82.64.1.10"]).scan_text("ip 82.64.1.10, 0612345678", "t")[0].form == "82.64.1.10"
    assert Scanner([]).scan_text("0612345678", "t") == []


@given(st.lists(st.integers(min_value=0, max_value=4), min_size=13, max_size=13),
       st.sampled_from(["0612345678", "612345678", "+33612345678", "0033612345678"]))
def test_any_grouping_of_the_digits_is_found(gaps: list[int], digits: str) -> None:
    """``0661-234568``, ``06 123 456 78``: whatever the grouping, the number is found."""
    seps = ["", " ", ".", "-", "\u00a0"]
    text = digits[0] + "".join(seps[g] + d for g, d in zip(gaps, digits[1:]))
    hits = Scanner([FR]).scan_text(f"zz {text} zz", "t")
    assert [h.form for h in hits] == [text]
