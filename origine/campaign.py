"""The campaign spec: what a sponsor sent, to whom, for what, and what it declared.

A campaign is a YAML file naming the campaign, its channel, purpose, sender, message,
send time, declared targeting, targets and optional send report. Its keys are declared
once, in :data:`CAMPAIGN_SCHEMA` (kind and meaning of each), which both checks specs
and generates ``docs/input-reference.md``; an example is in :data:`CAMPAIGN_DOCUMENT`.

Everything a user can get wrong raises :class:`~origine.errors.BadInput` naming the
file and the field (``column``), which exits with status 2. Values read from the
spec are never echoed when they could hold a number.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from origine.dates import UnreadableDate, parse_instant
from origine.documents import (
    INSTANT, MAPPING, STRING, TEXT, TEXT_OR_LIST, DocumentType, Key, Kind, Schema, check_keys, load_yaml,
    read_bounded,
)
from origine.errors import BadInput
from origine.purposes import BUNDLED, default_purposes, taxonomy_codes

CHANNELS = ("sms", "voice", "email")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

TARGETS_SCHEMA = Schema(
    "`targets`",
    (
        Key("deliveries", TEXT_OR_LIST, "Deliveries whose rows were targeted: `delivery_id`, or "
            "`vendor/delivery_id` when several vendors used that id. Every accepted row is a target."),
        Key("file", STRING, "A CSV of the numbers targeted (a `phone` column), relative to this spec."),
    ),
    what="At least one of the two; both together target their union.",
)

CRITERIA = Kind(
    "mapping of criterion → value(s), or a list of criteria (text or mappings)",
    lambda v: isinstance(v, (dict, list, str)),
)

CAMPAIGN_SCHEMA = Schema(
    "campaign spec",
    (
        Key("campaign_id", TEXT, "The campaign's identifier: letters, digits, `.`, `_`, `-` (at most 128). "
            "Recorded in each `targeted` event.", required=True),
        Key("sponsor", TEXT, "Who pays for the send (a party, a company).", required=True),
        Key("channel", TEXT, "`sms`, `voice` or `email`: SMS needs a mobile number.", required=True),
        Key("purpose", TEXT, "The purpose code the send serves (`political.electoral`…, see "
            "`origine/data/purposes.yaml`): each target needs consent for it.", required=True),
        Key("sender", TEXT, "The sender ID shown to recipients; missing: finding `NO_SENDER_ID`."),
        Key("message", TEXT, "The text sent; without an opt-out (`STOP 36789`): finding "
            "`NO_OPT_OUT_IN_MESSAGE`."),
        Key("sent_at", INSTANT, "When it was sent: verdicts are taken at this instant.", required=True),
        Key("timezone", TEXT, "IANA time zone of dates without an offset, here and in the target file "
            "and send report.", default="UTC"),
        Key("country", TEXT, "ISO 3166 alpha-2 region of numbers written without a `+` prefix in the "
            "target file and send report.", default="FR"),
        Key("targeting", CRITERIA, "The declared targeting criteria (`age: 18-35`, `region: …`); a "
            "criterion on a special category (religion, origin, health…) is finding "
            "`SPECIAL_CATEGORY_TARGETING`."),
        Key("targets", MAPPING, "Who was targeted.", required=True, keys=TARGETS_SCHEMA),
        Key("send_report", STRING, "A CSV, relative to this spec, of what happened per number "
            "(`phone`, `sent_at`, `stop_reply_at`, or a reply text `reply` and its `replied_at`): each "
            "STOP (STOP, ARRÊT, DÉSABONNER, UNSUBSCRIBE…) is recorded in the ledger as an `opted_out` "
            "of origin `campaign:<campaign_id>` and binds later campaigns; START creates no consent; "
            "a send after a STOP is finding `CONTACTED_AFTER_STOP`. See docs/campaign-format.md."),
    ),
)

CAMPAIGN_DOCUMENT = DocumentType(
    "Campaign spec",
    "any `*.yaml`/`*.yml` given to `origine audit`, or dropped in `$ORIGINE_HOME/campaigns/`",
    CAMPAIGN_SCHEMA,
    example="""campaign_id: EU24-SMS-01
sponsor: Parti A
channel: sms
purpose: political.electoral
sender: PARTI-A
message: "Parti A vous invite à voter le 9 juin. STOP au 36789"
sent_at: 2024-06-07T18:00:00+02:00
timezone: Europe/Paris
country: FR
targeting:
  age: 18-35
  region: Île-de-France
targets:
  deliveries: [SC-2024-06-05-001, othervendor/OV-7]
  file: targets.csv
send_report: report.csv
""",
)


@dataclass(frozen=True)
class DeliveryRef:
    """A targeted delivery: ``delivery_id`` alone, or with its vendor."""

    delivery_id: str
    vendor: str | None = None

    def label(self) -> str:
        """``vendor/delivery_id`` or ``delivery_id``."""
        return f"{self.vendor}/{self.delivery_id}" if self.vendor else self.delivery_id


@dataclass(frozen=True)
class Criterion:
    """One declared targeting criterion: its name (a mapping key, or the list item) and values."""

    name: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Campaign:
    """A parsed, checked campaign spec."""

    path: Path
    sha256: str
    campaign_id: str
    sponsor: str
    channel: str
    purpose: str
    sender: str
    message: str
    sent_at: datetime
    timezone: str = "UTC"
    country: str = "FR"
    targeting: tuple[Criterion, ...] = ()
    deliveries: tuple[DeliveryRef, ...] = ()
    target_file: Path | None = None
    send_report: Path | None = None

    @property
    def file_name(self) -> str:
        """The spec's file name (recorded as the evidence of ``targeted`` events)."""
        return self.path.name

    @property
    def tzinfo(self) -> ZoneInfo:
        """The zone naive dates are read in."""
        return ZoneInfo(self.timezone)


def load_campaign(path: Path) -> Campaign:
    """Read and check the campaign spec at ``path``."""
    path = Path(path)
    label = str(path)
    raw = read_bounded(path, label=label, what="campaign file")
    return parse_campaign(raw, path=path)


def parse_campaign(raw: bytes, *, path: Path) -> Campaign:
    """Parse campaign bytes; relative paths in it are resolved against ``path``'s folder.

    The bytes are read strictly (:mod:`origine.documents`) and every key is checked
    against :data:`CAMPAIGN_SCHEMA`: a misspelt ``targetting:`` would otherwise drop
    the declared criteria, and with them the special-category finding.
    """
    label = str(path)
    doc = load_yaml(raw, label=label, what="campaign spec")
    if not isinstance(doc, dict):
        raise BadInput("the campaign spec must be a mapping", file=label)
    check_keys(doc, CAMPAIGN_SCHEMA, label=label)

    def bad(message: str, name: str) -> BadInput:
        return BadInput(message, file=label, column=name)

    def required(name: str) -> Any:
        value = doc.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise bad("required field missing", name)
        return value

    def text(name: str, *, must: bool) -> str:
        value = required(name) if must else doc.get(name)
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise bad("expected text", name)
        return str(value).strip()

    campaign_id = text("campaign_id", must=True)
    if not _IDENT.match(campaign_id):
        raise bad("must be letters, digits, '.', '_' or '-' (at most 128)", "campaign_id")
    sponsor = text("sponsor", must=True)
    channel = text("channel", must=True).lower()
    if channel not in CHANNELS:
        raise bad(f"unknown channel (one of: {', '.join(CHANNELS)})", "channel")
    purpose = text("purpose", must=True)
    if purpose not in taxonomy_codes():
        mapped = default_purposes().lookup(purpose)
        hint = f" (did you mean {mapped!r}?)" if mapped and mapped != BUNDLED else ""
        raise bad(f"not a purpose code{hint}; codes: {', '.join(taxonomy_codes())}", "purpose")
    sender = text("sender", must=False)
    message = text("message", must=False)

    tz_name = text("timezone", must=False) or "UTC"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad(f"unknown time zone {tz_name!r}", "timezone") from None
    country = (text("country", must=False) or "FR").upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise bad(f"unknown region {country!r} (ISO 3166 alpha-2)", "country")
    try:
        sent_at = parse_instant(required("sent_at"), tz)
    except UnreadableDate as exc:
        raise bad(str(exc), "sent_at") from None
    assert sent_at is not None

    targeting = _targeting(doc.get("targeting"), bad)
    deliveries, target_file = _targets(doc.get("targets"), path, bad)
    send_report = None
    if doc.get("send_report") not in (None, ""):
        send_report = _relative_file(doc["send_report"], path, "send_report", bad)

    return Campaign(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        campaign_id=campaign_id,
        sponsor=sponsor,
        channel=channel,
        purpose=purpose,
        sender=sender,
        message=message,
        sent_at=sent_at.astimezone(timezone.utc),
        timezone=tz_name,
        country=country,
        targeting=targeting,
        deliveries=deliveries,
        target_file=target_file,
        send_report=send_report,
    )


def _scalar_texts(value: Any, bad: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        out: list[str] = []
        for k, v in value.items():
            out.append(str(k))
            out.extend(_scalar_texts(v, bad, name))
        return tuple(out)
    if isinstance(value, (list, tuple)):
        return tuple(t for v in value for t in _scalar_texts(v, bad, name))
    return (str(value),)


def _targeting(value: Any, bad: Any) -> tuple[Criterion, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(Criterion(str(k), _scalar_texts(v, bad, "targeting")) for k, v in value.items())
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):
                out.extend(Criterion(str(k), _scalar_texts(v, bad, "targeting")) for k, v in item.items())
            elif isinstance(item, list) or item is None:
                raise bad("each criterion must be text or a mapping", "targeting")
            else:
                out.append(Criterion(str(item)))
        return tuple(out)
    if isinstance(value, str):
        return (Criterion(value),) if value.strip() else ()
    raise bad("expected a mapping of criteria or a list of strings", "targeting")


def _targets(value: Any, path: Path, bad: Any) -> tuple[tuple[DeliveryRef, ...], Path | None]:
    if value is None:
        raise bad("required field missing (deliveries and/or file)", "targets")
    if not isinstance(value, dict):
        raise bad("expected a mapping with deliveries and/or file", "targets")
    refs: list[DeliveryRef] = []
    items = value.get("deliveries")
    if isinstance(items, str):
        items = [items]
    if items is not None and not isinstance(items, list):
        raise bad("expected a list of delivery ids", "targets.deliveries")
    for i, item in enumerate(items or [], 1):
        name = f"targets.deliveries[{i}]"
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise bad("expected 'delivery_id' or 'vendor/delivery_id'", name)
        parts = str(item).strip().split("/")
        if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
            raise bad("expected 'delivery_id' or 'vendor/delivery_id' (letters, digits, '.', '_', '-')", name)
        ref = DeliveryRef(parts[-1], parts[0] if len(parts) == 2 else None)
        if ref not in refs:
            refs.append(ref)
    file = None
    if value.get("file") not in (None, ""):
        file = _relative_file(value["file"], path, "targets.file", bad)
    if not refs and file is None:
        raise bad("no targets: give deliveries and/or file", "targets")
    return tuple(refs), file


def _relative_file(value: Any, path: Path, name: str, bad: Any) -> Path:
    if not isinstance(value, str):
        raise bad("expected a file path", name)
    target = (path.parent / value).resolve() if not Path(value).is_absolute() else Path(value)
    if not target.is_file():
        raise bad(f"file not found: {value}", name)
    return target


CAMPAIGN_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CampaignFile:
    """A campaign spec found in the campaigns folder, with the run key of its current bytes."""

    path: Path
    run_key: str


def scan_campaigns(folder: Path) -> list[CampaignFile]:
    """Campaign specs (``*.yaml``/``*.yml``) in ``folder``, sorted by name.

    Names starting with ``.`` or ending in ``.partial`` are being copied and are skipped;
    other files (target lists, send reports the specs point to) are not specs. The
    run key changes with the file's size and mtime, so an edited spec is audited again.
    """
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in CAMPAIGN_SUFFIXES:
            continue
        st = path.stat()
        found.append(CampaignFile(path, f"{path.name}:{st.st_size}:{st.st_mtime_ns}"))
    return found
