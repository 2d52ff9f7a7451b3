"""The answer to "where did you get my number?" as a letter the operator can send
(GDPR article 15, with what article 14 requires about sources), in French or English,
as plain text or printable HTML (A4).

Plain functions: :func:`gather` collects the facts (the lookup answer, the controller
from ``$ORIGINE_HOME/controller.yaml``, the deliveries' countries, the campaigns'
sponsors), :func:`compose` turns facts into one structured document, and
:func:`render_text` / :func:`render_html` write that same document out, so both forms
always say the same thing. The number itself never appears: the letter speaks of "the
number you gave us".

``controller.yaml`` (in the home; unknown keys are refused)::

    name: Exemple Data SAS                 # required: the data controller
    address:                               # required: postal address, one line per item
      - 12 rue de la Paix
      - 75002 Paris
    dpo_email: dpo@exemple.fr              # required: how to reach the DPO
    dpo_name: Délégué à la protection des données   # optional
    dpo_address: [DPO, 12 rue de la Paix, 75002 Paris]  # optional: postal contact of the DPO
    city: Paris                            # optional: place written before the date
    retention_days: 1095                   # optional (1095): kept this long after the last contact
"""

from __future__ import annotations

import html
import json
import textwrap
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml

from origine import i18n
from origine.errors import BadInput

if TYPE_CHECKING:
    from origine.home import Home
    from origine.lookup import LookupAnswer

CONTROLLER_FILE = "controller.yaml"
_REQUIRED = ("name", "address", "dpo_email")
_OPTIONAL = ("dpo_name", "dpo_address", "city", "retention_days")
DEFAULT_RETENTION_DAYS = 1095
CNIL = {
    "name": "Commission nationale de l'informatique et des libertés (CNIL)",
    "address": "3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07",
    "web": "www.cnil.fr/plaintes",
}


@dataclass(frozen=True)
class Controller:
    """The data controller who signs the letter, and how to reach its DPO."""

    name: str
    address: tuple[str, ...]
    dpo_email: str
    dpo_name: str | None = None
    dpo_address: tuple[str, ...] = ()
    city: str | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS


def _lines(value: Any, label: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [line.strip() for line in value.splitlines()]
    elif isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        items = [str(v).strip() for v in value]
    else:
        raise BadInput("expected text or a list of lines", file=label, column=key)
    return tuple(i for i in items if i)


def parse_controller(doc: Any, label: str = CONTROLLER_FILE) -> Controller:
    """A :class:`Controller` from ``controller.yaml``'s structure; BadInput names the key."""
    if not isinstance(doc, Mapping):
        raise BadInput("expected a mapping of name, address, dpo_email, …", file=label)
    for key in doc:
        if key not in _REQUIRED + _OPTIONAL:
            raise BadInput(f"unknown key (known: {', '.join(_REQUIRED + _OPTIONAL)})", file=label, column=str(key))
    for key in _REQUIRED:
        if doc.get(key) in (None, "", []):
            raise BadInput("required key missing", file=label, column=key)
    for key in ("name", "dpo_email", "dpo_name", "city"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise BadInput("expected text", file=label, column=key)
    days = doc.get("retention_days", DEFAULT_RETENTION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise BadInput("expected a positive number of days", file=label, column="retention_days")
    address = _lines(doc["address"], label, "address")
    if not address:
        raise BadInput("required key missing", file=label, column="address")
    return Controller(
        name=doc["name"].strip(), address=address, dpo_email=doc["dpo_email"].strip(),
        dpo_name=(doc.get("dpo_name") or "").strip() or None,
        dpo_address=_lines(doc["dpo_address"], label, "dpo_address") if doc.get("dpo_address") else (),
        city=(doc.get("city") or "").strip() or None, retention_days=days,
    )


def load_controller(root: Path) -> Controller:
    """``root/controller.yaml``; BadInput (exit 2) saying what to write when it is missing."""
    path = Path(root) / CONTROLLER_FILE
    label = str(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise BadInput("the letter needs the data controller's name, address and DPO contact: write them in "
                       "this file (keys: name, address, dpo_email; see docs/letter.md) or with "
                       "'origine config set KEY VALUE'", file=label) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", file=label) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise BadInput("not valid YAML", file=label) from None
    return parse_controller(doc, label)


def set_controller(root: Path, key: str, values: Sequence[str]) -> list[str]:
    """Set one key of ``root/controller.yaml`` (``origine config set``); the value is checked
    as the letter will read it. Returns the required keys still missing."""
    path = Path(root) / CONTROLLER_FILE
    label = str(path)
    if key not in _REQUIRED + _OPTIONAL:
        raise BadInput(f"unknown key (known: {', '.join(_REQUIRED + _OPTIONAL)})", file=label, column=key)
    doc: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text("utf-8"))
        doc = dict(loaded) if isinstance(loaded, Mapping) else {}
    value: Any
    if key in ("address", "dpo_address"):
        value = [v for v in values if v.strip()]
    elif key == "retention_days":
        if len(values) != 1 or not values[0].strip().isdigit():
            raise BadInput("expected a positive number of days", file=label, column=key)
        value = int(values[0])
    else:
        value = " ".join(values).strip()
    doc[key] = value
    # Check this key (and any already set) now, with stand-ins for required keys not yet set.
    stand_in = {"name": "-", "address": ["-"], "dpo_email": "-"}
    parse_controller({**stand_in, **{k: v for k, v in doc.items() if v not in (None, "", [])}}, label)
    if value in ("", []):
        raise BadInput("required key missing" if key in _REQUIRED else "expected a value", file=label, column=key)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return [k for k in _REQUIRED if doc.get(k) in (None, "", [])]


@dataclass(frozen=True)
class Campaign:
    """A campaign that targeted the number, as the letter names it."""

    campaign_id: str
    at: datetime | None
    purpose: str | None
    channel: str | None
    sponsor: str | None = None


@dataclass(frozen=True)
class LetterFacts:
    """Everything the letter states; built by :func:`gather`, or by hand in tests."""

    controller: Controller
    subject_ref: str | None  # the start of the keyed hash, None when nothing is held
    zone: str
    events: tuple[Mapping[str, Any], ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    custody: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """True when the home holds anything about the number (never "nothing" when
        the lookup answer carries something this letter does not itemise)."""
        return bool(self.events or self.campaigns or self.extra)


def _scrub(value: Any) -> str:
    """Ledger text as is: ingest already replaced numbers, e-mail and IP addresses in
    vendors' free text by keyed tokens (:mod:`origine.freetext`), and masking digit
    runs again would garble dates in proof references."""
    return str(value)


def _mask(value: Any) -> str:
    """Text from outside the ledger (a campaign spec's sponsor), digit runs masked."""
    from origine.audit import scrub

    return scrub(str(value))


def custody_chain(events: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The parties the number passed through, in the order of the hops, each once
    (several deliveries to the same party are one step of the chain)."""
    hops = sorted((e for e in events if e.get("type") in ("transferred", "delivered")), key=_order)
    chain: list[str] = []
    for hop in hops:
        for party in (hop.get("from") or hop.get("vendor"), hop.get("to")):
            if party and party not in chain:
                chain.append(str(party))
    return tuple(chain)


def _order(event: Mapping[str, Any]) -> tuple[Any, ...]:
    # An undated fact of a delivery (a transfer, a collection without a date) happened
    # by the time of that delivery: it sorts just before it, not after everything.
    at = i18n.parse_instant(event.get("at"))
    bound = i18n.parse_instant(event.get("before")) if at is None else None
    moment = at or bound
    return (moment is None, moment.timestamp() if moment else 0.0, 0 if bound else 1, int(event.get("seq") or 0))


def facts_from(answer: "LookupAnswer", controller: Controller, *, countries: Mapping[str, str] | None = None,
               sponsors: Mapping[str, str] | None = None, country: str = "FR") -> LetterFacts:
    """Facts from a lookup answer: events in date order; the zone of the first delivery's
    country (else ``country``'s); campaigns with their sponsors when known."""
    delivered_at: dict[str, str] = {}
    for e in answer.events:
        if e.get("type") == "delivered" and e.get("delivery") and e.get("at"):
            delivered_at.setdefault(str(e["delivery"]), str(e["at"]))
    events = sorted((dict(e, before=delivered_at[str(e["delivery"])])
                     if not e.get("at") and str(e.get("delivery")) in delivered_at else dict(e)
                     for e in answer.events), key=_order)
    delivered = [e for e in events if e.get("delivery") and (countries or {}).get(str(e.get("delivery")))]
    zone = i18n.zone_for_country((countries or {})[str(delivered[0]["delivery"])] if delivered else country)
    campaigns: dict[str, Campaign] = {}
    for e in events:
        if e.get("type") == "targeted" and e.get("campaign") and e["campaign"] not in campaigns:
            purposes = e.get("purposes") or []
            campaigns[e["campaign"]] = Campaign(
                str(e["campaign"]), i18n.parse_instant(e.get("at")), purposes[0] if purposes else None,
                e.get("channel"), (sponsors or {}).get(str(e["campaign"])))
    # Anything else the answer holds (fields added to LookupAnswer later) is counted, not dropped.
    extra = {k: v for k, v in answer.to_dict().items()
             if k not in ("subject_key", "events", "campaigns", "custody") and v not in (None, [], {}, 0, False)}
    return LetterFacts(
        controller=controller,
        subject_ref=answer.subject_key[:16] if answer.events or extra else None,
        extra=extra,
        zone=zone,
        events=tuple(e for e in events if e.get("type") != "targeted"),
        campaigns=tuple(campaigns.values()),
        custody=custody_chain(events),
    )


def campaign_sponsors(home: "Home", ids: Sequence[str]) -> dict[str, str]:
    """Sponsors of campaigns ``ids`` from the home's campaign specs and bundles (the
    ledger records a campaign's id, date and purpose, not its sponsor)."""
    wanted = set(ids)
    found: dict[str, str] = {}
    if not wanted:
        return found
    # Specs the campaigns sensor audited are kept under campaigns/audited/ (origine.campaign_inbox).
    for path in sorted(home.campaigns.glob("*.y*ml")) + sorted(home.campaigns.glob("audited/*.y*ml")):
        try:
            doc = yaml.safe_load(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(doc, Mapping) and doc.get("campaign_id") in wanted and isinstance(doc.get("sponsor"), str):
            found.setdefault(str(doc["campaign_id"]), doc["sponsor"])
    bundles = home.root / "bundles"
    # bundles/<name>/ (origine demo) and bundles/<spec>/<run id>/ (the campaigns sensor's audits)
    for path in sorted(bundles.glob("*/summary.json")) + sorted(bundles.glob("*/*/summary.json")):
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        c = doc.get("campaign") if isinstance(doc, Mapping) else None
        if isinstance(c, Mapping) and c.get("campaign_id") in wanted and isinstance(c.get("sponsor"), str):
            found.setdefault(str(c["campaign_id"]), c["sponsor"])
    return found


def gather(home: "Home", answer: "LookupAnswer", *, country: str = "FR") -> LetterFacts:
    """The letter's facts for ``answer``: controller, deliveries' countries, sponsors."""
    from origine import warehouse

    controller = load_controller(home.root)
    deliveries = sorted({str(e["delivery"]) for e in answer.events if e.get("delivery")})
    countries: dict[str, str] = {}
    if deliveries and home.warehouse.exists():
        with warehouse.session(home.warehouse, read_only=True) as con:
            countries = {str(d): str(c) for d, c in con.execute(
                "SELECT delivery_id, country FROM deliveries WHERE list_contains(?, delivery_id)",
                [deliveries]).fetchall()}
    sponsors = campaign_sponsors(home, [str(e["campaign"]) for e in answer.events if e.get("campaign")])
    return facts_from(answer, controller, countries=countries, sponsors=sponsors, country=country)


# ---------------------------------------------------------------- the document


def _w(key: str, lang: str, **values: Any) -> str:
    return i18n.text("letter_text", key, lang, **values)


def _period(days: int, lang: str) -> str:
    if days % 365 == 0:
        years = days // 365
        return (f"{years} an{'s' if years > 1 else ''}" if lang == "fr" else f"{years} year{'s' if years > 1 else ''}")
    return f"{i18n.number(days, lang)} {'jours' if lang == 'fr' else 'days'}"


def _q(text: Any, lang: str) -> str:
    return f"«\u00a0{_scrub(text)}\u00a0»" if lang == "fr" else f"\"{_scrub(text)}\""


def _french_spaces(text: str) -> str:
    """No-break spaces before French ":", ";" and inside « »: a line never starts with one."""
    for a, b in ((" :", "\u00a0:"), (" ;", "\u00a0;"), ("« ", "«\u00a0"), (" »", "\u00a0»")):
        text = text.replace(a, b)
    return text


def describe_event(e: Mapping[str, Any], zone: str, lang: str) -> str:
    """One fact as a sentence starting with its local date."""
    at = i18n.parse_instant(e.get("at"))
    bound = i18n.parse_instant(e.get("before"))
    if at:
        day = i18n.when(at, zone, lang)
    elif bound:
        day = _w("by_date", lang, day=i18n.short_date(i18n.local(bound, zone).date(), lang))
    else:
        day = _w("unknown_date", lang)
    fr = lang == "fr"
    kind = e.get("type")
    vendor = _scrub(e.get("vendor")) if e.get("vendor") else None
    delivery = _scrub(e.get("delivery")) if e.get("delivery") else None
    by = ((f", selon {vendor}" if fr else f", according to {vendor}") if vendor else "") + (
        (f" (livraison {delivery})" if fr else f" (delivery {delivery})") if delivery else "")
    purposes = e.get("purposes") or []
    purpose = _q(i18n.purpose_label(str(purposes[0]), lang), lang) if purposes else None
    if kind == "collected":
        src = e.get("source")
        what = (f"numéro collecté via {_q(src, lang)}" if src else "numéro collecté (source non indiquée)") if fr else \
               (f"number collected through {_q(src, lang)}" if src else "number collected (source not stated)")
        return f"{day} : {what}{by}." if fr else f"{day}: {what}{by}."
    if kind == "consent_granted":
        if e.get("bundled_consent") or not purpose:
            what = ("consentement groupé, sans finalité précise : il ne vaut consentement pour aucune finalité" if fr else
                    "bundled consent naming no purpose: it counts as consent for no purpose")
        else:
            what = f"consentement pour la finalité {purpose}" if fr else f"consent for the purpose {purpose}"
        proof = e.get("proof")
        proof_text = ((f" ; preuve : {_scrub(proof)}" if fr else f"; proof: {_scrub(proof)}") if proof else
                      (" ; aucune preuve fournie" if fr else "; no proof supplied"))
        return f"{day} : {what}{by}{proof_text}." if fr else f"{day}: {what}{by}{proof_text}."
    if kind == "consent_withdrawn":
        what = f"retrait du consentement pour la finalité {purpose}" if fr else f"consent withdrawn for the purpose {purpose}"
        return f"{day} : {what}{by}." if fr else f"{day}: {what}{by}."
    if kind == "opted_out":
        channel = i18n.label("channels", str(e.get("channel") or "all"), lang)
        origin = str(e.get("origin") or "")
        kind_, _, ref = origin.partition(":")
        if kind_ == "campaign" and ref:  # a STOP reply in a campaign's send report
            how = f"réponse STOP à la campagne {_scrub(ref)}" if fr else f"STOP reply to campaign {_scrub(ref)}"
        else:
            how = i18n.label("origins", kind_, lang) if origin else None
        what = (f"opposition ({channel})" + (f", {how}" if how else "")) if fr else \
               (f"opt-out ({channel})" + (f", {how}" if how else ""))
        return f"{day} : {what}{by}." if fr else f"{day}: {what}{by}."
    if kind == "transferred":
        what = (f"transmis par {_scrub(e.get('from'))} à {_scrub(e.get('to'))}" if fr else
                f"passed from {_scrub(e.get('from'))} to {_scrub(e.get('to'))}")
        extra = (f" (livraison {delivery})" if fr else f" (delivery {delivery})") if delivery else ""
        return f"{day} : {what}{extra}." if fr else f"{day}: {what}{extra}."
    if kind == "delivered":
        what = (f"livré par {_scrub(e.get('from') or vendor)} à {_scrub(e.get('to'))}" if fr else
                f"delivered by {_scrub(e.get('from') or vendor)} to {_scrub(e.get('to'))}")
        extra = (f" (livraison {delivery})" if fr else f" (delivery {delivery})") if delivery else ""
        return f"{day} : {what}{extra}." if fr else f"{day}: {what}{extra}."
    what = _scrub(str(kind).replace("_", " "))
    return f"{day} : {what}{by}." if fr else f"{day}: {what}{by}."


def describe_campaign(c: Campaign, zone: str, lang: str) -> str:
    """A campaign as a sentence: date, id, sponsor (when known), purpose and channel."""
    fr = lang == "fr"
    day = i18n.when(c.at, zone, lang) if c.at else _w("unknown_date", lang)
    parts = [f"campagne {_scrub(c.campaign_id)}" if fr else f"campaign {_scrub(c.campaign_id)}"]
    if c.sponsor:
        parts[0] += f" de {_mask(c.sponsor)}" if fr else f" by {_mask(c.sponsor)}"
    if c.purpose:
        parts.append((f"finalité {_q(i18n.purpose_label(c.purpose, lang), lang)}" if fr else
                      f"purpose {_q(i18n.purpose_label(c.purpose, lang), lang)}"))
    if c.channel:
        parts.append((f"par {i18n.label('channels', c.channel, lang)}" if fr else
                      f"by {i18n.label('channels', c.channel, lang)}"))
    return f"{day} : " + ", ".join(parts) + "." if fr else f"{day}: " + ", ".join(parts) + "."


Block = tuple[str, Any]  # ("head" | "date" | "subject" | "h" | "p" | "chain" | "ul" | "sign", content)


def compose(facts: LetterFacts, lang: str, today: date) -> list[Block]:
    """The letter as blocks, the one source of both the text and the HTML form."""
    lang = i18n.check_lang(lang)
    ctl = facts.controller
    dpo = ctl.dpo_email + (", " + ", ".join(ctl.dpo_address) if ctl.dpo_address else "")
    place = f"{ctl.city}, le " if ctl.city and lang == "fr" else (f"{ctl.city}, " if ctl.city else "")
    blocks: list[Block] = [("head", (ctl.name, *ctl.address)),
                           ("date", place + i18n.long_date(today, lang)),
                           ("subject", _w("subject", lang)),
                           ("p", _w("dear", lang)),
                           ("p", _w("intro", lang))]
    if not facts.found:
        blocks += [("p", _w("nothing", lang)), ("p", _w("nothing_after", lang))]
    else:
        blocks += [("h", _w("h_held", lang)), ("p", _w("held", lang, ref=facts.subject_ref)),
                   ("h", _w("h_history", lang)), ("p", _w("zone", lang, zone=i18n.zone_name(facts.zone, lang)))]
        lines = list(dict.fromkeys(describe_event(e, facts.zone, lang) for e in facts.events))
        blocks.append(("ul", lines))
        if facts.custody:
            blocks += [("h", _w("h_chain", lang)), ("p", _w("chain", lang)),
                       ("chain", " → ".join(map(_scrub, facts.custody)))]
        blocks.append(("h", _w("h_campaigns", lang)))
        if facts.campaigns:
            blocks.append(("ul", list(dict.fromkeys(describe_campaign(c, facts.zone, lang) for c in facts.campaigns))))
        else:
            blocks.append(("p", _w("no_campaigns", lang)))
        if facts.extra:
            blocks.append(("p", _w("extra", lang, what=", ".join(
                f"{k.replace('_', ' ')} ({len(v) if isinstance(v, (list, dict)) else v})" for k, v in facts.extra.items()))))
        blocks += [("h", _w("h_retention", lang)),
                   ("p", _w("retention", lang, period=_period(ctl.retention_days, lang)))]
    blocks += [("h", _w("h_rights", lang)),
               ("ul", [_w(k, lang) for k in ("r_access", "r_rect", "r_erase", "r_limit", "r_object", "r_withdraw")]),
               ("p", _w("exercise", lang, dpo=dpo)),
               ("p", _w("complain", lang, cnil=CNIL["name"], address=CNIL["address"], web=CNIL["web"])),
               ("p", _w("close", lang)),
               ("sign", (ctl.dpo_name or _w("dpo_default", lang), _w("for", lang, name=ctl.name)))]
    if lang == "fr":
        blocks = [(kind, [_french_spaces(x) for x in content] if kind == "ul" else _french_spaces(content)
                   if isinstance(content, str) else content) for kind, content in blocks]
    return blocks


def render_text(facts: LetterFacts, lang: str, today: date, width: int = 78) -> str:
    """The letter as plain text, wrapped at ``width`` columns."""
    out: list[str] = []
    for kind, content in compose(facts, lang, today):
        if kind in ("head", "sign"):
            out += list(content) + [""]
        elif kind == "date":
            out += [content.rjust(width) if len(content) < width else content, ""]
        elif kind == "subject":
            out += textwrap.wrap(content, width) + [""]
        elif kind == "chain":  # one line, never cut between two parties
            out += ["    " + content, ""]
        elif kind == "h":
            out += [content, "-" * len(content)]
        elif kind == "p":
            out += textwrap.wrap(content, width, break_on_hyphens=False) + [""]
        elif kind == "ul":
            for item in content:
                out += textwrap.wrap(item, width, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


_PRINT_CSS = """
@page{size:A4;margin:20mm 18mm}
*{box-sizing:border-box}
body{font:11pt/1.45 Georgia,"DejaVu Serif",serif;color:#111;max-width:174mm;margin:2rem auto;padding:0 1rem}
.head{margin:0 0 1.2em}.head p{margin:0}.date{text-align:right;margin:1.5em 0}
.subject{font-weight:bold;margin:1.2em 0}h2{font-size:11.5pt;margin:1.2em 0 .3em;break-after:avoid}
ul{margin:.3em 0 .6em;padding-left:1.3em}li{margin:.15em 0;break-inside:avoid}p{margin:.5em 0}
.chain{margin-left:1.5em;font-weight:bold}.sign{margin-top:2em;break-inside:avoid}.sign p{margin:0}
@media print{body{margin:0;padding:0;max-width:none}}
"""


def render_html(facts: LetterFacts, lang: str, today: date) -> str:
    """The letter as one printable HTML page (A4, print stylesheet, no network)."""
    e = html.escape
    body: list[str] = []
    for kind, content in compose(facts, lang, today):
        if kind in ("head", "sign"):
            body.append(f'<div class="{kind}">' + "".join(f"<p>{e(line)}</p>" for line in content) + "</div>")
        elif kind == "date":
            body.append(f'<p class="date">{e(content)}</p>')
        elif kind == "subject":
            body.append(f'<p class="subject">{e(content)}</p>')
        elif kind == "chain":
            body.append(f'<p class="chain">{e(content)}</p>')
        elif kind == "h":
            body.append(f"<h2>{e(content)}</h2>")
        elif kind == "p":
            body.append(f"<p>{e(content)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in content) + "</ul>")
    title = e(_w("subject", lang))
    return (f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{_PRINT_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_letter(home: "Home", answer: "LookupAnswer", *, lang: str = "fr", as_html: bool = False,
                 today: date | None = None, country: str = "FR") -> str:
    """The letter for ``answer`` from ``home``'s facts, as text or HTML (``today``: default, today)."""
    lang = i18n.check_lang(lang)
    facts = gather(home, answer, country=country)
    day = today or date.today()
    return render_html(facts, lang, day) if as_html else render_text(facts, lang, day)
