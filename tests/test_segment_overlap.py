"""The segment step's faster parts give what the plainer ones gave.

The Parquet writer runs in a thread of its own (batches queued), the keyed hash
builds its column on one buffer of digests, the inspection pass counts carriage
returns chunk by chunk, and naive local times are placed in their zone per day.
Each is checked here where the shortcut could change an answer; a quoted file
that the inspection sends to the row reader still reads as by rows.
"""

from __future__ import annotations

import zoneinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from origine import dates, readers
from origine.ingest import prepare
from origine.keys import HashKey
from origine.manifest import open_delivery
from origine.profiles import load_profile
from origine.readers import open_batches
from tests.test_columns import assert_same, csv_bytes


def test_a_doubled_quote_far_into_a_quoted_file_reads_as_by_rows(key, make_delivery, tmp_path, monkeypatch) -> None:
    """A quoted file whose quoting is not whole fields only near its end: the
    segment is the row reader's, row for row (Arrow, told not to read doubled
    quotes, would give x"y" where csv gives x"y)."""
    monkeypatch.setattr(prepare, "_COLUMN_BATCH", 50)
    body = csv_bytes(400).replace(b";;", b';"";')
    lines = body.split(b"\r\n")
    lines[-2] = lines[-2].replace(b"jeu-concours", b'"x""y"')  # its source
    path = make_delivery({"contacts.csv": b"\r\n".join(lines)})
    cols = assert_same(path, tmp_path, key)
    assert cols["report"]["rows_read"] == 400


def test_a_file_quoting_whole_fields_is_read_by_columns(tmp_path) -> None:
    path = tmp_path / "f.csv"
    rows = [f'"06123456{i:02d}";"a";' for i in range(90)]
    path.write_bytes(("phone;source;x\n" + "\n".join(rows) + "\n").encode())
    _, batches = open_batches(path, "f.csv", size=10)
    got = [v for b in batches for v in b.columns["phone"].to_pylist()]
    assert got == [f"06123456{i:02d}" for i in range(90)]


def test_a_failed_write_fails_the_delivery_and_leaves_no_segment(key, make_delivery, tmp_path, monkeypatch) -> None:
    """The writer's thread raises in the caller; nothing of the segment remains."""
    monkeypatch.setattr(prepare, "_COLUMN_BATCH", 50)
    calls = {"n": 0}
    real = pq.ParquetWriter.write_table

    def failing(self, table, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    path = make_delivery({"contacts.csv": csv_bytes(600)})
    root = tmp_path / "segments"
    with open_delivery(path) as delivery, pytest.raises(OSError, match="disk full"):
        prepare.prepare_delivery(
            delivery, key=key, profile=load_profile(delivery.manifest.vendor, tmp_path / "profiles"),
            segments_root=root,
        )
    assert not [p for p in root.rglob("*") if p.is_file()]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.from_regex(r"\+[0-9]{1,15}", fullmatch=True)), max_size=60),
    layers=st.integers(0, 2),
    cut=st.integers(0, 5),
)
def test_subject_keys_by_column_equal_the_per_value_key(values, layers, cut) -> None:
    """Nulls, slices (an Arrow offset) and rotation layers: the column is the
    per-value HMAC chain, as a plain string column."""
    key = HashKey(b"s" * 32, layers=tuple(bytes([65 + i]) * 40 for i in range(layers)))
    column = pa.array(["+0"] * cut + values, pa.string()).slice(cut)
    got = key.subject_keys(column)
    got.validate(full=True)
    assert got.type == pa.string()
    assert got.to_pylist() == [None if v is None else key.subject_key(v) for v in values]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"\r\n", b"\x00"]), min_size=1, max_size=20)
       .map(b"".join), chunk=st.integers(1, 5))
@example(data=b"a\r\n\r\n", chunk=2)  # a CRLF cut in two, then a whole one
def test_plain_text_is_judged_alike_across_chunk_boundaries(data, chunk, monkeypatch) -> None:
    """The inspection counts carriage returns chunk by chunk without joining them:
    plain is still "no NUL, and every carriage return starts a CRLF", wherever
    the chunks cut (a CRLF split across two included)."""
    import io

    monkeypatch.setattr(readers, "_CHUNK", chunk)
    _, plain, _ = readers._inspect_text(lambda: io.BytesIO(data), "f.csv")
    assert plain == (b"\x00" not in data and data.count(b"\r") == data.count(b"\r\n"))


def per_value_localize(local_us: np.ndarray, zone: str) -> tuple[np.ndarray, np.ndarray]:
    """Every value asked of Arrow both ways: what dates._localize answered before
    it asked per day."""
    naive = pa.array(local_us, pa.timestamp("us"))
    early = pc.assume_timezone(naive, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, timezone=zone, ambiguous="latest", nonexistent="latest")
    e, l = early.cast(pa.int64()).to_numpy(), late.cast(pa.int64()).to_numpy()
    settled = (local_us >= dates._ARROW_ZONES_FROM) & (local_us < dates._ARROW_ZONES_UNTIL)
    return e, settled & (e == l)


ODD_ZONES = ["Europe/Paris", "Australia/Lord_Howe", "Africa/Casablanca", "America/Sao_Paulo",
             "America/St_Johns", "Pacific/Apia", "Pacific/Kiritimati", "Antarctica/Troll", "Asia/Tehran"]


@pytest.mark.parametrize("zone", ODD_ZONES)
def test_local_times_by_day_are_read_as_by_value(zone) -> None:
    """Every quarter hour from 2009 to 2024 (Apia's skipped day, Lord Howe's half-hour
    change, Casablanca's Ramadan, Troll's two hours, midnight changes in Sao Paulo)
    and the minutes around each hour: where the per-value reading is clear, the
    per-day one is clear and equal; where it is not, neither is the per-day one."""
    start = int(np.datetime64("2009-01-01", "us").astype(np.int64))
    end = int(np.datetime64("2025-01-01", "us").astype(np.int64))
    quarter = 15 * 60 * 1_000_000
    local = np.arange(start, end, quarter, dtype=np.int64)
    local = np.concatenate([local, local[::4] - 1, local[::4] + 60_000_000 * 7 + 3])
    utc, clear = dates._localize(local, zone)
    want_utc, want_clear = per_value_localize(local, zone)
    assert (clear == want_clear).all()
    assert (utc[clear] == want_utc[clear]).all()


@settings(max_examples=80, deadline=None)
@given(zone=st.sampled_from(sorted(zoneinfo.available_timezones())),
       local=st.lists(st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999), max_size=30),
       near=st.integers(0, 60 * 365), minutes=st.lists(st.integers(0, 3 * 1440), max_size=30))
def test_any_zone_by_day_is_read_as_by_value(zone, local, near, minutes) -> None:
    """Any zone, any time from year 1 to 9999, and times packed in a few days of 1975-2035."""
    base = int(np.datetime64("1975-01-01", "us").astype(np.int64)) + near * 86_400_000_000
    values = np.array(local + [base + m * 60_000_000 for m in minutes], dtype=np.int64)
    utc, clear = dates._localize(values, zone)
    want_utc, want_clear = per_value_localize(values, zone)
    assert (clear == want_clear).all()
    assert (utc[clear] == want_utc[clear]).all()
