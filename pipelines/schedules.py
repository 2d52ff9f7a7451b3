"""Every schedule: daily retention and signed head, weekly ledger check, nightly expiring consents."""

import dagster as dg

from pipelines.jobs import consent_revalidation, ledger_check, ledger_maintenance

daily_maintenance = dg.ScheduleDefinition(
    job=ledger_maintenance, cron_schedule="30 2 * * *", execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
weekly_check = dg.ScheduleDefinition(
    job=ledger_check, cron_schedule="0 4 * * 0", execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
nightly_consents = dg.ScheduleDefinition(
    job=consent_revalidation, cron_schedule="0 3 * * *", execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
