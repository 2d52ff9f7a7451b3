"""The secret key behind subject keys: loading, the demo key, and keyed hashing.

A subject key is ``HMAC-SHA256(key, E.164)`` in hex. A French mobile number has
about 10^8 possible values, so an unkeyed hash is reversed in seconds; the key is
what makes the warehouse pseudonymous, and it is never printed, logged or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from origine import memory
from origine.errors import HashKeyError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

KEY_ENV = "ORIGINE_HASH_KEY"
KEY_FILE_ENV = "ORIGINE_HASH_KEY_FILE"
MIN_KEY_BYTES = 32

# Public on purpose: anyone can reverse subject keys made with it, so it is only
# accepted by `origine demo` and on homes that demo created.
DEMO_KEY = b"origine-demo-key--PUBLIC--never-use-for-real-data!!"
DEMO_KEY_ID = "demo"


def key_id_for(secret: bytes) -> str:
    """A short public identifier for a key (safe to store and print)."""
    if secret == DEMO_KEY:
        return DEMO_KEY_ID
    return "k-" + hashlib.sha256(b"origine key id\x00" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class HashKey:
    """A loaded hashing key. ``repr`` and ``str`` never show the secret."""

    secret: bytes = field(repr=False)
    key_id: str = ""

    def __post_init__(self) -> None:
        if not self.key_id:
            object.__setattr__(self, "key_id", key_id_for(self.secret))

    @property
    def is_demo(self) -> bool:
        """True for the public demo key."""
        return self.secret == DEMO_KEY

    def subject_key(self, e164: str) -> str:
        """``HMAC-SHA256(key, e164)`` as 64 lowercase hex characters."""
        return hmac.digest(self.secret, e164.encode("ascii"), "sha256").hex()

    def subject_keys(self, e164: "pa.Array", con: "duckdb.DuckDBPyConnection | None" = None) -> "pa.Array":
        """:meth:`subject_key` over a column (null stays null), on DuckDB's threads.

        HMAC is spelled out as its two SHA-256 passes (RFC 2104). The key enters
        DuckDB only as the two padded blocks in a one-row relation the query joins,
        never as a literal or a bound constant the optimizer would fold into the plan,
        so SQL text, query profiles and error messages cannot show it. ``con`` is for
        tests that inspect a profiled connection.
        """
        import duckdb
        import pyarrow as pa

        block = self.secret if len(self.secret) <= 64 else hashlib.sha256(self.secret).digest()
        block = block.ljust(64, b"\x00")
        pads = pa.table({
            "ipad": pa.array([bytes(b ^ 0x36 for b in block)], pa.binary()),
            "opad": pa.array([bytes(b ^ 0x5C for b in block)], pa.binary()),
        })
        numbers = pa.table({"i": pa.array(range(len(e164)), pa.int64()), "e164": e164})
        own = con is None
        con = con or memory.bound(duckdb.connect(config={"threads": os.cpu_count() or 1}))
        try:
            con.register("_origine_pads", pads)
            con.register("_origine_numbers", numbers)
            try:
                result = con.sql(
                    "SELECT n.i, CASE WHEN n.e164 IS NOT NULL THEN "
                    "sha256(p.opad || unhex(sha256(p.ipad || encode(n.e164)))) END AS k "
                    "FROM _origine_numbers n CROSS JOIN _origine_pads p"
                ).to_arrow_table()
            finally:
                con.unregister("_origine_pads")
                con.unregister("_origine_numbers")
        finally:
            if own:
                con.close()
        keys = result.column("k").combine_chunks()
        order = result.column("i").to_numpy()
        if len(order) > 1 and not (order[1:] > order[:-1]).all():
            keys = keys.take(order.argsort())  # a join need not keep its input's order
        return keys

    def __str__(self) -> str:  # pragma: no cover - defensive
        return f"HashKey({self.key_id})"


def parse_secret(text: str, *, origin: str) -> bytes:
    """Turn the configured text into key bytes: 64+ hex characters, or 32+ bytes of text."""
    text = text.strip()
    if not text:
        raise HashKeyError(f"{origin} is empty")
    try:
        raw = bytes.fromhex(text)
        if len(raw) >= MIN_KEY_BYTES:
            return raw
    except ValueError:
        pass
    raw = text.encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise HashKeyError(
            f"{origin} is too short: at least {MIN_KEY_BYTES} bytes are needed "
            f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return raw


def load_key(
    *,
    env: Mapping[str, str] | None = None,
    key_text: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    allow_demo: bool = False,
) -> HashKey:
    """Load the hashing key from explicit text, a key file, or the environment.

    Order: ``key_text``, ``key_file``, ``$ORIGINE_HASH_KEY``, ``$ORIGINE_HASH_KEY_FILE``.
    With ``allow_demo`` and nothing configured, the demo key is returned; the demo
    key itself is refused unless ``allow_demo`` (so it cannot leak into production
    by being pasted into the environment).
    """
    env = os.environ if env is None else env
    secret: bytes | None = None
    if key_text:
        secret = parse_secret(key_text, origin="the key given")
    elif key_file:
        secret = _read_key_file(Path(key_file), origin=str(key_file))
    elif env.get(KEY_ENV):
        secret = parse_secret(env[KEY_ENV], origin=f"${KEY_ENV}")
    elif env.get(KEY_FILE_ENV):
        secret = _read_key_file(Path(env[KEY_FILE_ENV]), origin=f"${KEY_FILE_ENV}")
    if secret is None:
        if allow_demo:
            return HashKey(DEMO_KEY)
        raise HashKeyError(
            f"no hashing key: set ${KEY_ENV} (64 hex characters) or ${KEY_FILE_ENV}; "
            "only `origine demo` runs without one"
        )
    key = HashKey(secret)
    if key.is_demo and not allow_demo:
        raise HashKeyError(
            "the demo key is public and refused outside demo mode; "
            f"set ${KEY_ENV} to a secret of your own"
        )
    return key


def _read_key_file(path: Path, *, origin: str) -> bytes:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HashKeyError(f"cannot read key file {origin}: {exc.strerror}") from None
    return parse_secret(text, origin=f"key file {origin}")
