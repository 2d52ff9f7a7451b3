"""Tree heads as C2SP checkpoints (https://c2sp.org/tlog-checkpoint), each a signed note.

A checkpoint's text is three lines: the log's **origin**, the tree size in decimal,
the root hash in standard base64; no extension line (the spec does not recommend
them: the time and reason of a head are kept beside it, unsigned). The operator's
Ed25519 key signs it as a C2SP signed note under a key name equal to the origin.

The origin names this ledger: ``$ORIGINE_LEDGER_ORIGIN``, else the first line of
``<home>/keys/ledger-origin``, else ``origine/<first 32 hex digits of SHA-256 of the
operator's public key>``. Once a ledger has a checkpoint its origin is fixed: an
append under another configured origin is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from origine import merkle, signing
from origine.errors import OrigineError

ORIGIN_ENV = "ORIGINE_LEDGER_ORIGIN"
ORIGIN_FILE = "ledger-origin"


@dataclass(frozen=True)
class Checkpoint:
    """The body of a checkpoint: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The note text: three lines, each ending in a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint's note text; ``ValueError`` naming what is wrong."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise ValueError("a checkpoint has at least three lines, each ending in a newline")
        origin, size, root = lines[0], lines[1], lines[2]
        if any(line == "" for line in lines[:-1]):
            raise ValueError("a checkpoint has no empty line")
        if not origin:
            raise ValueError("a checkpoint's origin is not empty")
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise ValueError("a checkpoint's tree size is a decimal number without leading zeroes")
        try:
            digest = base64.b64decode(root, validate=True)
        except (ValueError, binascii.Error):
            raise ValueError("a checkpoint's root hash is not base64") from None
        if len(digest) != merkle.HASH_SIZE or base64.b64encode(digest).decode() != root:
            raise ValueError("a checkpoint's root hash is not a base64 SHA-256 digest")
        return cls(origin, int(size), digest)


def verify_checkpoint(note: str, public: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint a signed note holds, once the operator's signature on it verifies
    (the key name is the note's origin line); ``ValueError`` otherwise."""
    origin = note.split("\n", 1)[0]
    try:
        signing.check_key_name(origin)
    except ValueError:
        raise ValueError("the checkpoint's origin cannot name its signing key") from None
    return Checkpoint.parse(signing.open_note(note, public, origin))


def default_origin(public: Ed25519PublicKey) -> str:
    """``origine/`` + the operator key's fingerprint digits (stable for a key)."""
    return "origine/" + signing.fingerprint(public).split(":", 1)[1]


def configured_origin(keys_dir: Path | None) -> str | None:
    """The origin set by ``$ORIGINE_LEDGER_ORIGIN`` or ``<home>/keys/ledger-origin``."""
    text = os.environ.get(ORIGIN_ENV)
    where = f"${ORIGIN_ENV}"
    if not text and keys_dir is not None and (keys_dir / ORIGIN_FILE).is_file():
        text = (keys_dir / ORIGIN_FILE).read_text(encoding="utf-8").split("\n", 1)[0]
        where = str(keys_dir / ORIGIN_FILE)
    if not text:
        return None
    try:
        return signing.check_key_name(text.strip())
    except ValueError:
        raise OrigineError(f"{where}: a ledger origin is one word without spaces or '+' (e.g. example.org/ledger)") from None


# ---------------------------------------------------------------- stored heads

HEADS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size BIGINT NOT NULL,
    root_hash VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    reason VARCHAR NOT NULL,
    frontier JSON NOT NULL,
    checkpoint VARCHAR NOT NULL
);
"""


@dataclass(frozen=True)
class TreeHead:
    """A recorded state of the tree: size, root (hex), when, why, and its signed checkpoint."""

    tree_size: int
    root_hash: str
    recorded_at: str
    reason: str
    checkpoint: str

    @property
    def origin(self) -> str:
        """The ledger's origin line."""
        return self.checkpoint.split("\n", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**self.__dict__, "origin": self.origin}


_LATEST = "ORDER BY tree_size DESC, recorded_at DESC LIMIT 1"


def latest_head(con: duckdb.DuckDBPyConnection) -> TreeHead | None:
    """The most recent tree head, if any."""
    row = con.execute(
        f"SELECT tree_size, root_hash, recorded_at, reason, checkpoint FROM tree_heads {_LATEST}"
    ).fetchone()
    if row is None:
        return None
    return TreeHead(int(row[0]), row[1], iso(row[2]), row[3], row[4])


def current_frontier(con: duckdb.DuckDBPyConnection) -> merkle.Frontier:
    """The frontier of the latest tree head (what the next append extends)."""
    row = con.execute(f"SELECT frontier FROM tree_heads {_LATEST}").fetchone()
    return merkle.Frontier.from_dict(json.loads(row[0])) if row else merkle.Frontier()


def iso(when: datetime) -> str:
    """The one text form of a head's time."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def home_keys(con: duckdb.DuckDBPyConnection) -> Path | None:
    """``<home>/keys`` for a warehouse file ``<home>/warehouse.duckdb``; None in memory."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(row[0]).resolve().parent / "keys" if row and row[0] else None


def resolve_signer(con: duckdb.DuckDBPyConnection, signer: signing.Signer | None) -> signing.Signer:
    """``signer``, else the operator key of the home this warehouse file belongs to."""
    if signer is not None:
        return signer
    keys = home_keys(con)
    if keys is None:
        raise OrigineError("an in-memory ledger has no home: pass the operator's signer to sign its checkpoints")
    # never a new key here: a copied warehouse would get checkpoints no one can check
    return signing.load_signer(keys, create=False)


def ledger_origin(con: duckdb.DuckDBPyConnection, signer: signing.Signer) -> str:
    """This ledger's origin: the one its checkpoints carry, else the configured one,
    else :func:`default_origin`; a configured origin other than the ledger's is refused."""
    head = latest_head(con)
    configured = configured_origin(home_keys(con))
    if head is not None:
        if configured is not None and configured != head.origin:
            raise OrigineError(
                f"this ledger's origin is {head.origin}; the configured origin {configured} "
                f"(${ORIGIN_ENV} or keys/{ORIGIN_FILE}) differs: a ledger keeps its origin"
            )
        return head.origin
    return configured or default_origin(signer.public)


def record_head(
    con: duckdb.DuckDBPyConnection,
    frontier: merkle.Frontier,
    *,
    reason: str,
    signer: signing.Signer | None = None,
) -> TreeHead:
    """Record ``frontier`` as a tree head with its signed checkpoint.

    ``frontier`` must cover every stored leaf (a head is only ever taken of the whole
    ledger). ``signer`` defaults to the home's operator key (:func:`resolve_signer`).
    """
    stored = int(con.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0])  # type: ignore[index]
    if frontier.size != stored:
        raise OrigineError(f"refusing to sign a head of size {frontier.size}: the ledger holds {stored} leaves")
    signer = resolve_signer(con, signer)
    now = datetime.now(timezone.utc)
    root = frontier.root()
    origin = ledger_origin(con, signer)
    note = signer.sign_note(Checkpoint(origin, frontier.size, root).text(), origin)
    con.execute(
        "INSERT INTO tree_heads VALUES (?, ?, ?, ?, ?, ?)",
        [frontier.size, root.hex(), now, reason, json.dumps(frontier.to_dict()), note],
    )
    return TreeHead(frontier.size, root.hex(), iso(now), reason, note)
