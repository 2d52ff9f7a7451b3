"""No module of origine/ reaches into another module's private names (issue: columns.py
typed its parameters with ingest's ``_BatchContext`` and ``_Counters``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "origine"

# Private imports still to be given public names. The test fails on any new one; one
# fixed can leave this list (a subset check, so fixing one never fails it).
KNOWN = {
    ("origine/ledger/append.py", "origine.ledger.events", "_COLS"),
    ("origine/validation/adapter.py", "origine.validation.results", "_looks_like_key"),
    ("origine/validation/__init__.py", "origine.validation.results", "_looks_like_key"),
}


def private_imports(root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(module file, imported module, name) for every ``from origine… import _name``."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("origine"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.add((str(path.relative_to(root.parent)), node.module, alias.name))
    return found


def test_no_new_private_imports_across_modules() -> None:
    found = private_imports()
    assert found <= KNOWN, sorted(found - KNOWN)
    assert not any(f == "origine/ingest/columns.py" for f, _, _ in found)


def test_the_scan_sees_a_private_import(tmp_path: Path) -> None:
    pkg = tmp_path / "origine"
    pkg.mkdir()
    (pkg / "columns.py").write_text("if True:\n    from origine.ingest import _BatchContext, Counters\n")
    assert private_imports(pkg) == {("origine/columns.py", "origine.ingest", "_BatchContext")}
