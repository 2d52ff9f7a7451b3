"""The batch proof of a bundle, checked by a verifier written here from
docs/bundle-format.md with hashlib only (it imports nothing of origine), and the
origine implementation against RFC 9162 roots over any tree and any cited set."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------- the independent verifier


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def independent_root(leaves: list[tuple[int, bytes]], nodes: list[tuple[int, int, bytes]], size: int) -> bytes:
    """docs/bundle-format.md §2-3: level L has W(L) = ceil(N / 2^L) nodes; going up,
    (L+1, p) = H(0x01 || (L, 2p) || (L, 2p+1)) when 2p+1 < W(L), else (L, 2p) when it is
    the last; the proof supplies what the cited leaves do not reach. Raises ValueError."""
    level_nodes = {i: h for i, h in leaves}
    if len(level_nodes) != len(leaves):
        raise ValueError("leaf repeated")
    height = (size - 1).bit_length() if size > 1 else 0
    by_level: dict[int, dict[int, bytes]] = {}
    for lv, i, h in nodes:
        if i in by_level.setdefault(lv, {}):
            raise ValueError("node repeated")
        by_level[lv][i] = h
    if set(by_level) - set(range(height)):
        raise ValueError("node above the tree")
    for level in range(height + 1):
        width = -(-size // (1 << level))
        extra = by_level.get(level, {})
        if set(extra) & set(level_nodes):
            raise ValueError("a proof node the leaves already give")
        level_nodes = {**level_nodes, **extra}
        if any(not 0 <= i < width for i in level_nodes):
            raise ValueError("outside the level")
        if level == height:
            if set(level_nodes) != {0}:
                raise ValueError("no single root")
            return level_nodes[0]
        up: dict[int, bytes] = {}
        for i in sorted(level_nodes):
            p = i >> 1
            if p in up:
                continue
            if i % 2:
                raise ValueError("right node without its left")
            if i + 1 < width:
                if i + 1 not in level_nodes:
                    raise ValueError("left node without its right")
                up[p] = _h(b"\x01" + level_nodes[i] + level_nodes[i + 1])
            else:
                up[p] = level_nodes[i]
        level_nodes = up
    raise AssertionError


def read_bundle(folder: Path) -> tuple[list[tuple[int, bytes]], list[tuple[int, int, bytes]], int, bytes]:
    """The files of docs/bundle-format.md §1 as the verifier needs them."""
    lines = (folder / "ledger" / "events.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    indices = [int(x) for x in (folder / "ledger" / "leaves.txt").read_text().split("\n") if x]
    assert len(indices) == len(lines) - 1
    leaves = [(i, _h(b"\x00" + line)) for i, line in zip(indices, lines)]
    nodes = []
    for line in (folder / "ledger" / "proof-nodes.txt").read_text().split("\n"):
        if line:
            lv, i, hx = line.split(" ")
            assert len(hx) == 64 and hx == hx.lower()
            nodes.append((int(lv), int(i), bytes.fromhex(hx)))
    assert nodes == sorted(nodes, key=lambda n: (n[0], n[1]))
    proof = json.loads((folder / "ledger" / "proof.json").read_text())
    # The checkpoint's note text: origin, size, base64 root (its signature is checked by
    # tests/test_independent_verifier.py's C2SP reader; here the numbers must agree).
    _, size_line, root_line = proof["checkpoint"].split("\n")[:3]
    assert int(size_line) == proof["tree_size"] and base64.b64decode(root_line).hex() == proof["root_hash"]
    return leaves, nodes, proof["tree_size"], base64.b64decode(root_line)


# ---------------------------------------------------------------- a real bundle


@pytest.fixture
def partial_bundle(home, key, make_delivery, tmp_path):
    """A real home with two deliveries, a campaign targeting one of them (so the proof
    holds nodes), audited through origine."""
    import yaml

    from origine.ingest import intake
    from origine.export import audit_bundle

    def rows(prefix: str, n: int) -> str:
        return "".join(f"06{prefix}{i:06d},jeu,political.electoral,2024-01-02,proof-{i}\n" for i in range(n))

    header = "phone,source,consent_purposes,consent_at,consent_proof\n"
    for name, prefix, n in (("D-1", "12", 13), ("D-2", "34", 21)):
        path = make_delivery({"c.csv": (header + rows(prefix, n)).encode()}, delivery_id=name,
                             delivered_at="2024-02-01T00:00:00Z")
        intake.commit(intake.prepare(path, home, key), home, label=name)
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Parti A: votez. STOP 36789", "sent_at": "2024-06-07T18:00:00+02:00",
        "targeting": {"age": "18-35"}, "targets": {"deliveries": ["D-1"]},
    }))
    out = tmp_path / "bundle"
    audit_bundle(campaign, home, key, out)
    return out


def test_an_independent_verifier_checks_a_real_bundles_batch_proof(partial_bundle) -> None:
    leaves, nodes, size, root = read_bundle(partial_bundle)
    assert leaves and nodes, "the campaign cites part of the ledger: the proof holds nodes"
    assert independent_root(leaves, nodes, size) == root
    # every tampering of the proof or of a leaf changes the root or breaks the shape
    first = leaves[0]
    for bad_leaves, bad_nodes in (
        ([(first[0], _h(b"\x00other"))] + leaves[1:], nodes),
        (leaves, nodes[1:]),
        (leaves, [(nodes[0][0], nodes[0][1], _h(b"x"))] + nodes[1:]),
        (leaves, nodes + [nodes[-1]]),
        (leaves[1:], nodes),
    ):
        try:
            assert independent_root(bad_leaves, bad_nodes, size) != root
        except ValueError:
            pass


# ---------------------------------------------------------------- any tree, any cited set


def _tree(n: int) -> tuple[duckdb.DuckDBPyConnection, list[bytes]]:
    """A ledger_nodes table of n leaves (every complete node), as origine stores it."""
    con = duckdb.connect()
    con.execute("CREATE TABLE ledger_nodes (level INTEGER, idx BIGINT, hash BLOB)")
    leaves = [_h(b"\x00" + str(i).encode()) for i in range(n)]
    rows, level, lv = [], leaves, 0
    while level:
        rows += [(lv, i, h) for i, h in enumerate(level)]
        level = [_h(b"\x01" + level[2 * i] + level[2 * i + 1]) for i in range(len(level) // 2)]
        lv += 1
    con.executemany("INSERT INTO ledger_nodes VALUES (?, ?, ?)", rows)
    return con, leaves


def _mth(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return _h(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:]))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_batch_proof_of_any_cited_set_gives_the_rfc9162_root(data) -> None:
    """origine's proof (computed set-wise from the stored nodes of a larger, later tree)
    is what the independent verifier needs, no more: the root of the tree at the
    proven size, and one node fewer breaks it."""
    from origine.ledger import batch_proof

    size = data.draw(st.integers(1, 300), label="size")
    grown = data.draw(st.integers(0, 40), label="appended since")
    cited = sorted(data.draw(st.sets(st.integers(0, size - 1), min_size=1), label="cited"))
    con, leaves = _tree(size + grown)
    con.execute("CREATE TEMP TABLE c AS SELECT unnest(?::BIGINT[]) AS seq", [cited])
    count = batch_proof.compute(con, "c", size)
    nodes = [(int(a), int(b), bytes(h)) for a, b, h in
             con.execute("SELECT level, idx, hash FROM _batch_proof ORDER BY level, idx").fetchall()]
    assert count == len(nodes)
    root = _mth(leaves[:size])
    mine = [(i, leaves[i]) for i in cited]
    assert independent_root(mine, nodes, size) == root
    assert batch_proof.root_from(iter(mine), lambda lv: [(i, h) for l2, i, h in nodes if l2 == lv], size) == root
    if nodes:
        with pytest.raises(ValueError):
            independent_root(mine, nodes[1:], size)
        with pytest.raises(batch_proof.BatchProofError):
            batch_proof.root_from(iter(mine), lambda lv: [(i, h) for l2, i, h in nodes[1:] if l2 == lv], size)
