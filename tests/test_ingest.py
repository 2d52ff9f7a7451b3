"""Ingest of real-looking deliveries: formats, encodings, accounting, idempotency, contract."""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from origine.errors import BadInput, DeliveryConflict
from origine.home import Home
from origine.ingest import DeliveryReport, intake
from origine.keys import HashKey
from tests.conftest import raw_forms, scan_tree_for, sha256_hex
from tests.privacy import Scanner, assert_no_raw_number

HEADER = "phone;source;consent_purposes;consent_at\r\n"


def ingest(path: Path, home: Home, key: HashKey) -> DeliveryReport:
    report = intake.prepare(path, home, key)
    return intake.commit(report, home, label=str(path))


def rows_in_warehouse(home: Home, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def assert_balanced(report: DeliveryReport) -> None:
    assert report.balanced
    for f in report.files:
        assert f.rows_read == f.rows_accepted + f.rows_quarantined
        assert sum(f.quarantine_reasons.values()) == f.rows_quarantined


# ---------------------------------------------------------------- formats and encodings


def test_semicolon_cp1252_with_accents(home, key, make_delivery) -> None:
    text = (
        "Téléphone;Source;Finalités;Date consentement\r\n"
        "06 12 34 56 78;jeu-concours-été;propagande électorale|Partenaires;05/06/2023 14:30\r\n"
        "07.81.23.45.67;carte-fidélité;prospection commerciale;01/02/2022\r\n"
    )
    d = make_delivery({"contacts.csv": text.encode("cp1252")})
    report = ingest(d, home, key)
    assert_balanced(report)
    assert report.rows_accepted == 2
    shape = report.files[0].format
    assert (shape["encoding"], shape["delimiter"]) == ("cp1252", ";")
    rows = rows_in_warehouse(
        home, "SELECT source, consent_purposes, consent_at FROM delivery_rows ORDER BY row"
    )
    assert rows[0][0] == "jeu-concours-été"
    assert rows[0][1] == ["political.electoral", "transfer.third_party"]
    # 14:30 in UTC (the manifest has no time zone: naive dates are UTC)
    assert rows[0][2].hour == 14
    assert rows[1][1] == ["marketing.commercial"]


@pytest.mark.parametrize(
    "encoding,bom",
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("latin-1", b""), ("utf-16", b"")],
)
def test_encodings_and_boms(home, key, make_delivery, encoding, bom) -> None:
    text = "Phone,Source\n0612345678,forêt\n0781234567,été\n"
    d = make_delivery({"a.csv": bom + text.encode(encoding)})
    report = ingest(d, home, key)
    assert report.rows_accepted == 2, report
    assert rows_in_warehouse(home, "SELECT source FROM delivery_rows ORDER BY row") == [("forêt",), ("été",)]


@pytest.mark.parametrize("delimiter,suffix", [("\t", "tsv"), ("|", "txt"), (",", "csv"), (";", "csv")])
def test_delimiters_are_sniffed(home, key, make_delivery, delimiter, suffix) -> None:
    text = delimiter.join(["PHONE", "source"]) + "\n" + delimiter.join(["0612345678", "a, b; c"]) + "\n"
    if delimiter in (",", ";"):
        text = text.replace("a, b; c", '"a, b; c"')
    d = make_delivery({f"a.{suffix}": text.encode()})
    report = ingest(d, home, key)
    assert report.rows_accepted == 1
    assert rows_in_warehouse(home, "SELECT source FROM delivery_rows") == [("a, b; c",)]


def test_gzip_csv(home, key, make_delivery) -> None:
    data = gzip.compress(b"phone\n0612345678\n0781234567\n")
    report = ingest(make_delivery({"a.csv.gz": data}), home, key)
    assert report.rows_accepted == 2
    assert report.files[0].format["compression"] == "gzip"


def test_xlsx_numbers_that_lost_their_leading_zero(home, key, make_delivery, tmp_path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Téléphone", "consent_purposes", "consent_at"])
    ws.append([612345678, "sondages", "2023-01-02"])  # 06 12 34 56 78 as an Excel number
    ws.append([33781234567, "sondages", None])  # +33 7 81 23 45 67 without the plus
    ws.append(["06 12 34 56 79", None, None])
    buf = io.BytesIO()
    wb.save(buf)
    report = ingest(make_delivery({"numeros.xlsx": buf.getvalue()}), home, key)
    assert report.rows_accepted == 3, report.quarantine_reasons
    assert rows_in_warehouse(home, "SELECT count(DISTINCT subject_key) FROM delivery_rows") == [(3,)]
    assert key.subject_key("+33612345678") in {
        r[0] for r in rows_in_warehouse(home, "SELECT subject_key FROM delivery_rows")
    }


def test_xlsx_in_morocco_uses_the_manifest_country(home, key, make_delivery) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["phone"])
    wb.active.append([612345678])
    buf = io.BytesIO()
    wb.save(buf)
    ingest(make_delivery({"n.xlsx": buf.getvalue()}, country="MA"), home, key)
    assert rows_in_warehouse(home, "SELECT subject_key, country_code FROM delivery_rows") == [
        (key.subject_key("+212612345678"), 212)
    ]


def test_parquet_with_integer_phone_column(home, key, make_delivery) -> None:
    table = pa.table({"phone": pa.array([612345678, None], pa.int64()), "source": ["x", "y"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    report = ingest(make_delivery({"a.parquet": buf.getvalue()}), home, key)
    assert (report.rows_accepted, report.quarantine_reasons) == (1, {"PHONE_MISSING": 1})


def test_json_lines_with_a_broken_line(home, key, make_delivery) -> None:
    data = b'{"phone": "+33612345678", "source": "a"}\n\n{"phone": "07 81 23 45 67"\n[1,2]\n'
    report = ingest(make_delivery({"a.jsonl": data}), home, key)
    assert report.rows_read == 3
    assert report.quarantine_reasons == {"MALFORMED_ROW": 2}
    assert_balanced(report)


def test_zip_of_a_delivery_folder(home, key, make_delivery, tmp_path) -> None:
    folder = make_delivery({"a.csv": b"phone\n0612345678\n"})
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in folder.iterdir():
            zf.write(p, f"{folder.name}/{p.name}")
    report = ingest(archive, home, key)
    assert report.rows_accepted == 1
    # the zip's extraction is gone: nothing raw left in the home's scratch space
    assert list(home.scratch.iterdir()) == []
    # the same bytes as a folder are the same delivery
    assert ingest(folder, home, key).duplicate


# ---------------------------------------------------------------- accounting


def test_garbage_rows_are_quarantined_with_reasons(home, key, make_delivery) -> None:
    text = (
        "phone;source;extra\n"
        "0612345678;ok;\n"
        ";missing;\n"
        "n/a;unparseable;\n"
        "0000;invalid;\n"
        "6,12346E+08;rounded by excel;\n"
        "0612345679;too;many;fields\n"
        "0612345670\n"
    )
    report = ingest(make_delivery({"a.csv": text.encode()}), home, key)
    assert_balanced(report)
    assert report.rows_read == 7
    assert report.rows_accepted == 1
    assert report.quarantine_reasons == {
        "MALFORMED_ROW": 2,
        "PHONE_INVALID": 1,
        "PHONE_MISSING": 1,
        "PHONE_PRECISION_LOST": 1,
        "PHONE_UNPARSEABLE": 1,
    }
    q = rows_in_warehouse(home, 'SELECT row, reason, "column", subject_key FROM quarantine ORDER BY row')
    assert [r[0] for r in q] == [2, 3, 4, 5, 6, 7]
    invalid = [r for r in q if r[1] == "PHONE_INVALID"][0]
    assert invalid[2] == "phone" and len(invalid[3]) == 64  # keyed hash, never the value


def test_suspicious_rows_are_accepted_and_flagged(home, key, make_delivery) -> None:
    text = (
        "phone,consent_purposes,consent_at,collected_at\n"
        "0612345678,political.electoral,2024-07-01,2024-01-01\n"  # consent after delivery
        "0612345679,j'accepte de partager mes données,2023-01-01,\n"  # bundled
        "0612345670,jeu concours,2023-01-01,\n"  # unknown purpose word
        "0612345671,sondages,,pas une date\n"  # no consent date, unreadable date
    )
    report = ingest(make_delivery({"a.csv": text.encode()}), home, key)
    assert report.rows_accepted == 4
    assert report.flags == {
        "BUNDLED_CONSENT": 1,
        "CONSENT_AFTER_DELIVERY": 1,
        "CONSENT_WITHOUT_DATE": 1,
        "UNKNOWN_PURPOSE": 1,
        "UNREADABLE_DATE": 1,
    }
    codes = {f["code"] for f in report.findings}
    assert {"UNKNOWN_PURPOSE", "UNREADABLE_DATE", "CONSENT_AFTER_DELIVERY", "BUNDLED_CONSENT"} <= codes
    unknown = [f for f in report.findings if f["code"] == "UNKNOWN_PURPOSE"]
    assert unknown == [{"code": "UNKNOWN_PURPOSE", "word": "jeu concours", "rows": 1}]
    bundled = rows_in_warehouse(home, "SELECT consent_purposes, bundled_consent FROM delivery_rows WHERE row = 2")
    assert bundled == [([], True)]


def test_empty_file_is_bad_input(home, key, make_delivery) -> None:
    with pytest.raises(BadInput) as err:
        ingest(make_delivery({"a.csv": b""}), home, key)
    assert "a.csv" in str(err.value) and "'phone'" in str(err.value)


def test_header_only_file_has_zero_rows(home, key, make_delivery) -> None:
    report = ingest(make_delivery({"a.csv": HEADER.encode()}), home, key)
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (0, 0, 0)


def test_missing_phone_column_names_file_and_column(home, key, make_delivery) -> None:
    with pytest.raises(BadInput) as err:
        ingest(make_delivery({"a.csv": b"name;email\nx;y\n"}), home, key)
    assert err.value.column == "phone" and "a.csv" in str(err.value)


def test_truncated_gzip_is_bad_input_and_writes_nothing(home, key, make_delivery) -> None:
    data = gzip.compress(b"phone\n" + b"0612345678\n" * 5000)
    with pytest.raises(BadInput) as err:
        ingest(make_delivery({"a.csv.gz": data[: len(data) // 2]}), home, key)
    assert "gzip" in str(err.value) and "a.csv.gz" in str(err.value)
    assert not home.warehouse.exists() or rows_in_warehouse(home, "SELECT count(*) FROM deliveries") == [(0,)]
    assert not any(p.name.endswith("parquet") for p in home.segments.rglob("*"))


def test_unterminated_quote_names_the_row(home, key, make_delivery) -> None:
    with pytest.raises(BadInput) as err:
        ingest(make_delivery({"a.csv": b'phone,source\n0612345678,ok\n0612345679,"never closed\n'}), home, key)
    assert err.value.row == 2


# ---------------------------------------------------------------- idempotency


def test_same_bytes_twice_is_a_duplicate_adding_nothing(home, key, make_delivery) -> None:
    files = {"a.csv": b"phone\n0612345678\n"}
    first = ingest(make_delivery(files, folder="one", delivery_id="X-1"), home, key)
    second = ingest(make_delivery(files, folder="renamed", delivery_id="X-1"), home, key)
    assert not first.duplicate and second.duplicate
    assert rows_in_warehouse(home, "SELECT count(*) FROM delivery_rows") == [(1,)]
    assert rows_in_warehouse(home, "SELECT count(*) FROM deliveries") == [(1,)]


def test_same_id_with_other_bytes_is_refused(home, key, make_delivery) -> None:
    ingest(make_delivery({"a.csv": b"phone\n0612345678\n"}, delivery_id="X-1"), home, key)
    with pytest.raises(DeliveryConflict) as err:
        ingest(make_delivery({"a.csv": b"phone\n0612345679\n"}, delivery_id="X-1"), home, key)
    assert err.value.exit_code == 2
    assert rows_in_warehouse(home, "SELECT count(*) FROM delivery_rows") == [(1,)]


# ---------------------------------------------------------------- manifest checks


def test_declared_sha256_and_rows_are_verified(home, key, make_delivery) -> None:
    data = b"phone\n0612345678\n"
    ok = make_delivery({"a.csv": data}, declare={"a.csv": {"sha256": sha256_hex(data), "rows": 1}})
    assert ingest(ok, home, key).rows_read == 1
    bad_sha = make_delivery({"a.csv": data}, declare={"a.csv": {"sha256": "0" * 64}})
    with pytest.raises(BadInput, match="SHA-256 mismatch"):
        ingest(bad_sha, home, key)
    bad_rows = make_delivery({"a.csv": data}, declare={"a.csv": {"rows": 2}})
    with pytest.raises(BadInput, match="declares 2 rows, the file has 1"):
        ingest(bad_rows, home, key)


@pytest.mark.parametrize("path", ["../outside.csv", "/etc/passwd", "sub/../../outside.csv"])
def test_paths_leaving_the_delivery_are_refused(home, key, make_delivery, path) -> None:
    d = make_delivery({"a.csv": b"phone\n0612345678\n"})
    (d.parent / "outside.csv").write_bytes(b"phone\n0612345678\n")
    manifest = d / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("path: a.csv", f"path: {path}"))
    with pytest.raises(BadInput, match="leaves the delivery|absolute"):
        ingest(d, home, key)


def test_symlink_and_missing_file_are_refused(home, key, make_delivery, tmp_path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_bytes(b"phone\n0612345678\n")
    d = make_delivery({"a.csv": b"phone\n"})
    (d / "a.csv").unlink()
    os.symlink(outside, d / "a.csv")
    with pytest.raises(BadInput, match="symlink"):
        ingest(d, home, key)
    (d / "a.csv").unlink()
    with pytest.raises(BadInput, match="missing"):
        ingest(d, home, key)


def test_zip_slip_is_refused(home, key, tmp_path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.yaml", "delivery_id: x\n")
        zf.writestr("../escape.csv", "phone\n")
    with pytest.raises(BadInput, match="leaves the delivery"):
        ingest(archive, home, key)


def test_manifest_json_and_missing_fields(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b"phone\n0612345678\n"}, manifest_format="json")
    assert ingest(d, home, key).rows_accepted == 1
    d = make_delivery({"a.csv": b"phone\n"}, country=None)
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert err.value.column == "country" and "manifest.yaml" in str(err.value)


# ---------------------------------------------------------------- other columns and privacy


def test_special_category_column_values_are_never_stored(home, key, make_delivery) -> None:
    text = "phone;Religion;Origine ethnique;ville\n0612345678;Zoroastrisme-Unique;Groupe-Unique-42;Lyon\n"
    report = ingest(make_delivery({"a.csv": text.encode()}), home, key)
    special = [f for f in report.findings if f["code"] == "SPECIAL_CATEGORY_COLUMN"]
    assert {(f["column"], f["category"]) for f in special} == {
        ("Religion", "religion"),
        ("Origine ethnique", "ethnic_origin"),
    }
    assert report.files[0].ignored_columns == ["Religion", "Origine ethnique", "ville"]
    leaks = scan_tree_for(home.root, [b"Zoroastrisme-Unique", b"Groupe-Unique-42", b"Lyon"])
    assert leaks == []


def test_no_raw_number_anywhere_in_the_home(home, key, make_delivery) -> None:
    numbers = ["+33612345678", "+33781234567", "+212612345678", "+33145454545"]
    text = "phone\n0612345678\n+33 7 81 23 45 67\n+212612345678\n0145454545\n+33 1 23\n"
    ingest(make_delivery({"a.csv": text.encode()}), home, key)
    # every written form (national, spaced, dotted…), inside DuckDB, Parquet and SQLite too
    assert_no_raw_number(Scanner(numbers, extra=["3312300"]).scan_tree(home.root, exclude=["landing"]))
    # and no column of any table holds a run of 9+ digits that is not inside a hex value
    # (a key, a digest, a signature: a hex signature starts with 9 digits 1.5 % of the time)
    con = duckdb.connect(str(home.warehouse), read_only=True)
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND data_type IN ('VARCHAR', 'JSON')"
    ).fetchall():
        hits = con.execute(
            f'SELECT count(*) FROM "{table}" WHERE regexp_matches("{column}", \'(^|[^0-9a-f])[0-9]{{9,}}($|[^0-9a-f])\')'
        ).fetchone()[0]
        assert hits == 0, (table, column)
    con.close()


def test_report_round_trips_through_json(home, key, make_delivery) -> None:
    report = ingest(make_delivery({"a.csv": b"phone\n0612345678\n"}), home, key)
    again = DeliveryReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_preparing_the_same_bytes_again_keeps_the_existing_segment(home, key, make_delivery) -> None:
    """A second prepare (a retry, or a twin run) must not delete a segment that a
    concurrent commit may be reading; segments depend only on the bytes."""
    path = make_delivery({"a.csv": b"phone\n0612345678\n"})
    first = intake.prepare(path, home, key)
    events = Path(first.segment) / "rows.parquet"
    before = events.stat().st_ino
    second = intake.prepare(path, home, key)
    assert second.segment == first.segment and events.stat().st_ino == before
    assert not [p for p in Path(first.segment).parent.iterdir() if ".partial" in p.name]
    assert intake.commit(second, home, label="x").rows_accepted == 1


def test_the_same_number_twice_in_a_delivery_is_a_finding(home, key, make_delivery) -> None:
    """Three spellings of one number and another number: two rows repeat a subject."""
    text = ("phone,source\n06 12 34 56 78,a\n+33612345678,b\n0033 6 12 34 56 78,c\n0612345679,d\n")
    report = ingest(make_delivery({"a.csv": text.encode()}), home, key)
    duplicates = [f for f in report.findings if f["code"] == "DUPLICATE_NUMBERS"]
    assert duplicates == [{"code": "DUPLICATE_NUMBERS", "rows": 2}]
    single = ingest(make_delivery({"a.csv": b"phone\n0612345678\n0612345679\n"}), home, key)
    assert not [f for f in single.findings if f["code"] == "DUPLICATE_NUMBERS"]
