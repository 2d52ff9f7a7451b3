"""The rules of the road in docs/architecture.md, enforced on the import graph.

- Domain code (``origine/``) never imports Dagster, ``assets`` or ``pipelines``, the CLI
  included: the commands that start runs live in ``pipelines/cli.py``.
- ``origine.warehouse`` (connection, locking, transactions) loads nothing of the ingest
  stack, so modules that only want a connection stay light.

Every import counts, module level or inside a function (lazy imports are imports too).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("dagster", "assets", "pipelines")
# (importing module, imported module) exceptions: none.
ALLOWED: set[tuple[str, str]] = set()
INGEST_STACK = (
    "origine.ingest",
    "origine.ingest.intake",
    "origine.ingest.prepare",
    "origine.ingest.columns",
    "origine.ingest.commit",
    "origine.ingest.report",
    "origine.readers",
    "origine.fastphone",
    "origine.freetext",
    "origine.phones",
    "phonenumbers",
)


def module_name(path: Path, root: Path) -> str:
    """``origine/ledger/append.py`` -> ``origine.ledger.append``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in its body, relative imports resolved.

    ``from a import b`` yields ``a.b`` (``b`` may be a module or a name in ``a``); a call
    ``importlib.import_module("x")`` or ``__import__("x")`` with a literal name counts too.
    """
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from a import b`` loads ``a`` and maybe module ``a.b``: ``a.b`` names both
            found.update(target if alias.name == "*" else f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def forbidden_imports(package_dir: Path, root: Path) -> list[tuple[str, str]]:
    """(module, import) pairs under ``package_dir`` that reach Dagster, assets or pipelines."""
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        importer = module_name(path, root)
        for target in sorted(imports_of(path, root)):
            if target.split(".")[0] not in FORBIDDEN and not target.startswith("dagster_"):
                continue
            if (importer, target) in ALLOWED:
                continue
            bad.append((importer, target))
    return bad


def test_domain_code_never_imports_dagster_assets_or_pipelines() -> None:
    assert forbidden_imports(ROOT / "origine", ROOT) == []


def test_every_exception_is_still_needed() -> None:
    """The allow-list names imports that exist: a stale exception would hide nothing."""
    for importer, target in ALLOWED:
        assert target in imports_of(ROOT / (importer.replace(".", "/") + ".py"), ROOT)


@pytest.mark.parametrize(
    "body",
    [
        "import dagster\n",
        "import dagster as dg\n",
        "from dagster import asset\n",
        "import dagster_celery\n",
        "def later():\n    from assets.ingest import delivery_segment\n",
        "def later():\n    import pipelines.definitions\n",
        "from pipelines import runs\n",
        "import importlib\nimportlib.import_module('dagster')\n",
    ],
)
def test_the_check_catches_an_import_anywhere_in_a_module(tmp_path: Path, body: str) -> None:
    package = tmp_path / "origine"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "step.py").write_text('"""A domain step."""\nimport os\n' + body)
    assert {m for m, _ in forbidden_imports(package, tmp_path)} == {"origine.sub.step"}


def test_the_cli_has_no_exception(tmp_path: Path) -> None:
    package = tmp_path / "origine"
    package.mkdir()
    (package / "cli.py").write_text("def run():\n    from pipelines import runs\n    from pipelines import definitions\n")
    (package / "other.py").write_text("def run():\n    from pipelines import runs\n")
    assert forbidden_imports(package, tmp_path) == [
        ("origine.cli", "pipelines.definitions"),
        ("origine.cli", "pipelines.runs"),
        ("origine.other", "pipelines.runs"),
    ]


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    package = tmp_path / "origine" / "ledger"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .append import append_events\nfrom .. import warehouse\n")
    (package / "append.py").write_text("from . import tree\nfrom ..keys import HashKey\n")
    assert imports_of(package / "__init__.py", tmp_path) >= {
        "origine.ledger.append.append_events", "origine.warehouse"
    }
    assert imports_of(package / "append.py", tmp_path) >= {"origine.ledger.tree", "origine.keys.HashKey"}


def loaded_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter imports to run ``statement`` (from ``-X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_importing_the_warehouse_loads_nothing_of_the_ingest_stack() -> None:
    loaded = loaded_modules("import origine.warehouse")
    assert "origine.warehouse" in loaded  # the measure sees the module it asked for
    assert sorted(loaded & set(INGEST_STACK)) == []


def test_the_import_measure_sees_the_ingest_stack_when_it_is_loaded() -> None:
    assert {"origine.ingest", "origine.ingest.columns", "origine.readers"} <= loaded_modules("import origine.ingest")
