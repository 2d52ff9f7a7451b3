"""The executor of ``ingest_delivery``: Dagster's multiprocess/in-process executor, plus Celery.

``execution: config:`` takes one of ``multiprocess`` (the default; step processes forked
from a forkserver that preloaded the code, see ``FORKSERVER``),
``in_process`` or ``celery`` (with the ``origine[celery]`` extra: steps are sent to
Celery workers through a broker, Redis as tested). When ``$ORIGINE_CELERY_BROKER`` is
set where the code location loads, ``celery`` becomes the default, its broker and
result backend read from the environment (``$ORIGINE_CELERY_BACKEND``, else the broker
URL), so runs the landing sensor requests go to the workers with no run config.

The ``warehouse`` pool still serializes the commit: the run's orchestrating process
claims the pool slot before it hands the commit step to a worker, whatever the
number of workers.

A worker killed outright (SIGKILL, OOM, a lost machine) never reports its task's end,
and ``dagster-celery`` would wait for it forever. This executor asks the workers
holding its started steps whether they are alive (a Celery ``ping``) and fails a step
whose worker stopped answering, freeing its pool slot: the run fails, the ledger is
untouched (the commit is one DuckDB transaction), and a new run of the partition
completes on the remaining workers.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

import dagster as dg
from dagster._core.definitions.executor_definition import multi_or_in_process_executor
from dagster._core.execution.retries import RetryMode

BROKER_ENV = "ORIGINE_CELERY_BROKER"
BACKEND_ENV = "ORIGINE_CELERY_BACKEND"

# Celery settings both sides need (the executor sends, workers run): merged into
# dagster-celery's own defaults by the executor and by pipelines.celery_worker.
CELERY_SETTINGS: dict[str, Any] = {
    # A worker reports STARTED with its name: the executor can then ask it whether it lives.
    "task_track_started": True,
    # Take a task only when a process is free (Redis only): a killed worker then holds
    # no reserved message that the broker would hand out again an hour later.
    "worker_disable_prefetch": True,
    "worker_prefetch_multiplier": 1,
    # Results are read once by the run that sent the task.
    "result_expires": 86400,
    "broker_connection_retry_on_startup": True,
}

LIVENESS_INTERVAL_S = 3.0
"""Seconds between two pings of the workers holding a run's started steps."""
LIVENESS_MISSES = 3
"""Unanswered pings in a row after which a worker is taken for dead."""
PING_TIMEOUT_S = 2.0


class WorkerLost(Exception):
    """A step's Celery worker stopped answering while it ran the step."""


def celery_available() -> bool:
    """Whether the ``origine[celery]`` extra (``dagster-celery``) is installed."""
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        return False
    return True


def celery_app_args(env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Broker, backend and settings of the workers' Celery app, from ``$ORIGINE_CELERY_BROKER``
    (and ``$ORIGINE_CELERY_BACKEND``, the broker by default)."""
    env = dict(os.environ) if env is None else env
    broker = env.get(BROKER_ENV)
    if not broker:
        raise dg.DagsterInvariantViolationError(
            f"${BROKER_ENV} is not set: a Celery worker needs the broker URL, e.g. redis://host:6379/0"
        )
    return {"broker": broker, "backend": env.get(BACKEND_ENV) or broker, "settings": dict(CELERY_SETTINGS)}


def _celery_config_field() -> dg.Field:
    if not celery_available():
        # The schema still accepts the key, so the error at run start names the extra.
        return dg.Field(dg.Permissive(), is_required=False)
    from dagster_celery import celery_executor

    return dg.Field(celery_executor.config_schema.config_type, is_required=False)


FORKSERVER: dict[str, Any] = {"forkserver": {"preload_modules": ["pipelines.definitions", "origine.stage_checks", "origine.validation.run"]}}
"""Step processes forked from one process per run that imported the code location and Great
Expectations once, instead of each importing them (Dagster's default, ``spawn``): 2 deliveries
of 20,000 rows through the daemon took 84-105 s instead of 157-165 s (bench/partitions.py).
``origine.stage_checks`` loads GX only when a check runs (the CLI's in-process runs import it
once anyway), so ``origine.validation.run`` is named here for the check steps' sake."""


def _default_config() -> dict[str, Any]:
    if os.environ.get(BROKER_ENV) and celery_available():
        # The URLs stay in the environment: the UI and the stored run config show the names.
        backend_env = BACKEND_ENV if os.environ.get(BACKEND_ENV) else BROKER_ENV
        return {"celery": {"broker": {"env": BROKER_ENV}, "backend": {"env": backend_env}}}
    return {"multiprocess": {"start_method": FORKSERVER}}


def _requirements(config: dict[str, Any]) -> list[Any]:
    if "in_process" in config:
        return []
    return list(dg.multiple_process_executor_requirements())


def _make_executor_def() -> dg.ExecutorDefinition:
    choices = dict(multi_or_in_process_executor.config_schema.config_type.fields)
    choices["celery"] = _celery_config_field()

    @dg.executor(
        name="origine_executor",
        config_schema=dg.Field(dg.Selector(choices), default_value=_default_config()),
        requirements=_requirements,
    )
    def origine_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        """``multiprocess`` / ``in_process`` (Dagster's default executor) or ``celery``."""
        config = init_context.executor_config
        if "celery" not in config:
            return multi_or_in_process_executor.executor_creation_fn(init_context)  # type: ignore[misc]
        if not celery_available():
            raise dg.DagsterInvariantViolationError(
                "execution.config.celery needs the celery extra: pip install 'origine[celery]'"
            )
        return _celery_executor(config["celery"] or {})

    return origine_executor


def _celery_executor(config: dict[str, Any]) -> dg.Executor:
    from dagster_celery.executor import CeleryExecutor, _submit_task
    from dagster_celery.core_execution_loop import core_celery_execution_loop

    class WatchedCeleryExecutor(CeleryExecutor):
        """dagster-celery's executor whose wait on a step ends when the step's worker dies."""

        def execute(self, plan_context, execution_plan):  # type: ignore[no-untyped-def]
            watch = WorkerWatch()

            def submit(app, context, step, queue, priority, known_state):  # type: ignore[no-untyped-def]
                result = _submit_task(app, context, step, queue, priority, known_state)
                return WatchedResult(result, app, watch, on_lost=lambda: _free_slot(step.key))

            def _free_slot(step_key: str) -> None:
                # Nothing runs the step any more: give its pool slot back now rather than
                # after run monitoring's delay (a lost commit would hold `warehouse`).
                plan_context.instance.event_log_storage.free_concurrency_slot_for_step(
                    plan_context.dagster_run.run_id, step_key
                )

            return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)

    settings = dict(CELERY_SETTINGS)
    settings.update(config.get("config_source") or {})
    return WatchedCeleryExecutor(
        broker=config.get("broker"),
        backend=config.get("backend"),
        include=config.get("include"),
        config_source=settings,
        retries=RetryMode.from_config(config.get("retries", {"enabled": {}})),
    )


class WorkerWatch:
    """Which workers answer a Celery ``ping``; a worker silent ``LIVENESS_MISSES`` times in a row is dead."""

    def __init__(self, *, interval: float = LIVENESS_INTERVAL_S, misses: int = LIVENESS_MISSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.misses = misses
        self._clock = clock
        self._silent: dict[str, int] = {}
        self._checked_at: dict[str, float] = {}

    def dead(self, app: Any, hostname: str) -> bool:
        """Ping ``hostname`` at most every ``interval`` s; True once it missed ``misses`` pings in a row."""
        now = self._clock()
        if now - self._checked_at.get(hostname, float("-inf")) >= self.interval:
            self._checked_at[hostname] = now
            replies = app.control.ping(destination=[hostname], timeout=PING_TIMEOUT_S)
            answered = any(hostname in reply for reply in replies or [])
            self._silent[hostname] = 0 if answered else self._silent.get(hostname, 0) + 1
        return self._silent.get(hostname, 0) >= self.misses


class WatchedResult:
    """A step's Celery ``AsyncResult`` that is also ready when its worker died (``get`` then raises)."""

    def __init__(self, result: Any, app: Any, watch: WorkerWatch, *, on_lost: Callable[[], None]) -> None:
        self._result = result
        self._app = app
        self._watch = watch
        self._on_lost = on_lost
        self._lost: Optional[str] = None

    def ready(self) -> bool:
        if self._lost is not None or self._result.ready():
            return True
        # state and info in one read: the task may finish between two reads
        meta = self._result.backend.get_task_meta(self._result.id)
        if meta.get("status") != "STARTED":
            return False  # queued (any live worker may take it) or just finished
        info = meta.get("result")
        hostname = info.get("hostname") if isinstance(info, dict) else None
        if hostname and self._watch.dead(self._app, hostname):
            self._lost = hostname
            self._on_lost()
            return True
        return False

    def get(self) -> Any:
        if self._lost is not None:
            raise WorkerLost(
                f"Celery worker {self._lost} stopped answering while it ran this step "
                f"({self._watch.misses} pings unanswered); the step did not finish"
            )
        return self._result.get()

    def revoke(self) -> None:
        self._result.revoke()


origine_executor = _make_executor_def()
