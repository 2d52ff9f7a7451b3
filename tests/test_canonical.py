"""The canonical columns are declared once (origine/canonical.py); these tests hold what
is derived from the declaration, or cannot be (the suites' YAML), to it."""

from __future__ import annotations

from pathlib import Path
import pyarrow.parquet as pq
from origine import canonical, profiles, warehouse
from origine.canonical import DELIVERED, ROW_COLUMNS, ROW_LEAF_COLUMNS, ROWS_SUITE
from origine.dates import TS
from origine.ledger.events import LEAF_COLUMNS
from origine.validation import load_suite
from origine.validation.suites import Suite, suite_names


def named_columns(suite: Suite) -> set[str]:
    """Every column a suite's checks name (``column``, ``column_list``, ``column_set``)."""
    names: set[str] = set()
    for check in suite.checks:
        for arg in ("column", "column_list", "column_set"):
            value = check.args.get(arg)
            if isinstance(value, str):
                names.add(value)
            elif isinstance(value, list):
                names.update(value)
    return names


def coverage_problems(suites: dict[str, Suite]) -> list[str]:
    """What the suites and the declaration disagree on: a declared column its suite does
    not name, a column a suite of ``delivery_rows`` names that is not declared."""
    problems = []
    for column in ROW_COLUMNS:
        for name in column.suites:
            if column.name not in named_columns(suites[name]):
                problems.append(f"{column.name}: declared as checked by {name}, which does not name it")
    declared = {c.name for c in ROW_COLUMNS}
    for name, suite in sorted(suites.items()):
        if suite.table == "delivery_rows":
            problems += [f"{name} names {c}, not a declared row column" for c in sorted(named_columns(suite) - declared)]
    return problems


def all_suites() -> dict[str, Suite]:
    return {name: load_suite(name) for name in suite_names()}


def test_the_suites_cover_the_declared_columns() -> None:
    suites = all_suites()
    assert suites[ROWS_SUITE].table == "delivery_rows"
    assert coverage_problems(suites) == []


def test_the_coverage_check_sees_a_column_the_suite_left_out() -> None:
    suites = all_suites()
    rows = suites[ROWS_SUITE]
    checks = tuple(
        type(c)(c.index, c.expect, c.severity, c.why, c.name,
                {k: [n for n in v if n != "consent_proof"] if k == "column_set" else v for k, v in c.args.items()})
        for c in rows.checks
    )
    suites[ROWS_SUITE] = Suite(rows.name, rows.table, rows.description, rows.parameters, checks)
    assert coverage_problems(suites) == [f"consent_proof: declared as checked by {ROWS_SUITE}, which does not name it"]


def test_the_coverage_check_sees_a_suite_column_not_declared(tmp_path: Path) -> None:
    (tmp_path / "extra.yml").write_text(
        "suite: extra\ntable: delivery_rows\nchecks:\n"
        "  - expect: column_values_to_not_be_null\n    column: channel\n    severity: warning\n    why: x\n"
    )
    suites = {**all_suites(), "extra": load_suite("extra", suites_dir=tmp_path)}
    assert coverage_problems(suites) == ["extra names channel, not a declared row column"]


def test_the_warehouse_table_is_the_declaration(tmp_path: Path) -> None:
    """delivery_rows in a real warehouse file: the declared columns, types and NOT NULLs,
    in order (the commit inserts the segment's columns by position)."""
    db = tmp_path / "w.duckdb"
    with warehouse.session(db) as con:
        got = con.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE table_name = 'delivery_rows' ORDER BY column_index"
        ).fetchall()
        # DuckDB's own spelling of each declared type (TIMESTAMPTZ: TIMESTAMP WITH TIME ZONE)
        spelled = [con.execute(f"SELECT typeof(NULL::{c.type.sql})").fetchone()[0] for c in ROW_COLUMNS]
    assert got == [(c.name, t, not c.required) for c, t in zip(ROW_COLUMNS, spelled)]


def test_a_prepared_segment_has_the_declared_schema(key, make_delivery, tmp_path: Path) -> None:
    from origine.ingest import prepare_delivery
    from origine.manifest import open_delivery

    path = make_delivery({"contacts.csv": b"telephone,source,date consentement\n+33612345678,form,2024-01-02\n"})
    with open_delivery(path) as delivery:
        report = prepare_delivery(delivery, key=key, profile=profiles.default_profile(delivery.manifest.vendor),
                                  segments_root=tmp_path / "segments")
    schema = pq.read_schema(Path(report.segment) / "rows.parquet")
    assert schema.remove_metadata().equals(canonical.ROWS_ARROW_SCHEMA)
    assert report.rows_accepted == 1


def test_instants_have_the_one_instant_type() -> None:
    assert canonical.TIMESTAMPTZ.arrow == TS


def test_profiles_recognise_every_declared_name_and_alias() -> None:
    profile = profiles.default_profile("acme")
    for column in DELIVERED:
        for name in (column.name, *column.aliases):
            assert profile.canonical_for(name) == column.name, name
            assert profile.canonical_for(name.upper()) == column.name, name
    assert [k.name for k in profiles.COLUMNS_SCHEMA.keys] == list(canonical.CANONICAL)


def test_row_leaf_fields_are_ledger_leaf_columns_each_stated_once() -> None:
    leaf_columns = {name for name, _ in LEAF_COLUMNS}
    fields = [c.leaf for c in ROW_COLUMNS if c.leaf is not None]
    assert len(fields) == len(set(fields))
    assert set(ROW_LEAF_COLUMNS) <= leaf_columns


def test_text_and_instant_columns_feed_the_row_column_of_their_name() -> None:
    """Ingest reads a ``text`` or ``instant`` column into the row column of its name
    (origine.ingest.columns): the declaration must say so."""
    for column in DELIVERED:
        if column.kind in ("text", "instant"):
            [fed] = column.feeds
            assert fed.name == column.name
            assert fed.type == (canonical.VARCHAR if column.kind == "text" else canonical.TIMESTAMPTZ)

