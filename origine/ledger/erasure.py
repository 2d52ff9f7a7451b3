"""Erasure inside the ledger: clearing the attributes of erased leaves, keeping their hashes.

An erased leaf keeps its ``seq``, type and leaf hash (tree heads recorded before stay
verifiable) and loses every other attribute, the subject key included; ``erased_at``
dates the erasure. Erasure works on whole leaves: a row leaf states one row of one
subject, an event leaf one event. The ``erased`` leaf that commits to the list is
appended first, through :func:`origine.ledger.append_events`, by the caller
(``origine.retention``). This is the one write to ``ledger_leaves`` that is not an
append, so it lives here with the other writes of the ledger package.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from origine.ledger.events import LEAF_COLUMNS

ATTRIBUTES = [name for name, _ in LEAF_COLUMNS if name != "type"]
# Erasures of more events than this rewrite the ledger table instead of updating it.
IN_PLACE_MAX = 1_000_000


def erase_attributes(
    con: duckdb.DuckDBPyConnection, events: int, now: datetime, *, in_place_max: int = IN_PLACE_MAX
) -> None:
    """Clear every attribute of the ``events`` leaves the temp table ``_erased`` (``seq``)
    lists and set their ``erased_at`` to ``now``, inside the caller's transaction.

    Up to ``in_place_max`` events, in place; beyond, the ledger table is rewritten
    in one statement (an ``UPDATE`` keeps each changed row in memory until the commit:
    erasing 30M events took 4.9 GiB).
    """
    if events <= in_place_max:
        sets = ", ".join(f'"{c}" = NULL' for c in ATTRIBUTES)
        con.execute(f"UPDATE ledger_leaves SET {sets}, erased_at = ? WHERE seq IN (SELECT seq FROM _erased)", [now])
        return
    # origine.warehouse imports this package: imported here, not at module level, to keep
    # `import origine.ledger` free of an import cycle
    from origine import warehouse

    cleared = {c: f'CASE WHEN e._gone THEN NULL ELSE e."{c}" END' for c in ATTRIBUTES}
    cleared["erased_at"] = "CASE WHEN e._gone THEN $now ELSE e.erased_at END"
    select = warehouse.select_list(con, "ledger_leaves", "e", cleared)
    con.execute("SET preserve_insertion_order = true")  # the ledger stays in seq order
    warehouse.rewrite_table(
        con,
        "ledger_leaves",
        # one membership test per event (a test per column is a hash table per column)
        lambda before: f"SELECT {select} FROM (SELECT *, seq IN (SELECT seq FROM _erased) AS _gone FROM {before}) e",
        {"now": now},
    )
