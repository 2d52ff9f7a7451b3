"""The Dagster code location: jobs, partitions, sensors, schedules and resources."""
