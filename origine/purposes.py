"""The purpose taxonomy and the mapping of vendors' words onto it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping

from origine.documents import load_yaml

BUNDLED = "bundled"
_NON_WORD = re.compile(r"[^0-9a-z.]+")


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form used for matching words."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", ascii_only.replace("'", " ")).strip()


def code_key(text: str) -> str:
    """:func:`fold` with no space around a code's dots: ``Transfer . Third_Party`` and
    ``transfer.third party`` both key as ``transfer.third party``."""
    return _AROUND_DOT.sub(".", fold(text))


_AROUND_DOT = re.compile(r" ?\. ?")


@dataclass(frozen=True)
class PurposeMap:
    """Maps a vendor's words to purpose codes; knows which words are bundled consent."""

    codes: frozenset[str]
    words: Mapping[str, str] = field(default_factory=dict)  # folded word -> code or BUNDLED
    # code_key(code) -> code: a code written as is ("transfer.third_party") or with
    # other case, accents or spacing. fold() alone turns its '_' into a space.
    by_code_key: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_code_key", {code_key(c): c for c in self.codes})

    def lookup(self, word: str) -> str | None:
        """The code for ``word``, ``BUNDLED``, or ``None`` when the word is unknown."""
        folded = fold(word)
        if not folded:
            return None
        code = self.by_code_key.get(code_key(word))
        if code is not None:
            return code
        return self.words.get(folded)

    def with_vendor_words(self, vendor_words: Mapping[str, str | None]) -> "PurposeMap":
        """A map extended with a vendor profile's own words (they win over defaults).

        A profile maps a word to ``null`` (or ``bundled``) to say it names no purpose.
        """
        merged = dict(self.words)
        for word, code in vendor_words.items():
            target = BUNDLED if code in (None, BUNDLED) else str(code)
            if target != BUNDLED and target not in self.codes:
                raise ValueError(f"profile maps {word!r} to unknown purpose {code!r}")
            merged[fold(word)] = target
        return PurposeMap(self.codes, merged)


@dataclass(frozen=True)
class ParsedPurposes:
    """The result of reading one `consent_purposes` cell."""

    codes: tuple[str, ...]
    bundled: bool
    unknown: tuple[str, ...]


def parse_purposes(cell: str | None, pmap: PurposeMap, separator: str = "|") -> ParsedPurposes:
    """Split a cell on ``separator`` and map each word; codes are sorted and unique."""
    if cell is None:
        return ParsedPurposes((), False, ())
    codes: set[str] = set()
    unknown: list[str] = []
    bundled = False
    for part in str(cell).split(separator):
        word = part.strip()
        if not word:
            continue
        code = pmap.lookup(word)
        if code is None:
            unknown.append(word)
        elif code == BUNDLED:
            bundled = True
        else:
            codes.add(code)
    return ParsedPurposes(tuple(sorted(codes)), bundled, tuple(unknown))


@lru_cache(maxsize=1)
def default_purposes() -> PurposeMap:
    """The taxonomy shipped in ``origine/data/purposes.yaml``."""
    raw = resources.files("origine.data").joinpath("purposes.yaml").read_bytes()
    # The strict reader: YAML 1.1 would read the bundled word `yes` as True, and a code
    # listed twice would silently lose its first words.
    return load_purposes(load_yaml(raw, label="origine/data/purposes.yaml", what="purpose taxonomy"))


def load_purposes(doc: Mapping[str, object]) -> PurposeMap:
    """Build a :class:`PurposeMap` from the taxonomy document's structure."""
    purposes = doc.get("purposes") or {}
    if not isinstance(purposes, Mapping):
        raise ValueError("purposes: expected a mapping of code -> {label, words}")
    words: dict[str, str] = {}
    for code, spec in purposes.items():
        for word in _words(spec):
            words[fold(word)] = str(code)
    for word in doc.get("bundled") or []:  # type: ignore[union-attr]
        words[fold(str(word))] = BUNDLED
    return PurposeMap(frozenset(str(c) for c in purposes), words)


def _words(spec: object) -> Iterable[str]:
    if isinstance(spec, Mapping):
        return [str(w) for w in spec.get("words") or []]
    return []


def taxonomy_codes() -> list[str]:
    """All purpose codes, sorted."""
    return sorted(default_purposes().codes)
