"""The map of the pipeline: every asset, check, job, schedule, sensor and resource in one place.

Each kind is defined in one module: assets and their checks in ``assets/``, jobs (and
the ops of the op jobs) in ``pipelines/jobs.py`` (``pipelines/ops.py``), schedules in
``pipelines/schedules.py``, sensors in ``pipelines/sensors.py``, resources in
``pipelines/resources.py``; this module lists them all.

Loaded by the Dagster UI from ``workspace.yaml`` and by the CLI, which runs the
same jobs in-process against the instance under ``$ORIGINE_HOME``.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.ingest import (
    delivery_segment,
    rows_accounted_for,
    segment_expectations,
    warehouse_delivery,
    warehouse_expectations,
)
from assets.audits import campaign_audit as campaign_audit_assets
from assets.ledger import ledger_asset, ledger_consistent
from assets.suppressions import suppression_list
from pipelines.jobs import (
    campaign_audit,
    consent_revalidation,
    ingest_job,
    ledger_check,
    ledger_maintenance,
    suppressions_job,
)
from pipelines.resources import OrigineHome
from pipelines.schedules import daily_maintenance, nightly_consents, weekly_check
from pipelines.sensors import campaigns_sensor, landing_sensor, ledger_automation, suppressions_sensor


def _env_or_none(name: str) -> dg.EnvVar | None:
    # EnvVar on an unset variable fails at load time; a demo home needs no key.
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_definitions() -> dg.Definitions:
    """The code location's definitions (resources from the environment)."""
    return dg.Definitions(
        assets=[delivery_segment, warehouse_delivery, ledger_asset, campaign_audit_assets,
                suppression_list],
        asset_checks=[rows_accounted_for, segment_expectations, warehouse_expectations, ledger_consistent],
        jobs=[ingest_job, ledger_maintenance, ledger_check, suppressions_job, campaign_audit,
              consent_revalidation],
        schedules=[daily_maintenance, weekly_check, nightly_consents],
        sensors=[landing_sensor, suppressions_sensor, campaigns_sensor, ledger_automation],
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
