"""What a party and a vendor can act on: the send list and the quarantine export.

**Send list** (``origine audit CAMPAIGN --out DIR --send-list OUT.csv``): for the
campaign's target file, one line per input row — its position (``row``: the n-th data
row, as :mod:`origine.readers` numbers them), the row's own identifier when the file
has an id column, its ``verdict`` and ``reasons`` — so the party filters its own file
(keep the ``compliant`` rows) without origine ever writing a number. A blank phone
cell is verdict ``skipped``, reason ``PHONE_MISSING``. An id cell that is itself a
phone number or an e-mail address is not copied (``id_withheld`` counts them).

**Quarantine export** (``origine quarantine VENDOR DELIVERY_ID --csv OUT.csv``): the
rows of a delivery refused at intake — file, row, reason, column — for the vendor to
fix at its end; the rows' content is not kept, so none is written.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from origine import numbers
from origine.campaign import Campaign
from origine.errors import BadInput
from origine.keys import HashKey
from origine.phones import PHONE_MISSING, normalize

ID_COLUMNS = ("id", "row_id", "ref", "reference", "identifiant", "contact_id", "client_id", "customer_id",
              "external_id", "id_contact", "id_client", "numero_client")
SKIPPED = "skipped"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class SendListResult:
    """What the send list holds (counts only)."""

    path: str
    rows: int
    verdicts: dict[str, int]
    id_column: bool
    id_withheld: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def require_target_file(campaign: Campaign) -> Path:
    """The campaign's target file; BadInput when it names none (a send list is per input row)."""
    if campaign.target_file is None:
        raise BadInput("a send list needs the campaign's own target file (targets.file): this campaign "
                       "names only deliveries", file=str(campaign.path), column="targets.file")
    return campaign.target_file


def write_send_list(campaign: Campaign, key: HashKey, targets_parquet: Path, out: Path) -> SendListResult:
    """Write the send list of ``campaign``'s target file to ``out`` from the audit's verdicts."""
    from origine.audit.inputs import read_rows

    path = require_target_file(campaign)
    _, columns, rows = read_rows(path, {"id": ID_COLUMNS})
    has_id = columns.get("id") is not None
    # Keyed as the audit keyed the same file, so each row finds its verdict by key.
    norm = numbers.keyed([r[1] for r in rows], campaign.country, key)
    table = pq.read_table(targets_parquet, columns=["subject_key", "verdict", "reasons"]).to_pylist()
    by_key = {t["subject_key"]: t for t in table if t["subject_key"] is not None}
    unparseable = next((t for t in table if t["subject_key"] is None), None)
    counts: dict[str, int] = {}
    withheld = 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row", "id", "verdict", "reasons"] if has_id else ["row", "verdict", "reasons"])
    for (row, _phone, *rest), subject, why in zip(rows, norm.column("subject_key").to_pylist(),
                                                  norm.column("reason").to_pylist()):
        if why == PHONE_MISSING:
            verdict, reasons = SKIPPED, [PHONE_MISSING]
        else:
            found = by_key.get(subject) if subject is not None else unparseable
            if found is None:  # cannot happen: every keyed row is a target of the audit
                raise RuntimeError("a target-file row is missing from the audit's targets")
            verdict, reasons = found["verdict"], list(found["reasons"])
        counts[verdict] = counts.get(verdict, 0) + 1
        line: list[Any] = [row]
        if has_id:
            ident = "" if rest[0] is None else str(rest[0]).strip()
            # No reason means a valid number (e164 set): the id is a phone number.
            if ident and ("@" in ident or normalize(ident, campaign.country).reason is None):
                ident, withheld = "", withheld + 1
            line.append("'" + ident if ident.startswith(_FORMULA_STARTS) else ident)
        line += [verdict, "|".join(reasons)]
        writer.writerow(line)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, out)
    return SendListResult(str(out), len(rows), dict(sorted(counts.items())), has_id, withheld)


def quarantine_csv(con: Any, vendor: str, delivery_id: str) -> str:
    """The quarantined rows of one delivery as CSV (file, row, reason, column); BadInput
    when the warehouse holds no such delivery."""
    if con.execute("SELECT 1 FROM deliveries WHERE vendor = ? AND delivery_id = ?",
                   [vendor, delivery_id]).fetchone() is None:
        raise BadInput(f"no delivery {vendor}/{delivery_id} in the warehouse", column="DELIVERY_ID")
    rows = con.execute(
        'SELECT file, "row", reason, "column" FROM quarantine WHERE vendor = ? AND delivery_id = ? '
        'ORDER BY file, "row", reason', [vendor, delivery_id]).fetchall()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "row", "reason", "column"])
    for file, row, reason, column in rows:
        writer.writerow(["'" + file if file.startswith(_FORMULA_STARTS) else file, row, reason, column or ""])
    return buf.getvalue()
