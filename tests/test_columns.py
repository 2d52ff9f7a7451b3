"""The columnar ingest path gives exactly what the per-row reference gives.

Each delivery here is prepared twice, by the per-row reference (``tests/row_reference.py``,
one value at a time: the definition) and by whole columns (production), and every
table of the two segments and their reports must be equal. The parts the
columnar path is built from are checked against their references directly:
dates, the columnar readers, and the keyed hash.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine.dates import parse_instants
from origine.keys import HashKey
from origine.manifest import open_delivery
from origine.profiles import load_profile
from origine.readers import NotColumnar, open_batches
from tests.row_reference import ENGINES, instants_one_by_one, prepare_delivery

PHONES = [
    "06 12 34 56 78", "+33 6 12 34 56 79", "0033612345680", "612345681", "6,12346E+08",
    "'0612345682", '="0612345683"', "612345684.0", "+212 6 12 34 56 78", "+221 77 123 45 67",
    "", "n/a", "0000", "01 23 45 67 89", "+33 1 23 45 67 89 poste 12", "06 12 34 56 78",
    "\u00a006\u00a012\u00a034\u00a056\u00a085 ", "+1 650 253 0000",
]
DATES = [
    "05/06/2024 09:00", "2024-06-05", "2024-06-05T09:00:00+02:00", "31/02/2024", "2025-01-01",
    "2024-03-31 02:30", "2024-10-27 02:30", "", "hier", " 1/2/2023 9h05 ", "2024-06-05T09:00Z",
]
PURPOSES = ["prospection commerciale", "propagande électorale|partenaires", "sondages", "",
            "tout", "newsletter|  SONDAGES ", "mot inconnu"]


def csv_bytes(rows: int, *, delimiter: str = ";", encoding: str = "utf-8", crlf: bool = True,
              extra: str | None = None) -> bytes:
    """A delivery file cycling through the ugly values above."""
    end = "\r\n" if crlf else "\n"
    header = delimiter.join(["Téléphone", "source", "Finalités", "Date consentement", "collected_at",
                             "acquired_from", "opted_out_at", "religion"])
    lines = [header]
    for i in range(rows):
        lines.append(delimiter.join([
            PHONES[i % len(PHONES)], ["jeu-concours", " carte ", ""][i % 3], PURPOSES[i % len(PURPOSES)],
            DATES[i % len(DATES)], DATES[(i * 7) % len(DATES)], ["", "broker-x"][i % 2],
            ["", "2024-01-01"][i % 5 == 0], "catholique",
        ]))
        if extra and i == rows // 2:
            lines.append(extra)
    return (end.join(lines) + end).encode(encoding)


def prepare_both(path: Path, tmp_path: Path, key: HashKey) -> tuple[dict, dict]:
    out = []
    for engine in ("rows", "columns"):
        with open_delivery(path) as delivery:
            report = prepare_delivery(
                delivery, key=key, profile=load_profile(delivery.manifest.vendor, tmp_path / "profiles"),
                segments_root=tmp_path / engine, row_engine=ENGINES[engine],
            )
        segment = Path(report.segment)
        doc = report.to_dict()
        doc.pop("segment")
        tables = {name: pq.read_table(segment / f"{name}.parquet").to_pylist()
                  for name in ("rows", "quarantine")}  # the ledger leaves are built from rows at the commit
        out.append({"report": doc, **tables})
    return out[0], out[1]


def assert_same(path: Path, tmp_path: Path, key: HashKey) -> dict:
    rows, cols = prepare_both(path, tmp_path, key)
    for part in ("report", "rows", "quarantine"):
        assert cols[part] == rows[part], part
    return cols


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_plain_csv_is_identical_by_columns_and_by_rows(key, make_delivery, tmp_path, encoding) -> None:
    path = make_delivery({"contacts.csv": csv_bytes(600, encoding=encoding)}, timezone="Europe/Paris")
    cols = assert_same(path, tmp_path, key)
    report = cols["report"]
    assert report["rows_read"] == 600 and report["rows_quarantined"] > 0
    assert {"UNREADABLE_DATE", "UNKNOWN_PURPOSE", "CONSENT_AFTER_DELIVERY", "SPECIAL_CATEGORY_COLUMN"} <= {
        f["code"] for f in report["findings"]}


@pytest.mark.parametrize("extra", ["1;2", "   ", '"06 12 34 56 99";x;;;;;;', "0612345600;;;;;;;;"])
def test_files_the_arrow_reader_refuses_fall_back_to_the_row_reader(key, make_delivery, tmp_path, extra) -> None:
    """A malformed row, a blank-looking line, quotes, trailing delimiters: same result."""
    path = make_delivery({"contacts.csv": csv_bytes(200, extra=extra)})
    cols = assert_same(path, tmp_path, key)
    assert cols["report"]["rows_read"] in (200, 201)


def test_other_formats_are_identical(key, make_delivery, tmp_path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["phone", "consent_purposes", "consent_at", "source"])
    for i in range(50):
        wb.active.append([612345600 + i, PURPOSES[i % len(PURPOSES)], DATES[i % len(DATES)], i])
    wb.active.append([None, "sondages", None, None])
    buf = io.BytesIO()
    wb.save(buf)
    parquet = io.BytesIO()
    pq.write_table(pa.table({
        "phone": pa.array([612345678, None, 33781234567, 1], pa.int64()),
        "consent_at": pa.array([None, None, 1_717_570_800_000_000, 0], pa.timestamp("us", tz="UTC")),
        "source": ["a", " b ", None, ""],
    }), parquet)
    jsonl = b"\n".join(json.dumps(d).encode() for d in [
        {"phone": "+33612345678", "consent_purposes": "sondages", "consent_at": "2024-01-01"},
        {"phone": 612345679, "source": 12},
        {"phone": True}, {"phone": 6.12345680e8},
    ]) + b"\n[1]\n"
    path = make_delivery({
        "a.xlsx": buf.getvalue(), "b.parquet": parquet.getvalue(), "c.jsonl": jsonl,
        "d.tsv.gz": gzip.compress(csv_bytes(300, delimiter="\t", crlf=False)),
    }, timezone="Europe/Paris")
    assert_same(path, tmp_path, key)


# ---------------------------------------------------------------- dates


date_text = st.one_of(
    st.sampled_from(DATES),
    st.builds(lambda d, m, y, h, mi, sep, t: f"{d}{sep}{m}{sep}{y}" + (f"{t}{h}:{mi:02d}" if h is not None else ""),
              st.integers(0, 32), st.integers(0, 13), st.integers(1, 9999), st.one_of(st.none(), st.integers(0, 25)),
              st.integers(0, 61), st.sampled_from("/.-"), st.sampled_from([" ", "T"])),
    st.builds(lambda y, m, d, h, mi, s, off: f"{y:04d}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{off}",
              st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
              st.integers(0, 60), st.sampled_from(["", "Z", "+02:00", "-03:30", "+24:00", "+05:61"])),
    st.text(max_size=20),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.none(), date_text), max_size=40),
       zone=st.sampled_from(["UTC", "Europe/Paris", "Africa/Casablanca", "America/Sao_Paulo", "Australia/Lord_Howe"]))
def test_dates_by_column_match_the_reference(values, zone) -> None:
    tz = timezone.utc if zone == "UTC" else ZoneInfo(zone)
    stamps, bad = parse_instants(pa.array(values, pa.string()), tz)
    assert (stamps.to_pylist(), bad.tolist()) == instants_one_by_one(values, tz)


def test_clock_changes_follow_python() -> None:
    """Local times a clock change skips or repeats are read as Python reads them (fold=0)."""
    values = ["2024-03-31 02:30", "31/03/2024 02:30", "2024-10-27 02:30", "27/10/2024 02h30"]
    tz = ZoneInfo("Europe/Paris")
    stamps, bad = parse_instants(pa.array(values), tz)
    assert (stamps.to_pylist(), bad.tolist()) == instants_one_by_one(values, tz)


# ---------------------------------------------------------------- readers


cell = st.text(alphabet=st.sampled_from(list("06 +;\t|x\"é\r\n\u00a0\u2028")), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cell, min_size=1, max_size=4), min_size=1, max_size=8))
def test_columnar_reader_reads_what_the_row_reader_reads(tmp_path, rows) -> None:
    """Arbitrary delimited text: the Arrow reader either gives the row reader's
    rows, numbers and values, or declines (NotColumnar) before giving anything wrong."""
    text = "phone;source\n" + "\n".join(";".join(r) for r in rows) + "\n"
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8"))

    def read(columnar: bool):
        try:
            shape, batches = open_batches(path, "f.csv", columnar=columnar)
            out = [(b.rows.tolist(), {k: (v.to_pylist() if isinstance(v, pa.Array) else v)
                                      for k, v in b.columns.items()}, b.problems) for b in batches]
            return shape.to_dict(), out
        except Exception as exc:  # noqa: BLE001 - compared below
            return type(exc).__name__

    slow = read(False)
    fast = read(True)
    if fast == "NotColumnar":
        return
    assert fast == slow


def test_arrow_parse_errors_never_carry_the_row(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"phone;source\n0612345678;a\n0699887766;b;c\n")
    shape, batches = open_batches(path, "f.csv")
    with pytest.raises(NotColumnar) as caught:
        list(batches)
    assert "0699887766" not in str(caught.value)
    assert caught.value.__context__ is None and caught.value.__cause__ is None


# ---------------------------------------------------------------- keyed hash


@pytest.mark.parametrize("secret", [bytes(range(32)), b"k" * 64, b"long key " * 20])
def test_subject_keys_by_column_are_the_hmac(secret) -> None:
    key = HashKey(secret)
    values = ["+33612345678", None, "+212612345678", "+33612345678"] * 300
    got = key.subject_keys(pa.array(values, pa.string())).to_pylist()
    assert got == [None if v is None else key.subject_key(v) for v in values]


def test_the_key_is_not_in_sql_or_query_profiles(tmp_path) -> None:
    secret = bytes(range(100, 132))
    key = HashKey(secret)
    profile = tmp_path / "profile.json"
    con = duckdb.connect()
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    con.execute("SET profiling_mode = 'detailed'")
    key.subject_keys(pa.array(["+33612345678"] * 10), con=con)
    con.close()
    text = profile.read_bytes()
    assert b"ipad" in text or len(text) > 100  # the profile was written
    pads = [bytes(b ^ x for b in secret.ljust(64, b"\x00")) for x in (0x36, 0x5C)]
    for needle in [secret, secret.hex().encode(), *pads, *(p.hex().encode() for p in pads)]:
        assert needle not in text


# ---------------------------------------------------------------- personal data in free text

FREE_TEXT = ["parrainage par 06 11 22 33 99", "SMS de 0611223399", "IP 82.64.1.10 / form v3", "jean@example.fr",
             "jeu-concours-ete-2023", "", "le 12/03/2024", "+221 77 123 45 67 via 2001:db8::1", " 611223399 "]


def test_free_text_is_scrubbed_alike_by_columns_and_by_rows(key, make_delivery, tmp_path) -> None:
    """Issue 17 item 3: both paths tokenize the same values and count the same rows."""
    lines = ["phone;source;consent_proof;acquired_from;consent_purposes"]
    for i in range(300):
        lines.append(";".join([PHONES[i % len(PHONES)], FREE_TEXT[i % len(FREE_TEXT)], FREE_TEXT[(i * 5) % len(FREE_TEXT)],
                               FREE_TEXT[(i * 7) % len(FREE_TEXT)], ["sondages", "mot 0633445566", ""][i % 3]]))
    wb = openpyxl.Workbook()
    wb.active.append(["phone", "source", "consent_proof"])
    for i in range(40):
        wb.active.append([612345600 + i, 611223399 if i % 2 else "x", FREE_TEXT[i % len(FREE_TEXT)]])
    buf = io.BytesIO()
    wb.save(buf)
    path = make_delivery({"a.csv": ("\n".join(lines) + "\n").encode(), "b.xlsx": buf.getvalue()},
                         recipient="party-a 06 11 22 33 99")
    cols = assert_same(path, tmp_path, key)
    personal = {f["field"]: f["kinds"] for f in cols["report"]["findings"] if f["code"] == "PERSONAL_DATA_IN_TEXT"}
    assert personal == {"source": ["email", "ip", "tel"], "consent_proof": ["email", "ip", "tel"],
                        "acquired_from": ["email", "ip", "tel"], "consent_purposes": ["tel"], "recipient": ["tel"]}
    stored = json.dumps([cols["rows"], cols["report"]], default=str)
    for raw in ("0611223399", "611223399", "06 11 22 33 99", "82.64.1.10", "jean@example.fr", "0633445566",
                "+221 77 123 45 67", "2001:db8::1"):
        assert raw not in stored
