"""The sentences of report.html and of the access letter live in one catalog per document
(origine/data/report_text.yaml, letter_text.yaml; issue 19: they were two big fr/en
tables in code). Every key has French and English with the same placeholders, every
key the code asks for exists, and none is left unused."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from origine import i18n

ROOT = Path(__file__).resolve().parents[1] / "origine"
# catalog -> (module reading it, the function it reads through)
CATALOGS = {"report_text": ("report.py", "_t"), "letter_text": ("letter.py", "_w")}


def _constants(node: ast.AST) -> set[str]:
    """String constants an expression may evaluate to (``"a" if c else "b"`` gives both)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _constants(node.body) | _constants(node.orelse)
    return set()


def keys_used(source: str, reader: str) -> set[str]:
    """Every key ``source`` passes to ``reader``: literal first arguments, both branches of
    a conditional one, and each element of a literal tuple a comprehension variable runs
    over (``reader(k, lang) for k in ("a", "b")``). A key it cannot see fails the test."""
    tree = ast.parse(source)
    loops: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension) and isinstance(node.target, ast.Name) \
                and isinstance(node.iter, (ast.Tuple, ast.List)):
            loops.setdefault(node.target.id, set()).update(*(_constants(e) for e in node.iter.elts))
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == reader and node.args:
            first = node.args[0]
            found = _constants(first) or (loops.get(first.id, set()) if isinstance(first, ast.Name) else set())
            assert found, f"{reader}() called with a key this test cannot read: {ast.unparse(first)}"
            used |= found
    return used


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("catalog", sorted(CATALOGS))
def test_every_key_has_french_and_english_with_the_same_placeholders(catalog: str) -> None:
    texts = i18n.texts(catalog)
    assert texts
    for key, item in texts.items():
        assert set(item) == set(i18n.LANGS), key
        assert all(isinstance(v, str) and v.strip() for v in item.values()), key
        assert _fields(item["fr"]) == _fields(item["en"]), key


@pytest.mark.parametrize("catalog", sorted(CATALOGS))
def test_every_key_used_exists_and_every_key_is_used(catalog: str) -> None:
    module, reader = CATALOGS[catalog]
    used = keys_used((ROOT / module).read_text(encoding="utf-8"), reader)
    defined = set(i18n.texts(catalog))
    assert used - defined == set(), f"{module} asks for keys {catalog}.yaml lacks"
    assert defined - used == set(), f"{catalog}.yaml holds keys {module} never asks for"


def test_the_key_reader_sees_conditional_and_looped_keys() -> None:
    source = ('def f(n, lang):\n    _t("a" if n else "b", lang)\n'
              '    return [_t(k, lang) for k in ("c", "d")]\n')
    assert keys_used(source, "_t") == {"a", "b", "c", "d"}
    with pytest.raises(AssertionError, match="cannot read"):
        keys_used("def f(key, lang):\n    return _t(key, lang)\n", "_t")


def test_a_catalog_missing_a_language_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A key without its English text fails on reading, naming the catalog and the key,
    rather than as a KeyError in the middle of a report."""
    (tmp_path / "broken.yaml").write_text("title:\n  fr: Titre\n", encoding="utf-8")
    monkeypatch.setattr(i18n.resources, "files", lambda package: tmp_path)
    i18n.texts.cache_clear()
    try:
        with pytest.raises(ValueError, match="broken.yaml: 'title'"):
            i18n.texts("broken")
    finally:
        monkeypatch.undo()
        i18n.texts.cache_clear()


def test_the_catalogs_are_package_data() -> None:
    """setuptools ships origine/data/*.yaml: a catalog elsewhere would be missing from a wheel."""
    import tomllib

    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["origine.data"]
    assert all(any(Path(f"{c}.yaml").match(p) for p in patterns) for c in CATALOGS)
