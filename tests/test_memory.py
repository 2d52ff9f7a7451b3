"""Every DuckDB database the pipeline opens is capped, not only the warehouse's.

A database left at DuckDB's default may take 80% of the machine's RAM; the
delivery-scale steps (segment, events, validations) each open their own.
"""

from __future__ import annotations

import duckdb
import pytest

from origine import memory, warehouse
from origine.errors import OrigineError
from origine.validation import DuckDBDatasource


def _bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The database's memory limit in bytes (DuckDB prints it in binary units)."""
    text = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    number, unit = text.split()
    scale = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "bytes": 1}[unit]
    return int(float(number) * scale)


@pytest.mark.parametrize("setting,expected", [(None, 2e9), ("512MB", 512e6), ("3GB", 3e9)])
def test_warehouse_and_validation_connections_are_capped(home, monkeypatch, setting, expected) -> None:
    if setting is None:
        monkeypatch.delenv(memory.MEMORY_ENV, raising=False)
    else:
        monkeypatch.setenv(memory.MEMORY_ENV, setting)
    with warehouse.session(home.warehouse) as con:
        assert _bytes(con) == pytest.approx(expected, rel=0.05)
    # The connections GX validates through open the file on their own.
    engine = DuckDBDatasource(name="t", database=str(home.warehouse))._create_engine()
    with engine.connect() as sa_con:
        raw = sa_con.connection.driver_connection
        assert _bytes(raw) == pytest.approx(expected, rel=0.05)
    engine.dispose()
    assert _bytes(memory.bound(duckdb.connect())) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("bad", ["lots", "2", "1 GB RAM", "-1GB"])
def test_a_malformed_memory_setting_is_refused_by_name(monkeypatch, bad) -> None:
    monkeypatch.setenv(memory.MEMORY_ENV, bad)
    with pytest.raises(OrigineError, match=memory.MEMORY_ENV):
        memory.bound(duckdb.connect())
