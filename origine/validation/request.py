"""What to validate: a :class:`ValidationRequest`, and :func:`validate`, which runs one.

Light on purpose: importing this (or :mod:`origine.validation`) loads neither Great
Expectations nor SQLAlchemy; :func:`validate` imports the runner when a check runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from origine.validation.errors import ValidationError
from origine.validation.results import DEFAULT_UNEXPECTED_SAMPLE, Scalar, SuiteResult

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class ValidationRequest:
    """One suite to run over one batch of a DuckDB file.

    The batch is ``table`` (default: the suite's own) or ``query``, restricted by
    ``filters`` and ``seq_range``; the other fields say where results go and how to
    read the file.
    """

    db_path: Path | str
    """The DuckDB file (``":memory:"`` with ``connection``)."""
    suite: str | Path
    """A suite name from ``suites_dir`` (default ``expectations/``) or a YAML path."""
    table: str | None = None
    """The table to validate; defaults to the suite's ``table``."""
    query: str | None = None
    """A SQL query to validate instead of a table."""
    filters: Mapping[str, Scalar] | None = None
    """``{column: value}`` equalities restricting the batch, e.g. :func:`delivery_filters`
    for one delivery's rows (``None`` means IS NULL)."""
    seq_range: tuple[int, int] | None = None
    """Only ledger events with ``first <= seq <= last``: what one append added. The
    ledger is stored in ``seq`` order, so DuckDB reads only those row groups."""
    context_root: Path | str | None = None
    """The GX folder (``$ORIGINE_HOME/gx``): when given, results are stored and Data
    Docs built there (``SuiteResult.data_docs_path`` is their index)."""
    purposes: Sequence[str] | None = None
    """The consent purpose codes; default ``origine/data/purposes.yaml``, else the
    suite's own ``parameters.purposes``."""
    parameters: Mapping[str, Any] | None = None
    """More values for ``$name`` / ``${name}`` in the suite."""
    suites_dir: Path | None = None
    """Where suite names are looked up (default ``$ORIGINE_EXPECTATIONS_DIR`` or ``expectations/``)."""
    read_only: bool = True
    """Open the file read-only (the default: validation never writes)."""
    connection: duckdb.DuckDBPyConnection | None = None
    """An open DuckDB connection to the same file to read through (needed when this
    process already holds the file open)."""
    unexpected_sample: int = DEFAULT_UNEXPECTED_SAMPLE
    """How many failing subject keys to keep per expectation."""
    lock_wait: float = 30.0
    """Seconds to wait for another process's write lock."""
    raise_on_error: bool = False
    """Raise :class:`ValidationError` when any expectation raised, instead of
    returning it as an ``error`` outcome."""

    def __post_init__(self) -> None:
        if self.seq_range is not None:
            first, last = self.seq_range
            if not (isinstance(first, int) and isinstance(last, int)) or first > last:
                raise ValidationError(f"seq_range must be (first, last) with first <= last, not {self.seq_range!r}")


def validate(
    request: ValidationRequest | Path | str, suite: str | Path | None = None, /, **options: Any
) -> SuiteResult:
    """Run a suite over a batch of a DuckDB file and return its sanitized result.

    Give a :class:`ValidationRequest`, or the DuckDB file, the suite and any of the
    request's other fields as keywords (``validate(db, "deliveries", filters=…)``).
    """
    if isinstance(request, ValidationRequest):
        if suite is not None or options:
            raise TypeError("validate(request) takes no other argument")
    else:
        if suite is None:
            raise TypeError("validate(db_path, suite, **options): the suite is missing")
        request = ValidationRequest(request, suite, **options)
    from origine.validation.run import run  # Great Expectations loads here, not before

    return run(request)


def delivery_filters(vendor: str, delivery_id: str) -> dict[str, str]:
    """The filters that restrict a table to one delivery's rows."""
    return {"vendor": vendor, "delivery_id": delivery_id}


def validate_delivery(
    db_path: Path | str, suite: str | Path, vendor: str, delivery_id: str, **options: Any
) -> SuiteResult:
    """:func:`validate` restricted to one delivery's rows."""
    filters = {**delivery_filters(vendor, delivery_id), **(options.pop("filters", None) or {})}
    return validate(db_path, suite, filters=filters, **options)
