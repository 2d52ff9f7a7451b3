"""Tamper-evident append-only log: the RFC 9162 (Certificate Transparency v2) Merkle tree.

Everything here is plain computation over 32-byte SHA-256 hashes; persistence is the
caller's, through two small seams:

* :class:`Frontier` is the O(log n) state needed to keep appending and to give the
  current root: the roots of the perfect subtrees along the right edge of the tree
  (a "compact range"), highest level first. ``to_dict``/``from_dict`` persist it.
* :class:`NodeStore` receives every perfect-subtree hash once it is complete, so that
  inclusion and consistency proofs, and the root of any past size, can be produced
  later without the leaves in memory. :class:`MemoryNodeStore` is the in-memory one.

Tree positions: the node at ``(level, index)`` is the hash of the perfect subtree
covering leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf
hashes themselves. A tree of ``n`` leaves has exactly ``n >> level`` complete nodes at
each level, and those never change once written: appending only adds nodes to the
right. That is what makes the store append-only and any past root recomputable.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, and returns
``False`` (never raises) on anything that is not a well-formed, valid proof.
"""

from __future__ import annotations

import hashlib
from itertools import islice
from typing import Callable, Iterable, Mapping, Protocol, Sequence

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_from_leaf_hashes",
    "NodeStore",
    "MemoryNodeStore",
    "Frontier",
    "pair_hashes",
    "root_at",
    "inclusion_proof",
    "consistency_proof",
    "verify_inclusion",
    "verify_consistency",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() — the root of the tree with no leaves (RFC 9162 §2.1.1)."""

# The one-byte prefixes are the domain separation of RFC 9162 §2.1.1: without them a
# leaf whose bytes are the concatenation of two child hashes would collide with the
# interior node above those children (a second-preimage attack on the tree).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

_sha256 = hashlib.sha256

# extend() works through its input in chunks of this many leaf hashes, so an
# arbitrarily long iterable (a 50M-leaf batch) is hashed with bounded extra memory and
# the store receives writes of bounded size. Larger chunks do not measurably speed it
# up: the per-hash cost of hashlib dominates everything else.
_EXTEND_CHUNK = 1 << 16


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)`` of one log entry."""
    return _sha256(_LEAF_PREFIX + data).digest()


def leaf_hashes(items: Iterable[bytes]) -> list[bytes]:
    """Return :func:`leaf_hash` of every item, in order (the batch form for appends)."""
    sha = _sha256
    prefix = _LEAF_PREFIX
    return [sha(prefix + item).digest() for item in items]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def pair_hashes(packed: bytes | memoryview) -> bytes:
    """Return the node hashes of consecutive pairs of packed 32-byte hashes, packed.

    ``packed`` holds hashes back to back (hash ``i`` at ``[32 i, 32 i + 32)``); node ``j``
    of the result is ``node_hash(hash 2j, hash 2j+1)``. A trailing unpaired hash is
    left out: where it goes depends on the tree, which the caller knows.
    """
    sha = _sha256
    prefix = _NODE_PREFIX
    # One hashlib call per node is the whole cost (its fixed overhead is several times
    # the compression of 65 bytes); slicing packed bytes costs less than keeping a
    # list of 32-byte objects and concatenating two of them per node.
    return b"".join([sha(prefix + packed[i : i + 64]).digest() for i in range(0, len(packed) - 63, 64)])


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return MTH, the root of the tree whose leaves have these hashes (RFC 9162 §2.1.1).

    Holds every level in memory; for large or incremental trees use :class:`Frontier`.
    """
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    sha = _sha256
    prefix = _NODE_PREFIX
    # The RFC splits at the largest power of two below n; pairing level by level and
    # promoting a lone last node unchanged builds exactly that tree, without recursion.
    while len(level) > 1:
        paired = [sha(prefix + a + b).digest() for a, b in zip(level[0::2], level[1::2])]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


class NodeStore(Protocol):
    """Where complete perfect-subtree hashes are kept so proofs can be built later.

    ``get(level, index)`` returns the hash of the perfect subtree covering leaves
    ``[index * 2**level, (index + 1) * 2**level)`` (level 0 = leaf hashes) and raises
    ``KeyError`` when that node is not stored. ``put_many(level, start_index, hashes)``
    stores ``hashes`` at consecutive indices of one level starting at ``start_index``.
    Nodes are written once, left to right within each level, and never change.

    A store may also have ``put_packed(level, start_index, packed)``, the same write with
    the hashes back to back in one ``bytes`` (32 bytes each): :meth:`Frontier.extend`
    then uses it, sparing a ``bytes`` object per node.
    """

    def get(self, level: int, index: int) -> bytes:
        """Return the stored hash at ``(level, index)``; raise ``KeyError`` if absent."""
        ...

    def put_many(self, level: int, start_index: int, hashes: Sequence[bytes]) -> None:
        """Store ``hashes`` at ``(level, start_index)``, ``(level, start_index + 1)``, …"""
        ...


class MemoryNodeStore:
    """A :class:`NodeStore` in memory: one ``bytearray`` of packed 32-byte hashes per level.

    Packing costs 32 bytes per node (a tree of n leaves holds about 2n nodes, so ~64 n
    bytes) instead of the ~90 bytes of a ``bytes`` object plus list slot. Writes must
    continue a level where it ends; rewriting an already stored node is accepted only
    with identical bytes (so a batch can be retried after a failure) and otherwise
    raises ``ValueError``, because a changed node would mean a rewritten history.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        """Create an empty store."""
        self._levels: list[bytearray] = []

    def count(self, level: int) -> int:
        """Return how many nodes are stored at ``level`` (0 for a level never written)."""
        if 0 <= level < len(self._levels):
            return len(self._levels[level]) // HASH_SIZE
        return 0

    def get(self, level: int, index: int) -> bytes:
        """Return the hash at ``(level, index)``; raise ``KeyError`` if it is not stored."""
        if level < 0 or index < 0 or level >= len(self._levels):
            raise KeyError((level, index))
        buf = self._levels[level]
        offset = index * HASH_SIZE
        if offset + HASH_SIZE > len(buf):
            raise KeyError((level, index))
        return bytes(buf[offset : offset + HASH_SIZE])

    def put_many(self, level: int, start_index: int, hashes: Sequence[bytes]) -> None:
        """Append ``hashes`` to ``level`` at ``start_index`` (see the class docstring)."""
        blob = b"".join(hashes)
        if len(blob) != HASH_SIZE * len(hashes):
            raise ValueError("every node hash must be 32 bytes")
        self._put(level, start_index, blob)

    def put_packed(self, level: int, start_index: int, packed: bytes) -> None:
        """:meth:`put_many` with the hashes packed back to back in one ``bytes``."""
        if len(packed) % HASH_SIZE:
            raise ValueError("every node hash must be 32 bytes")
        self._put(level, start_index, bytes(packed))

    def _put(self, level: int, start_index: int, blob: bytes) -> None:
        if level < 0 or start_index < 0:
            raise ValueError(f"negative node position ({level}, {start_index})")
        while len(self._levels) <= level:
            self._levels.append(bytearray())
        buf = self._levels[level]
        stored = len(buf) // HASH_SIZE
        if start_index > stored:
            raise ValueError(
                f"level {level} holds {stored} nodes; cannot write at index {start_index}"
            )
        overlap = min(stored - start_index, len(blob) // HASH_SIZE) * HASH_SIZE
        start = start_index * HASH_SIZE
        if buf[start : start + overlap] != blob[:overlap]:
            raise ValueError(f"refusing to overwrite stored nodes at level {level}")
        buf += blob[overlap:]


class Frontier:
    """The right edge of an RFC 9162 tree: enough state to append and to give the root.

    Holds ``size`` and, for every set bit ``j`` of ``size``, the hash of the perfect
    subtree of ``2**j`` leaves ending at the last leaf but the ones to its right: at
    most ``log2(size) + 1`` hashes, whatever the size. ``nodes`` lists them highest
    level (leftmost) first, the order of CT "compact ranges".

    ``append``/``extend`` take an optional :class:`NodeStore`; when given, every node
    that becomes complete (the leaf hashes themselves included) is written to it with
    ``put_many``, level by level, before the frontier changes. Persist the store's
    writes and ``to_dict()`` in one transaction, so the two never disagree.
    """

    __slots__ = ("_size", "_levels")

    def __init__(self) -> None:
        """Create the frontier of the empty tree."""
        self._size = 0
        # Indexed by level: the frontier node of that level, or None where the bit of
        # size is clear. Length is size.bit_length().
        self._levels: list[bytes | None] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> list[bytes]:
        """The frontier hashes, highest level (leftmost subtree) first."""
        return [h for h in reversed(self._levels) if h is not None]

    def root(self) -> bytes:
        """Return MTH of all leaves appended so far (``EMPTY_ROOT`` when there are none)."""
        nodes = self.nodes
        if not nodes:
            return EMPTY_ROOT
        # The right-edge subtrees fold right to left: the smallest one is the deepest
        # right child in the RFC's recursive split.
        acc = nodes[-1]
        for left in reversed(nodes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def append(self, leaf_hash: bytes, store: NodeStore | None = None) -> None:
        """Append one leaf hash (see :meth:`extend`; prefer it for batches)."""
        self.extend((leaf_hash,), store)

    def extend(self, leaf_hashes: Iterable[bytes], store: NodeStore | None = None) -> None:
        """Append leaf hashes in order; write newly completed nodes to ``store`` if given.

        Each element must be a 32-byte ``bytes`` (``leaf_hash(entry)``, not the entry);
        otherwise ``TypeError``/``ValueError``. The input is consumed in chunks of
        65,536, each applied as a whole: if an element is rejected, or the store raises,
        the frontier holds exactly the chunks before the failing one (``size`` says how
        many leaves) while the store may hold part of the failing chunk — which
        :class:`MemoryNodeStore` accepts again when the same leaves are retried.
        """
        chunk_size = _EXTEND_CHUNK
        if isinstance(leaf_hashes, (list, tuple)):
            for start in range(0, len(leaf_hashes), chunk_size):
                chunk = leaf_hashes[start : start + chunk_size]
                self._extend_chunk(chunk if isinstance(chunk, list) else list(chunk), store)
            return
        iterator = iter(leaf_hashes)
        while chunk := list(islice(iterator, chunk_size)):
            self._extend_chunk(chunk, store)

    def extend_packed(self, packed: bytes | bytearray | memoryview, store: NodeStore | None = None) -> None:
        """:meth:`extend` with the leaf hashes back to back in one buffer (leaf ``i`` at
        bytes ``[32 i, 32 i + 32)``), e.g. an Arrow column's data: no ``bytes`` object
        per leaf. ``ValueError`` unless its length is a multiple of 32; chunks as
        :meth:`extend`."""
        view = memoryview(packed).cast("B")
        if len(view) % HASH_SIZE:
            raise ValueError("packed leaf hashes must be a multiple of 32 bytes long")
        step = _EXTEND_CHUNK * HASH_SIZE
        for start in range(0, len(view), step):
            self._extend_packed(bytes(view[start : start + step]), store)

    def _extend_chunk(self, chunk: list[bytes], store: NodeStore | None) -> None:
        if not chunk:
            return
        # C-level scans: checking each element in a Python loop would cost about a
        # tenth of the hashing itself.
        if set(map(type, chunk)) != {bytes}:
            raise TypeError("leaf hashes must be bytes")
        if set(map(len, chunk)) != {HASH_SIZE}:
            raise ValueError("leaf hashes must be 32 bytes (pass leaf_hash(entry))")
        self._extend_packed(b"".join(chunk), store)

    def _extend_packed(self, chunk: bytes, store: NodeStore | None) -> None:
        if not chunk:
            return
        sha = _sha256
        prefix = _NODE_PREFIX
        put = None if store is None else _packed_writer(store)
        old = self._levels
        new_low: list[bytes | None] = []
        level = 0
        # Index, within this level, of the first node in `current`: the old size's
        # node count at this level, since the old tree's complete nodes come first.
        first = self._size
        current = chunk
        # Work a whole level at a time over packed hashes: hash every pair of this
        # level's new nodes in one comprehension, then move up. Per-leaf carry
        # bookkeeping would cost more Python bytecode per hash than the hash itself.
        while current:
            if put is not None:
                put(level, first, current)
            count = len(current) // HASH_SIZE
            if first & 1:
                # An odd first index means the left sibling of the first new node is
                # old: it is the frontier node of this level.
                left = old[level]
                assert left is not None
                paired = sha(prefix + left + current[:HASH_SIZE]).digest()
                paired += pair_hashes(memoryview(current)[HASH_SIZE:])
                run = count + 1
            else:
                paired = pair_hashes(current)
                run = count
            # The run of this level's nodes from an even index to the new end: an odd
            # run leaves its last node unpaired, which is then the frontier node here.
            new_low.append(current[-HASH_SIZE:] if run & 1 else None)
            current = paired
            first >>= 1
            level += 1
        # Above the highest level that got a new node nothing changed, so the old
        # frontier nodes there still stand.
        self._levels = new_low + old[level:]
        self._size += len(chunk) // HASH_SIZE

    def copy(self) -> Frontier:
        """Return an independent frontier with the same state."""
        other = Frontier()
        other._size = self._size
        other._levels = list(self._levels)
        return other

    def to_dict(self) -> dict[str, object]:
        """Return ``{"size": int, "nodes": [hex, …]}`` (nodes highest level first), JSON-ready."""
        return {"size": self._size, "nodes": [h.hex() for h in self.nodes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Frontier:
        """Rebuild a frontier from :meth:`to_dict` output; ``ValueError`` if malformed."""
        try:
            size = data["size"]
            hexes = data["nodes"]
        except (KeyError, TypeError) as exc:
            raise ValueError("frontier must have 'size' and 'nodes'") from exc
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("frontier size must be a non-negative integer")
        if not isinstance(hexes, list) or not all(isinstance(h, str) for h in hexes):
            raise ValueError("frontier nodes must be a list of hex strings")
        levels = [j for j in range(size.bit_length()) if size >> j & 1]
        if len(hexes) != len(levels):
            raise ValueError(
                f"a frontier of size {size} has {len(levels)} nodes, not {len(hexes)}"
            )
        try:
            hashes = [bytes.fromhex(h) for h in hexes]
        except ValueError as exc:
            raise ValueError("frontier nodes must be hex strings") from exc
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("frontier nodes must be 32-byte hashes")
        return cls._from_levels(size, dict(zip(reversed(levels), hashes)))

    @classmethod
    def from_store(cls, size: int, store: NodeStore) -> Frontier:
        """Rebuild the frontier of the first ``size`` leaves from a store's nodes.

        Use it to recover, or to check a persisted frontier, from the store alone.
        """
        if size < 0:
            raise ValueError("size must be non-negative")
        by_level = {
            j: store.get(j, (size >> j) - 1)
            for j in range(size.bit_length())
            if size >> j & 1
        }
        return cls._from_levels(size, by_level)

    @classmethod
    def _from_levels(cls, size: int, by_level: Mapping[int, bytes]) -> Frontier:
        frontier = cls()
        frontier._size = size
        frontier._levels = [by_level.get(j) for j in range(size.bit_length())]
        return frontier

    def __eq__(self, other: object) -> bool:
        """Frontiers are equal when they have the same size and nodes."""
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._levels == other._levels

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        """Show the size and the root, not the nodes."""
        return f"Frontier(size={self._size}, root={self.root().hex()})"


def _unpack(packed: bytes) -> list[bytes]:
    """Packed 32-byte hashes as a list of ``bytes``."""
    return [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)]


def _packed_writer(store: NodeStore) -> Callable[[int, int, bytes], None]:
    """The store's ``put_packed``, or its ``put_many`` fed unpacked hashes."""
    put_packed = getattr(store, "put_packed", None)
    if put_packed is not None:
        return put_packed  # type: ignore[no-any-return]
    return lambda level, start, packed: store.put_many(level, start, _unpack(packed))


def _largest_power_of_two_below(n: int) -> int:
    """The RFC's split point k for n > 1: the largest power of two strictly below n."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hash(start: int, end: int, store: NodeStore) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees.

    Valid for the ranges the RFC's recursion produces, whose start is a multiple of
    the smallest power of two >= their length: such a range splits into perfect,
    aligned subtrees, one per set bit of its length, largest first.
    """
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    pieces: list[bytes] = []
    position = start
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            pieces.append(store.get(level, position >> level))
            position += 1 << level
    acc = pieces[-1]
    for left in reversed(pieces[:-1]):
        acc = node_hash(left, acc)
    return acc


def _perfect_hash(start: int, width: int, store: NodeStore) -> bytes:
    """MTH(D[start:start+width]) for a power-of-two width and aligned start: one node."""
    level = width.bit_length() - 1
    return store.get(level, start >> level)


def root_at(size: int, store: NodeStore) -> bytes:
    """Return the root the tree had when it held ``size`` leaves (O(log size) reads).

    ``KeyError`` if the store lacks a needed node, e.g. ``size`` beyond what it holds.
    """
    if size < 0:
        raise ValueError("size must be non-negative")
    return _subtree_hash(0, size, store)


def inclusion_proof(index: int, size: int, store: NodeStore) -> list[bytes]:
    """Return PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, bottom-up, from the store.

    ``ValueError`` unless ``0 <= index < size``; ``KeyError`` if a node is missing.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    siblings: list[bytes] = []  # collected top-down; the RFC lists them bottom-up
    start, n, m = 0, size, index
    while n > 1:
        k = _largest_power_of_two_below(n)
        if m < k:
            siblings.append(_subtree_hash(start + k, start + n, store))
            n = k
        else:
            siblings.append(_perfect_hash(start, k, store))
            start += k
            m -= k
            n -= k
    siblings.reverse()
    return siblings


def consistency_proof(old_size: int, new_size: int, store: NodeStore) -> list[bytes]:
    """Return PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1 from the store.

    Empty when the sizes are equal. ``ValueError`` unless ``0 < old_size <= new_size``:
    the RFC defines no proof from the empty tree, which every tree trivially extends.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(
            f"no consistency proof from size {old_size} to size {new_size}"
        )
    tail: list[bytes] = []  # collected top-down; SUBPROOF emits them bottom-up
    start, n, m = 0, new_size, old_size
    # True while the subtree in hand starts at leaf 0, i.e. while its hash up to m
    # leaves is the old root itself, which the verifier already holds.
    at_old_root = True
    while m != n:
        k = _largest_power_of_two_below(n)
        if m <= k:
            tail.append(_subtree_hash(start + k, start + n, store))
            n = k
        else:
            tail.append(_perfect_hash(start, k, store))
            start += k
            m -= k
            n -= k
            at_old_root = False
    proof = [] if at_old_root else [_subtree_hash(start, start + n, store)]
    proof.extend(reversed(tail))
    return proof


def _as_hash(value: object) -> bytes | None:
    """The value as a 32-byte hash, or None for anything else (verification never raises)."""
    if isinstance(value, (bytes, bytearray)) and len(value) == HASH_SIZE:
        return bytes(value)
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. ``False`` for any invalid or malformed input, never an exception.
    ``size`` is bound only as far as the proof's shape goes (e.g. a proof for leaf 0 of
    3 also passes for leaf 0 of 4 with the same root): take size and root together from
    a trusted, signed tree head, never from the proof's sender alone.
    """
    r = _as_hash(leaf_hash)
    expected = _as_hash(root)
    if r is None or expected is None or not _is_count(index) or not _is_count(size):
        return False
    if not isinstance(proof, (list, tuple)):
        return False
    if index >= size:
        return False
    fn, sn = index, size - 1
    for element in proof:
        p = _as_hash(element)
        if p is None or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node has no sibling (it is the lone last
            # node of a non-full level); the RFC shifts until fn is odd or zero.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``.

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. Equal sizes pass only with an
    empty proof and equal roots (``EMPTY_ROOT`` at size 0). ``old_size == 0 < new_size``
    is always ``False``: the RFC defines no such proof (the empty tree is a prefix of
    every tree, so callers treat that case themselves). ``False`` for any malformed
    input, never an exception.
    """
    first_hash = _as_hash(old_root)
    second_hash = _as_hash(new_root)
    if first_hash is None or second_hash is None:
        return False
    if not _is_count(old_size) or not _is_count(new_size):
        return False
    if not isinstance(proof, (list, tuple)):
        return False
    if old_size > new_size:
        return False
    if old_size == new_size:
        return (
            len(proof) == 0
            and first_hash == second_hash
            and (old_size > 0 or first_hash == EMPTY_ROOT)
        )
    if old_size == 0:
        return False

    # Step 1: an empty path cannot prove anything for 0 < first < second.
    if not proof:
        return False
    path = list(proof)
    # Step 2: for a power-of-two old size the old tree is a complete subtree of the
    # new one, so its root is the proof's implicit first element.
    if old_size & (old_size - 1) == 0:
        path.insert(0, first_hash)
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = _as_hash(path[0])
    if fr is None:
        return False
    # Step 6.
    for element in path[1:]:
        c = _as_hash(element)
        if c is None or sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    return fr == first_hash and sr == second_hash and sn == 0
