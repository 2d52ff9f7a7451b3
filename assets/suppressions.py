"""Suppression lists as an asset, one dynamic partition per file of ``suppressions/``:
each materialization appends the file's opt-out / withdrawal events to the ledger."""

from pathlib import Path
from typing import Optional

import dagster as dg

from assets.privacy import errors_scrubbed
from origine.freetext import scrub_text
from origine.keys import HashKey
from origine.links import link_named
from origine.signing import load_signer
from origine.suppressions import ingest_suppressions
from pipelines.resources import OrigineHome

# Named by the file's name as the ledger stores it (numbers in it replaced by their tokens),
# in suppressions/ or on the command line; registered by the sensor.
suppression_files_partitions = dg.DynamicPartitionsDefinition(name="suppression_files")

DEFAULT_COUNTRY = "FR"
"""Region of the numbers in a suppression file (and in its name) unless told (``--country``)."""


class SuppressionConfig(dg.Config):
    """A suppression file to ingest, and how to read what it leaves out (as ``origine suppress``'s options)."""

    path: str
    country: str = DEFAULT_COUNTRY
    # origin / channel of every row when the file has no such column (--origin, --channel)
    origin: Optional[str] = None
    channel: Optional[str] = None
    # IANA zone of dates without an offset (--timezone): the CLI's default, so a file the
    # sensor picks up and the same file given to `origine suppress` record the same instants
    timezone: str = "Europe/Paris"


def suppression_run_config(path: str) -> dict:
    """Run config pointing the suppression list asset at one file."""
    return {"ops": {"suppression_list": {"config": {"path": path}}}}


def link_as_stored(path: Path, folder: Path, key: HashKey, country: str = DEFAULT_COUNTRY) -> Path:
    """What a run of the suppression file ``path`` is given: ``path`` when its name holds
    nothing to scrub, else a link to it named as the ledger stores the name
    (:func:`origine.freetext.scrub_text`, :func:`origine.links.link_named`), so that
    "stop-0611223399.csv" reaches neither the run's config nor its events."""
    name = scrub_text(path.name, key, country.upper()).text
    if name == path.name:
        return path
    return link_named(path, name, folder, key)


@dg.asset(partitions_def=suppression_files_partitions, group_name="suppressions", kinds={"duckdb"},
          pool="warehouse")
def suppression_list(
    context: dg.AssetExecutionContext, config: SuppressionConfig, origine: OrigineHome
) -> dg.Output[dict]:
    """One suppression file (STOP replies, DPO requests, do-not-call lists) ingested as
    opt-out / withdrawal events; counts as metadata, never a number."""
    home, key = origine.get_home(), origine.get_key()
    with errors_scrubbed(key, config.country.upper()):  # the file may be named after a number
        report = ingest_suppressions(Path(config.path), warehouse_path=home.warehouse, key=key,
                                     region=config.country.upper(), default_origin=config.origin,
                                     default_channel=config.channel, signer=load_signer(home.keys),
                                     tz=config.timezone)
    return dg.Output(report.summary(), metadata={
        "rows_read": report.rows_read, "rows_accepted": report.rows_accepted,
        "rows_quarantined": report.rows_quarantined, "duplicate": report.duplicate,
    })
