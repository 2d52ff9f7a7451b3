"""Vendor profiles: how one vendor names its columns and words its purposes.

A profile is ``$ORIGINE_HOME/profiles/<vendor>.yaml``::

    vendor: selfcontact
    columns:                       # canonical name: [the vendor's names]
      phone: [Numéro portable]
      consent_purposes: [Optins]
    purposes:                      # the vendor's words: a purpose code, or null
      Offres partenaires: transfer.third_party
      Jeu concours: null           # names no purpose: bundled
    purpose_separator: "|"
    date_formats: ["%d/%m/%Y %H:%M"]

Without a profile the canonical names and common French and English aliases are
recognised, case- and accent-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from origine.errors import BadInput
from origine.purposes import PurposeMap, default_purposes, fold

CANONICAL = (
    "phone",
    "source",
    "collected_at",
    "consent_purposes",
    "consent_at",
    "consent_proof",
    "acquired_from",
    "opted_out_at",
)

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": (
        "telephone", "tel", "mobile", "portable", "numero", "msisdn", "gsm",
        "phone number", "phone_number", "numero mobile", "numero portable",
        "numero de telephone", "num tel", "mobile number", "cellphone",
    ),
    "source": ("source collecte", "collecte", "lead source"),
    "collected_at": ("date collecte", "collection date", "date de collecte"),
    "consent_purposes": ("finalites", "purposes", "optins", "consentements", "finalite"),
    "consent_at": ("date consentement", "consent date", "date optin", "date opt in"),
    "consent_proof": ("preuve consentement", "preuve", "proof", "consent reference"),
    "acquired_from": ("fournisseur", "acquis aupres de", "supplier", "obtained from"),
    "opted_out_at": (
        "date optout", "date opt out", "date desinscription", "optout date",
        "unsubscribed at", "stop date", "date stop",
    ),
}


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
    try:
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"unreadable vendor profile: {type(exc).__name__}", file=str(path)) from None
    return parse_profile(vendor, doc, label=str(path))


def parse_profile(vendor: str, doc: Mapping[str, Any], *, label: str) -> Profile:
    """Build a profile from its YAML document."""
    columns = _base_columns()
    for canonical, names in (doc.get("columns") or {}).items():
        if canonical not in CANONICAL:
            raise BadInput(f"unknown canonical column {canonical!r}", file=label, column="columns")
        for name in [names] if isinstance(names, str) else list(names or []):
            columns[column_key(str(name))] = canonical
    try:
        purposes = default_purposes().with_vendor_words(
            {str(k): (None if v is None else str(v)) for k, v in (doc.get("purposes") or {}).items()}
        )
    except ValueError as exc:
        raise BadInput(str(exc), file=label, column="purposes") from None
    separator = str(doc.get("purpose_separator") or "|")
    formats = tuple(str(f) for f in doc.get("date_formats") or ())
    return Profile(vendor, columns, purposes, separator, formats)
