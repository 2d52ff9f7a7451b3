"""lookup's index (origine.subject_index) answers exactly what the ledger_current view does:
fresh, stale after appends, after a key rotation (map index stale, then rebuilt), after erasures."""

from __future__ import annotations

import secrets

from origine import subject_index, warehouse
from origine.ingest import intake
from origine.lookup import lookup
from origine.rotation import rotate

NUMBERS = [f"+336{i:08d}" for i in range(1, 40)]


def _reference(con, subject_key: str) -> list[int]:
    return [r[0] for r in con.execute(
        "SELECT seq FROM ledger_current WHERE subject_key = ? AND erased_at IS NULL ORDER BY seq",
        [subject_key]).fetchall()]


def _same_everywhere(home, key) -> None:
    with warehouse.session(home.warehouse, read_only=True) as con:
        for number in NUMBERS + ["+33799999999"]:
            subject = key.subject_key(number)
            assert [e["seq"] for e in lookup(con, subject).events] == _reference(con, subject), number


def _deliver(home, key, make_delivery, numbers: list[str], delivery_id: str) -> None:
    rows = "phone,source,consent_purposes,consent_at\n" + "".join(
        f"{n},jeu,propagande électorale,2024-01-02\n" for n in numbers)
    intake.commit(intake.prepare(make_delivery({"c.csv": rows.encode()}, delivery_id=delivery_id), home, key),
                  home, label="test")


def test_index_answers_like_the_view(home, key, make_delivery, monkeypatch) -> None:
    _deliver(home, key, make_delivery, NUMBERS[:25], "D-1")
    _same_everywhere(home, key)  # no index: a scan
    with warehouse.session(home.warehouse) as con:
        assert subject_index.refresh(con, force=True)["rebuilt"]
    _same_everywhere(home, key)
    _deliver(home, key, make_delivery, NUMBERS[15:], "D-2")  # appended after the index: its tail
    _same_everywhere(home, key)
    layer = secrets.token_bytes(32)
    with warehouse.session(home.warehouse) as con:
        key2, _ = rotate(con, key, layer, segments=home.segments)
    monkeypatch.setenv("ORIGINE_HASH_KEY_LAYERS", layer.hex())
    _same_everywhere(home, key2)  # the map's index is older than the rotation: the map itself is read
    _deliver(home, key2, make_delivery, NUMBERS[30:], "D-3")  # today's keys beside mapped ones
    with warehouse.session(home.warehouse) as con:
        subject_index.refresh(con, force=True)
    _same_everywhere(home, key2)
    with warehouse.session(home.warehouse, read_only=True) as con:
        both = lookup(con, key2.subject_key(NUMBERS[35]))
        assert [e["delivery"] for e in both.events if e["type"] == "delivered"] == ["D-2", "D-3"]
    from origine.erasure import erase_subjects

    erase_subjects(home, [key2.subject_key(n) for n in NUMBERS[10:20]], reason="art. 17 requests batch R-7",
                   key=key2)
    _same_everywhere(home, key2)  # erased events stay in the index: re-read and dropped
    with warehouse.session(home.warehouse, read_only=True) as con:
        assert lookup(con, key2.subject_key(NUMBERS[12])).events == []


def test_runs() -> None:
    assert subject_index._runs([5, 1, 2, 3, 9, 10, 3]) == [(1, 3), (5, 5), (9, 10)]


def test_lookup_bench_runs_end_to_end() -> None:
    """bench/lookup.py stays runnable (tiny ledger): index, lookups before and after a rotation."""
    import re
    import subprocess
    import sys

    from tests.processes import REPO

    out = subprocess.run([sys.executable, str(REPO / "bench" / "lookup.py"), "--events", "20000", "--targets",
                          "2000", "--lookups", "10", "--rotate"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    # every measured lookup of a held number found its events, before and after the rotation
    assert len(re.findall(r"\(11 calls, 10 held\)", out.stdout)) == 3, out.stdout
    assert "index rebuilt" in out.stdout
