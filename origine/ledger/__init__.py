"""The provenance ledger: append-only leaves (format v2), tamper-evident under an RFC 9162 tree
whose every head is a C2SP checkpoint signed by the operator.

Split as transparency-dev/merkle splits its concepts:

* :mod:`origine.ledger.events` — the leaf format (what a leaf says, as bytes);
* :mod:`origine.ledger.tree` — the tree's nodes in DuckDB, proofs;
* :mod:`origine.ledger.checkpoint` — signed checkpoints (tree heads), the origin;
* :mod:`origine.ledger.append` — :func:`append_events`, the one way in;
* :mod:`origine.ledger.check` — :func:`check_ledger`, trusting nothing stored;
* :mod:`origine.ledger.digests` — what erasure and key-map leaves commit to;
* :mod:`origine.ledger.erasure` — :func:`erase_attributes`, the one write that is not an append;
* :mod:`origine.ledger.state` — consent, opt-outs and custody as of a date;
* :mod:`origine.ledger.schema` — the tables.

The names other modules use are re-exported here. The format is docs/ledger-format.md.
"""

from __future__ import annotations

import hashlib  # noqa: F401  (tests patch the hashing write_events uses)

from origine.ledger.append import append_events, tree_size, verified_frontier
from origine.ledger.check import LedgerCheck, check_ledger
from origine.ledger.checkpoint import (
    Checkpoint,
    TreeHead,
    current_frontier,
    latest_head,
    record_head,
    verify_checkpoint,
)
from origine.ledger.erasure import erase_attributes
from origine.ledger.events import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    FORMAT,
    LEAF_SQL,
    PAYLOAD_SQL,
    EVENTS_VIEW,
    LEAF_COLUMNS,
    canonical_json,
    delivery_leaves_queries,
    events_sql,
    flat_columns,
    write_events,
)
from origine.ledger.schema import SCHEMA, install, require_current
from origine.ledger.state import STATE_VIEWS, SubjectState, state_as_of
from origine.ledger.tree import DuckDBNodeStore, ParquetNodeWriter, consistency, inclusion_proofs, roots_at

__all__ = [
    "EVENT_COLUMNS", "EVENT_TYPES", "FORMAT", "LEAF_SQL", "PAYLOAD_SQL", "SCHEMA", "STATE_VIEWS",
    "Checkpoint", "DuckDBNodeStore", "LedgerCheck", "ParquetNodeWriter", "SubjectState", "TreeHead",
    "EVENTS_VIEW", "LEAF_COLUMNS", "canonical_json",
    "append_events", "check_ledger", "consistency", "current_frontier", "delivery_leaves_queries", "erase_attributes",
    "events_sql", "flat_columns", "inclusion_proofs", "install", "latest_head", "record_head",
    "require_current", "roots_at", "state_as_of", "tree_size", "verified_frontier", "verify_checkpoint",
    "write_events",
]
