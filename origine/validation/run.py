"""Running a suite: a GX ephemeral context over the DuckDB adapter, one batch, results
sanitized before they are stored (see :mod:`origine.validation.results`).

Imported by :func:`origine.validation.validate` when a check runs: this and
:mod:`origine.validation.adapter` are where Great Expectations loads.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb_engine
import sqlalchemy as sa

import great_expectations as gx
from great_expectations.core.expectation_suite import ExpectationSuite
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.expectation import Expectation

from origine.validation.adapter import DuckDBDatasource
from origine.validation.errors import ValidationError
from origine.validation.request import ValidationRequest
from origine.validation.results import (
    QUERY_EXPECTATIONS,
    SUBJECT_KEY,
    Scalar,
    SuiteResult,
    column_of,
    exception_text,
    outcome_of,
    redact,
    redact_gx_logs,
    sanitize_gx_result,
)
from origine.validation.suites import build_expectations, load_purpose_codes, load_suite

logger = logging.getLogger("origine.validation")

_DOCS_SITE = "origine"
_dialect = duckdb_engine.Dialect()


def batch_query(
    *, table: str | None = None, query: str | None = None, filters: Mapping[str, Scalar] | None = None,
    seq_range: tuple[int, int] | None = None,
) -> str:
    """The SQL of the batch: the table or the query, restricted by equality ``filters``
    and to ``first <= seq <= last`` with ``seq_range``.

    Identifiers are quoted and values rendered as literals by the DuckDB dialect.
    """
    if (table is None) == (query is None):
        raise ValidationError("give exactly one of table= or query=")
    if table is not None:
        parts = table.split(".")
        source: Any = sa.table(parts[-1], schema=".".join(parts[:-1]) or None)
    else:
        source = sa.text(query.strip().rstrip(";")).columns().subquery("batch_query")  # type: ignore[union-attr]
    stmt = sa.select(sa.text("*")).select_from(source)
    for column, value in (filters or {}).items():
        if value is None:
            stmt = stmt.where(sa.column(column).is_(None))
        else:
            stmt = stmt.where(sa.column(column) == sa.literal(value))
    if seq_range is not None:
        stmt = stmt.where(sa.column("seq").between(sa.literal(seq_range[0]), sa.literal(seq_range[1])))
    return str(stmt.compile(dialect=_dialect, compile_kwargs={"literal_binds": True}))


def _context(context_root: Path | None) -> Any:
    """An ephemeral GX context; with ``context_root``, validation results and Data Docs
    are written there (datasources and suites stay in memory, so concurrent runs do
    not race on a shared ``great_expectations.yml``)."""
    defaults = InMemoryStoreBackendDefaults()
    if context_root is not None:
        root = Path(context_root)
        defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(root / "validations"),
        }
        defaults.data_docs_sites = {
            _DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(root / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _count_rows(datasource: DuckDBDatasource, sql: str, db_path: Path) -> int:
    """The batch's row count; fails early, with a clear message, when it cannot be queried."""
    try:
        with datasource.get_engine().connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM ({sql}) AS probe")).scalar_one())
    except sa.exc.DBAPIError as exc:
        text = redact(" ".join(str(exc.orig).split()))
        if "different configuration" in text:
            text += (
                " (this process already has the file open with other settings: pass "
                "connection=<that connection> or read_only=False)"
            )
        raise ValidationError(f"cannot query {db_path}: {text}") from None


def _probe(datasource: DuckDBDatasource, sql: str, db_path: Path, wait: float) -> int:
    """:func:`_count_rows`, waiting up to ``wait`` seconds for another process's write lock
    (the warehouse's own backoff; the half-opened datasource is closed between tries)."""
    from origine.warehouse import retry_while_locked

    return retry_while_locked(
        lambda: _count_rows(datasource, sql, db_path), wait,
        errors=ValidationError, before_retry=datasource.close,
    )


def run(request: ValidationRequest) -> SuiteResult:
    """Run ``request.suite`` over its batch (see :class:`ValidationRequest`)."""
    redact_gx_logs()
    r = request
    db_path = Path(r.db_path)
    table, query, context_root = r.table, r.query, r.context_root
    parsed = load_suite(r.suite, suites_dir=r.suites_dir)
    if table is None and query is None:
        table = parsed.table
    if table is None and query is None:
        raise ValidationError(f"suite {parsed.name} names no table: pass table= or query=")
    if r.connection is None and not db_path.exists():
        raise ValidationError(f"no DuckDB file at {db_path}")
    sql = batch_query(table=table, query=query, filters=r.filters, seq_range=r.seq_range)

    params = dict(parsed.parameters)
    codes = list(r.purposes) if r.purposes is not None else load_purpose_codes()
    if codes is not None:
        params["purposes"] = sorted(set(codes))
    params.update(r.parameters or {})
    expectations = build_expectations(parsed, params, sample=max(0, r.unexpected_sample))

    run_time = _dt.datetime.now(_dt.timezone.utc)
    logger.debug("validating %s with suite %s (%d checks)", db_path, parsed.name, len(expectations))
    run_id = RunIdentifier(run_name=f"{parsed.name}-{uuid.uuid4().hex[:12]}", run_time=run_time)
    context = _context(Path(context_root) if context_root is not None else None)
    datasource = DuckDBDatasource(
        name=f"duckdb-{uuid.uuid4().hex[:8]}", database=str(db_path), read_only=r.read_only
    )
    datasource.use_connection(r.connection)
    started = time.perf_counter()
    try:
        rows = _probe(datasource, sql, db_path, r.lock_wait)
        datasource = context.data_sources.add_origine_duckdb(datasource)  # type: ignore[attr-defined]
        asset = datasource.add_query_asset(name=table or "query", query=sql)
        batch = asset.add_batch_definition_whole_table("batch").get_batch()
        gx_suite = context.suites.add(ExpectationSuite(name=parsed.name, expectations=expectations))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Counts only: with partial_unexpected_count > 0 GX runs one more query per
            # map expectation (`SELECT col … WHERE unexpected LIMIT n`), a full scan
            # whenever nothing is unexpected: a third of the time on 10M rows.
            validation = batch.validate(
                gx_suite, result_format={"result_format": "BASIC", "partial_unexpected_count": 0}
            )
            if r.unexpected_sample > 0:
                _add_subject_key_samples(batch, validation, expectations, r.unexpected_sample)
    finally:
        datasource.close()
    elapsed = time.perf_counter() - started

    for evr in validation.results:
        sanitize_gx_result(evr, r.unexpected_sample)
    # GX groups results by metric domain; report them in the suite file's order.
    validation.results.sort(key=lambda evr: (evr.expectation_config.meta or {}).get("check", 0))
    outcomes = [outcome_of(evr, r.unexpected_sample) for evr in validation.results]

    docs_path: Path | None = None
    if context_root is not None:
        docs_path = _store_and_render(context, validation, batch.id, parsed.name, run_id)

    result = SuiteResult(
        suite=parsed.name,
        success=bool(validation.success) and not any(o.is_error for o in outcomes),
        results=outcomes,
        table=table,
        query=sql,
        filters=dict(r.filters or {}),
        seq_range=r.seq_range,
        rows=rows,
        run_id=run_id.run_name or "",
        run_time=run_time.isoformat(),
        data_docs_path=docs_path,
        statistics={
            "evaluated_expectations": len(outcomes),
            "successful_expectations": sum(o.success for o in outcomes),
            "seconds": round(elapsed, 3),
        },
        gx_result=validation,
    )
    if r.raise_on_error and result.errors:
        raise ValidationError(
            f"suite {parsed.name}: {len(result.errors)} expectation(s) could not be evaluated: "
            + "; ".join(o.describe() for o in result.errors)
        )
    return result


def _add_subject_key_samples(
    batch: Any, validation: Any, expectations: Sequence[Expectation], sample: int
) -> None:
    """Second pass, only for failed map expectations on ``subject_key``: fetch a few
    unexpected keys (GX's ``partial_unexpected_list``) into the first pass's results."""
    by_check = {(e.meta or {}).get("check"): e for e in expectations}
    failed = {
        (evr.expectation_config.meta or {}).get("check"): evr
        for evr in validation.results
        if not evr.success
        and exception_text(evr.exception_info) is None
        and column_of(evr.expectation_config.kwargs) == SUBJECT_KEY
        and evr.expectation_config.type not in QUERY_EXPECTATIONS
    }
    if not failed:
        return
    copies = []
    for check in failed:
        copy = by_check[check].copy(deep=True)
        copy.id = None  # GX refuses an expectation that belongs to another suite
        copies.append(copy)
    suite = ExpectationSuite(name="subject-key-samples", expectations=copies)
    again = batch.validate(suite, result_format={"result_format": "BASIC", "partial_unexpected_count": sample})
    for evr in again.results:
        first = failed.get((evr.expectation_config.meta or {}).get("check"))
        if first is not None and evr.result:
            first.result["partial_unexpected_list"] = evr.result.get("partial_unexpected_list") or []


def _store_and_render(context: Any, validation: Any, batch_id: str, suite: str, run_id: RunIdentifier) -> Path:
    """Store the (sanitized) result and build its Data Docs page; the index path."""
    suite_id = ExpectationSuiteIdentifier(name=suite)
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=batch_id
    )
    validation.meta["run_id"] = run_id
    validation.meta["validation_time"] = run_id.run_time
    context.validation_results_store.set(result_id, validation)
    context.build_data_docs(site_names=[_DOCS_SITE], resource_identifiers=[result_id, suite_id])
    base = context.get_config().data_docs_sites[_DOCS_SITE]["store_backend"]["base_directory"]
    return Path(base) / "index.html"
