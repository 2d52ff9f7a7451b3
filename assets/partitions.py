"""Partitions shared by the assets: one dynamic partition per delivery."""

import dagster as dg

deliveries_partitions = dg.DynamicPartitionsDefinition(name="deliveries")
