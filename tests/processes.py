"""Helpers for the tests that run ``origine`` in real subprocesses (faults, concurrency).

Deliveries are generated with DuckDB SQL (like ``bench/ingest.py``) so a test can
ask for thousands of rows cheaply; the ledger is compared by content, not bytes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb

from origine.ingest import intake
from origine.home import Home
from origine.keys import HashKey
from tests.conftest import TEST_KEY_HEX

REPO = Path(__file__).resolve().parent.parent


def bench_module(name: str) -> Any:
    """``bench/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module

_ROWS_SQL = """
COPY (
  SELECT
    CASE WHEN i % 97 = 5 THEN 'n/a'
         ELSE '06' || lpad((({seed} * 1000003 + i * 7919) % 100000000)::VARCHAR, 8, '0') END AS phone,
    (['jeu-concours-ete-2023', 'carte-fidelite-2022', 'formulaire-devis'])[1 + (i % 3)::INT] AS source,
    (['prospection commerciale', 'propagande électorale|partenaires', 'sondages', ''])[1 + (i % 4)::INT]
        AS consent_purposes,
    strftime(TIMESTAMP '2021-01-01' + to_seconds(((i * 7 + {seed}) % 80000000)::BIGINT), '%d/%m/%Y %H:%M')
        AS consent_at
  FROM range({rows}) t(i)
) TO '{path}' (HEADER, DELIMITER ';')
"""


def write_delivery(parent: Path, delivery_id: str, rows: int, *, seed: int = 0, vendor: str = "acme") -> Path:
    """A delivery folder of ``rows`` rows (about 1% garbage) whose numbers depend on ``seed``."""
    folder = parent / delivery_id
    folder.mkdir(parents=True)
    con = duckdb.connect()
    try:
        con.execute(_ROWS_SQL.format(seed=seed, rows=rows, path=str(folder / "contacts.csv").replace("'", "''")))
    finally:
        con.close()
    (folder / "manifest.yaml").write_text(
        f"delivery_id: {delivery_id}\nvendor: {vendor}\nrecipient: party-a\n"
        "delivered_at: 2024-06-05T09:00:00+02:00\ncountry: FR\nfiles: [{path: contacts.csv}]\n"
    )
    return folder


# ---------------------------------------------------------------- running the CLI


def cli_env(home: Home, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess on ``home`` (nothing inherited from other homes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORIGINE_", "DAGSTER_"))}
    env.update(ORIGINE_HOME=str(home.root), ORIGINE_HASH_KEY=TEST_KEY_HEX, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def run_cli(home: Home, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            **popen: Any) -> subprocess.CompletedProcess[str]:
    """``origine ARGS`` in a subprocess on ``home``; its status and output."""
    return subprocess.run(
        cli_argv(*args), env=env or cli_env(home), cwd=REPO, capture_output=True, text=True,
        timeout=timeout, **popen,
    )


def start_cli(home: Home, *args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """``origine ARGS`` started in its own process group (so a kill reaches all of it)."""
    return subprocess.Popen(
        cli_argv(*args), env=env or cli_env(home), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True, **popen,
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process and anything it started; reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=30)


def wait_for(predicate: Any, *, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> Any:
    """Poll ``predicate`` every 5 ms until it is truthy (fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended (status {proc.returncode}) before {what}: {err[-2000:]}")
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def cli_here(*args: str) -> tuple[int, str, str]:
    """``origine ARGS`` in this process (no interpreter start-up: Dagster is imported once)."""
    from click.testing import CliRunner

    from pipelines.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ingest_ok(home: Home, *paths: Path) -> list[dict[str, Any]]:
    """``origine ingest PATHS --json`` (in this process) succeeds; its summaries."""
    code, out, err = cli_here("ingest", *map(str, paths), "--home", str(home.root), "--json")
    assert code == 0, err
    return json.loads(out)


def ledger_check_ok(home: Home) -> None:
    """``origine ledger check`` passes on ``home`` (every event, node and head verified)."""
    code, out, err = cli_here("ledger", "check", "--home", str(home.root), "--json")
    assert code == 0, out + err
    assert json.loads(out)["ok"] is True


def ingest_here(home: Home, *paths: Path) -> None:
    """Ingest without Dagster (prepare + commit), to set a home up quickly."""
    key = HashKey(bytes.fromhex(TEST_KEY_HEX))
    for path in paths:
        intake.commit(intake.prepare(path, home, key), home, label=str(path))


# ---------------------------------------------------------------- what the ledger holds


@dataclass
class LedgerState:
    """A warehouse's content, comparable between homes (times of ingestion and signatures aside)."""

    events: int
    heads: int
    head: tuple[int, str] | None
    deliveries: dict[tuple[str, str], tuple[int, int, int]]
    # per delivery: the multiset of its events, without seq
    content: dict[tuple[str, str], Counter[tuple[Any, ...]]] = field(default_factory=dict)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    quarantine: dict[tuple[str, str], int] = field(default_factory=dict)
    nodes: int = 0

    def same_content(self, other: "LedgerState") -> bool:
        """The same deliveries, events, rows and quarantine, in any order of commit."""
        return (self.events, self.deliveries, self.content, self.rows, self.quarantine) == (
            other.events, other.deliveries, other.content, other.rows, other.quarantine,
        )


def ledger_state(home: Home) -> LedgerState:
    """What ``home``'s warehouse holds (an empty state when it has no warehouse yet)."""
    if not home.warehouse.exists():
        return LedgerState(0, 0, None, {})
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "ledger_leaves" not in tables:
            return LedgerState(0, 0, None, {})
        events = con.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0]  # type: ignore[index]
        heads = con.execute("SELECT count(*) FROM tree_heads").fetchone()[0]  # type: ignore[index]
        head = con.execute(
            "SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size DESC, recorded_at DESC LIMIT 1"
        ).fetchone()
        deliveries = {
            (v, d): (r, a, q)
            for v, d, r, a, q in con.execute(
                "SELECT vendor, delivery_id, rows_read, rows_accepted, rows_quarantined FROM deliveries"
            ).fetchall()
        }
        content: dict[tuple[str, str], Counter[tuple[Any, ...]]] = {}
        for row in con.execute(
            "SELECT vendor, delivery_id, type, subject_key, purpose, \"at\", \"file\", \"row\", source, "
            # not the leaf hash: a row leaf names its delivery leaf's seq, which depends on
            # the order deliveries commit in
            "party_from, party_to FROM ledger_events"
        ).fetchall():
            content.setdefault((row[0], row[1]), Counter())[tuple(row[2:])] += 1
        rows = dict(con.execute(
            "SELECT vendor || '/' || delivery_id, count(*) FROM delivery_rows GROUP BY ALL").fetchall())
        quarantine = dict(con.execute(
            "SELECT vendor || '/' || delivery_id, count(*) FROM quarantine GROUP BY ALL").fetchall())
        nodes = con.execute("SELECT count(*) FROM ledger_nodes").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    return LedgerState(
        int(events), int(heads), (int(head[0]), head[1]) if head else None, deliveries, content,
        {tuple(k.split("/", 1)): v for k, v in rows.items()},  # type: ignore[misc]
        {tuple(k.split("/", 1)): v for k, v in quarantine.items()},  # type: ignore[misc]
        int(nodes),
    )


def reference_state(root: Path, deliveries: Sequence[Path]) -> LedgerState:
    """The state after ingesting ``deliveries`` one after the other, uninterrupted, in a fresh home."""
    home = Home(root).ensure()
    ingest_here(home, *deliveries)
    return ledger_state(home)


def partials(home: Home) -> list[Path]:
    """Segment folders still being written (or left by a killed run)."""
    return sorted(p for p in home.segments.glob("*/*/*") if ".partial-" in p.name)


def committed_segments(home: Home) -> list[str]:
    """The segment paths the committed deliveries point at."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return [json.loads(r[0])["segment"] for r in con.execute("SELECT report FROM deliveries").fetchall()]
    finally:
        con.close()
