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

``--executor in_process`` runs each run's steps inside its run process instead.
``--executor celery --workers 1,2`` (needs ``origine[celery]`` and ``redis-server``, or
``--broker URL``) measures the same deliveries on 1 then 2 Celery workers of one process
each (``pipelines/celery_worker.py``), every run queued at once so that the workers are
the limit, beside the in-process executor with ``--processes`` runs at once, all in the
same invocation:

    .venv/bin/python bench/partitions.py --executor celery --processes 1,2 --workers 1,2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def __init__(self, *root_pids: int) -> None:
        super().__init__(daemon=True)
        self.root_pids = list(root_pids)
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
        found, todo = [], list(self.root_pids)
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
    executor: str = "multiprocess"
    steps_by_worker: dict[str, int] | None = None

    @property
    def label(self) -> str:
        if self.executor == "celery":
            return f"celery, {self.processes} worker{'s' if self.processes > 1 else ' '}"
        return f"{self.executor}, {self.processes} process{'es' if self.processes > 1 else '  '}"


def prepare_home(home_root: Path, max_runs: int, **extra_env: str) -> tuple[Any, dict[str, str]]:
    """A fresh home whose instance runs at most ``max_runs`` runs at once; its environment.

    Also points this process's ``DAGSTER_HOME`` / ``ORIGINE_HOME`` (and ``extra_env``) at it:
    runs are created from here and read back from its instance.
    """
    from origine.home import Home

    home = Home(home_root).ensure()
    env = dict(os.environ, ORIGINE_HOME=str(home.root), DAGSTER_HOME=str(home.dagster),
               ORIGINE_HASH_KEY=KEY, **extra_env)
    env.pop("ORIGINE_DAGSTER_PG_URL", None)
    config_path = home.dagster / "dagster.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("concurrency", {})["runs"] = {"max_concurrent_runs": max_runs}
    config["run_queue"] = {"dequeue_interval_seconds": 1}
    config_path.write_text("# origine bench/partitions.py\n" + yaml.safe_dump(config))
    os.environ.update(DAGSTER_HOME=env["DAGSTER_HOME"], ORIGINE_HOME=env["ORIGINE_HOME"], **extra_env)
    from pipelines.runs import open_instance

    # The SQLite storages exist before the daemon, the code server and the workers, started
    # side by side, would each create them (two alembic heads, then no process can open them).
    open_instance(home).dispose()
    return home, env


def execution_config(executor: str, start_method: str = "spawn") -> dict | None:
    """The ``execution`` run config of one configuration (see pipelines/executor.py); None
    for ``default``: no execution config, like the landing sensor's runs."""
    if executor == "default":
        return None
    if executor == "celery":
        # the URLs stay in the environment of every process, by name in the run config
        from pipelines.executor import BROKER_ENV

        return {"config": {"celery": {"broker": {"env": BROKER_ENV}, "backend": {"env": BROKER_ENV}}}}
    if executor == "in_process":
        return {"config": {"in_process": {}}}
    multiprocess: dict = {"max_concurrent": 1}
    if start_method == "forkserver":  # step processes forked from one that already imported the code
        multiprocess["start_method"] = {"forkserver": {"preload_modules": ["pipelines.definitions"]}}
    return {"config": {"multiprocess": multiprocess}}


class RunQueue:
    """Queues ``ingest_delivery`` runs the way the landing sensor does (a partition each), the
    code location loaded once for all of them: ``with RunQueue() as q: q.queue(deliveries, execution)``.

    Uses Dagster's private CLI helpers (what ``dagster job launch`` does) so that a run costs
    no new process; ``DAGSTER_HOME`` must point at the home.
    """

    def __enter__(self) -> "RunQueue":
        import dagster as dg
        from dagster._cli.workspace.cli_target import (
            get_code_location_from_workspace,
            get_remote_job_from_remote_repo,
            get_remote_repository_from_code_location,
            get_workspace_from_cli_opts,
        )
        from dagster_shared.cli import WorkspaceOpts

        self._instance_cm = dg.DagsterInstance.get()
        self.instance = self._instance_cm.__enter__()
        self._workspace_cm = get_workspace_from_cli_opts(
            self.instance, version=dg.__version__,
            workspace_opts=WorkspaceOpts(workspace=[str(REPO / "workspace.yaml")]),
        )
        self.workspace = self._workspace_cm.__enter__()
        self.location = get_code_location_from_workspace(self.workspace, None)
        self.repo = get_remote_repository_from_code_location(self.location, None)
        self.job = get_remote_job_from_remote_repo(self.repo, "ingest_delivery")
        return self

    def __exit__(self, *exc: object) -> None:
        self._workspace_cm.__exit__(*exc)
        self._instance_cm.__exit__(*exc)

    def queue(self, deliveries: list[Path], execution: dict | None) -> list[str]:
        """Add the deliveries' partitions and queue one run each; their partition keys."""
        from dagster._cli.job import _create_run

        from origine.manifest import partition_key, peek_identity

        keys = [partition_key(*peek_identity(d)) for d in deliveries]
        new = [k for k in keys if not self.instance.has_dynamic_partition("deliveries", k)]
        if new:
            self.instance.add_dynamic_partitions("deliveries", new)
        for key, delivery in zip(keys, deliveries):
            run = _create_run(
                instance=self.instance, code_location=self.location, remote_repo=self.repo,
                remote_job=self.job,
                run_config={"ops": {"delivery_segment": {"config": {"path": str(delivery)}}},
                            **({"execution": execution} if execution is not None else {})},
                tags={"dagster/partition": key, "origine/source": "bench"},
                op_selection=None, run_id=None,
            )
            self.instance.submit_run(run.run_id, self.workspace)
        return keys


class Daemon:
    """``dagster-daemon run`` in its own session (it and its code server), its output in ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "w")
        self.log_path = log
        self.started = time.time()
        self.process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env=env, cwd=REPO,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def wait_runs(daemon: Daemon, count: int, *, timeout: float = 3600) -> list[Any]:
    """The ``ingest_delivery`` run records once ``count`` runs are finished."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.get() as instance:
        while True:
            records = instance.get_run_records(dg.RunsFilter(job_name="ingest_delivery"))
            if sum(r.dagster_run.is_finished for r in records) >= count:
                return records
            if daemon.process.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited; see {daemon.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} runs not finished in {timeout:.0f}s; see {daemon.log_path}")
            time.sleep(0.5)


class CeleryWorkers:
    """Celery workers (``celery -A pipelines.celery_worker worker``, one step at a time each),
    every one a process group of its own, named ``w1@<host>``, ``w2@<host>``…"""

    def __init__(self, env: dict[str, str], count: int, logs: Path) -> None:
        from pipelines.executor import BROKER_ENV

        self.broker = env[BROKER_ENV]
        host = socket.gethostname()
        self.names = [f"w{i + 1}@{host}" for i in range(count)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            with open(logs / f"{name.split('@')[0]}.log", "wb") as log:
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "pipelines.celery_worker", "worker",
                     "--concurrency", "1", "--hostname", name, "--loglevel", "INFO",
                     "--without-gossip", "--without-mingle"],
                    env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )

    def _app(self) -> Any:
        from celery import Celery

        return Celery(broker=self.broker, backend=self.broker)

    def wait_ready(self, timeout: float = 180) -> None:
        """Return once every worker answers a ping."""
        app = self._app()
        deadline = time.monotonic() + timeout
        waiting = set(self.names)
        while waiting:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"Celery worker {name} exited with status {process.returncode}")
            for reply in app.control.ping(destination=sorted(waiting), timeout=1.0) or []:
                waiting -= set(reply)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"Celery workers not ready after {timeout:.0f}s: {sorted(waiting)}")
        app.close()

    def kill(self, name: str) -> None:
        """SIGKILL a worker and its pool processes (what an OOM kill or a lost machine does)."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def stop(self) -> None:
        """End every worker (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(name)


def steps_by_worker(run_ids: list[str]) -> dict[str, int]:
    """How many steps of these runs each Celery worker ran (from the runs' engine events)."""
    import dagster as dg

    counts: dict[str, int] = {}
    with dg.DagsterInstance.get() as instance:
        for run_id in run_ids:
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                data = record.dagster_event.engine_event_data if record.dagster_event else None
                entry = data.metadata.get("Celery worker") if data and data.metadata else None
                if entry is not None:
                    counts[entry.value] = counts.get(entry.value, 0) + 1
    return counts


def run_config(processes: int, home_root: Path, deliveries: list[Path], rows: int,
               start_method: str = "spawn", executor: str = "default",
               broker: str | None = None) -> Outcome:
    """One configuration on a fresh home: ``processes`` runs at once (``multiprocess``: one step
    process at a time each; ``in_process``: steps inside the run process) or, for ``celery``,
    ``processes`` Celery workers of one process each and every run queued at once; ``default``
    (what callers other than ``main`` get): no execution config, as the landing sensor's runs."""
    from pipelines.executor import BROKER_ENV

    extra = {BROKER_ENV: broker} if executor == "celery" and broker else {}
    max_runs = len(deliveries) if executor == "celery" else processes
    home, env = prepare_home(home_root, max_runs, **extra)
    workers = CeleryWorkers(env, processes, home.root / "workers") if executor == "celery" else None
    try:
        with RunQueue() as runs:  # while the workers start
            if workers:
                workers.wait_ready()
            keys = runs.queue(deliveries, execution_config(executor, start_method))
        daemon = Daemon(env, home.root / "daemon.log")
        sampler = TreeSampler(daemon.process.pid, *(p.pid for p in (workers.processes.values() if workers else [])))
        sampler.start()
        try:
            records = wait_runs(daemon, len(keys))
        finally:
            sampler.stop()
            daemon.stop()
    finally:
        if workers:
            workers.stop()
    first = min(r.start_time for r in records)
    last = max(r.end_time for r in records)
    check = subprocess.run([sys.executable, "-m", "pipelines.cli", "ledger", "check", "--home", str(home.root),
                            "--json"], env=env, cwd=REPO, capture_output=True, text=True)
    return Outcome(
        processes=processes, wall_s=last - first, daemon_s=last - daemon.started, rows=rows * len(keys),
        peak_total_mib=sampler.peak_total_kib / 1024, peak_single_mib=sampler.peak_single_kib / 1024,
        statuses=sorted(r.dagster_run.status.value for r in records),
        check=json.loads(check.stdout) if check.returncode == 0 else {"ok": False, "error": check.stderr[-500:]},
        home=home.root, executor=executor,
        steps_by_worker=steps_by_worker([r.dagster_run.run_id for r in records]) if workers else None,
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
    parser.add_argument("--executor", choices=["multiprocess", "in_process", "celery", "default"], default="multiprocess",
                        help="how steps run; celery also measures in_process (--processes) beside it; "
                             "default: no execution config, the job's default (forkserver multiprocess)")
    parser.add_argument("--processes", default="1,2", help="runs at once to compare, e.g. 1,2")
    parser.add_argument("--workers", default="1,2", help="with --executor celery: Celery workers to compare")
    parser.add_argument("--broker", help="with --executor celery: a Redis URL (default: start redis-server here)")
    parser.add_argument("--start-method", choices=["spawn", "forkserver"], default="spawn",
                        help="how the multiprocess executor starts step processes (Dagster's default: spawn)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and homes")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    configs: list[tuple[str, int]] = []
    if args.executor == "celery":
        configs += [("in_process", int(p)) for p in args.processes.split(",")]
        configs += [("celery", int(w)) for w in args.workers.split(",")]
    else:
        configs += [(args.executor, int(p)) for p in args.processes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="origine-bench-partitions-"))
    redis = None
    try:
        broker = args.broker
        if args.executor == "celery" and not broker:
            from tests import redis_server

            redis = redis_server.start()
            broker = redis.url
        t0 = time.perf_counter()
        deliveries = generate(tmp / "deliveries", args.deliveries, args.rows)
        print(f"generated {args.deliveries} deliveries x {args.rows:,} rows in {time.perf_counter() - t0:.1f}s "
              f"({os.cpu_count()} CPUs; multiprocess step processes: {args.start_method})")
        outcomes = []
        for executor, p in configs:
            outcome = run_config(p, tmp / f"home-{executor}-{p}", deliveries, args.rows, args.start_method,
                                 executor=executor, broker=broker)
            outcomes.append(outcome)
            print(f"{outcome.label}: {outcome.wall_s:7.1f}s first run start -> last run end "
                  f"({outcome.daemon_s:.1f}s from daemon start)  {outcome.rows / outcome.wall_s:9,.0f} rows/s  "
                  f"peak RSS {outcome.peak_total_mib:,.0f} MiB total, {outcome.peak_single_mib:,.0f} MiB largest process  "
                  f"runs {outcome.statuses}  ledger check ok={outcome.check.get('ok')}"
                  + (f"  steps per worker {outcome.steps_by_worker}" if outcome.steps_by_worker else ""))
        base = outcomes[0]
        for o in outcomes[1:]:
            print(f"speed-up of {o.label.strip()} over {base.label.strip()}: {base.wall_s / o.wall_s:.2f}x")
        digests = [ledger_digest(o.home / "warehouse.duckdb") for o in outcomes]
        for o, (events, digest, root) in zip(outcomes, digests):
            print(f"ledger ({o.label.strip()}): {events:,} events, leaf-set sha256 {digest[:16]}..., root {root[:16]}...")
        same = len({(e, d) for e, d, _ in digests}) == 1
        print(f"same ledger content (events as a set of leaves): {'yes' if same else 'NO'}; "
              f"same root: {'yes' if len({r for *_, r in digests}) == 1 else 'no (commit order differs)'}")
        if not same or not all(o.check.get("ok") for o in outcomes):
            sys.exit(1)
    finally:
        if redis is not None:
            redis.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
