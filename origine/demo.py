"""Generated demo data: deliveries that look like what brokers really send.

Deterministic for a given seed. The numbers are random but valid per
``phonenumbers``; none belongs to a known person, and the demo home uses the
public demo key, which every other command refuses.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

FR_SOURCES = ["jeu-concours-ete-2023", "carte-fidelite-2022", "formulaire-devis", "achat-fichier-2021"]
FR_PURPOSE_WORDS = [
    "prospection commerciale",
    "propagande électorale",
    "partenaires",
    "j'accepte de partager mes données",
    "sondages",
    "communication politique",
]


def random_national(rng: random.Random, region: str, mobile: bool = True) -> str:
    """A random valid national-format number for ``region`` (mobile or fixed line)."""
    ntype = phonenumbers.PhoneNumberType.MOBILE if mobile else phonenumbers.PhoneNumberType.FIXED_LINE
    example = phonenumbers.example_number_for_type(region, ntype)
    assert example is not None
    nsn = str(example.national_number)
    while True:
        candidate = nsn[:2] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - 2))
        number = phonenumbers.parse(candidate, region)
        if phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) == ntype:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def export_format(rng: random.Random, national: str, region: str) -> str:
    """The number as a vendor's export writes it (spaces, dots, +CC, 00CC, Excel damage)."""
    number = phonenumbers.parse(national, region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = "".join(c for c in national if c.isdigit())
    choice = rng.random()
    if choice < 0.35:
        return national
    if choice < 0.5:
        return digits
    if choice < 0.6:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if choice < 0.7:
        return e164
    if choice < 0.75:
        return "00" + e164[1:]
    if choice < 0.85:
        return digits.lstrip("0")  # Excel dropped the leading zero
    if choice < 0.9:
        return ".".join(digits[i : i + 2] for i in range(0, len(digits), 2))
    return e164[1:]  # "+" lost


def garbage(rng: random.Random) -> str:
    """What ends up in a phone column that is not a phone number."""
    return rng.choice(["", "n/a", "inconnu", "0000", "12", "6,12346E+08", "abc@example.org", "+999 1234"])


def _when(rng: random.Random, start: datetime, days: int) -> datetime:
    return start + timedelta(days=rng.randrange(days), seconds=rng.randrange(86400))


def fr_rows(rng: random.Random, n: int, delivered_at: datetime) -> list[dict[str, str]]:
    """Rows of a French broker export (day-first dates, French purpose words)."""
    rows = []
    for _ in range(n):
        r = rng.random()
        if r < 0.02:
            phone = garbage(rng)
        elif r < 0.04:
            phone = export_format(rng, random_national(rng, "FR", mobile=False), "FR")
        elif r < 0.06:
            phone = "+212 " + random_national(rng, "MA")[1:]
        else:
            phone = export_format(rng, random_national(rng, "FR"), "FR")
        collected = _when(rng, datetime(2020, 1, 1, tzinfo=timezone.utc), 1200)
        words = rng.sample(FR_PURPOSE_WORDS, rng.randint(0, 2))
        consent = collected + timedelta(minutes=rng.randint(0, 30))
        if rng.random() < 0.01:
            consent = delivered_at + timedelta(days=3)  # consent dated after delivery
        rows.append(
            {
                "Téléphone": phone,
                "Source": rng.choice(FR_SOURCES),
                "Date collecte": collected.strftime("%d/%m/%Y %H:%M"),
                "Finalités": "|".join(words),
                "Date consentement": consent.strftime("%d/%m/%Y %H:%M") if words else "",
                "Preuve": f"optin-{rng.randrange(10**9):09d}" if words and rng.random() < 0.8 else "",
                "Acquis auprès de": rng.choice(["", "", "datacenter-leads", "promo-jeux-sarl"]),
                "Date désinscription": (
                    _when(rng, collected, 300).strftime("%d/%m/%Y") if rng.random() < 0.03 else ""
                ),
                "Confession": rng.choice(["", "catholique", "musulman", "juif", "aucune"]),
            }
        )
    return rows


def _write_csv_cp1252(path: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("cp1252", errors="replace"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path, doc: dict[str, Any]) -> None:
    (folder / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), "utf-8")


def _freeze_zip(path: Path) -> None:
    """Make an XLSX byte-identical across runs (openpyxl stamps the save time)."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            if name == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2021-08-30T00:00:00Z", data)
            zf.writestr(zipfile.ZipInfo(name, date_time=(2021, 8, 30, 0, 0, 0)), data)


def write_demo_deliveries(dest: Path, *, rows: int = 3000, seed: int = 2024) -> list[Path]:
    """Write three deliveries (FR cp1252 ``;`` CSV, MA XLSX, SN gzipped JSON Lines)."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    out = []

    # 1. A French broker's Excel export: ';', cp1252, mangled numbers, a religion column.
    delivered = datetime(2024, 6, 5, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    folder = dest / "selfcontact-SC-2024-06-05-001"
    folder.mkdir(exist_ok=True)
    data = fr_rows(rng, rows, delivered)
    _write_csv_cp1252(folder / "contacts.csv", data)
    _manifest(
        folder,
        {
            "delivery_id": "SC-2024-06-05-001",
            "vendor": "selfcontact",
            "recipient": "party-a",
            "delivered_at": delivered.isoformat(),
            "country": "FR",
            "timezone": "Europe/Paris",
            "files": [{"path": "contacts.csv", "sha256": _sha(folder / "contacts.csv"), "rows": len(data)}],
            "claims": {
                "row_count": len(data),
                "consent_purposes": ["political.electoral"],
                "consent_rate": 1.0,
                "sources": ["jeu-concours-ete-2023"],
            },
        },
    )
    out.append(folder)

    # 2. A Moroccan list as XLSX with numbers stored as Excel numbers (leading zero lost).
    import openpyxl

    folder = dest / "atlas-data-AD-2021-08-30"
    folder.mkdir(exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["PHONE", "source", "consent_purposes", "consent_at"])
    n_ma = max(rows // 3, 1)
    for _ in range(n_ma):
        digits = "".join(c for c in random_national(rng, "MA") if c.isdigit())
        ws.append([int(digits), "salon-auto-casablanca", "marketing", _when(rng, datetime(2021, 1, 1), 200)])
    wb.save(folder / "numeros.xlsx")
    _freeze_zip(folder / "numeros.xlsx")
    _manifest(
        folder,
        {
            "delivery_id": "AD-2021-08-30",
            "vendor": "atlas-data",
            "recipient": "party-b",
            "delivered_at": "2021-08-30T10:00:00+01:00",
            "country": "MA",
            "files": [{"path": "numeros.xlsx"}],
            "claims": {"row_count": n_ma, "consent_purposes": ["political.electoral"]},
        },
    )
    out.append(folder)

    # 3. A Senegalese provider's gzipped JSON Lines.
    folder = dest / "dakar-leads-DL-2024-03"
    folder.mkdir(exist_ok=True)
    n_sn = max(rows // 3, 1)
    lines = []
    for i in range(n_sn):
        national = random_national(rng, "SN")
        lines.append(
            json.dumps(
                {
                    "phone": "+221" + "".join(c for c in national if c.isdigit()),
                    "source": "inscription-evenement",
                    "consent_purposes": rng.choice(["sondages", "marketing|partners", ""]),
                    "consent_at": "2023-11-0%dT12:00:00Z" % (1 + i % 9),
                }
            )
        )
    # mtime=0: the same demo gives the same bytes, so a rerun is a duplicate.
    with gzip.GzipFile(folder / "leads.jsonl.gz", "wb", mtime=0) as fh:
        fh.write(("\n".join(lines) + "\n").encode("utf-8"))
    _manifest(
        folder,
        {
            "delivery_id": "DL-2024-03",
            "vendor": "dakar-leads",
            "recipient": "party-c",
            "delivered_at": "2024-03-15T08:00:00Z",
            "country": "SN",
            "files": [{"path": "leads.jsonl.gz", "rows": n_sn}],
            "claims": {"row_count": n_sn, "consent_rate": 0.9},
        },
    )
    out.append(folder)
    return out




DEMO_CAMPAIGN = {
    "campaign_id": "EU24-SMS-DEMO",
    "sponsor": "Parti A",
    "channel": "sms",
    "purpose": "political.electoral",
    "sender": "PARTI-A",
    "message": "Parti A : dimanche 9 juin, votez pour nous. STOP 36789",
    "sent_at": "2024-06-06T18:00:00+02:00",
    "targeting": {"age": "18-35", "confession": "catholique"},
    "targets": {"deliveries": ["selfcontact/SC-2024-06-05-001"]},
}


def write_demo_campaign(folder: Path) -> Path:
    """The campaign the demo audits: an electoral SMS to the French broker's list."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "EU24-SMS-DEMO.yaml"
    path.write_text(yaml.safe_dump(DEMO_CAMPAIGN, sort_keys=False, allow_unicode=True), "utf-8")
    return path
