"""The validation layer: GX 1.x suites pushed down into DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from origine import validation as v

N = 200  # rows per delivery in the generated tables
RAW_PHONE = "+33612345678"  # must never appear in results, stored validations or Data Docs
SUITE_TABLES = {
    "normalized_rows": "delivery_rows",
    "deliveries": "deliveries",
    "quarantine": "quarantine",
    "ledger_leaves": "ledger_leaves",
    "audit_verdicts": "audit_targets",
}

SCHEMA = f"""
CREATE TABLE delivery_rows AS
SELECT vendor, delivery_id, 'rows.csv' AS file, i::BIGINT AS row,
       sha256(vendor || delivery_id || i::VARCHAR) AS subject_key, 'demo' AS key_id,
       33::INTEGER AS country_code,
       (['mobile', 'fixed_line', 'voip', 'unknown'])[1 + i % 4] AS line_type,
       'web form' AS source,
       TIMESTAMPTZ '2021-03-01 10:00:00+00' + INTERVAL (i) MINUTE AS collected_at,
       CASE WHEN i % 3 = 0 THEN []::VARCHAR[]
            ELSE ['marketing.commercial', 'research.polling'] END AS consent_purposes,
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE TIMESTAMPTZ '2021-03-02 10:00:00+00' END AS consent_at,
       'proof-' || i AS consent_proof, 'list broker' AS acquired_from,
       CASE WHEN i % 10 = 0 THEN TIMESTAMPTZ '2022-01-01 00:00:00+00' END AS opted_out_at,
       []::VARCHAR[] AS flags,
       false AS bundled_consent
FROM range(1, {N} + 1) r(i),
     (VALUES ('acme', 'd1'), ('acme', 'd2')) d(vendor, delivery_id);

CREATE TABLE deliveries AS
SELECT vendor, delivery_id, sha256(vendor || delivery_id) AS fingerprint,
       ({N} + 7)::BIGINT AS rows_read, {N}::BIGINT AS rows_accepted, 7::BIGINT AS rows_quarantined
FROM (VALUES ('acme', 'd1'), ('acme', 'd2'), ('zeta', 'z1')) d(vendor, delivery_id);

CREATE TABLE quarantine AS
SELECT 'acme' AS vendor, 'd1' AS delivery_id, 'rows.csv' AS file, ({N} + i)::BIGINT AS row,
       (['PHONE_MISSING', 'PHONE_UNPARSEABLE', 'PHONE_INVALID', 'PHONE_PRECISION_LOST',
         'MALFORMED_ROW'])[1 + i % 5] AS reason,
       NULL::VARCHAR AS "column",
       CASE WHEN i % 5 = 2 THEN sha256('q' || i) END AS subject_key
FROM range(1, 8) r(i);

CREATE TABLE ledger_leaves AS
SELECT i::BIGINT AS seq, sha256('s' || (i % 50)::VARCHAR) AS subject_key,
       (['row', 'row', 'consent_withdrawn', 'opted_out', 'row',
         'row', 'targeted', 'erased'])[1 + i % 8] AS type,
       unhex(sha256('leaf' || i)) AS leaf_hash, NULL::TIMESTAMPTZ AS erased_at
FROM range(1, {N} + 1) r(i);

CREATE TABLE audit_targets AS
SELECT 'c1' AS campaign_id, sha256('s' || i::VARCHAR) AS subject_key,
       (['compliant', 'non_compliant', 'unverifiable'])[1 + i % 3] AS verdict,
       CASE WHEN i % 3 = 0 THEN []::VARCHAR[] ELSE ['NO_CONSENT'] END AS reasons
FROM range(1, {N} + 1) r(i);
"""


def make_db(path: Path, *breakages: str) -> Path:
    con = duckdb.connect(str(path))
    try:
        con.execute(SCHEMA)
        for statement in breakages:
            con.execute(statement)
    finally:
        con.close()
    return path


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_db(tmp_path_factory.mktemp("good") / "warehouse.duckdb")


# Known breakages, each with the rows it touches (all in delivery acme/d2 where rows apply).
BROKEN = [
    # normalized_rows
    "UPDATE delivery_rows SET subject_key = upper(subject_key) WHERE delivery_id = 'd2' AND row IN (1, 2, 3)",
    f"UPDATE delivery_rows SET subject_key = '{RAW_PHONE}' WHERE delivery_id = 'd2' AND row = 4",
    f"UPDATE delivery_rows SET line_type = 'landline', source = '{RAW_PHONE}' WHERE delivery_id = 'd2' AND row IN (10, 11)",
    "UPDATE delivery_rows SET row = 0 WHERE delivery_id = 'd2' AND row = 20",
    "UPDATE delivery_rows SET collected_at = TIMESTAMPTZ '1900-01-01 00:00:00+00' WHERE delivery_id = 'd2' AND row IN (30, 31)",
    "UPDATE delivery_rows SET consent_purposes = ['marketing.commercial', 'marketing.partners'] WHERE delivery_id = 'd2' AND row IN (40, 41, 43, 44)",
    # deliveries
    "UPDATE deliveries SET rows_quarantined = 6 WHERE delivery_id IN ('d2', 'z1')",
    "UPDATE deliveries SET fingerprint = 'not-a-sha' WHERE delivery_id = 'z1'",
    # quarantine
    "UPDATE quarantine SET reason = 'PHONE_TOO_SHORT' WHERE row IN (201, 202)",
    f"UPDATE quarantine SET subject_key = '{RAW_PHONE}' WHERE row = 203",
    # ledger_leaves
    "UPDATE ledger_leaves SET seq = 5 WHERE seq = 6",
    "UPDATE ledger_leaves SET type = 'sold' WHERE seq IN (10, 11, 12)",
    "UPDATE ledger_leaves SET leaf_hash = unhex(left(sha256('x'), 62)) WHERE seq = 20",
    # audit_verdicts
    "UPDATE audit_targets SET verdict = 'probably_fine' WHERE subject_key = sha256('s1')",
    "UPDATE audit_targets SET reasons = [] WHERE subject_key IN (sha256('s2'), sha256('s4'))",
]


@pytest.fixture(scope="module")
def broken_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_db(tmp_path_factory.mktemp("broken") / "warehouse.duckdb", *BROKEN)


@pytest.fixture(scope="module")
def broken_results(broken_db: Path) -> dict[str, v.SuiteResult]:
    return {suite: v.validate(broken_db, suite) for suite in SUITE_TABLES}


def raised_exceptions(result: v.SuiteResult) -> list[str]:
    """Every GX result whose exception_info says an exception was raised."""
    found = []
    for evr in result.gx_result.results:
        info = evr.exception_info or {}
        entries = [info] if "raised_exception" in info else list(info.values())
        for entry in entries:
            if isinstance(entry, dict) and entry.get("raised_exception"):
                found.append(f"{evr.expectation_config.type}: {entry.get('exception_message')}")
    return found


def failed(result: v.SuiteResult) -> dict[tuple[str, str | None], v.ExpectationOutcome]:
    out = {}
    for o in result.results:
        if not o.success:
            key = (o.expectation_type, o.name or o.column or ",".join(o.kwargs.get("column_list", [])))
            assert key not in out, key
            out[key] = o
    return out


# ---------------------------------------------------------------------------- suites


def test_suite_files_load_and_name_their_tables() -> None:
    assert set(v.suite_names()) == set(SUITE_TABLES)
    for suite, table in SUITE_TABLES.items():
        parsed = v.load_suite(suite)
        assert parsed.name == suite and parsed.table == table
        assert all(c.why for c in parsed.checks), f"{suite}: every check says why"
        assert {c.severity for c in parsed.checks} <= {"blocking", "warning"}


@pytest.mark.parametrize("suite", sorted(SUITE_TABLES))
def test_suite_passes_on_valid_table(good_db: Path, suite: str) -> None:
    result = v.validate(good_db, suite)
    assert not raised_exceptions(result)
    assert result.errors == []
    assert result.success, [o.describe() for o in result.results if not o.success]
    assert result.blocking_failures == [] and result.passed
    assert len(result.results) == len(v.load_suite(suite).checks)


def test_no_expectation_raises_on_any_suite(good_db: Path, broken_results: dict[str, v.SuiteResult]) -> None:
    """Fails whenever any GX result carries an exception, valid data or not."""
    for suite in SUITE_TABLES:
        for result in (v.validate(good_db, suite), broken_results[suite]):
            assert raised_exceptions(result) == [], suite
            assert result.errors == [], suite


def test_normalized_rows_broken(broken_results: dict[str, v.SuiteResult]) -> None:
    result = broken_results["normalized_rows"]
    bad = failed(result)
    assert set(bad) == {
        ("expect_column_values_to_match_regex", "subject_key"),
        ("expect_column_values_to_be_in_set", "line_type"),
        ("expect_column_values_to_be_between", "row"),
        ("expect_column_values_to_be_between", "collected_at"),
        ("unexpected_subject_rows", "consent purposes are taxonomy codes"),
    }
    regex = bad[("expect_column_values_to_match_regex", "subject_key")]
    assert regex.unexpected_count == 4 and regex.severity == "blocking"
    assert regex.unexpected_percent == pytest.approx(100 * 4 / (2 * N))
    # 3 upper-case keys are hash-shaped and may be shown; the raw number is not.
    assert len(regex.unexpected_subject_keys) == 3
    assert all(k == k.upper() and len(k) == 64 for k in regex.unexpected_subject_keys)
    assert bad[("expect_column_values_to_be_in_set", "line_type")].unexpected_count == 2
    assert bad[("expect_column_values_to_be_between", "row")].unexpected_count == 1
    assert bad[("expect_column_values_to_be_between", "collected_at")].unexpected_count == 2
    purposes = bad[("unexpected_subject_rows", "consent purposes are taxonomy codes")]
    assert purposes.unexpected_count == 4
    assert len(purposes.unexpected_subject_keys) == 4
    assert {len(k) for k in purposes.unexpected_subject_keys} == {64}
    assert {o.expectation_type for o in result.blocking_failures} >= {"expect_column_values_to_match_regex"}
    assert not result.success and not result.passed


def test_deliveries_broken(broken_results: dict[str, v.SuiteResult]) -> None:
    bad = failed(broken_results["deliveries"])
    assert set(bad) == {
        ("unexpected_subject_rows", "rows read = rows accepted + rows quarantined"),
        ("expect_column_values_to_match_regex", "fingerprint"),
    }
    accounting = bad[("unexpected_subject_rows", "rows read = rows accepted + rows quarantined")]
    assert accounting.unexpected_count == 2 and accounting.severity == "blocking"
    assert accounting.unexpected_subject_keys == []  # vendor/delivery_id rows are not copied
    assert bad[("expect_column_values_to_match_regex", "fingerprint")].unexpected_count == 1


def test_quarantine_broken(broken_results: dict[str, v.SuiteResult]) -> None:
    bad = failed(broken_results["quarantine"])
    assert set(bad) == {
        ("expect_column_values_to_be_in_set", "reason"),
        ("expect_column_values_to_match_regex", "subject_key"),
    }
    assert bad[("expect_column_values_to_be_in_set", "reason")].unexpected_count == 2
    key = bad[("expect_column_values_to_match_regex", "subject_key")]
    # NULL keys are allowed (PHONE_MISSING…): only the one malformed key counts.
    assert key.unexpected_count == 1 and key.unexpected_subject_keys == []


def test_ledger_leaves_broken(broken_results: dict[str, v.SuiteResult]) -> None:
    result = broken_results["ledger_leaves"]
    bad = failed(result)
    assert set(bad) == {
        ("expect_column_values_to_be_unique", "seq"),
        ("unexpected_subject_rows", "no gap in seq"),
        ("expect_column_values_to_be_in_set", "type"),
        ("unexpected_subject_rows", "leaf hashes are SHA-256 digests"),
    }
    assert bad[("expect_column_values_to_be_unique", "seq")].unexpected_count == 2
    gap = bad[("unexpected_subject_rows", "no gap in seq")]
    assert gap.unexpected_count == 1 and gap.severity == "warning"
    assert gap not in result.blocking_failures and gap in result.warnings
    assert bad[("expect_column_values_to_be_in_set", "type")].unexpected_count == 3
    assert bad[("unexpected_subject_rows", "leaf hashes are SHA-256 digests")].unexpected_count == 1


def test_audit_verdicts_broken(broken_results: dict[str, v.SuiteResult]) -> None:
    bad = failed(broken_results["audit_verdicts"])
    assert set(bad) == {
        ("expect_column_values_to_be_in_set", "verdict"),
        ("unexpected_subject_rows", "a negative verdict gives its reasons"),
    }
    assert bad[("expect_column_values_to_be_in_set", "verdict")].unexpected_count == 1
    reasons = bad[("unexpected_subject_rows", "a negative verdict gives its reasons")]
    assert reasons.unexpected_count == 2


# ---------------------------------------------------------------------------- partitions


def test_one_delivery_is_validated_on_its_own_rows(broken_db: Path) -> None:
    clean = v.validate_delivery(broken_db, "normalized_rows", "acme", "d1")
    assert clean.success and clean.filters == {"vendor": "acme", "delivery_id": "d1"}
    assert "'acme'" in clean.query and "'d1'" in clean.query
    dirty = v.validate_delivery(broken_db, "normalized_rows", "acme", "d2")
    regex = dirty.outcome("expect_column_values_to_match_regex", "subject_key")
    assert regex.unexpected_count == 4
    assert regex.unexpected_percent == pytest.approx(100 * 4 / N)  # of d2's rows only
    nothing = v.validate_delivery(broken_db, "normalized_rows", "acme", "no-such")
    assert nothing.outcome("expect_column_values_to_match_regex", "subject_key").unexpected_count == 0


def test_filters_are_rendered_as_literals_not_sql() -> None:
    sql = v.batch_query(table="deliveries", filters={"vendor": "o'hara; DROP TABLE x", "delivery_id": None})
    assert "'o''hara; DROP TABLE x'" in sql and "delivery_id IS NULL" in sql


def test_query_instead_of_table(good_db: Path) -> None:
    result = v.validate(
        good_db,
        "deliveries",
        query="SELECT * FROM deliveries WHERE vendor = 'acme'",
    )
    assert result.success
    assert result.outcome("expect_column_values_to_not_be_null", "vendor").kwargs["column"] == "vendor"


# ---------------------------------------------------------------------------- leaks


def test_no_raw_value_but_subject_keys_in_results(broken_db: Path, tmp_path: Path) -> None:
    gx_root = tmp_path / "gx"
    results = [v.validate(broken_db, suite, context_root=gx_root) for suite in SUITE_TABLES]
    digits = RAW_PHONE.lstrip("+")
    for result in results:
        text = json.dumps(result.to_dict())
        assert digits not in text
        for value in ("landline", "PHONE_TOO_SHORT", "probably_fine", "not-a-sha", "sold", "1900-01-01"):
            assert value not in text  # failing values of other columns are counted, not copied
        for outcome in result.results:
            assert all(v._looks_like_key(k) for k in outcome.unexpected_subject_keys)
    # Nothing persisted (stored validations, Data Docs) carries the raw number either.
    for path in gx_root.rglob("*"):
        if path.is_file():
            assert digits not in path.read_text(encoding="utf-8", errors="replace"), path


def test_error_messages_are_redacted() -> None:
    assert v.redact("Could not convert string '+33 6 12 34 56 78' to INT32") == (
        "Could not convert string '<redacted>' to INT32"
    )


# ---------------------------------------------------------------------------- errors


def _write_suite(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "custom.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_expectation_that_raises_is_an_error_not_a_failure(good_db: Path, tmp_path: Path) -> None:
    suite = _write_suite(
        tmp_path / "suites",
        """
suite: custom
table: deliveries
checks:
  - expect: column_values_to_not_be_null
    column: no_such_column
    severity: warning
    why: the column does not exist
  - expect: unexpected_rows
    query: SELECT subject_key FROM {batch} WHERE nonsense(
    severity: warning
    why: broken SQL
  - expect: column_values_to_not_be_null
    column: vendor
    why: fine
""",
    )
    result = v.validate(good_db, suite)
    assert [o.status for o in result.results] == ["error", "error", "passed"]
    assert len(raised_exceptions(result)) >= 2
    for outcome in result.errors:
        assert outcome.success is False and outcome.error
        assert outcome in result.blocking_failures  # even at warning severity: it was not checked
    assert "no_such_column" in result.results[0].error
    assert not result.success and not result.passed
    assert json.dumps(result.to_dict())
    with pytest.raises(v.ValidationError, match="could not be evaluated"):
        v.validate(good_db, suite, raise_on_error=True)


def test_missing_table_or_file_raises(good_db: Path, tmp_path: Path) -> None:
    with pytest.raises(v.ValidationError, match="no_such_table"):
        v.validate(good_db, "deliveries", table="no_such_table")
    with pytest.raises(v.ValidationError, match="no DuckDB file"):
        v.validate(tmp_path / "absent.duckdb", "deliveries")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("checks: []", "non-empty list"),
        ("checks:\n  - expect: column_values_to_be_shiny\n    column: x", "unknown expectation"),
        ("checks:\n  - expect: column_values_to_not_be_null\n    column: x\n    severity: fatal", "severity"),
        ("checks:\n  - expect: column_values_to_be_in_set\n    column: x\n    value_set: $nope", r"\$nope"),
        ("checks:\n  - expect: column_values_to_be_between\n    column: x\n    min_value: [1]", "check 1"),
    ],
)
def test_malformed_suites_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(v.SuiteError, match=message):
        v.load_suite(_write_suite(tmp_path, "suite: custom\n" + body))


def test_purposes_come_from_the_taxonomy_or_the_caller(broken_db: Path) -> None:
    codes = v.load_purpose_codes()
    assert codes is not None and {"marketing.commercial", "research.polling"} <= set(codes)
    widened = v.validate(broken_db, "normalized_rows", purposes=[*codes, "marketing.partners"])
    rule = [o for o in widened.results if o.name == "consent purposes are taxonomy codes"][0]
    assert rule.success
    assert "marketing.partners" in rule.kwargs["unexpected_rows_query"]


# ---------------------------------------------------------------------------- context, docs, connections


def test_data_docs_are_built_under_context_root(good_db: Path, tmp_path: Path) -> None:
    root = tmp_path / "home" / "gx"
    result = v.validate(good_db, "deliveries", context_root=root)
    assert result.data_docs_path == root / "data_docs" / "index.html"
    assert result.data_docs_path.is_file()
    assert any((root / "validations").rglob("*.json"))
    pages = list((root / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 1 and "rows_read IS DISTINCT FROM" in pages[0].read_text()
    # The suite page carries each check's `why`.
    suite_page = root / "data_docs" / "expectations" / "deliveries.html"
    assert "Every row read is either accepted" in suite_page.read_text()
    assert result.to_dict()["data_docs_path"] == str(result.data_docs_path)
    assert v.validate(good_db, "deliveries").data_docs_path is None


def test_validation_is_read_only_and_releases_the_file(good_db: Path, tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb")
    v.validate(db, "deliveries")
    con = duckdb.connect(str(db))  # a writer can open it right after: nothing held open
    con.execute("UPDATE deliveries SET rows_read = rows_read")
    # While this process holds it read-write, a read-only open is refused clearly…
    with pytest.raises(v.ValidationError, match="connection="):
        v.validate(db, "deliveries")
    # …and validating through the open connection works.
    assert v.validate(db, "deliveries", connection=con).success
    con.close()


def test_to_dict_is_json_and_complete(good_db: Path) -> None:
    result = v.validate(good_db, "ledger_leaves")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["suite"] == "ledger_leaves" and data["success"] is True
    assert data["blocking_failures"] == 0 and len(data["results"]) == len(result.results)
    first = data["results"][0]
    assert {
        "expectation_type",
        "kwargs",
        "severity",
        "status",
        "success",
        "observed_value",
        "unexpected_count",
        "unexpected_percent",
        "unexpected_subject_keys",
        "error",
    } <= set(first)


# ---------------------------------------------------------------------------- the adapter


def _regex_suite(folder: Path) -> Path:
    return _write_suite(
        folder,
        """
suite: regexes
table: ledger_leaves
checks:
  - expect: column_values_to_match_regex
    column: type
    regex: "^(collected|consent_)"
    why: search semantics, anchored by the pattern
  - expect: column_values_to_not_match_regex
    column: type
    regex: "ed$"
    why: ends with ed
  - expect: column_values_to_match_regex_list
    column: type
    regex_list: ["^o", "t$"]
    match_on: all
    why: starts with c and ends with d
  - expect: column_values_to_not_match_regex_list
    column: type
    regex_list: ["^c", "^t"]
    why: starts with neither c nor t
""",
    )


def test_regex_expectations_run_in_duckdb(good_db: Path, tmp_path: Path) -> None:
    result = v.validate(good_db, _regex_suite(tmp_path))
    assert result.errors == [] and not raised_exceptions(result)
    con = duckdb.connect(str(good_db), read_only=True)
    try:
        def count(where: str) -> int:
            return con.execute(f"SELECT count(*) FROM ledger_leaves WHERE NOT ({where})").fetchone()[0]

        expected = [
            count("regexp_matches(type, '^(collected|consent_)')"),
            count("NOT regexp_matches(type, 'ed$')"),
            count("regexp_matches(type, '^o') AND regexp_matches(type, 't$')"),
            count("NOT regexp_matches(type, '^c') AND NOT regexp_matches(type, '^t')"),
        ]
    finally:
        con.close()
    assert [o.unexpected_count for o in result.results] == expected
    assert all(0 < n < N for n in expected)


def test_regex_providers_are_registered_for_our_engine_only() -> None:
    from great_expectations.expectations.registry import _registered_metrics

    providers = _registered_metrics["column_values.match_regex.condition"]["providers"]
    ours, _ = providers["DuckDBExecutionEngine"]
    stock, _ = providers["SqlAlchemyExecutionEngine"]
    assert ours.__module__ == "origine.validation.adapter"
    assert stock.__module__.startswith("great_expectations.")


def _stock_engine(db: Path):
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine

    return SqlAlchemyExecutionEngine(engine=sa.create_engine(f"duckdb:///{db}"))


def test_upstream_still_loses_results_on_duckdb_engine(good_db: Path) -> None:
    """Canary: GX's own engine still fetches after closing the connection (empty result).

    When this fails, GX or duckdb_engine fixed it and DuckDBExecutionEngine.get_connection
    can be dropped.
    """
    engine = _stock_engine(good_db)
    try:
        assert engine.execute_query(sa.text("SELECT count(*) FROM deliveries")).fetchall() == []
    finally:
        engine.close()
    ours = v.DuckDBExecutionEngine(
        engine=v.DuckDBDatasource(name="x", database=str(good_db)).get_engine()
    )
    try:
        assert ours.execute_query(sa.text("SELECT count(*) FROM deliveries")).fetchall() == [(3,)]
    finally:
        ours.close()


def test_upstream_still_has_no_duckdb_regex() -> None:
    """Canary: GX's dialect-to-regex map still has no DuckDB entry.

    When this fails, GX supports DuckDB regexes itself and the _DuckDB*Regex* providers
    can be dropped.
    """
    from great_expectations.expectations.metrics.util import get_dialect_regex_expression

    dialect = sa.create_engine("duckdb:///:memory:").dialect
    assert get_dialect_regex_expression(sa.column("x"), "^a", dialect) is None


def test_a_database_error_quoting_a_value_is_redacted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS SELECT '{RAW_PHONE}' AS phone, sha256('x') AS subject_key")
    con.close()
    suite = _write_suite(
        tmp_path / "suites",
        """
suite: custom
table: t
checks:
  - expect: unexpected_rows
    query: SELECT subject_key FROM {batch} WHERE CAST(phone AS INTEGER) > 0
    why: DuckDB's conversion error quotes the value
""",
    )
    caplog.set_level("DEBUG")
    result = v.validate(db, suite)
    (outcome,) = result.errors
    assert "Conversion Error" in outcome.error and "<redacted>" in outcome.error
    digits = RAW_PHONE.lstrip("+")
    assert digits not in json.dumps(result.to_dict())
    assert digits not in json.dumps(result.gx_result.to_json_dict())
    assert digits not in caplog.text


def test_suites_fit_the_warehouse_schema(tmp_path: Path) -> None:
    """The warehouse's own tables (empty) have every column the suites read."""
    warehouse = pytest.importorskip("origine.warehouse")
    db = tmp_path / "warehouse.duckdb"
    warehouse.connect(db).close()
    for suite in ("normalized_rows", "deliveries", "quarantine"):
        result = v.validate(db, suite)
        assert result.rows == 0 and result.errors == [], suite
        assert result.outcome("expect_table_columns_to_match_set").success, suite


@pytest.mark.parametrize(
    "module",
    ["origine.validation", "origine.stage_checks", "origine.ingest", "origine.ingest.intake", "origine.export",
     "origine.cli", "assets.ingest", "pipelines.ops", "pipelines.definitions"],
)
def test_importing_loads_great_expectations_only_when_a_check_runs(module: str) -> None:
    """Great Expectations costs seconds of start-up: the CLI, the code location, every run
    and step process would pay it on import. Only running a check may load it."""
    import subprocess
    import sys

    # SQLAlchemy too (it comes with GX's engine), for origine's own modules: Dagster may use it.
    heavy = ("great_expectations", "sqlalchemy") if module.startswith("origine.") else ("great_expectations",)
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout[:300]


def test_validate_takes_a_request_or_the_same_fields_as_keywords(tmp_path: Path) -> None:
    """One request object; the keyword form builds the same one (no second parameter list)."""
    db = make_db(tmp_path / "w.duckdb")
    by_request = v.validate(v.ValidationRequest(db, "ledger_leaves", seq_range=(10, 19), unexpected_sample=0))
    by_keywords = v.validate(db, "ledger_leaves", seq_range=(10, 19), unexpected_sample=0)
    assert by_request.rows == by_keywords.rows == 10
    assert by_request.seq_range == (10, 19) and by_request.to_dict()["seq_range"] == [10, 19]
    assert [o.to_dict() for o in by_request.results] == [o.to_dict() for o in by_keywords.results]
    with pytest.raises(TypeError):
        v.validate(db, "ledger_leaves", no_such_option=1)


def test_validate_waits_for_another_process_write_lock(tmp_path: Path) -> None:
    """A validation started while another process holds the file waits for it (up to
    lock_wait), as the warehouse does, and fails clearly, without a traceback, if it cannot."""
    import subprocess
    import sys
    import time

    import origine.validation.run  # noqa: F401  (GX loaded first: seconds the holder must outlast)

    db = make_db(tmp_path / "w.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); "
         "time.sleep(6); c.close()"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(v.ValidationError, match="lock"):
            v.validate(db, "ledger_leaves", lock_wait=0)
        started = time.monotonic()
        result = v.validate(db, "ledger_leaves", lock_wait=60)
        assert result.rows == N and result.passed
        assert time.monotonic() - started > 0.5  # it waited for the holder
    finally:
        holder.wait(timeout=60)
