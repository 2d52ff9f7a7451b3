"""The map of the pipeline: every asset, check, job, sensor and resource in one place.

Loaded by the Dagster UI from ``workspace.yaml`` and by the CLI, which runs the
same jobs in-process against the instance under ``$ORIGINE_HOME``.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.audits import campaign_audit, campaigns_sensor, consent_revalidation, nightly_consents
from assets.ingest import (
    delivery_segment,
    rows_accounted_for,
    segment_expectations,
    warehouse_delivery,
    warehouse_expectations,
)
from assets.landing import INGEST_JOB, landing_sensor
from assets.operations import (
    daily_maintenance,
    ledger_check,
    ledger_maintenance,
    suppressions_job,
    suppressions_sensor,
    weekly_check,
)
from assets.partitions import deliveries_partitions
from pipelines.executor import origine_executor
from pipelines.resources import OrigineHome


def _env_or_none(name: str) -> dg.EnvVar | None:
    # EnvVar on an unset variable fails at load time; a demo home needs no key.
    return dg.EnvVar(name) if os.environ.get(name) else None


ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(delivery_segment, warehouse_delivery),
    partitions_def=deliveries_partitions,
    description="Ingest one delivery: read, normalize, key-hash, check, commit.",
    # multiprocess by default; in_process, or celery with origine[celery] (docs/deployment.md)
    executor_def=origine_executor,
)


def build_definitions() -> dg.Definitions:
    """The code location's definitions (resources from the environment)."""
    return dg.Definitions(
        assets=[delivery_segment, warehouse_delivery],
        asset_checks=[rows_accounted_for, segment_expectations, warehouse_expectations],
        jobs=[ingest_job, ledger_maintenance, ledger_check, suppressions_job, campaign_audit,
              consent_revalidation],
        schedules=[daily_maintenance, weekly_check, nightly_consents],
        sensors=[landing_sensor, suppressions_sensor, campaigns_sensor],
        resources={
            "origine": OrigineHome(
                home=os.environ.get("ORIGINE_HOME") or os.path.expanduser("~/.origine"),
                hash_key=_env_or_none("ORIGINE_HASH_KEY"),
                hash_key_file=_env_or_none("ORIGINE_HASH_KEY_FILE"),
                hash_key_layers=_env_or_none("ORIGINE_HASH_KEY_LAYERS"),
            )
        },
    )


defs = build_definitions()
