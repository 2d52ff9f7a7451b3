"""Ledger format v2's leaves as origine writes them, checked against docs/ledger-format.md
by the independent checker of test_independent_verifier.py (written from that page):
every leaf, whatever its rows hold, must parse, carry no null, and come back byte for
byte from the page's rules, so the page is complete; and the benchmark's row leaves
stay small (issue 15: median <= 256 bytes).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine import ledger
from origine.canonical import ROW_LEAF_COLUMNS
from origine.ingest import intake
from origine.errors import BadInput
from origine.home import Home
from origine.keys import HashKey
from origine.ledger.events import PAYLOAD_SQL
from tests.test_independent_verifier import check_leaves, parse_leaf
from tests.test_ledger_vectors import ROWS_SCHEMA

BENCH = Path(__file__).parent.parent / "bench" / "ingest.py"


def _bench_generator() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaves(home: Home) -> tuple[list[bytes], list[bytes], list[str]]:
    """Every leaf's bytes (recomputed from its columns), stored hash and type."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(f"SELECT {PAYLOAD_SQL}, leaf_hash, type FROM ledger_leaves ORDER BY seq").fetchall()
    finally:
        con.close()
    return [r[0].encode() for r in rows], [bytes(r[1]) for r in rows], [r[2] for r in rows]


def _sorted_keys_everywhere(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(_sorted_keys_everywhere(v) for v in value.values())
    if isinstance(value, list):
        return all(_sorted_keys_everywhere(v) for v in value)
    return True


def test_the_benchmarks_row_leaves_have_a_median_of_at_most_256_bytes(
    tmp_path: Path, home: Home, key: HashKey
) -> None:
    """A small delivery of the benchmark's rows (bench/ingest.py's generator), really
    ingested: its row leaves' median size is at most 256 bytes, and every leaf is
    canonical format v2 whose hash is the stored one."""
    delivery = _bench_generator().generate(tmp_path / "bench", 2000)
    report = intake.commit(intake.prepare(delivery, home, key), home, label="bench")
    assert report.rows_accepted > 1700  # ~8% of the generator's numbers are refused
    leaves, hashes, types = _leaves(home)
    assert types.count("row") == report.rows_accepted and types.count("delivery") == 1
    sizes = sorted(len(x) for x, t in zip(leaves, types) if t == "row")
    median, p99 = statistics.median(sizes), sizes[int(len(sizes) * 0.99) - 1]
    print(f"row leaves: {len(sizes)}, median {median} bytes, p99 {p99}, max {sizes[-1]}")
    assert median <= 256, (median, p99)
    parsed = check_leaves(leaves)
    assert all(p is not None and _sorted_keys_everywhere(p) for p in parsed)
    assert all(b"null" not in x for x in leaves)  # no claims in this delivery: no null anywhere
    assert hashes == [hashlib.sha256(b"\x00" + x).digest() for x in leaves]


def test_an_ingested_csv_with_quotes_backslashes_and_control_characters_gives_canonical_leaves(
    tmp_path: Path, home: Home, key: HashKey
) -> None:
    """Through the real readers: cells with quotes, backslashes, '/', accents, U+2028 and
    control characters (the ones to_json writes \\u00XX with uppercase hex among them)."""
    folder = tmp_path / "d"
    folder.mkdir()
    nasty = 'a"b\\c/é\u2028\x0b\x1f\x01z'
    quoted = '"' + nasty.replace('"', '""') + '"'
    (folder / "c.csv").write_bytes((
        "phone,source,consent_purposes,consent_at,consent_proof,acquired_from,opted_out_at\n"
        f"0612345678,{quoted},sondages,2024-01-02 10:11:12,{quoted},{quoted},2024-03-01\n"
        "0612345679,jeu,,,,,\n").encode())
    (folder / "manifest.yaml").write_text(
        "delivery_id: D-1\nvendor: acme\nrecipient: \"party \\\"A\\\" \\x0b/é\"\n"
        "delivered_at: 2024-06-05T09:00:00+02:00\ncountry: FR\nfiles: [c.csv]\n"
        "claims: {row_count: 2, consent_rate: 0.9, note: \"x\\x0b\\x1fy\", other: {n: null, e: []}}\n",
        encoding="utf-8")
    intake.commit(intake.prepare(folder, home, key), home, label="d")
    leaves, hashes, types = _leaves(home)
    parsed = check_leaves(leaves)
    assert types == ["delivery", "row", "row"]
    assert parsed[1] is not None and parsed[1]["source"] == nasty and parsed[1]["consent"]["proof"] == nasty
    assert parsed[1]["from"] == nasty and b"\\u000B\\u001F\\u0001" in leaves[1]
    # the claims keep the vendor's nulls and use Python's lowercase hex (docs 1.6)
    assert parsed[0] is not None and parsed[0]["claims"]["other"] == {"n": None, "e": []}
    assert b'"note":"x\\u000b\\u001fy"' in leaves[0] and parsed[0]["recipient"] == 'party "A" \x0b/é'
    assert hashes == [hashlib.sha256(b"\x00" + x).digest() for x in leaves]


# ---------------------------------------------------------------- any row content

# Every character class the escaping rules name: quotes, backslash, '/', all of
# U+0000-U+001F, U+007F-U+009F, U+2028/2029, accents, non-BMP; no lone surrogate
# (DuckDB strings are UTF-8).
_SPECIAL = ['"', "\\", "/", "\x7f", "\x85", "\u2028", "\u2029", "é", "\U0001f600", "\ufeff"] + [chr(c) for c in range(32)]
TEXT = st.text(st.one_of(st.sampled_from(_SPECIAL), st.characters(exclude_categories=("Cs",))), max_size=12)
INSTANT = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(timezone.utc))
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
              st.floats(allow_nan=False, allow_infinity=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=4))
    out = []
    for i in range(n):
        purposes = draw(st.lists(TEXT, max_size=3, unique=True))
        out.append(dict(
            subject_key=hashlib.sha256(str(i).encode()).hexdigest(),
            collected_at=draw(st.none() | INSTANT), source=draw(st.none() | TEXT), consent_purposes=purposes,
            consent_at=draw(st.none() | INSTANT), bundled_consent=draw(st.booleans()),
            consent_proof=draw(st.none() | TEXT), acquired_from=draw(st.none() | TEXT),
            opted_out_at=draw(st.none() | INSTANT), country_code=draw(st.none() | st.integers(1, 999)),
            line_type=draw(st.none() | st.sampled_from(["mobile", "fixed_line", "unknown"])),
            file=draw(st.sampled_from(["a.csv", "dir/b \"q\".csv"])), row=i + 1,
        ))
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(rows=rows(), recipient=st.none() | TEXT, claims=st.none() | st.dictionaries(TEXT, JSON_VALUE, max_size=4),
       start=st.integers(min_value=0, max_value=10 ** 6))
def test_any_rows_recipient_and_claims_give_leaves_the_spec_reproduces(
    tmp_path: Path, rows: list[dict[str, Any]], recipient: str | None, claims: dict[str, Any] | None, start: int
) -> None:
    """Whatever a row, the recipient or the claims hold, each leaf origine's SQL writes
    (ledger.delivery_leaves_queries, as the ingest commit runs it) is valid canonical
    JSON that the independent checker re-serializes to the same bytes, with sorted keys
    and no null outside the vendor's claims; its leaf hash is write_events'; the parsed
    values are the inputs."""
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ROWS_SCHEMA), parquet)
    files = [{"name": "a.csv", "rows": 9, "sha256": "0" * 64}, {"name": 'dir/b "q".csv', "rows": 1, "sha256": "f" * 64}]
    queries = ledger.delivery_leaves_queries(
        parquet, delivery_seq=start, vendor="acme", delivery_id="D-1", recipient=recipient,
        delivered_at=datetime(2024, 6, 5, 7, 0, 0, 999999, tzinfo=timezone.utc), key_id="k-0123456789abcdef",
        files=files, claims=claims, row_columns=ROW_LEAF_COLUMNS)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        payloads = [p.encode() for sql, params in queries
                    for (p,) in con.execute(f"SELECT payload FROM ({sql})", list(params)).fetchall()]
        out = tmp_path / "leaves.parquet"
        ledger.write_events(con, queries, [], out)
    finally:
        con.close()
    stored = pq.read_table(out).column("leaf_hash").to_pylist()
    assert stored == [hashlib.sha256(b"\x00" + p).digest() for p in payloads]
    # the delivery leaf is seq `start`, its row leaves follow (check_leaves' evidence
    # rule is tested on whole ledgers elsewhere: here each leaf's own bytes)
    parsed = [parse_leaf(start + i, p) for i, p in enumerate(payloads)]
    delivery, row_leaves = parsed[0], parsed[1:]
    assert delivery is not None and delivery.get("recipient") == recipient and delivery["at"] == 1717570800
    assert delivery.get("claims") == (claims or None) and delivery["files"] == files
    for value, row, data in zip(row_leaves, rows, payloads[1:]):
        # parse_leaf refused any null, empty object or list outside the claims
        assert value is not None and _sorted_keys_everywhere(value)
        assert json.loads(data) == value
        assert value["ev"] == [start, 0 if row["file"] == "a.csv" else 1, row["row"]]
        assert value.get("source") == row["source"] and value.get("from") == row["acquired_from"]
        consent = value.get("consent", {})
        assert consent.get("proof") == row["consent_proof"] and consent.get("purposes", []) == row["consent_purposes"]
        assert consent.get("bundled", False) == row["bundled_consent"]
        for member, col in (("at", "collected_at"), ("opted_out", "opted_out_at")):
            instant = row[col]
            assert value.get(member) == (None if instant is None else int(instant.replace(microsecond=0).timestamp()))


@settings(max_examples=40, deadline=None)
@given(origin=TEXT, source=TEXT, channel=TEXT, at=INSTANT, row=st.integers(min_value=0, max_value=10 ** 12))
def test_any_event_leaf_text_gives_leaves_the_spec_reproduces(
    origin: str, source: str, channel: str, at: datetime, row: int
) -> None:
    """Event leaves (an opt-out, an erasure) with any text: canonical, RFC 3339
    microsecond instants, evidence as the page says."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        opted = ledger.flat_columns(
            type="'opted_out'", subject_key=f"'{'a' * 64}'", key_id="'k-1'", at="$1", channel="$2", origin="$3",
            evidence_kind="'suppression'", file="$4", file_sha256=f"'{'b' * 64}'", row="$5")
        erased = ledger.flat_columns(type="'erased'", at="$1", origin="$3", evidence_kind="'request'", source="$4",
                                     proof=f"'{'c' * 64}'", row="$5")
        sql = ledger.events_sql(f"SELECT {opted}, 0 AS ord UNION ALL SELECT {erased}, 1 AS ord")
        payloads = [p.encode() for (p,) in con.execute(f"SELECT payload FROM ({sql})",
                                                         [at, channel, origin, source, row]).fetchall()]
    finally:
        con.close()
    values = [parse_leaf(i, p) for i, p in enumerate(payloads)]
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert values[0] == {"at": stamp, "channel": channel, "evidence": {"file": source, "file_sha256": "b" * 64,
                         "kind": "suppression", "row": row}, "key_id": "k-1", "origin": origin,
                         "subject": "a" * 64, "type": "opted_out", "v": 2}
    assert values[1] == {"at": stamp, "evidence": {"kind": "request", "row": row}, "origin": origin,
                         "proof": "c" * 64, "source": source, "type": "erased", "v": 2}


def test_a_canonical_form_is_the_only_one_accepted() -> None:
    """The checker the page describes is strict: a leaf re-serialized another way (JSON
    of the same value) is refused, so the tests above cannot pass on bytes it merely
    parses."""
    good = b'{"cc":33,"ev":[0,0,2],"line":"fixed_line","subject":"' + b"0" * 64 + b'","type":"row","v":2}'
    parse_leaf(1, good)
    value = json.loads(good)
    for other in (json.dumps(value).encode(), json.dumps(value, separators=(",", ":")).encode().replace(b"33", b"33.0"),
                  good.replace(b"fixed_line", b"fixed\\u005fline"), good.replace(b'"v":2', b'"v":2,"at":null')):
        try:
            parse_leaf(1, other)
        except Exception as exc:  # noqa: BLE001 (BadLeaf)
            assert "canonical" in str(exc), other
        else:
            raise AssertionError(other)


@pytest.mark.parametrize(("name", "manifest", "column"), [
    ("manifest.yaml", "claims: {consent_rate: .nan}", "claims.consent_rate"),
    ("manifest.yaml", "claims: {x: [1, -.inf]}", "claims.x[1]"),
    ("manifest.yaml", 'claims: {x: "\\ud800"}', "claims.x"),
    ("manifest.yaml", 'recipient: "party \\udfff"', "recipient"),
    ("manifest.json", '"claims": {"rate": 1E400}', "claims.rate"),
    ("manifest.json", '"claims": {"\\ud800": 1}', "claims"),
])
def test_a_claim_the_leaf_cannot_write_is_bad_input_before_the_read(
    tmp_path: Path, home: Home, key: HashKey, name: str, manifest: str, column: str
) -> None:
    """A non-finite number or an unpaired surrogate in the claims or recipient passed the
    manifest check and failed the commit, after the whole read, with a traceback
    (ValueError from the delivery leaf's canonical JSON, or DuckDB's conversion error):
    now BadInput naming the manifest and the claim, and nothing is committed."""
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "c.csv").write_text("phone\n0612345678\n")
    fields = {"delivery_id": "D-1", "vendor": "acme", "delivered_at": "2024-06-05T09:00:00+02:00",
              "country": "FR", "files": ["c.csv"]}
    if name.endswith(".json"):
        text = json.dumps(fields)[:-1] + ", " + manifest + "}"
    else:
        text = "".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items()) + manifest + "\n"
    (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        intake.commit(intake.prepare(folder, home, key), home, label="d")
    assert caught.value.column == column and name in str(caught.value)
    assert not home.warehouse.exists() or _leaves(home)[0] == []
