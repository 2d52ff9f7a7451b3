"""Vendor profiles: how one vendor names its columns and words its purposes.

A profile is ``$ORIGINE_HOME/profiles/<vendor>.yaml``; its keys are declared once, in
:data:`PROFILE_SCHEMA`, which both checks profiles and generates
``docs/input-reference.md`` (an example is in :data:`PROFILE_DOCUMENT`).

Without a profile the canonical names and common French and English aliases (both
declared in :mod:`origine.canonical`) are recognised, case- and accent-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from origine.canonical import CANONICAL, DELIVERED
from origine.documents import (
    MAPPING, STRING, STRING_OR_LIST, TEXT, DocumentType, Key, Kind, Schema, check_keys, key_path, load_yaml,
    read_bounded,
)
from origine.errors import BadInput
from origine.purposes import BUNDLED, PurposeMap, default_purposes, fold

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {c.name: c.aliases for c in DELIVERED}

COLUMNS_SCHEMA = Schema(
    "`columns`",
    tuple(
        Key(c.name, STRING_OR_LIST, f"The vendor's column name(s) for `{c.name}`: {c.meaning}.")
        for c in DELIVERED
    ),
    what="Names are compared case-, accent- and punctuation-insensitively; they add to the "
    "built-in aliases (`Téléphone`, `Finalités`, `Date consentement`…).",
)

PURPOSE_WORDS_SCHEMA = Schema(
    "`purposes`",
    (),
    others="each key is one of the vendor's purpose words (compared case-, accent- and "
    "punctuation-insensitively); its value is a purpose code, or `null` (or `bundled`) for a "
    "word that names no purpose, such as a bundled \"j'accepte\"",
    others_kind=Kind("a purpose code, `bundled` or null", lambda v: isinstance(v, str)),
)

PROFILE_SCHEMA = Schema(
    "vendor profile",
    (
        Key("vendor", TEXT, "The vendor this profile is for; when given, it must be the file's name "
            "(`<vendor>.yaml`), which is what selects the profile."),
        Key("columns", MAPPING, "Canonical column → the vendor's name(s) for it.", keys=COLUMNS_SCHEMA),
        Key("purposes", MAPPING, "The vendor's purpose words → purpose codes; they win over the "
            "built-in words.", keys=PURPOSE_WORDS_SCHEMA),
        Key("purpose_separator", STRING, "What separates purposes in a `consent_purposes` cell "
            "(quote it: `\"|\"`).", default="`|`"),
        Key("date_formats", STRING_OR_LIST, "`strptime` formats (`%d/%m/%Y %H:%M`) tried before "
            "ISO 8601 and `dd/mm/yyyy`."),
    ),
)

PROFILE_DOCUMENT = DocumentType(
    "Vendor profile",
    "`$ORIGINE_HOME/profiles/<vendor>.yaml` (or `.yml`), read when that vendor's deliveries are ingested",
    PROFILE_SCHEMA,
    example="""vendor: selfcontact
columns:
  phone: [Numéro portable]
  consent_purposes: Optins
purposes:
  Offres partenaires: transfer.third_party
  Jeu concours: null
purpose_separator: ";"
date_formats: ["%d/%m/%Y %H:%M"]
""",
)


def column_key(name: str) -> str:
    """The folded form used to compare column names (``Date-Consentement`` = ``date consentement``)."""
    return fold(name.replace("_", " ").replace(".", " "))


@dataclass(frozen=True)
class Profile:
    """A vendor's column names, purpose words, separator and date formats."""

    vendor: str
    columns: Mapping[str, str] = field(default_factory=dict)  # folded delivered name -> canonical
    purposes: PurposeMap = field(default_factory=default_purposes)
    purpose_separator: str = "|"
    date_formats: tuple[str, ...] = ()

    def canonical_for(self, delivered: str) -> str | None:
        """The canonical column a delivered column name maps to, if any."""
        return self.columns.get(column_key(delivered))

    def map_columns(self, delivered: list[str], file: str) -> dict[str, str]:
        """``{canonical: delivered name}`` for this file; two columns for one name is an error."""
        mapping: dict[str, str] = {}
        for name in delivered:
            canonical = self.canonical_for(name)
            if canonical is None:
                continue
            if canonical in mapping:
                raise BadInput(
                    f"columns {mapping[canonical]!r} and {name!r} both map to {canonical!r}; "
                    "name the one to use in the vendor profile",
                    file=file,
                    column=name,
                )
            mapping[canonical] = name
        return mapping


def _base_columns() -> dict[str, str]:
    columns = {column_key(c): c for c in CANONICAL}
    for canonical, aliases in DEFAULT_ALIASES.items():
        for alias in aliases:
            columns.setdefault(column_key(alias), canonical)
    return columns


def default_profile(vendor: str) -> Profile:
    """The profile used when the vendor has none."""
    return Profile(vendor=vendor, columns=_base_columns())


def load_profile(vendor: str, profiles_dir: Path | None) -> Profile:
    """The vendor's profile from ``profiles_dir/<vendor>.yaml``, or the default."""
    if profiles_dir is None:
        return default_profile(vendor)
    path = next(
        (p for p in (profiles_dir / f"{vendor}.yaml", profiles_dir / f"{vendor}.yml") if p.is_file()),
        None,
    )
    if path is None:
        return default_profile(vendor)
    label = str(path)
    doc = load_yaml(read_bounded(path, label=label, what="vendor profile"), label=label, what="vendor profile")
    return parse_profile(vendor, {} if doc is None else doc, label=label)


def parse_profile(vendor: str, doc: Any, *, label: str) -> Profile:
    """Build a profile from its YAML document; anything unusable is a :class:`BadInput`
    naming ``label`` and the key (a profile that is a list, ``phone: 5``, an unknown
    purpose code, a date format ``strptime`` refuses)."""
    if not isinstance(doc, dict):
        raise BadInput("the vendor profile must be a mapping", file=label)
    check_keys(doc, PROFILE_SCHEMA, label=label)
    named = doc.get("vendor")
    if named is not None and str(named) != vendor:
        raise BadInput(f"this profile is for vendor {vendor!r} (its file name), not {str(named)!r}",
                       file=label, column="vendor")
    columns = _base_columns()
    for canonical, names in (doc.get("columns") or {}).items():
        for name in [names] if isinstance(names, str) else names or []:
            if not name.strip():
                raise BadInput("a column name is empty", file=label, column=f"columns.{canonical}")
            columns[column_key(name)] = canonical
    words = doc.get("purposes") or {}
    for word, code in words.items():
        if code is not None and code != BUNDLED and code not in default_purposes().codes:
            raise BadInput(
                f"not a purpose code (use a code, `bundled` or null); codes: {', '.join(sorted(default_purposes().codes))}",
                file=label, column=key_path("purposes", word),
            )
    try:
        purposes = default_purposes().with_vendor_words({str(k): v for k, v in words.items()})
    except ValueError as exc:
        raise BadInput(str(exc), file=label, column="purposes") from None
    separator = doc.get("purpose_separator") or "|"
    raw_formats = doc.get("date_formats") or ()
    formats = (raw_formats,) if isinstance(raw_formats, str) else tuple(raw_formats)
    for i, fmt in enumerate(formats, 1):
        _check_date_format(fmt, label, f"date_formats[{i}]")
    return Profile(vendor, columns, purposes, separator, formats)


def _check_date_format(fmt: str, label: str, column: str) -> None:
    """Refuse a format that cannot read back a date it writes (an unknown ``%`` directive)."""
    sample = datetime(2024, 6, 5, 9, 30, 15)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        raise BadInput(f"not a date format strptime reads: {exc}", file=label, column=column) from None
