"""What ingest measured about a delivery: the report types.

Prepare writes one with the segment (``report.json``), the commit stores it in the
warehouse, and the pipeline's two ingest assets hand it from one to the other as a dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FileReport:
    """Accounting and shape of one data file."""

    path: str
    sha256: str
    size: int
    format: dict[str, Any]
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    mapped_columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class DeliveryReport:
    """What ingest measured about one delivery; the CLI prints its summary."""

    delivery_id: str
    vendor: str
    recipient: str | None
    delivered_at: str
    country: str
    fingerprint: str
    key_id: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)
    files: list[FileReport] = field(default_factory=list)
    duplicate: bool = False
    segment: str | None = None
    events: int = 0
    ledger: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The fields ``origine ingest`` prints per delivery."""
        return {
            "delivery_id": self.delivery_id,
            "vendor": self.vendor,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "duplicate": self.duplicate,
            "findings": self.findings,
        }

    def to_dict(self) -> dict[str, Any]:
        """Full JSON form (stored with the segment and in the warehouse)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "DeliveryReport":
        """Inverse of :meth:`to_dict`."""
        doc = dict(doc)
        doc["files"] = [FileReport(**f) for f in doc.get("files", [])]
        return cls(**doc)

    @property
    def balanced(self) -> bool:
        """True when every row read is accepted or quarantined, per file and in total."""
        files_ok = all(f.rows_read == f.rows_accepted + f.rows_quarantined for f in self.files)
        return files_ok and self.rows_read == self.rows_accepted + self.rows_quarantined
