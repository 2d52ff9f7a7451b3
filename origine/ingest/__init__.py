"""Ingest: one delivery into the warehouse and the ledger, every row accounted for.

The step in the order it runs:

- :mod:`~origine.ingest.intake`: the pipeline's two steps from a home: ``prepare`` (check
  the delivery, refuse a conflicting re-delivery, read it into its segment) and
  ``commit``; ``check_conflict`` before a run is made; ``sweep_dead_partials``.
- :mod:`~origine.ingest.prepare`: reading every file of a delivery into an immutable
  segment (``rows.parquet``, ``quarantine.parquet``, ``report.json``), column batches
  side by side.
- :mod:`~origine.ingest.columns`: one batch of delivered columns into segment rows and
  quarantine entries, as whole columns.
- :mod:`~origine.ingest.commit`: the segment into the warehouse and its leaves into the
  ledger, in one transaction.
- :mod:`~origine.ingest.report`: what ingest measured (:class:`DeliveryReport`,
  :class:`FileReport`).
"""

from origine.ingest import intake
from origine.ingest.commit import commit_delivery, duplicate_or_conflict, existing_delivery
from origine.ingest.prepare import load_prepared, prepare_delivery, segment_dir, segment_key_id
from origine.ingest.report import DeliveryReport, FileReport

__all__ = [
    "DeliveryReport",
    "FileReport",
    "commit_delivery",
    "duplicate_or_conflict",
    "existing_delivery",
    "intake",
    "load_prepared",
    "prepare_delivery",
    "segment_dir",
    "segment_key_id",
]
