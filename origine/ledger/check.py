"""``origine ledger check``: verify the ledger trusting nothing the database says.

Against an attacker who can write the warehouse but does not hold the operator's
signing key, in this order (each problem names its first offender):

1. leaves: ``seq`` runs 0..n-1; every leaf hash is a 32-byte digest; every live
   leaf's hash is recomputed from its columns (origine.ledger.events); every row leaf
   names an earlier delivery leaf and one of its files, and states whole seconds;
2. the tree: level 0 of ``ledger_nodes`` is the leaves' hashes; every level holds
   exactly its ``n >> level`` nodes, once; every interior node is recomputed from its
   two children (node (level, index));
3. heads: every stored checkpoint's signature verifies with the operator's public key,
   all under one origin; what it signs (size, root) is what its row says and the root
   of the stored, verified tree at that size; the latest covers every event (head size);
4. erasures: a leaf is marked erased exactly when an ``erasures`` row lists it, each
   such row belongs to an ``erased`` leaf recorded after the event, with that leaf's
   time, and the list of each erasure is the one its leaf commits to (count, digest);
5. the subject key map is the one the latest ``key_map`` leaf commits to;
6. given a checkpoint kept outside (``--checkpoint``): it verifies, names this ledger,
   and the ledger extends it (an RFC 9162 consistency proof from it to the latest
   signed head is built from the stored tree and verified).

Everything over leaves and nodes runs set-wise in DuckDB; Python touches only the
heads (one signature each) and the O(log n) nodes their roots need. Read-only: it
works on a regulator's read-only copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from origine import merkle, signing
from origine.errors import OrigineError
from origine.ledger import digests
from origine.ledger.checkpoint import Checkpoint, current_frontier, home_keys, verify_checkpoint
from origine.ledger.events import LEAF_COLUMNS, LEAF_SQL
from origine.ledger.schema import require_current
from origine.ledger.tree import consistency, roots_at


@dataclass
class LedgerCheck:
    """The outcome of :func:`check_ledger`."""

    ok: bool
    events: int
    heads: int
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    first_bad_node: tuple[int, int] | None = None
    first_bad_head: int | None = None
    origin: str | None = None
    checkpoint_size: int | None = None

    def describe(self) -> str:
        """One paragraph for people: the first problem first."""
        if self.ok:
            anchored = (f"; extends the given checkpoint of size {self.checkpoint_size}"
                        if self.checkpoint_size is not None else "")
            return (f"ledger ok: {self.events} leaves, {self.heads} signed checkpoints verified"
                    f" (origin {self.origin}){anchored}")
        return "ledger check FAILED: " + "; ".join(self.problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def check_ledger(
    con: duckdb.DuckDBPyConnection,
    *,
    public_key: Ed25519PublicKey | None = None,
    checkpoint: str | None = None,
) -> LedgerCheck:
    """Verify the ledger (see the module docstring); ``public_key`` defaults to the
    home's, ``checkpoint`` is a signed checkpoint kept outside the home."""
    require_current(con)
    con.execute("SET TimeZone = 'UTC'")
    if public_key is None:
        keys = home_keys(con)
        if keys is None:
            raise OrigineError("no home for this ledger: give the operator's public key")
        public_key = signing.home_public_key(keys)
    n, lo, hi, distinct = con.execute(
        "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM ledger_leaves"
    ).fetchone()  # type: ignore[misc]
    n = int(n)
    heads = con.execute(
        "SELECT tree_size, root_hash, checkpoint FROM tree_heads ORDER BY tree_size, recorded_at"
    ).fetchall()
    result = LedgerCheck(ok=True, events=n, heads=len(heads))

    def bad(message: str, *, seq: int | None = None, node: tuple[int, int] | None = None,
            head: int | None = None) -> None:
        result.ok = False
        result.problems.append(message)
        if seq is not None and (result.first_bad_seq is None or seq < result.first_bad_seq):
            result.first_bad_seq = seq
        if node is not None and result.first_bad_node is None:
            result.first_bad_node = node
        if head is not None and result.first_bad_head is None:
            result.first_bad_head = head

    # 1. leaves
    if n and (lo != 0 or hi != n - 1 or distinct != n):
        gap = con.execute(
            "SELECT min(expected) FROM (SELECT seq AS s, row_number() OVER (ORDER BY seq) - 1 AS expected "
            "FROM ledger_leaves) WHERE s <> expected"
        ).fetchone()[0]  # type: ignore[index]
        bad(f"leaf sequence is not 0..{n - 1}: an event was deleted, inserted or renumbered (seq {gap})", seq=gap)
    misshapen = con.execute(
        "SELECT min(seq) FROM ledger_leaves WHERE leaf_hash IS NULL OR octet_length(leaf_hash) <> 32"
    ).fetchone()[0]  # type: ignore[index]
    if misshapen is not None:
        # No tree can be rebuilt over a leaf that is not a SHA-256 digest.
        bad(f"leaf seq {misshapen}: its leaf hash is not a 32-byte digest (edited)", seq=int(misshapen))
        return result
    row = con.execute(
        f"SELECT min(seq), count(*) FROM ledger_leaves WHERE erased_at IS NULL AND leaf_hash <> {LEAF_SQL}"
    ).fetchone()
    if row and row[1]:
        bad(f"leaf seq {row[0]}: its columns and its leaf hash disagree (edited; {row[1]} such event(s))",
            seq=int(row[0]))
    _check_references(con, bad)

    # 2. the tree
    _check_tree(con, n, bad)

    # 3. heads
    _check_heads(con, n, heads, public_key, result, bad)

    # 4. erasures, 5. key map
    _check_erasures(con, bad)
    _check_key_map(con, bad)

    # 6. a checkpoint kept outside
    if checkpoint is not None:
        _check_external(con, n, checkpoint, public_key, result, bad)
    return result


def _check_references(con: duckdb.DuckDBPyConnection, bad: Any) -> None:
    # A row leaf's hash covers its evidence, but a writer could still have named a leaf
    # that is not its delivery, or a file it does not list: the expansion into events
    # (ledger_events) would then join the wrong constants.
    stray = con.execute(
        """SELECT r.seq FROM ledger_leaves r LEFT JOIN ledger_leaves d ON d.seq = r.delivery_seq
           WHERE r."type" = 'row' AND r.erased_at IS NULL
             AND (d.seq IS NULL OR d."type" IS DISTINCT FROM 'delivery' OR d.seq >= r.seq
                  OR r.file_index IS NULL OR r.file_index < 0 OR r.file_index >= len(d.files)
                  OR epoch_us(r."at") % 1000000 <> 0 OR epoch_us(r.consent_at) % 1000000 <> 0
                  OR epoch_us(r.opted_out_at) % 1000000 <> 0)
           ORDER BY r.seq LIMIT 1"""
    ).fetchone()
    if stray:
        bad(f"leaf seq {stray[0]}: a row leaf whose evidence names no earlier delivery leaf and file of it, "
            "or whose instants are not whole seconds (forged)", seq=int(stray[0]))


def _check_tree(con: duckdb.DuckDBPyConnection, n: int, bad: Any) -> None:
    moved = con.execute(
        "SELECT e.seq FROM ledger_leaves e LEFT JOIN ledger_nodes t ON t.level = 0 AND t.idx = e.seq "
        "WHERE t.hash IS DISTINCT FROM e.leaf_hash ORDER BY e.seq LIMIT 1"
    ).fetchone()
    if moved:
        bad(f"leaf seq {moved[0]}: its leaf hash differs from the tree's leaf (edited, swapped or reordered)",
            seq=int(moved[0]))
    # Each level holds nodes 0 .. (n >> level) - 1, each once: anything else was
    # inserted, deleted or duplicated.
    depth = n.bit_length()
    stray = con.execute(
        """SELECT level, idx FROM ledger_nodes
           WHERE level < 0 OR level >= ? OR idx < 0 OR idx >= (?::BIGINT >> level)
           UNION ALL
           SELECT level, idx FROM ledger_nodes GROUP BY level, idx HAVING count(*) > 1
           ORDER BY level, idx LIMIT 1""",
        [max(depth, 1), n],
    ).fetchone()
    if stray:
        bad(f"tree node (level {stray[0]}, index {stray[1]}) should not be there (inserted or duplicated)",
            node=(int(stray[0]), int(stray[1])))
    # With none out of range and none twice, a level is whole when it holds n >> level
    # nodes: look for the missing one only where a count falls short.
    counts = dict(con.execute("SELECT level, count(*) FROM ledger_nodes GROUP BY level").fetchall())
    short = [level for level in range(depth) if counts.get(level, 0) < n >> level]
    missing = short and con.execute(
        """SELECT l.level, r.idx FROM (SELECT unnest(?::INTEGER[]) AS level) l, range(?::BIGINT >> l.level) r(idx)
           WHERE NOT EXISTS (SELECT 1 FROM ledger_nodes t WHERE t.level = l.level AND t.idx = r.idx)
           ORDER BY l.level, r.idx LIMIT 1""",
        [short, n],
    ).fetchone()
    if missing:
        bad(f"tree node (level {missing[0]}, index {missing[1]}) is missing (deleted)",
            node=(int(missing[0]), int(missing[1])))
    wrong = con.execute(
        """SELECT p.level, p.idx FROM ledger_nodes p
           JOIN ledger_nodes l ON l.level = p.level - 1 AND l.idx = 2 * p.idx
           JOIN ledger_nodes r ON r.level = p.level - 1 AND r.idx = 2 * p.idx + 1
           WHERE p.level >= 1 AND p.hash IS DISTINCT FROM unhex(sha256('\\x01'::BLOB || l.hash || r.hash))
           ORDER BY p.level, p.idx LIMIT 1"""
    ).fetchone()
    if wrong:
        level, idx = int(wrong[0]), int(wrong[1])
        if level == 1:
            # Its children are leaves whose columns and hashes agree: one of the two was
            # edited with its leaf hash recomputed (hashes alone cannot tell which).
            bad(f"tree node (level 1, index {idx}) is not the hash of its two leaves: leaf seq {2 * idx} "
                f"or seq {2 * idx + 1} was edited with its leaf hash recomputed", node=(1, idx))
        else:
            bad(f"tree node (level {level}, index {idx}) is not the hash of its two children (corrupted)",
                node=(level, idx))


def _check_heads(
    con: duckdb.DuckDBPyConnection, n: int, heads: list[tuple[Any, ...]], public_key: Ed25519PublicKey,
    result: LedgerCheck, bad: Any,
) -> None:
    signed: list[Checkpoint] = []
    origins: set[str] = set()
    for size, root_hex, note in heads:
        size = int(size)
        try:
            cp = verify_checkpoint(note or "", public_key)
        except ValueError as exc:
            bad(f"head size {size}: its checkpoint is not signed by the operator's key ({exc})", head=size)
            continue
        origins.add(cp.origin)
        if (cp.size, cp.root.hex()) != (size, root_hex):
            bad(f"head size {size}: its size or root is not what its signed checkpoint says "
                f"(the checkpoint signs size {cp.size})", head=size)
        signed.append(cp)
    if len(origins) > 1:
        bad(f"checkpoints of more than one ledger origin: {', '.join(sorted(origins))}")
    result.origin = next(iter(origins)) if len(origins) == 1 else None
    roots = roots_at(con, [cp.size for cp in signed if cp.size <= n])
    for cp in signed:
        if cp.size > n:
            bad(f"head size {cp.size}: the signed checkpoint covers more leaves than the ledger holds ({n}): "
                f"leaves from seq {n} on were removed", head=cp.size, seq=n)
        elif roots.get(cp.size) != cp.root:
            bad(f"head size {cp.size}: the signed root differs from the tree's root at that size "
                "(history rewritten)", head=cp.size)
    latest = max((cp.size for cp in signed), default=0)
    if latest < n:
        bad(f"leaves from seq {latest} on are covered by no signed checkpoint (latest signed head size {latest})",
            seq=latest, head=latest)
    if heads:
        try:
            frontier = current_frontier(con)
        except ValueError:  # not even a frontier's shape
            bad(f"head size {latest}: the stored frontier (what the next append extends) is unreadable", head=latest)
            return
        stored = roots_at(con, [frontier.size]).get(frontier.size) if frontier.size <= n else None
        if frontier.root() != stored:
            bad(f"head size {latest}: the stored frontier (what the next append extends) "
                f"is not the tree's (it says size {frontier.size})", head=latest)


def _check_erasures(con: duckdb.DuckDBPyConnection, bad: Any) -> None:
    unrecorded = con.execute(
        "SELECT min(seq) FROM ledger_leaves e WHERE erased_at IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM erasures x WHERE x.event_seq = e.seq)"
    ).fetchone()[0]  # type: ignore[index]
    if unrecorded is not None:
        bad(f"leaf seq {unrecorded}: marked erased, but no erasure leaf records it", seq=int(unrecorded))
    kept = " OR ".join(f'"{name}" IS NOT NULL' for name, _ in LEAF_COLUMNS if name != "type")
    holding = con.execute(f"SELECT min(seq) FROM ledger_leaves WHERE erased_at IS NOT NULL AND ({kept})").fetchone()[0]  # type: ignore[index]
    if holding is not None:
        bad(f"leaf seq {holding}: erased, but it still holds attributes (its leaf can no longer be checked; "
            "erased data must be gone)", seq=int(holding))
    stray = con.execute(
        """SELECT x.event_seq, x.erasure_seq FROM erasures x
           LEFT JOIN ledger_leaves e ON e.seq = x.event_seq
           LEFT JOIN ledger_leaves z ON z.seq = x.erasure_seq
           WHERE e.seq IS NULL OR z.seq IS NULL OR z.type IS DISTINCT FROM 'erased'
              OR x.event_seq >= x.erasure_seq OR e.erased_at IS DISTINCT FROM z."at"
           ORDER BY x.event_seq LIMIT 1"""
    ).fetchone()
    if stray:
        bad(f"leaf seq {stray[0]}: listed as erased by seq {stray[1]}, which is not an earlier erasure leaf "
            "of the time it was erased at", seq=int(stray[0]))
    relation = "erasures"
    line, order = digests.ERASED_SEQS
    listed = digests.list_digest_sql(
        f"(SELECT erasure_seq, event_seq AS seq FROM {relation})", line, order, group="erasure_seq"
    )
    mismatch = con.execute(
        f"""SELECT coalesce(z.seq, l.grp) AS seq FROM (SELECT * FROM ledger_leaves WHERE type = 'erased') z
            FULL JOIN ({listed}) l ON l.grp = z.seq
            WHERE z.seq IS NULL OR z.erased_at IS NOT NULL
               OR coalesce(l.count, 0) IS DISTINCT FROM z."row"
               OR coalesce(l.digest, ?) IS DISTINCT FROM z.proof
            ORDER BY 1 LIMIT 1""",
        [digests.empty_digest()],
    ).fetchone()
    if mismatch:
        bad(f"leaf seq {mismatch[0]}: the erasure leaf and the leaves listed as erased by it disagree "
            "(count or digest)", seq=int(mismatch[0]))


def _check_key_map(con: duckdb.DuckDBPyConnection, bad: Any) -> None:
    leaf = con.execute(
        "SELECT seq, \"row\", proof FROM ledger_leaves WHERE type = 'key_map' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    line, order = digests.KEY_MAP
    count, digest = digests.list_digest_stream(con, "subject_key_map", line, order)
    count, digest = int(count or 0), digest or digests.empty_digest()
    if leaf is None:
        if count:
            bad(f"subject_key_map holds {count} row(s) but no key_map leaf (key rotation) records any")
    elif (count, digest) != (leaf[1], leaf[2]):
        bad(f"subject_key_map ({count} rows) is not the key map the key_map leaf seq {leaf[0]} commits to "
            f"({leaf[1]} rows): rows inserted, changed or deleted")


def _check_external(
    con: duckdb.DuckDBPyConnection, n: int, note: str, public_key: Ed25519PublicKey, result: LedgerCheck,
    bad: Any,
) -> None:
    try:
        given = verify_checkpoint(note, public_key)
    except ValueError as exc:
        bad(f"the given checkpoint does not verify with the operator's key ({exc})")
        return
    result.checkpoint_size = given.size
    if result.origin is not None and given.origin != result.origin:
        bad(f"the given checkpoint is of ledger {given.origin}, not of this one ({result.origin})")
        return
    if given.size > n:
        bad(f"the ledger diverges from the given checkpoint at size {n}: it holds {n} leaves, the checkpoint "
            f"signs {given.size} (tail truncated)", head=given.size, seq=n)
        return
    if roots_at(con, [given.size]).get(given.size) != given.root:
        bad(f"the ledger diverges from the given checkpoint at or before size {given.size}: its tree at that "
            "size has another root (history rewritten)", head=given.size)
        return
    latest = con.execute(
        "SELECT checkpoint FROM tree_heads ORDER BY tree_size DESC, recorded_at DESC LIMIT 1"
    ).fetchone()
    try:
        head = verify_checkpoint(latest[0], public_key) if latest else None
    except ValueError:
        head = None  # already reported with the heads
    if head is None or head.size < given.size:
        return
    if given.size == 0:
        return  # the empty tree is a prefix of every tree
    proof = consistency(con, given.size, head.size)
    if not merkle.verify_consistency(given.size, head.size, given.root, head.root, proof):
        bad(f"no consistency proof from the given checkpoint (size {given.size}) to the latest signed head "
            f"(size {head.size})", head=head.size)
