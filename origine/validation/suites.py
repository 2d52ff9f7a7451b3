"""Suites: the YAML files of ``expectations/`` a compliance officer reads and edits.

:func:`load_suite` reads one (strictly, through :mod:`origine.documents`: no aliases,
no key given twice, bounded size) into a :class:`Suite`; :func:`build_expectations`
turns it into Great Expectations objects, ``$name`` / ``${name}`` parameters
substituted and each check's severity kept in its ``meta``. Great Expectations is
imported by :func:`build_expectations` only, when a suite is about to run or be checked.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from origine.documents import load_yaml, read_bounded
from origine.errors import BadInput
from origine.validation.errors import SuiteError, ValidationError
from origine.validation.results import DEFAULT_UNEXPECTED_SAMPLE, SEVERITIES, Severity

EXPECTATIONS_DIR_ENV = "ORIGINE_EXPECTATIONS_DIR"

_CHECK_KEYS_OURS = {"expect", "severity", "why", "name", "query"}
_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_PARAM = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Check:
    """One check of a suite file, as written (before parameters are substituted)."""

    index: int
    expect: str
    severity: Severity
    why: str | None
    name: str | None
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    table: str | None
    description: str | None
    parameters: Mapping[str, Any]
    checks: tuple[Check, ...]
    path: Path | None = None


def expectations_dir() -> Path:
    """Where suite files live: ``$ORIGINE_EXPECTATIONS_DIR`` or the repository's ``expectations/``."""
    env = os.environ.get(EXPECTATIONS_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "expectations"


def suite_names(suites_dir: Path | None = None) -> list[str]:
    """Names of the suites found in ``suites_dir`` (the file stems), sorted."""
    folder = suites_dir or expectations_dir()
    return sorted(p.stem for p in folder.glob("*.yml"))


def _suite_path(suite: str | Path, suites_dir: Path | None) -> Path:
    candidate = Path(suite)
    if candidate.suffix in (".yml", ".yaml") and candidate.exists():
        return candidate
    folder = suites_dir or expectations_dir()
    for ext in (".yml", ".yaml"):
        path = folder / f"{suite}{ext}"
        if path.exists():
            return path
    raise SuiteError(f"no suite named {str(suite)!r} in {folder} (have: {', '.join(suite_names(folder)) or 'none'})")


def load_suite(suite: str | Path, *, suites_dir: Path | None = None) -> Suite:
    """Read and check a suite file (by name in ``suites_dir`` or by path)."""
    path = _suite_path(suite, suites_dir)
    try:  # strict: no YAML aliases, no key given twice, bounded size
        doc = load_yaml(read_bounded(path, what="suite"), label=str(path), what="suite")
    except BadInput as exc:
        raise SuiteError(str(exc)) from None
    if not isinstance(doc, Mapping):
        raise SuiteError(f"{path}: expected a mapping with `suite` and `checks`")
    name = str(doc.get("suite") or path.stem)
    raw_checks = doc.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise SuiteError(f"{path}: `checks` must be a non-empty list")
    params = doc.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise SuiteError(f"{path}: `parameters` must be a mapping")
    checks = []
    for i, raw in enumerate(raw_checks, start=1):
        where = f"{path}, check {i}"
        if not isinstance(raw, Mapping) or "expect" not in raw:
            raise SuiteError(f"{where}: each check needs `expect: <expectation>`")
        severity = raw.get("severity", "blocking")
        if severity not in SEVERITIES:
            raise SuiteError(f"{where}: severity must be `blocking` or `warning`, not {severity!r}")
        args = {k: v for k, v in raw.items() if k not in _CHECK_KEYS_OURS}
        if "query" in raw:
            args["unexpected_rows_query"] = raw["query"]
        checks.append(
            Check(
                index=i,
                expect=_expectation_type(str(raw["expect"])),
                severity=severity,
                why=" ".join(str(raw["why"]).split()) if raw.get("why") else None,
                name=str(raw["name"]) if raw.get("name") else None,
                args=args,
            )
        )
    parsed = Suite(
        name=name,
        table=str(doc["table"]) if doc.get("table") else None,
        description=" ".join(str(doc["description"]).split()) if doc.get("description") else None,
        parameters=dict(params),
        checks=tuple(checks),
        path=path,
    )
    build_expectations(parsed, parsed.parameters)  # fail now on unknown types or bad arguments
    return parsed


def _expectation_type(expect: str) -> str:
    expect = expect.strip()
    if expect in ("unexpected_rows", "unexpected_rows_expectation", "unexpected_subject_rows"):
        return "unexpected_subject_rows"
    return expect if expect.startswith("expect_") else f"expect_{expect}"


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise SuiteError(f"cannot put {value!r} in SQL")
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(_sql_literal(v) for v in items) + "]"
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


def _substitute(value: Any, params: Mapping[str, Any], *, sql: bool, where: str) -> Any:
    if isinstance(value, str):
        whole = _WHOLE_PARAM.match(value)
        if whole:
            name = whole.group(1)
            if name not in params:
                raise SuiteError(f"{where}: unknown parameter ${name}")
            return _substitute(params[name], {}, sql=False, where=where)  # dates -> ISO text

        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in params:
                raise SuiteError(f"{where}: unknown parameter ${{{m.group(1)}}}")
            v = params[m.group(1)]
            return _sql_literal(v) if sql else str(v)

        return _PARAM.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, params, sql=sql, where=where) for v in value]
    if isinstance(value, Mapping):
        return {k: _substitute(v, params, sql=sql, where=where) for k, v in value.items()}
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


def build_expectations(
    suite: Suite, params: Mapping[str, Any], *, sample: int = DEFAULT_UNEXPECTED_SAMPLE
) -> list[Any]:
    """GX expectation objects for a suite, parameters substituted, severity in ``meta``."""
    from great_expectations.expectations.registry import get_expectation_impl

    # Registers the DuckDB adapter (its regex metrics, `unexpected_subject_rows`) with GX.
    from origine.validation.adapter import GX_SEVERITY

    built: list[Any] = []
    for check in suite.checks:
        where = f"{suite.path or suite.name}, check {check.index} ({check.expect})"
        try:
            cls = get_expectation_impl(check.expect)
        except Exception:
            raise SuiteError(f"{where}: unknown expectation {check.expect!r}") from None
        kwargs = {
            k: _substitute(v, params, sql=(k == "unexpected_rows_query"), where=where)
            for k, v in check.args.items()
        }
        meta: dict[str, Any] = {"severity": check.severity, "check": check.index}
        if check.expect == "unexpected_subject_rows":
            meta["subject_key_sample"] = sample
        if check.name:
            meta["name"] = check.name
        try:
            built.append(
                cls(
                    **kwargs,
                    meta=meta,
                    notes=check.why,
                    severity=GX_SEVERITY[check.severity],
                )
            )
        except Exception as exc:  # pydantic errors name the argument
            raise SuiteError(f"{where}: {' '.join(str(exc).split())}") from None
    return built


# --------------------------------------------------------------------------------------
# Purpose taxonomy
# --------------------------------------------------------------------------------------
def load_purpose_codes(path: Path | None = None) -> list[str] | None:
    """Purpose codes from ``origine/data/purposes.yaml`` (or ``path``); ``None`` if absent.

    Accepts ``purposes:`` as a mapping of code -> details or a list of codes (or of
    ``{code: …}`` items), at the top level or under a ``purposes`` key.
    """
    try:
        if path is not None:
            text = path.read_text(encoding="utf-8")
        else:
            text = resources.files("origine.data").joinpath("purposes.yaml").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None
    doc = yaml.safe_load(text)
    node = doc.get("purposes", doc) if isinstance(doc, Mapping) else doc
    if isinstance(node, Mapping):
        codes = [str(k) for k in node]
    elif isinstance(node, list):
        codes = [str(item.get("code") if isinstance(item, Mapping) else item) for item in node]
    else:
        raise ValidationError(f"{path or 'origine/data/purposes.yaml'}: cannot find the purpose codes")
    return sorted(set(codes))
