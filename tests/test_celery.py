"""``ingest_delivery`` on Dagster's Celery executor: a real Redis broker, two Celery workers
as separate processes, runs queued like the landing sensor queues them and launched by
a real ``dagster-daemon``.

Needs ``redis-server`` and the ``origine[celery]`` extra; skipped, saying why, without
them. ``.ci/run`` installs Redis and sets ``ORIGINE_TEST_REQUIRE_REDIS=1``, which turns
the skip into a failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from origine.home import Home
from pipelines.executor import BROKER_ENV, celery_available
from tests import redis_server
from tests.conftest import TEST_KEY_HEX
from tests.processes import (
    bench_module,
    ingest_here,
    ledger_check_ok,
    ledger_state,
    reference_state,
    write_delivery,
)



def _unavailable(reason: str) -> None:
    if os.environ.get("ORIGINE_TEST_REQUIRE_REDIS") == "1":
        pytest.fail(f"ORIGINE_TEST_REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis():
    if not celery_available():
        _unavailable("dagster-celery is not installed (pip install -e '.[celery]')")
    try:
        server = redis_server.start()
    except redis_server.Unavailable as exc:
        _unavailable(f"no Redis server could be started: {exc}")
    yield server
    server.stop()


class _Control:
    """What ``app.control.ping`` answers: one reply per live worker among those asked."""

    def __init__(self) -> None:
        self.alive: set[str] = set()
        self.pings = 0

    def ping(self, destination: list[str], timeout: float) -> list[dict[str, dict[str, str]]]:
        self.pings += 1
        return [{name: {"ok": "pong"}} for name in destination if name in self.alive]


class _App:
    def __init__(self) -> None:
        self.control = _Control()


def test_a_worker_is_dead_only_after_several_unanswered_pings_in_a_row() -> None:
    from pipelines.executor import WorkerWatch

    now = [0.0]
    app = _App()
    watch = WorkerWatch(interval=3.0, misses=3, clock=lambda: now[0])
    app.control.alive.add("w1@h")
    assert not watch.dead(app, "w1@h")
    app.control.alive.clear()
    for _ in range(2):  # two misses, then an answer: the count starts again
        now[0] += 3.0
        assert not watch.dead(app, "w1@h")
    app.control.alive.add("w1@h")
    now[0] += 3.0
    assert not watch.dead(app, "w1@h")
    app.control.alive.clear()
    pings = app.control.pings
    assert not watch.dead(app, "w1@h") and app.control.pings == pings  # not asked again within the interval
    for n in range(3):
        now[0] += 3.0
        assert watch.dead(app, "w1@h") is (n == 2)


def test_celery_is_the_default_executor_when_a_broker_is_configured(monkeypatch) -> None:
    """The landing sensor's runs carry no execution config: with the broker variable set
    where the code location loads, they go to the workers; the URL is never copied into
    the run config, only the variable's name."""
    from pipelines import executor

    if not celery_available():
        _unavailable("dagster-celery is not installed (pip install -e '.[celery]')")
    monkeypatch.delenv(BROKER_ENV, raising=False)
    monkeypatch.delenv(executor.BACKEND_ENV, raising=False)
    assert executor._make_executor_def().config_schema.as_field().default_value == {
        "multiprocess": {"start_method": executor.FORKSERVER}
    }
    monkeypatch.setenv(BROKER_ENV, "redis://:s3cret@broker.internal:6379/0")
    default = executor._make_executor_def().config_schema.as_field().default_value
    assert default == {"celery": {"broker": {"env": BROKER_ENV}, "backend": {"env": BROKER_ENV}}}
    monkeypatch.setenv(executor.BACKEND_ENV, "redis://backend.internal:6379/1")
    default = executor._make_executor_def().config_schema.as_field().default_value
    assert default["celery"]["backend"] == {"env": executor.BACKEND_ENV}


def _commit_order(home: Home) -> list[str]:
    """Delivery ids in the order their events entered the ledger."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT delivery_id FROM ledger_events GROUP BY delivery_id ORDER BY min(seq)").fetchall()]
    finally:
        con.close()


def _step_spans(run_ids: list[str], step_key: str) -> list[tuple[float, float]]:
    """(start, end) times of ``step_key`` in each run, as the workers recorded them."""
    spans = []
    with dg.DagsterInstance.get() as instance:
        for run_id in run_ids:
            times: dict[str, float] = {}
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                if event is not None and event.step_key == step_key and event.event_type_value in (
                    "STEP_START", "STEP_SUCCESS", "STEP_FAILURE"
                ):
                    times[event.event_type_value] = record.timestamp
            spans.append((times["STEP_START"], times.get("STEP_SUCCESS", times.get("STEP_FAILURE", 0.0))))
    return spans


def _worker_of(run_id: str, step_key: str) -> str | None:
    """The Celery worker that took ``step_key`` of the run, once it has."""
    with dg.DagsterInstance.get() as instance:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event
            data = event.engine_event_data if event is not None else None
            if event is not None and event.step_key == step_key and data and "Celery worker" in data.metadata:
                return data.metadata["Celery worker"].value
    return None


def _newest_run(keys: list[str]) -> Any:
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="ingest_delivery", tags={"dagster/partition": keys}))
    return records[0].dagster_run if records else None


def _failure_text(run_id: str) -> str:
    with dg.DagsterInstance.get() as instance:
        return "\n".join(
            str(r.dagster_event.event_specific_data) for r in instance.all_logs(run_id)
            if r.dagster_event is not None and r.dagster_event.is_failure
        )


def _logs(*paths: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-2500:] for p in paths if p.exists())


@pytest.mark.slow
def test_celery_workers_run_deliveries_and_a_killed_worker_leaves_no_half_delivery(
    key, tmp_path, monkeypatch, redis
) -> None:
    """Four deliveries on two workers give the ledger of serial ingests in one valid order
    (commits never overlap: the `warehouse` pool holds across workers), and both workers
    work. Then a worker SIGKILLed while it commits a delivery: the run fails (the executor
    sees the worker stopped answering) and frees the pool slot, the ledger holds none of
    the delivery (or all of it), and a new run of that partition completes on the other
    worker."""
    partitions = bench_module("partitions")
    small = [write_delivery(tmp_path / "in", f"C-{n}", 1500, seed=40 + n) for n in range(1, 5)]
    big = write_delivery(tmp_path / "in", "C-5", 40_000, seed=45)  # a commit long enough to be killed in
    for name in ("DAGSTER_HOME", "ORIGINE_HOME", BROKER_ENV):  # prepare_home points them at its home
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setattr(partitions, "KEY", TEST_KEY_HEX)
    home, env = partitions.prepare_home(tmp_path / "celery-home", 4, **{BROKER_ENV: redis.url})
    home = Home(home.root)
    logs = tmp_path / "logs"
    workers = partitions.CeleryWorkers(env, 2, logs)
    daemon = None
    try:
        daemon = partitions.Daemon(env, logs / "daemon.log")  # workers, daemon and code location start side by side
        with partitions.RunQueue() as runs:
            workers.wait_ready()
            celery = partitions.execution_config("celery")
            runs.queue(small, celery)
            records = partitions.wait_runs(daemon, 4, timeout=240)
            diagnostics = "\n".join(_failure_text(r.dagster_run.run_id)[-3000:] for r in records)
            assert sorted(r.dagster_run.status.value for r in records) == ["SUCCESS"] * 4, diagnostics
            run_ids = [r.dagster_run.run_id for r in records]

            # both workers took steps, and no two commits ever ran at once
            assert set(partitions.steps_by_worker(run_ids)) == set(workers.names), diagnostics
            commits = sorted(_step_spans(run_ids, "warehouse_delivery"))
            assert all(end <= next_start for (_, end), (next_start, _) in zip(commits, commits[1:])), commits

            # the ledger of serial ingests, in the order the commits landed
            order = _commit_order(home)
            assert sorted(order) == sorted(d.name for d in small)
            by_id = {d.name: d for d in small}
            serial = reference_state(tmp_path / "ref", [by_id[i] for i in order])
            state = ledger_state(home)
            assert state.same_content(serial)
            assert (state.heads, state.head, state.nodes) == (serial.heads, serial.head, serial.nodes)
            ledger_check_ok(home)

            # a worker killed while it commits a delivery
            (big_key,) = runs.queue([big], celery)
            deadline = time.monotonic() + 120
            run = victim = None
            while victim is None:
                assert time.monotonic() < deadline, "no worker took the big delivery's commit"
                run = _newest_run([big_key])
                victim = _worker_of(run.run_id, "warehouse_delivery") if run is not None else None
                time.sleep(0.05)
            workers.kill(victim)
            records = partitions.wait_runs(daemon, 5, timeout=180)
            failed = next(r.dagster_run for r in records if r.dagster_run.run_id == run.run_id)
            assert failed.status.value == "FAILURE", _logs(logs / "daemon.log")
            assert "stopped answering" in _failure_text(failed.run_id)
            with dg.DagsterInstance.get() as instance:  # the lost commit's pool slot is free again
                assert instance.event_log_storage.get_concurrency_info("warehouse").active_slot_count == 0
            after_kill = ledger_state(home)
            ledger_check_ok(home)

            # the rerun (on the surviving worker) runs while the serial reference is built
            runs.queue([big], celery)
            ingest_here(Home(tmp_path / "ref"), big)  # the serial home, one more delivery
            serial = ledger_state(Home(tmp_path / "ref"))
            # no half delivery: the big one is not there at all (or, had the kill come after
            # the transaction committed, all of it)
            assert (after_kill.same_content(state) and after_kill.head == state.head) or (
                after_kill.same_content(serial) and after_kill.head == serial.head
            )
            records = partitions.wait_runs(daemon, 6, timeout=180)
            rerun = _newest_run([big_key])
            assert rerun.status.value == "SUCCESS", _logs(logs / "daemon.log", *sorted(logs.glob("w*.log")))
            (survivor,) = set(workers.names) - {victim}
            assert set(partitions.steps_by_worker([rerun.run_id])) == {survivor}
            final = ledger_state(home)
            assert final.same_content(serial)
            assert (final.heads, final.head, final.nodes) == (serial.heads, serial.head, serial.nodes)
            ledger_check_ok(home)
    finally:
        if daemon is not None:
            daemon.stop()
        workers.stop()
