"""Benchmark: N deliveries ingested through Dagster on 1 worker process, then on 2.

Runs it the way production does: each delivery is a partition of ``deliveries`` and
one ``ingest_delivery`` run, submitted to the instance's run queue (what the landing
sensor does); the Dagster daemon dequeues them and the default run launcher starts
each run in its own process, whose multiprocess executor runs the steps. "P
processes" means: at most P runs at once (``concurrency.runs.max_concurrent_runs``)
and, inside each run, one step at a time (multiprocess executor ``max_concurrent: 1``),
so at most P step processes work at any moment. The commit step stays serialized
by the ``warehouse`` pool (limit 1) in both cases. On Kubernetes or Celery the same
runs and steps go to pods or workers instead of local processes.

Each configuration starts on a fresh home with the same hashing key. Deliveries are
generated with the SQL of ``bench/ingest.py`` (distinct rows per delivery), all runs
are queued before the daemon starts, and the wall time runs from the first run's
start to the last run's end as recorded by Dagster (queue waits between runs
included). Afterwards ``origine ledger check`` must be ok on both homes and both
ledgers must hold the same events (same multiset of RFC 9162 leaf hashes; the tree
root may differ only because parallel commits can land in another order).

    .venv/bin/python bench/partitions.py --deliveries 4 --rows 250000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY = "ab" * 32


def _generate_sql() -> str:
    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "ingest.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.GENERATE


def generate(root: Path, deliveries: int, rows: int) -> list[Path]:
    """``deliveries`` folders of ``rows`` rows each, with distinct row numbers (so distinct numbers)."""
    sql = _generate_sql()
    con = duckdb.connect()
    paths = []
    for n in range(deliveries):
        folder = root / f"B-{n + 1}"
        folder.mkdir(parents=True)
        # GENERATE reads `range({rows})`; "start, stop" gives each delivery its own rows.
        con.execute(sql.format(rows=f"{n * rows}, {(n + 1) * rows}", path=folder / "contacts.csv"))
        (folder / "manifest.yaml").write_text(
            f"delivery_id: B-{n + 1}\nvendor: bench\nrecipient: party-a\n"
            "delivered_at: 2024-06-05T09:00:00+02:00\ncountry: FR\ntimezone: Europe/Paris\n"
            "files: [{path: contacts.csv}]\n"
        )
        paths.append(folder)
    con.close()
    return paths


class TreeSampler(threading.Thread):
    """Peak RSS of a process tree, sampled from /proc every 0.2 s: total and largest process."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.peak_total_kib = 0
        self.peak_single_kib = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            rss = [self._rss(pid) for pid in self._tree()]
            self.peak_total_kib = max(self.peak_total_kib, sum(rss))
            self.peak_single_kib = max([self.peak_single_kib, *rss])

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


@dataclass
class Outcome:
    processes: int
    wall_s: float
    daemon_s: float
    rows: int
    peak_total_mib: float
    peak_single_mib: float
    statuses: list[str]
    check: dict
    home: Path


def run_config(processes: int, home_root: Path, deliveries: list[Path], rows: int,
               start_method: str = "spawn") -> Outcome:
    import dagster as dg

    from origine.home import Home
    from origine.manifest import partition_key, peek_identity

    home = Home(home_root).ensure()
    env = dict(os.environ, ORIGINE_HOME=str(home.root), DAGSTER_HOME=str(home.dagster),
               ORIGINE_HASH_KEY=KEY)
    env.pop("ORIGINE_DAGSTER_PG_URL", None)
    config_path = home.dagster / "dagster.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("concurrency", {})["runs"] = {"max_concurrent_runs": processes}
    config["run_queue"] = {"dequeue_interval_seconds": 1}
    config_path.write_text("# origine bench/partitions.py\n" + yaml.safe_dump(config))

    os.environ.update(DAGSTER_HOME=env["DAGSTER_HOME"], ORIGINE_HOME=env["ORIGINE_HOME"])
    keys = [partition_key(*peek_identity(d)) for d in deliveries]
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("deliveries", keys)
    workspace = ["-w", str(REPO / "workspace.yaml")]
    for key, delivery in zip(keys, deliveries):
        run_config = {
            "ops": {"delivery_segment": {"config": {"path": str(delivery)}}},
            "execution": {"config": {"multiprocess": {"max_concurrent": 1}}},
        }
        if start_method == "forkserver":  # step processes forked from one that already imported the code
            run_config["execution"]["config"]["multiprocess"]["start_method"] = {
                "forkserver": {"preload_modules": ["pipelines.definitions"]}
            }
        subprocess.run(
            [str(BIN / "dagster"), "job", "launch", *workspace, "-j", "ingest_delivery",
             "--config-json", json.dumps(run_config),
             "--tags", json.dumps({"dagster/partition": key, "origine/source": "bench"})],
            env=env, cwd=REPO, check=True, capture_output=True,
        )
    log = open(home.root / "daemon.log", "w")
    started = time.time()
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", *workspace], env=env, cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sampler = TreeSampler(daemon.pid)
    sampler.start()
    try:
        with dg.DagsterInstance.get() as instance:
            while True:
                records = instance.get_run_records(dg.RunsFilter(job_name="ingest_delivery"))
                if len(records) == len(keys) and all(r.dagster_run.is_finished for r in records):
                    break
                if daemon.poll() is not None:
                    sys.exit(f"dagster-daemon exited; see {home.root / 'daemon.log'}")
                time.sleep(0.5)
    finally:
        sampler.stop()
        os.killpg(daemon.pid, signal.SIGTERM)  # the daemon's own session: it and its code server
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
    first = min(r.start_time for r in records)
    last = max(r.end_time for r in records)
    check = subprocess.run([sys.executable, "-m", "origine.cli", "ledger", "check", "--home", str(home.root),
                            "--json"], env=env, cwd=REPO, capture_output=True, text=True)
    return Outcome(
        processes=processes, wall_s=last - first, daemon_s=last - started, rows=rows * len(keys),
        peak_total_mib=sampler.peak_total_kib / 1024, peak_single_mib=sampler.peak_single_kib / 1024,
        statuses=sorted(r.dagster_run.status.value for r in records),
        check=json.loads(check.stdout) if check.returncode == 0 else {"ok": False, "error": check.stderr[-500:]},
        home=home.root,
    )


def ledger_digest(warehouse: Path) -> tuple[int, str, str]:
    """(events, SHA-256 over the sorted leaf hashes, current root) of a home's ledger."""
    con = duckdb.connect(str(warehouse), read_only=True)
    events, digest = con.execute(
        "SELECT count(*), sha256(string_agg(hex(leaf_hash), '' ORDER BY leaf_hash)) FROM ledger_events"
    ).fetchone()
    root = con.execute("SELECT root_hash FROM tree_heads ORDER BY tree_size DESC, recorded_at DESC LIMIT 1").fetchone()
    con.close()
    return events, digest, root[0] if root else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=4)
    parser.add_argument("--rows", type=int, default=250_000, help="rows per delivery")
    parser.add_argument("--processes", default="1,2", help="configurations to compare, e.g. 1,2")
    parser.add_argument("--start-method", choices=["spawn", "forkserver"], default="spawn",
                        help="how the multiprocess executor starts step processes (Dagster's default: spawn)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and homes")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="origine-bench-partitions-"))
    try:
        t0 = time.perf_counter()
        deliveries = generate(tmp / "deliveries", args.deliveries, args.rows)
        print(f"generated {args.deliveries} deliveries x {args.rows:,} rows in {time.perf_counter() - t0:.1f}s "
              f"({os.cpu_count()} CPUs; step processes: {args.start_method})")
        outcomes = []
        for p in (int(x) for x in args.processes.split(",")):
            outcome = run_config(p, tmp / f"home-{p}", deliveries, args.rows, args.start_method)
            outcomes.append(outcome)
            print(f"{p} process{'es' if p > 1 else '  '}: {outcome.wall_s:7.1f}s first run start -> last run end "
                  f"({outcome.daemon_s:.1f}s from daemon start)  {outcome.rows / outcome.wall_s:9,.0f} rows/s  "
                  f"peak RSS {outcome.peak_total_mib:,.0f} MiB total, {outcome.peak_single_mib:,.0f} MiB largest process  "
                  f"runs {outcome.statuses}  ledger check ok={outcome.check.get('ok')}")
        base = outcomes[0]
        for o in outcomes[1:]:
            print(f"speed-up {o.processes} processes over {base.processes}: {base.wall_s / o.wall_s:.2f}x")
        digests = [ledger_digest(o.home / "warehouse.duckdb") for o in outcomes]
        for o, (events, digest, root) in zip(outcomes, digests):
            print(f"ledger ({o.processes}): {events:,} events, leaf-set sha256 {digest[:16]}..., root {root[:16]}...")
        same = len({(e, d) for e, d, _ in digests}) == 1
        print(f"same ledger content (events as a set of leaves): {'yes' if same else 'NO'}; "
              f"same root: {'yes' if len({r for *_, r in digests}) == 1 else 'no (commit order differs)'}")
        if not same or not all(o.check.get("ok") for o in outcomes):
            sys.exit(1)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
