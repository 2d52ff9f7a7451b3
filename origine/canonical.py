"""The canonical columns, declared once.

A vendor names its columns as it likes; its profile (or the built-in aliases declared
here) maps them to the canonical columns. Ingest turns each accepted row into a row of
the segment (``rows.parquet``), which the commit copies into the warehouse's
``delivery_rows`` and states as a row leaf of the ledger. :data:`DELIVERED` says, for
each canonical column: its name, how ingest reads it, what it means, its built-in
aliases, and the columns of an accepted row it feeds, each with its type, the row
leaf's field it states and the expectation suites that check it.

Derived from it, not written again: the profiles' canonical names, aliases and their
reference (:mod:`origine.profiles`), the segment's Arrow schema
(:data:`ROWS_ARROW_SCHEMA`), the ``delivery_rows`` DDL (:data:`DELIVERY_ROWS_DDL`, in
:data:`origine.warehouse.SCHEMA`), the row columns ingest reads as free text or as
instants (:data:`TEXT_COLUMNS`, :data:`INSTANT_COLUMNS`) and the mapping the commit
gives the ledger's row-leaf builder (:data:`ROW_LEAF_COLUMNS`).
``tests/test_canonical.py`` checks the suites under ``expectations/`` against it.

Adding a canonical column of an existing kind (free text, an instant) is one entry in
:data:`DELIVERED` (and its name in the suite's YAML); stating it in row leaves too
(``leaf=``) needs a leaf field the ledger format has (``docs/ledger-format.md``). Kept
light (pyarrow only): the warehouse imports it for its schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa


@dataclass(frozen=True)
class ColumnType:
    """A column's type, in the warehouse (DuckDB) and in the segment (Arrow)."""

    sql: str
    arrow: pa.DataType


VARCHAR = ColumnType("VARCHAR", pa.string())
BIGINT = ColumnType("BIGINT", pa.int64())
INTEGER = ColumnType("INTEGER", pa.int32())
BOOLEAN = ColumnType("BOOLEAN", pa.bool_())
# origine.dates.TS (tests/test_canonical.py checks they are one type): dates loads
# pyarrow.compute, which a module that only wants a connection need not.
TIMESTAMPTZ = ColumnType("TIMESTAMPTZ", pa.timestamp("us", tz="UTC"))
VARCHAR_LIST = ColumnType("VARCHAR[]", pa.list_(pa.string()))

ROWS_SUITE = "normalized_rows"
"""The suite (``expectations/normalized_rows.yml``) that checks a delivery's rows."""


@dataclass(frozen=True)
class RowColumn:
    """A column of a delivery's accepted rows (the segment's ``rows.parquet`` and the
    warehouse's ``delivery_rows``, in the same order)."""

    name: str
    type: ColumnType
    # The row leaf's field this column states (docs/ledger-format.md), or None.
    leaf: str | None = None
    # The expectation suites (expectations/<suite>.yml) that name this column (a
    # column the suites leave unchecked says so with ``suites=()``).
    suites: tuple[str, ...] = (ROWS_SUITE,)
    # NOT NULL in the warehouse.
    required: bool = False
    # Few distinct values in a delivery: dictionary-encoded in the segment (on keys,
    # row numbers and instants a dictionary is built and then dropped: at 1.8M rows the
    # write took 0.61 s of CPU instead of 0.80, and the file is 10% smaller).
    repeats: bool = False


Kind = Literal["phone", "text", "instant", "purposes"]


@dataclass(frozen=True)
class Canonical:
    """A column a vendor delivers, under its canonical name.

    ``kind`` says how ingest reads it: ``phone`` the number (normalized, key-hashed);
    ``text`` free text (trimmed, numbers, e-mail and IP addresses tokenized); ``instant``
    a date (parsed in the delivery's time zone with the profile's formats);
    ``purposes`` the purposes consented to (parsed into the taxonomy's codes).
    A ``text`` or ``instant`` column feeds the row column of its own name.
    """

    name: str
    kind: Kind
    meaning: str
    aliases: tuple[str, ...]
    feeds: tuple[RowColumn, ...]


DELIVERED: tuple[Canonical, ...] = (
    Canonical(
        "phone", "phone", "the number (required in every file)",
        (
            "telephone", "tel", "mobile", "portable", "numero", "msisdn", "gsm",
            "phone number", "phone_number", "numero mobile", "numero portable",
            "numero de telephone", "num tel", "mobile number", "cellphone",
        ),
        (
            RowColumn("subject_key", VARCHAR, leaf="subject_key", required=True),
            RowColumn("key_id", VARCHAR, required=True, repeats=True),
            RowColumn("country_code", INTEGER, leaf="cc", repeats=True),
            RowColumn("line_type", VARCHAR, leaf="line", repeats=True),
        ),
    ),
    Canonical(
        "source", "text", "where the number was collected (a contest, a form…)",
        ("source collecte", "collecte", "lead source"),
        (RowColumn("source", VARCHAR, leaf="source", repeats=True),),
    ),
    Canonical(
        "collected_at", "instant", "when it was collected",
        ("date collecte", "collection date", "date de collecte"),
        (RowColumn("collected_at", TIMESTAMPTZ, leaf="at"),),
    ),
    Canonical(
        "consent_purposes", "purposes", "the purposes consented to, separated by `purpose_separator`",
        ("finalites", "purposes", "optins", "consentements", "finalite"),
        (
            RowColumn("consent_purposes", VARCHAR_LIST, leaf="purposes", repeats=True),
            RowColumn("bundled_consent", BOOLEAN, leaf="bundled", suites=()),
        ),
    ),
    Canonical(
        "consent_at", "instant", "when consent was given",
        ("date consentement", "consent date", "date optin", "date opt in"),
        (RowColumn("consent_at", TIMESTAMPTZ, leaf="consent_at"),),
    ),
    Canonical(
        "consent_proof", "text", "the proof of consent (a form version, a reference)",
        ("preuve consentement", "preuve", "proof", "consent reference"),
        (RowColumn("consent_proof", VARCHAR, leaf="proof", repeats=True),),
    ),
    Canonical(
        "acquired_from", "text", "the party the vendor obtained the number from (chain of custody)",
        ("fournisseur", "acquis aupres de", "supplier", "obtained from"),
        (RowColumn("acquired_from", VARCHAR, leaf="party_from", repeats=True),),
    ),
    Canonical(
        "opted_out_at", "instant", "when the person opted out",
        (
            "date optout", "date opt out", "date desinscription", "optout date",
            "unsubscribed at", "stop date", "date stop",
        ),
        (RowColumn("opted_out_at", TIMESTAMPTZ, leaf="opted_out_at"),),
    ),
)

# Where a row comes from, before the delivered columns. A row leaf names its delivery
# (by its delivery leaf's seq) and its file (by index in the delivery leaf's files):
# the ledger's builder derives those from ``file``, the other values are the delivery
# leaf's.
PROVENANCE: tuple[RowColumn, ...] = (
    RowColumn("vendor", VARCHAR, required=True, repeats=True),
    RowColumn("delivery_id", VARCHAR, required=True, repeats=True),
    RowColumn("file", VARCHAR, required=True, repeats=True),
    RowColumn("file_sha256", VARCHAR, required=True, repeats=True, suites=()),
    RowColumn("row", BIGINT, leaf="row", required=True),
)
# After them: what ingest noticed about the row (the flags' names: origine.ingest.prepare).
FLAGS = RowColumn("flags", VARCHAR_LIST, repeats=True)

ROW_COLUMNS: tuple[RowColumn, ...] = (*PROVENANCE, *(c for d in DELIVERED for c in d.feeds), FLAGS)
"""Every column of an accepted row, in table order."""

CANONICAL: tuple[str, ...] = tuple(d.name for d in DELIVERED)
"""The canonical column names, in the order profiles document them."""

TEXT_COLUMNS: tuple[str, ...] = tuple(d.name for d in DELIVERED if d.kind == "text")
INSTANT_COLUMNS: tuple[str, ...] = tuple(d.name for d in DELIVERED if d.kind == "instant")

ROWS_ARROW_SCHEMA = pa.schema([(c.name, c.type.arrow) for c in ROW_COLUMNS])
"""The segment's ``rows.parquet`` schema."""

DICTIONARY_COLUMNS: list[str] = [c.name for c in ROW_COLUMNS if c.repeats]
"""The segment columns Arrow dictionary-encodes."""

ROW_LEAF_COLUMNS: dict[str, str] = {c.leaf: c.name for c in ROW_COLUMNS if c.leaf is not None}
"""Row leaf field -> the row column whose value it states."""


DELIVERY_ROWS_DDL = "CREATE TABLE IF NOT EXISTS delivery_rows (\n" + ",\n".join(
    f"    {c.name} {c.type.sql}{' NOT NULL' if c.required else ''}" for c in ROW_COLUMNS
) + "\n);\n"
"""``CREATE TABLE IF NOT EXISTS delivery_rows (…)``, the columns of :data:`ROW_COLUMNS`."""
