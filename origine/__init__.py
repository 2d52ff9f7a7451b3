"""origine: provenance audit pipeline for phone-number data brokers.

The ``origine`` package is the domain: plain typed Python with no Dagster in it.
Dagster wiring lives in the top-level ``assets`` and ``pipelines`` packages.
"""

__version__ = "0.1.0"
