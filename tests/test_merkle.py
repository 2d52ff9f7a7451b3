"""Tests for origine.merkle: CT vectors, tampering, and an independent RFC reference.

The reference at the top of this file is written straight from the recursive
definitions of RFC 9162 §2.1 (MTH, PATH, PROOF/SUBPROOF) over raw entries, with no
stores, frontiers or bit tricks; its verifiers fold a proof along the shape those same
recursions give. The module under test is held to it on random trees.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine import merkle
from origine.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    node_hash,
    root_at,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ct_rfc6962.json").read_text())
CT_LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
CT_ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
CT_NODES = [[bytes.fromhex(x) for x in level] for level in VECTORS["nodes"]]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- independent reference, from the RFC's recursive definitions -----------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1."""
    n = len(entries)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + entries[0])
    k = _split(n)
    return _sha(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:]))


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(entries)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return ref_path(m, entries[:k]) + [ref_mth(entries[k:])]
    return ref_path(m - k, entries[k:]) + [ref_mth(entries[:k])]


def ref_subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(entries)
    if m == n:
        return [] if b else [ref_mth(entries)]
    k = _split(n)
    if m <= k:
        return ref_subproof(m, entries[:k], b) + [ref_mth(entries[k:])]
    return ref_subproof(m - k, entries[k:], False) + [ref_mth(entries[:k])]


def ref_proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (0 < m < n)."""
    return ref_subproof(m, entries, True)


def ref_path_sides(m: int, n: int) -> list[str]:
    """Which side each PATH element sits on, bottom-up: the recursion of PATH, no data."""
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return ref_path_sides(m, k) + ["R"]
    return ref_path_sides(m - k, n - k) + ["L"]


def ref_proof_shape(m: int, n: int, b: bool = True) -> list[str]:
    """The recursion of SUBPROOF, no data: "O" = old root implied, "T" = subtree hash
    given, then "R" (right sibling, new tree only) or "L" (left sibling, both trees)."""
    if m == n:
        return ["O"] if b else ["T"]
    k = _split(n)
    if m <= k:
        return ref_proof_shape(m, k, b) + ["R"]
    return ref_proof_shape(m - k, n - k, False) + ["L"]


def ref_verify_inclusion(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> bool:
    """Fold the proof along the shape PATH has for (index, size)."""
    if not 0 <= index < size:
        return False
    sides = ref_path_sides(index, size)
    if len(proof) != len(sides) or any(len(p) != 32 for p in proof):
        return False
    r = leaf
    for side, p in zip(sides, proof):
        r = _sha(b"\x01" + (p + r if side == "L" else r + p))
    return r == root


def ref_verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """Fold the proof along the shape SUBPROOF has for (m, n); equal sizes as documented."""
    if len(old_root) != 32 or len(new_root) != 32 or any(len(p) != 32 for p in proof):
        return False
    if m == n:
        return not proof and old_root == new_root and (m > 0 or old_root == _sha(b""))
    if not 0 < m < n:
        return False
    shape = ref_proof_shape(m, n)
    given = list(proof)
    if shape[0] == "O":
        fr = sr = old_root
    else:
        if not given:
            return False
        fr = sr = given.pop(0)
    if len(given) != len(shape) - 1:
        return False
    for side, c in zip(shape[1:], given):
        if side == "L":
            fr = _sha(b"\x01" + c + fr)
            sr = _sha(b"\x01" + c + sr)
        else:
            sr = _sha(b"\x01" + sr + c)
    return fr == old_root and sr == new_root


def test_reference_matches_ct_vectors() -> None:
    """The reference itself reproduces the published roots, so it can judge the rest."""
    for size in range(9):
        assert ref_mth(CT_LEAVES[:size]) == CT_ROOTS[size]
    for v in VECTORS["inclusion"]:
        want = [bytes.fromhex(x) for x in v["proof"]]
        assert ref_path(v["index"], CT_LEAVES[: v["size"]]) == want
    for v in VECTORS["consistency"]:
        if v["old_size"] < v["new_size"]:
            want = [bytes.fromhex(x) for x in v["proof"]]
            assert ref_proof(v["old_size"], CT_LEAVES[: v["new_size"]]) == want


# --- tampering -------------------------------------------------------------------------


def _flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def _proof_tampers(proof: list[bytes], extra: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """Every way we tamper with a proof list; `extra` are plausible hashes to inject."""
    for desc, tampered in _all_proof_tampers(proof, extra):
        if tampered != proof:  # e.g. reversing a one-element proof changes nothing
            yield desc, tampered


def _all_proof_tampers(
    proof: list[bytes], extra: list[bytes]
) -> Iterator[tuple[str, list[bytes]]]:
    n = len(proof)
    if n:
        yield "removed last", proof[:-1]
        yield "removed first", proof[1:]
        yield "reversed", proof[::-1]
    for i in range(n):
        for bit in (0, 3, 255):
            yield f"bit {bit} of proof[{i}]", proof[:i] + [_flip(proof[i], bit)] + proof[i + 1 :]
        yield f"proof[{i}] truncated", proof[:i] + [proof[i][:31]] + proof[i + 1 :]
        yield f"proof[{i}] extended", proof[:i] + [proof[i] + b"\x00"] + proof[i + 1 :]
    for i in range(n - 1):
        yield f"swapped {i},{i + 1}", proof[:i] + [proof[i + 1], proof[i]] + proof[i + 2 :]
    for e in [*extra, SOME_HASH, bytes(32), b""]:
        yield "trailing extra", proof + [e]
        yield "preceding extra", [e] + proof
        if n > 1:
            yield "inserted extra", proof[:1] + [e] + proof[1:]


def inclusion_tampers(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> Iterator[tuple[str, bool, tuple[Any, ...]]]:
    """(description, strict, args). Strict variants must be rejected outright; the
    others (a different tree size) must be judged exactly as the reference judges them,
    since RFC 9162 binds the size only as far as the proof's shape goes."""
    for desc, p in _proof_tampers(proof, [leaf, root]):
        yield desc, True, (leaf, index, size, p, root)
    for i in {index + 1, index - 1, index ^ 1, index ^ 2, size, size + index, -1}:
        if i != index:
            yield f"index {i}", True, (leaf, i, size, proof, root)
    for s in {size + 1, size - 1, size * 2, size // 2, 0, index}:
        if s != size:
            yield f"size {s}", False, (leaf, index, s, proof, root)
    # Index and size moved together, e.g. the last leaf of a 2**k tree replayed as the
    # only leaf of a tree of one: its proof folds to the big root if the verifier
    # keeps hashing after sn reaches 0 (RFC 9162 §2.1.3.2 step 4a forbids it).
    for i, s in {(0, 1), (index // 2, size // 2), (index >> 1, (size + 1) >> 1), (0, 2)}:
        if (i, s) != (index, size):
            yield f"index {i} of size {s}", False, (leaf, i, s, proof, root)
    yield "wrong leaf", True, (_flip(leaf, 0), index, size, proof, root)
    yield "wrong root", True, (leaf, index, size, proof, _flip(root, 7))
    yield "empty-tree root", True, (leaf, index, size, proof, EMPTY_ROOT)
    yield "random root", True, (leaf, index, size, proof, SOME_HASH)
    if proof:
        yield "root is the leaf", True, (leaf, index, size, proof, leaf)
    yield "short leaf", True, (leaf[:31], index, size, proof, root)
    yield "short root", True, (leaf, index, size, proof, root[:31])
    if leaf != root:
        yield "leaf, root swapped", True, (root, index, size, proof, leaf)


def consistency_tampers(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> Iterator[tuple[str, bool, tuple[Any, ...]]]:
    """(description, strict, args), as for inclusion_tampers."""
    for desc, p in _proof_tampers(proof, [old_root, new_root]):
        yield desc, True, (old, new, old_root, new_root, p)
    for s in {old + 1, old - 1, old ^ 2, old * 2, 0, new + 1}:
        if s != old:
            yield f"old size {s}", False, (s, new, old_root, new_root, proof)
    for s in {new + 1, new - 1, new * 2, new // 2, old - 1}:
        if s != new:
            yield f"new size {s}", False, (old, s, old_root, new_root, proof)
    yield "wrong old root", True, (old, new, _flip(old_root, 0), new_root, proof)
    yield "wrong new root", True, (old, new, old_root, _flip(new_root, 200), proof)
    yield "empty-tree old root", True, (old, new, EMPTY_ROOT, new_root, proof)
    yield "random new root", True, (old, new, old_root, SOME_HASH, proof)
    yield "short old root", True, (old, new, old_root[:31], new_root, proof)
    if old_root != new_root:
        yield "roots swapped", True, (old, new, new_root, old_root, proof)
        yield "sizes and roots swapped", True, (new, old, new_root, old_root, proof)
    if old != new:
        yield "sizes swapped", True, (new, old, old_root, new_root, proof)


def _check_tampers(
    variants: Iterator[tuple[str, bool, tuple[Any, ...]]],
    verify: Callable[..., bool],
    reference: Callable[..., bool],
) -> None:
    seen = 0
    for desc, strict, args in variants:
        seen += 1
        got = verify(*args)
        if strict:
            assert got is False, desc
        else:
            assert got is reference(*args), desc
    assert seen > 10


# --- hashing and the published CT vectors ----------------------------------------------


def test_hash_domain_separation() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert leaf_hashes([b"", b"abc"]) == [leaf_hash(b""), leaf_hash(b"abc")]


@pytest.fixture(scope="module")
def ct_tree() -> tuple[Frontier, MemoryNodeStore]:
    store = MemoryNodeStore()
    frontier = Frontier()
    frontier.extend(leaf_hashes(CT_LEAVES), store)
    return frontier, store


@pytest.mark.parametrize("size", range(9))
def test_ct_roots(size: int, ct_tree: tuple[Frontier, MemoryNodeStore]) -> None:
    _, store = ct_tree
    hashes = leaf_hashes(CT_LEAVES[:size])
    frontier = Frontier()
    frontier.extend(hashes)
    assert root_from_leaf_hashes(hashes) == CT_ROOTS[size]
    assert frontier.root() == CT_ROOTS[size]
    assert root_at(size, store) == CT_ROOTS[size]


def test_ct_stored_nodes(ct_tree: tuple[Frontier, MemoryNodeStore]) -> None:
    _, store = ct_tree
    for level, hashes in enumerate(CT_NODES):
        assert store.count(level) == len(hashes)
        for index, h in enumerate(hashes):
            assert store.get(level, index) == h
    assert store.count(len(CT_NODES)) == 0


@pytest.mark.parametrize("size", range(9))
def test_ct_compact_ranges(size: int) -> None:
    """Frontier nodes are the CT compact range: node (j, size>>j - 1) per set bit j."""
    frontier = Frontier()
    frontier.extend(leaf_hashes(CT_LEAVES[:size]))
    want = [CT_NODES[j][(size >> j) - 1] for j in reversed(range(4)) if size >> j & 1]
    assert frontier.nodes == want


@pytest.mark.parametrize("v", VECTORS["inclusion"], ids=lambda v: f"{v['index']}of{v['size']}")
def test_ct_inclusion(v: dict[str, Any], ct_tree: tuple[Frontier, MemoryNodeStore]) -> None:
    _, store = ct_tree
    index, size = v["index"], v["size"]
    proof = [bytes.fromhex(x) for x in v["proof"]]
    leaf, root = leaf_hash(CT_LEAVES[index]), CT_ROOTS[size]
    assert inclusion_proof(index, size, store) == proof
    assert verify_inclusion(leaf, index, size, proof, root) is True
    assert verify_inclusion(leaf, index, size, tuple(proof), root) is True
    _check_tampers(
        inclusion_tampers(leaf, index, size, proof, root), verify_inclusion, ref_verify_inclusion
    )


@pytest.mark.parametrize(
    "v", VECTORS["consistency"], ids=lambda v: f"{v['old_size']}to{v['new_size']}"
)
def test_ct_consistency(v: dict[str, Any], ct_tree: tuple[Frontier, MemoryNodeStore]) -> None:
    _, store = ct_tree
    old, new = v["old_size"], v["new_size"]
    proof = [bytes.fromhex(x) for x in v["proof"]]
    old_root, new_root = CT_ROOTS[old], CT_ROOTS[new]
    assert consistency_proof(old, new, store) == proof
    assert verify_consistency(old, new, old_root, new_root, proof) is True
    _check_tampers(
        consistency_tampers(old, new, old_root, new_root, proof),
        verify_consistency,
        ref_verify_consistency,
    )


def test_size_is_bound_only_by_proof_shape() -> None:
    """Known RFC 9162 property, kept visible: PATH(0, D[3]) and PATH(0, D[4]) have the
    same shape, so the size-3 proof and root also pass as "leaf 0 of 4". Size and root
    must come together from a signed tree head; the proof cannot pin the size alone."""
    hashes = leaf_hashes(CT_LEAVES[:3])
    store = MemoryNodeStore()
    Frontier().extend(hashes, store)
    proof = inclusion_proof(0, 3, store)
    assert verify_inclusion(hashes[0], 0, 4, proof, CT_ROOTS[3]) is True
    assert verify_inclusion(hashes[0], 0, 4, proof, CT_ROOTS[4]) is False
    assert ref_path_sides(0, 3) == ref_path_sides(0, 4)


def test_proof_replayed_as_single_leaf_tree() -> None:
    """The last leaf of the size-8 CT tree has only left siblings; without the RFC's
    "if sn is 0, fail" inside the loop its proof would pass as leaf 0 of a size-1 tree."""
    hashes = leaf_hashes(CT_LEAVES)
    store = MemoryNodeStore()
    Frontier().extend(hashes, store)
    proof = inclusion_proof(7, 8, store)
    assert verify_inclusion(hashes[7], 7, 8, proof, CT_ROOTS[8]) is True
    assert verify_inclusion(hashes[7], 0, 1, proof, CT_ROOTS[8]) is False
    assert verify_inclusion(hashes[7], 3, 4, proof, CT_ROOTS[8]) is False


# --- garbage never raises -------------------------------------------------------------

H = leaf_hash(b"x")

GARBAGE_INCLUSION: list[tuple[Any, ...]] = [
    (None, 0, 1, [], H),
    (H, None, 1, [], H),
    (H, 0, None, [], H),
    (H, 0, 1, None, H),
    (H, 0, 1, [], None),
    ("00" * 32, 0, 1, [], "00" * 32),
    (H, 0.0, 1, [], H),
    (H, True, 2, [H], H),
    (H, 0, 1.5, [], H),
    (H, -1, 1, [], H),
    (H, 0, -1, [], H),
    (H, 0, 0, [], H),
    (H, 5, 3, [H, H], H),
    (H, 2**64 - 1, 1, [], H),
    (H, 0, 2**70, [H] * 3, H),
    (H, 0, 1, [None], H),
    (H, 1, 2, [object()], H),
    (H, 1, 2, [1, 2], H),
    (H, 1, 2, "ab", H),
    (H, 1, 2, b"x" * 32, H),
    (H, 1, 2, iter([H]), H),
    (H, 1, 2, {0: H}, H),
    (H, 1, 2, [H] * 10_000, H),
    (b"", 0, 1, [], b""),
    (memoryview(H), 0, 1, [], H),
]


@pytest.mark.parametrize("args", GARBAGE_INCLUSION, ids=range(len(GARBAGE_INCLUSION)))
def test_verify_inclusion_garbage_is_false(args: tuple[Any, ...]) -> None:
    assert verify_inclusion(*args) is False


GARBAGE_CONSISTENCY: list[tuple[Any, ...]] = [
    (None, 2, H, H, [H]),
    (1, None, H, H, [H]),
    (1, 2, None, H, [H]),
    (1, 2, H, None, [H]),
    (1, 2, H, H, None),
    (1.0, 2, H, H, [H]),
    (True, 2, H, H, [H]),
    (-1, 2, H, H, [H]),
    (1, -2, H, H, [H]),
    (2, 1, H, H, []),
    (0, 1, EMPTY_ROOT, H, []),
    (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    (0, 0, H, H, []),
    (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    (1, 1, H, H, [H]),
    (1, 1, H, leaf_hash(b"y"), []),
    (1, 1, b"short", b"short", []),
    (1, 2, H, H, []),
    (3, 5, H, H, []),
    (6, 8, H, H, []),
    (3, 5, H, H, [None, H]),
    (3, 5, H, H, ["x" * 32]),
    (3, 5, H, H, "abc"),
    (3, 5, H, H, iter([H])),
    (3, 5, H, H, [H] * 10_000),
    (4, 2**80, H, H, [H] * 100),
    (3, 5, memoryview(H), H, [H]),
]


@pytest.mark.parametrize("args", GARBAGE_CONSISTENCY, ids=range(len(GARBAGE_CONSISTENCY)))
def test_verify_consistency_garbage_is_false(args: tuple[Any, ...]) -> None:
    assert verify_consistency(*args) is False


def test_equal_sizes_consistency() -> None:
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, []) is True
    assert verify_consistency(5, 5, H, H, []) is True
    assert verify_consistency(5, 5, H, H, ()) is True


# --- exhaustive small trees and random larger ones, against the reference ---------------

BIG = 3000


@lru_cache(maxsize=1)
def big_tree() -> tuple[list[bytes], list[bytes], MemoryNodeStore, Frontier]:
    """One tree of BIG distinct leaves; proofs for any smaller size come from its store."""
    entries = [b"entry-%d" % i for i in range(BIG)]
    hashes = leaf_hashes(entries)
    store = MemoryNodeStore()
    frontier = Frontier()
    frontier.extend(hashes, store)
    return entries, hashes, store, frontier


def test_exhaustive_small_trees() -> None:
    entries, hashes, store, _ = big_tree()
    for n in range(1, 41):
        root = ref_mth(entries[:n])
        assert root_at(n, store) == root
        assert root_from_leaf_hashes(hashes[:n]) == root
        for i in range(n):
            proof = inclusion_proof(i, n, store)
            assert proof == ref_path(i, entries[:n]), (i, n)
            assert verify_inclusion(hashes[i], i, n, proof, root)
        for m in range(1, n):
            proof = consistency_proof(m, n, store)
            assert proof == ref_proof(m, entries[:n]), (m, n)
            assert verify_consistency(m, n, root_at(m, store), root, proof)


def test_exhaustive_size_tampers_agree_with_reference() -> None:
    """Every (index, size, size') up to 24 and (m, n, m', n') up to 16/19: the RFC verifier and the
    shape-folding reference accept exactly the same size substitutions."""
    entries, hashes, store, _ = big_tree()
    roots = [root_at(n, store) for n in range(26)]
    for n in range(1, 25):
        for i in range(n):
            proof = inclusion_proof(i, n, store)
            for s in range(26):
                got = verify_inclusion(hashes[i], i, s, proof, roots[n])
                assert got is ref_verify_inclusion(hashes[i], i, s, proof, roots[n]), (i, n, s)
                assert got is (s == n or (i < s and ref_path_sides(i, s) == ref_path_sides(i, n)))
        if n > 16:
            continue
        for m in range(1, n):
            proof = consistency_proof(m, n, store)
            for m2 in range(20):
                for n2 in range(20):
                    args = (m2, n2, roots[m], roots[n], proof)
                    assert verify_consistency(*args) is ref_verify_consistency(*args), (m, n, m2, n2)


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data=st.data())
def test_inclusion_against_reference(data: st.DataObject) -> None:
    entries, hashes, store, _ = big_tree()
    size = data.draw(st.integers(1, BIG), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = root_at(size, store)
    assert root == ref_mth(entries[:size])
    proof = inclusion_proof(index, size, store)
    assert proof == ref_path(index, entries[:size])
    assert verify_inclusion(hashes[index], index, size, proof, root) is True
    assert ref_verify_inclusion(hashes[index], index, size, proof, root) is True
    _check_tampers(
        inclusion_tampers(hashes[index], index, size, proof, root),
        verify_inclusion,
        ref_verify_inclusion,
    )


@FAST
@given(data=st.data())
def test_consistency_against_reference(data: st.DataObject) -> None:
    entries, _, store, _ = big_tree()
    new = data.draw(st.integers(2, BIG), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    old_root, new_root = root_at(old, store), root_at(new, store)
    assert old_root == ref_mth(entries[:old])
    proof = consistency_proof(old, new, store)
    assert proof == ref_proof(old, entries[:new])
    assert verify_consistency(old, new, old_root, new_root, proof) is True
    assert ref_verify_consistency(old, new, old_root, new_root, proof) is True
    _check_tampers(
        consistency_tampers(old, new, old_root, new_root, proof),
        verify_consistency,
        ref_verify_consistency,
    )


# --- Frontier: batches, persistence, past roots ----------------------------------------


@FAST
@given(cuts=st.lists(st.integers(0, BIG), max_size=6))
def test_batches_equal_one_batch(cuts: list[int]) -> None:
    entries, hashes, full_store, full = big_tree()
    bounds = [0, *sorted(cuts), BIG]
    store = MemoryNodeStore()
    frontier = Frontier()
    for lo, hi in zip(bounds, bounds[1:]):
        before = frontier.root()
        # Persist and reload between batches, as the ledger does between runs.
        frontier = Frontier.from_dict(json.loads(json.dumps(frontier.to_dict())))
        assert frontier.root() == before
        frontier.extend(iter(hashes[lo:hi]), store)
        assert frontier.size == hi
        assert frontier.root() == root_at(hi, full_store)
        # Past roots stay reachable after further appends.
        assert root_at(lo, store) == root_at(lo, full_store)
    assert frontier == full
    for level in range(BIG.bit_length()):
        assert store.count(level) == BIG >> level
        assert store.get(level, (BIG >> level) - 1) == full_store.get(level, (BIG >> level) - 1)


def test_append_matches_extend() -> None:
    _, hashes, store_full, full = big_tree()
    frontier = Frontier()
    store = MemoryNodeStore()
    for i, h in enumerate(hashes[:300]):
        frontier.append(h, store)
        assert frontier.root() == root_at(i + 1, store_full)
        assert Frontier.from_store(i + 1, store) == frontier
    assert frontier.nodes == Frontier.from_store(300, store_full).nodes


def test_root_at_past_sizes_after_appends() -> None:
    _, hashes, store_full, _ = big_tree()
    store = MemoryNodeStore()
    frontier = Frontier()
    roots = [frontier.root()]
    for batch in (hashes[:1], hashes[1:7], hashes[7:64], hashes[64:1000]):
        frontier.extend(batch, store)
        roots.append(frontier.root())
    for size, root in zip((0, 1, 7, 64, 1000), roots):
        assert root_at(size, store) == root == root_at(size, store_full)


def test_chunked_extend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs longer than a chunk are split; the result cannot depend on the split."""
    _, hashes, _, _ = big_tree()
    monkeypatch.setattr(merkle, "_EXTEND_CHUNK", 7)
    for source in (hashes[:1000], tuple(hashes[:1000]), iter(hashes[:1000])):
        store = MemoryNodeStore()
        frontier = Frontier()
        frontier.extend(source, store)
        assert frontier.root() == root_from_leaf_hashes(hashes[:1000])
        assert Frontier.from_store(1000, store) == frontier


def test_frontier_dict_round_trip() -> None:
    _, hashes, _, _ = big_tree()
    for size in (0, 1, 2, 3, 255, 256, 1000):
        frontier = Frontier()
        frontier.extend(hashes[:size])
        data = frontier.to_dict()
        assert data["size"] == size
        assert len(data["nodes"]) == bin(size).count("1")  # type: ignore[arg-type]
        again = Frontier.from_dict(json.loads(json.dumps(data)))
        assert again == frontier and again.root() == frontier.root()
        copy = frontier.copy()
        copy.append(hashes[size])
        assert copy != frontier and frontier.size == size


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"size": 1},
        {"nodes": []},
        {"size": -1, "nodes": []},
        {"size": True, "nodes": ["00" * 32]},
        {"size": "1", "nodes": ["00" * 32]},
        {"size": 1, "nodes": []},
        {"size": 1, "nodes": ["00" * 32, "00" * 32]},
        {"size": 3, "nodes": ["00" * 32]},
        {"size": 1, "nodes": ["zz" * 32]},
        {"size": 1, "nodes": ["00" * 31]},
        {"size": 1, "nodes": [b"\x00" * 32]},
        {"size": 1, "nodes": "00" * 32},
        [],
    ],
)
def test_frontier_from_dict_rejects(data: Any) -> None:
    with pytest.raises(ValueError):
        Frontier.from_dict(data)


def test_extend_rejects_bad_leaf_hashes() -> None:
    frontier = Frontier()
    frontier.extend([H, H])
    for bad in ([H, H[:31]], [H, b"x" * 33], [H, "00" * 32], [bytearray(H)], [None]):
        with pytest.raises((TypeError, ValueError)):
            frontier.extend(bad)
        assert frontier.size == 2
    assert frontier.root() == root_from_leaf_hashes([H, H])


# --- store and proof-generation errors -------------------------------------------------


def test_memory_store_is_append_only() -> None:
    store = MemoryNodeStore()
    a, b, c = leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")
    store.put_many(0, 0, [a, b])
    store.put_many(0, 1, [b, c])  # identical overlap: a retried batch
    assert store.count(0) == 3 and store.get(0, 2) == c
    with pytest.raises(ValueError):
        store.put_many(0, 0, [c])  # rewriting history
    with pytest.raises(ValueError):
        store.put_many(0, 5, [c])  # gap
    with pytest.raises(ValueError):
        store.put_many(0, 3, [b"short"])
    for level, index in ((0, 3), (1, 0), (-1, 0), (0, -1)):
        with pytest.raises(KeyError):
            store.get(level, index)


def test_proof_generation_errors() -> None:
    _, _, store, _ = big_tree()
    for index, size in ((0, 0), (5, 5), (-1, 3)):
        with pytest.raises(ValueError):
            inclusion_proof(index, size, store)
    for old, new in ((0, 5), (6, 5), (-1, 2)):
        with pytest.raises(ValueError):
            consistency_proof(old, new, store)
    assert consistency_proof(7, 7, store) == []
    with pytest.raises(ValueError):
        root_at(-1, store)
    assert root_at(0, store) == EMPTY_ROOT
    # Beyond what the store holds: a missing node, not a made-up answer.
    with pytest.raises(KeyError):
        root_at(BIG + 1, store)
    with pytest.raises(KeyError):
        inclusion_proof(0, BIG + 1, store)
