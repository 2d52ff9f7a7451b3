"""Words and formats for people: French and English labels, numbers, dates, time zones.

Shared by ``report.html`` (:mod:`origine.report`) and the access letter
(:mod:`origine.letter`). Labels live in ``origine/data/labels.yaml`` and, for
purposes, beside the taxonomy in ``origine/data/purposes.yaml``; each document's
sentences in its own catalog (``report_text.yaml``, ``letter_text.yaml``). Everything here is
pure and deterministic (no locale, no clock) so the same inputs give the same bytes.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from phonenumbers import timezone as phone_timezones

from origine.errors import BadInput

LANGS = ("fr", "en")
# Countries whose people are written to in French by default (the rest in English).
_FRENCH = frozenset(
    "FR BE LU MC CH SN CI ML BF NE TG BJ CM GA CG CD GN MG DJ KM TD CF BI RW HT "
    "RE GP MQ GF YT PF NC PM WF BL MF".split()
)
_MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}
NARROW_NBSP = "\u202f"  # French thousands separator and space before "%"


def check_lang(lang: str | None, default: str = "fr") -> str:
    """``lang`` lower-cased when it is one we write; BadInput otherwise."""
    value = (lang or default).strip().lower()
    if value not in LANGS:
        raise BadInput(f"unknown language {lang!r} (one of: {', '.join(LANGS)})", column="lang")
    return value


def lang_for_country(country: str | None) -> str:
    """The default language for people of ``country`` (ISO 3166 alpha-2)."""
    return "fr" if (country or "FR").upper() in _FRENCH else "en"


def zone_for_country(country: str | None) -> str:
    """The usual time zone of ``country``: its fixed-line example number's zone, else UTC."""
    region = (country or "FR").upper()
    example = phonenumbers.example_number(region) if region in phonenumbers.SUPPORTED_REGIONS else None
    zones = phone_timezones.time_zones_for_number(example) if example is not None else ()
    zone = zones[0] if zones else "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return zone


def display_zone(timezone_name: str | None, country: str | None) -> str:
    """The zone to show times in: the one given, unless it is the UTC default of an
    unset field, when the country's own zone reads better (the instant is the same)."""
    if timezone_name and timezone_name != "UTC":
        return timezone_name
    return zone_for_country(country)


@lru_cache(maxsize=1)
def _labels() -> dict[str, Any]:
    text = resources.files("origine.data").joinpath("labels.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def _purpose_labels() -> dict[str, dict[str, str]]:
    text = resources.files("origine.data").joinpath("purposes.yaml").read_text("utf-8")
    doc = yaml.safe_load(text)
    return {str(code): dict(spec.get("label") or {}) for code, spec in (doc.get("purposes") or {}).items()}


@lru_cache(maxsize=None)
def texts(catalog: str) -> Mapping[str, Mapping[str, str]]:
    """The sentences of one document, ``origine/data/{catalog}.yaml``: key -> language ->
    text, read once. Each key has exactly one text per language of :data:`LANGS`, so a
    document never falls back to another language mid-page."""
    doc = yaml.safe_load(resources.files("origine.data").joinpath(f"{catalog}.yaml").read_text("utf-8"))
    for key, item in doc.items():
        if not (isinstance(item, Mapping) and set(item) == set(LANGS) and all(isinstance(v, str) for v in item.values())):
            raise ValueError(f"origine/data/{catalog}.yaml: {key!r} needs one text for each of {', '.join(LANGS)}")
    return MappingProxyType(doc)


def text(catalog: str, key: str, lang: str, **values: Any) -> str:
    """Sentence ``key`` of ``catalog`` (:func:`texts`) in ``lang``, its ``{placeholders}``
    filled from ``values``."""
    return texts(catalog)[key][lang].format(**values)


def entry(kind: str, code: str, lang: str) -> Any:
    """The ``kind`` entry for ``code`` in ``lang`` (a string or a mapping), or None."""
    item = (_labels().get(kind) or {}).get(code)
    return item.get(lang) if isinstance(item, Mapping) else None


def known(kind: str) -> list[str]:
    """The codes ``kind`` has labels for."""
    return list((_labels().get(kind) or {}).keys())


def label(kind: str, code: str, lang: str) -> str:
    """A short label: ``entry(...)`` itself or its ``label`` field, else the code."""
    item = entry(kind, code, lang)
    if isinstance(item, Mapping):
        return str(item.get("label") or code)
    return str(item) if item else str(code)


def purpose_label(code: str, lang: str) -> str:
    """A purpose code's label (``political.electoral`` -> "Propagande et communication électorales")."""
    return _purpose_labels().get(code, {}).get(lang) or str(code)


def number(n: int | float, lang: str) -> str:
    """An integer with thousands separators: ``3 000 000`` (fr), ``3,000,000`` (en)."""
    text = f"{int(n):,}"
    return text.replace(",", NARROW_NBSP) if lang == "fr" else text


def percent(part: int | float, whole: int | float, lang: str) -> str:
    """``part`` of ``whole`` as a percentage, one decimal; never "0 %" for a non-zero part."""
    if not whole:
        value = 0.0
    else:
        value = 100.0 * part / whole
    if part and value < 0.1:
        text = "< 0.1"
    elif part != whole and value > 99.9:
        text = "> 99.9"
    else:
        text = f"{value:.1f}"
    return text.replace(".", ",") + NARROW_NBSP + "%" if lang == "fr" else text + "%"


def ratio(value: float, lang: str) -> str:
    """A rate between 0 and 1 as a percentage with up to two decimals."""
    text = f"{100 * value:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") + NARROW_NBSP + "%" if lang == "fr" else text + "%"


def parse_instant(text: str | datetime | None) -> datetime | None:
    """An ISO 8601 instant (``Z`` allowed) as an aware datetime; naive means UTC."""
    if text is None or text == "":
        return None
    value = text if isinstance(text, datetime) else datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def local(value: datetime, zone: str) -> datetime:
    """``value`` in ``zone``."""
    return value.astimezone(ZoneInfo(zone))


def long_date(day: date, lang: str) -> str:
    """``7 juin 2024`` / ``7 June 2024`` (``1er`` for the first of a French month)."""
    first = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    return f"{first} {_MONTHS[lang][day.month - 1]} {day.year}"


def short_date(day: date, lang: str) -> str:
    """``12/03/2024`` (fr, day first) / ``12 Mar 2024`` (en: no day/month ambiguity)."""
    if lang == "fr":
        return day.strftime("%d/%m/%Y")
    return f"{day.day} {_MONTHS['en'][day.month - 1][:3]} {day.year}"


def when(value: datetime, zone: str, lang: str, *, always_time: bool = False) -> str:
    """An instant as a local date, with its time unless it is midnight (a date-only fact)."""
    moment = local(value, zone)
    text = short_date(moment.date(), lang)
    if always_time or (moment.hour, moment.minute, moment.second) != (0, 0, 0):
        text += (" à " if lang == "fr" else " at ") + moment.strftime("%H:%M")
    return text


def long_when(value: datetime, zone: str, lang: str) -> str:
    """``7 juin 2024 à 18:00`` / ``7 June 2024 at 18:00`` in ``zone``."""
    moment = local(value, zone)
    return long_date(moment.date(), lang) + (" à " if lang == "fr" else " at ") + moment.strftime("%H:%M")


def zone_name(zone: str, lang: str) -> str:
    """A zone as people say it: ``heure de Paris (Europe/Paris)``."""
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    if zone == "UTC":
        return "UTC"
    return f"heure de {city} ({zone})" if lang == "fr" else f"{city} time ({zone})"
