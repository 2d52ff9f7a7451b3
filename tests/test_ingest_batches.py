"""Column batches processed side by side give what one batch at a time gives.

Ingest keeps two column batches in flight (origine.ingest.prepare._WORKERS) and takes their
results in file order; these tests make batches tiny so a small file has dozens of
them, and compare with the per-row reference (tests/row_reference.py). The keyed
hash's in-process path is compared with its DuckDB form and with the per-value HMAC.
"""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origine.ingest import columns
from origine.ingest import prepare as ingest
from origine.keys import HashKey
from origine.errors import BadInput
from origine.manifest import open_delivery
from origine.profiles import load_profile
from tests.row_reference import ENGINES, prepare_delivery
from tests.test_columns import csv_bytes


def prepared(path: Path, tmp_path: Path, key: HashKey, engine: str) -> dict:
    with open_delivery(path) as delivery:
        report = prepare_delivery(
            delivery, key=key, profile=load_profile(delivery.manifest.vendor, tmp_path / "profiles"),
            segments_root=tmp_path / engine, row_engine=ENGINES[engine],
        )
    segment = Path(report.segment)
    doc = report.to_dict()
    doc.pop("segment")
    return {"report": doc, **{name: pq.read_table(segment / f"{name}.parquet").to_pylist()
                              for name in ("rows", "quarantine")}}


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_many_batches_in_flight_give_the_reference_result(key, make_delivery, tmp_path, monkeypatch, workers) -> None:
    monkeypatch.setattr(ingest, "_COLUMN_BATCH", 7)
    monkeypatch.setattr(ingest, "_WORKERS", workers)
    path = make_delivery({
        "contacts.csv": csv_bytes(600),
        "more.tsv.gz": gzip.compress(csv_bytes(150, delimiter="\t", crlf=False)),
    }, timezone="Europe/Paris")
    rows = prepared(path, tmp_path, key, "rows")
    cols = prepared(path, tmp_path, key, "columns")
    assert cols == rows
    report = cols["report"]
    assert report["rows_read"] == 750 and report["rows_quarantined"] > 0
    assert {"UNREADABLE_DATE", "UNKNOWN_PURPOSE", "CONSENT_AFTER_DELIVERY", "PERSONAL_DATA_IN_TEXT"} & {
        f["code"] for f in report["findings"]}


def test_the_earliest_failing_batch_names_the_error(key, make_delivery, tmp_path, monkeypatch) -> None:
    """A later batch that fails first (the earlier one is slow) does not hide the
    earlier batch's error: the error is the one a batch-at-a-time run raises."""
    monkeypatch.setattr(ingest, "_COLUMN_BATCH", 10)
    real = columns.process_batch
    started: list[int] = []

    def failing(batch, *args, **kwargs):
        first = int(batch.rows[0])
        started.append(first)
        if first == 101:
            time.sleep(0.3)  # the next batch, in the other thread, fails before this one
            raise ValueError("batch 101")
        if first > 101:
            raise ValueError(f"batch {first}")
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(columns, "process_batch", failing)
    path = make_delivery({"contacts.csv": csv_bytes(300)})
    with pytest.raises(ValueError, match="^batch 101$"):
        prepared(path, tmp_path, key, "columns")
    assert 111 in started  # the later batch did run beside it
    assert not any((tmp_path / "columns").rglob("*.parquet"))  # nothing left behind
    assert not [t for t in threading.enumerate() if t.name.startswith("origine-batch")]


secrets = st.one_of(st.binary(min_size=32, max_size=64), st.binary(min_size=65, max_size=200))
numbers = st.lists(st.one_of(st.none(), st.text(alphabet="+0123456789", max_size=16)), max_size=50)


@settings(max_examples=60, deadline=None)
@given(secret=secrets, layers=st.lists(st.binary(min_size=32, max_size=80), max_size=2, unique=True), values=numbers)
def test_subject_keys_in_process_match_duckdb_and_the_hmac(secret, layers, values) -> None:
    if secret in layers:
        return
    key = HashKey(secret, layers=tuple(layers))
    column = pa.array(values, pa.string())
    here = key.subject_keys(column).to_pylist()
    con = duckdb.connect()
    try:
        there = key.subject_keys(column, con=con).to_pylist()
    finally:
        con.close()
    assert here == there == [None if v is None else key.subject_key(v) for v in values]


@pytest.mark.parametrize("batch_fails", [True, False])
def test_a_batch_error_comes_before_a_later_reader_error(key, make_delivery, tmp_path, monkeypatch, batch_fails) -> None:
    """The reader fails (here after the batch of rows 141-150) while a batch before
    it is still running and then fails: that batch's error is raised, as one batch
    at a time would; without it, the reader's."""
    monkeypatch.setattr(ingest, "_COLUMN_BATCH", 10)
    real_process, real_open = columns.process_batch, ingest.open_batches

    def process(batch, *args, **kwargs):
        if batch_fails and int(batch.rows[0]) == 131:
            time.sleep(0.2)
            raise ValueError("batch 131")
        return real_process(batch, *args, **kwargs)

    def open_batches(*args, **kwargs):
        shape, batches = real_open(*args, **kwargs)

        def failing():
            for batch in batches:
                yield batch
                if int(batch.rows[0]) == 141:
                    raise BadInput("the reader failed", file="contacts.csv")

        return shape, failing()

    monkeypatch.setattr(columns, "process_batch", process)
    monkeypatch.setattr(ingest, "open_batches", open_batches)
    path = make_delivery({"contacts.csv": csv_bytes(300)})
    expected = (ValueError, "^batch 131$") if batch_fails else (BadInput, "the reader failed")
    with pytest.raises(expected[0], match=expected[1]):
        prepared(path, tmp_path, key, "columns")
