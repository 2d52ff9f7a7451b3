"""The Celery app origine's workers run: ``celery -A pipelines.celery_worker worker``.

Needs the ``origine[celery]`` extra and, in the worker's environment, what every
step needs: ``$ORIGINE_CELERY_BROKER`` (and ``$ORIGINE_CELERY_BACKEND`` if not the
broker), ``$ORIGINE_HOME`` on the folder every worker shares, the hashing key
(``$ORIGINE_HASH_KEY`` or ``$ORIGINE_HASH_KEY_FILE``, and ``$ORIGINE_HASH_KEY_LAYERS``
after rotations), and ``$ORIGINE_DAGSTER_PG_URL`` when the instance is on PostgreSQL.

Same tasks and queue as ``dagster_celery.app`` (so ``dagster-celery worker start -A
pipelines.celery_worker`` should work too; not tested), with the broker and settings of
:mod:`pipelines.executor` rather than a generated config module. The code location is
imported here, before Celery forks its pool processes, so a step's process starts with
Dagster, origine and Great Expectations already imported.
"""

from __future__ import annotations

from dagster_celery.config import DEFAULT_CONFIG
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from pipelines.executor import celery_app_args

_args = celery_app_args()
app = make_app({"broker": _args["broker"], "backend": _args["backend"]})
app.conf.update({**DEFAULT_CONFIG, **_args["settings"]})

execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)

# Imported before Celery forks its pool (see the module docstring); the check steps' Great
# Expectations too, which the code location itself imports only when a check runs.
import origine.stage_checks  # noqa: E402,F401
import origine.validation.run  # noqa: E402,F401  (origine.validation loads GX on first validate)
import pipelines.definitions  # noqa: E402,F401
