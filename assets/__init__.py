"""Dagster assets and asset checks: thin wiring over the ``origine`` domain."""

import warnings

import dagster as dg

# Partitioned asset checks are "preview" in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
