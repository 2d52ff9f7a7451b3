"""``report.html``: one self-contained page (no network, no script) a person reads.

:func:`render_report` is a pure function of ``summary.json``, ``validations.json``
and the language: no clock, no locale, no random ids. ``origine verify`` renders
the report again from the bundle's own files and requires the same bytes, so a
report that says something the signed summary does not is caught.

The language is written in the page (``<html lang="…">``) for the verifier to read
back; times are shown in the campaign's zone (its country's when the spec set none).
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable, Mapping

from origine import i18n

COLORS = {"compliant": "#2e7d32", "non_compliant": "#c62828", "unverifiable": "#b26a00"}
REASON_COLOR = "#1f5fa8"
_BAR_UNITS = 1000  # SVG viewBox width of a bar: percentages with one decimal stay exact
_MIN_BAR = 4  # a non-zero count never draws as nothing, even 1 in 3 million
_LANG_ATTR = re.compile(r'<html lang="([a-z]{2})"')

_CSS = """
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:62rem;margin:0 auto;padding:1rem 1.25rem 3rem;color:#1b1b1b;overflow-wrap:break-word}
h1{font-size:1.7rem;line-height:1.25;margin:.5rem 0 1rem}h2{font-size:1.3rem;margin:2rem 0 .6rem;border-bottom:2px solid #e3e3e3;padding-bottom:.2rem}
p,li,dd{max-width:46rem}code{background:#f3f3f3;padding:0 .2em;font-size:.9em;overflow-wrap:anywhere}
.chart{margin:1rem 0}.chart figcaption{font-weight:600;margin-bottom:.3rem}
.bar{display:grid;grid-template-columns:minmax(9rem,16rem) minmax(6rem,1fr) minmax(9rem,auto);gap:.2rem .8rem;align-items:center;padding:.15rem 0}
.bar svg{width:100%;height:1.1rem;display:block}.bar .val{font-variant-numeric:tabular-nums;white-space:nowrap;text-align:right}
.split svg{width:100%;min-width:5rem;height:.8rem;display:block}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:-.05em}
table{border-collapse:collapse;margin:.6rem 0;width:100%}td,th{border:1px solid #d5d5d5;padding:.35rem .55rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
dl.defs dt{font-weight:600;margin-top:.8rem}dl.defs dd{margin:.1rem 0 0 0}
.tag{display:inline-block;border-radius:.25rem;padding:0 .35rem;color:#fff;font-size:.85em;white-space:nowrap}
.finding{margin:.5rem 0}.ok{color:#2e7d32;white-space:nowrap}.bad{color:#c62828;font-weight:600;white-space:nowrap}.muted{color:#555}
@media (max-width:640px){
 body{padding:.75rem .8rem 2rem;font-size:15px}h1{font-size:1.35rem}
 .bar{grid-template-columns:1fr auto}.bar svg{grid-column:1 / -1;grid-row:2}
 table.cards thead{display:none}table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
 table.cards tr{border:1px solid #d5d5d5;margin:.5rem 0;padding:.2rem .4rem}table.cards td{border:0;padding:.15rem 0;text-align:left;white-space:normal}
 table.cards td::before{content:attr(data-label) ": ";font-weight:600}
}
@media print{body{max-width:none}h2{break-after:avoid}.bar,tr{break-inside:avoid}}
"""


def _t(key: str, lang: str, **values: Any) -> str:
    return i18n.text("report_text", key, lang, **values)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def report_lang(summary: Mapping[str, Any], lang: str | None = None) -> str:
    """The report's language: ``lang`` if given, else the campaign country's."""
    if lang:
        return i18n.check_lang(lang)
    return i18n.lang_for_country((summary.get("campaign") or {}).get("country"))


def lang_of(page: str) -> str | None:
    """The language a rendered report declares (for :func:`origine.bundle.verify_bundle`)."""
    match = _LANG_ATTR.search(page[:500])
    return match.group(1) if match else None


def _bar(name: str, n: int, total: int, color: str, lang: str) -> str:
    width = 0 if not total or not n else max(_MIN_BAR, round(_BAR_UNITS * n / total))
    value = f"{i18n.number(n, lang)} · {i18n.percent(n, total, lang)}"
    return (f'<div class="bar"><span class="name">{_e(name)}</span>'
            f'<svg viewBox="0 0 {_BAR_UNITS} 20" preserveAspectRatio="none" role="img" aria-label="{_e(name)}: {_e(value)}" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="{_BAR_UNITS}" height="20" fill="#ececec"/>'
            f'<rect width="{min(width, _BAR_UNITS)}" height="20" fill="{color}"/></svg>'
            f'<span class="val">{value}</span></div>')


def _chart(title: str, rows: Iterable[tuple[str, int, str]], total: int, lang: str) -> str:
    bars = "".join(_bar(name, n, total, color, lang) for name, n, color in rows)
    return f'<figure class="chart" aria-label="{_e(title)}"><figcaption>{_e(title)}</figcaption>{bars}</figure>'


def _split(counts: Mapping[str, int], lang: str) -> str:
    """A stacked bar of one row's verdicts (responsive SVG, proportions exact to 0.1 %)."""
    total = sum(int(counts.get(v, 0)) for v in COLORS)
    x = 0
    rects = []
    for verdict, color in COLORS.items():
        n = int(counts.get(verdict, 0))
        if not n or not total:
            continue
        w = max(_MIN_BAR, round(_BAR_UNITS * n / total))
        rects.append(f'<rect x="{x}" width="{w}" height="10" fill="{color}"/>')
        x += w
    label = ", ".join(f"{i18n.label('verdicts', v, lang)} {i18n.percent(int(counts.get(v, 0)), total, lang)}" for v in COLORS)
    return (f'<svg viewBox="0 0 {max(x, _BAR_UNITS)} 10" preserveAspectRatio="none" role="img" aria-label="{_e(label)}" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="{max(x, _BAR_UNITS)}" height="10" fill="#ececec"/>{"".join(rects)}</svg>')


def _table(headers: list[str], rows: list[list[tuple[str, str]]], empty: str) -> str:
    """A table that turns into cards on a phone; cells are ``(html, css class)``."""
    if not rows:
        return f"<p class=\"muted\">{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td data-label="{_e(h)}"{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{cell}</td>'
                         for h, (cell, cls) in zip(headers, r)) + "</tr>"
        for r in rows
    )
    return f'<table class="cards"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _breakdown(title: str, column: str, data: Mapping[str, Mapping[str, int]], lang: str) -> str:
    headers = [column, *(i18n.label("verdicts", v, lang) for v in COLORS), _t("split", lang)]
    rows = []
    for name, counts in data.items():
        total = sum(int(counts.get(v, 0)) for v in COLORS)
        cells = [(_e(name), "")]
        cells += [(f"{i18n.number(int(counts.get(v, 0)), lang)} <span class=\"muted\">({i18n.percent(int(counts.get(v, 0)), total, lang)})</span>", "n")
                  for v in COLORS]
        cells.append((_split(counts, lang), "split"))
        rows.append(cells)
    return f"<h2>{_e(title)}</h2>" + _table(headers, rows, _t("none", lang))


def _recipients(n: int, lang: str) -> str:
    return _t("recipient_n" if n == 1 else "recipients_n", lang, n=i18n.number(n, lang))


def claim_value(claim: str, value: Any, lang: str) -> str:
    """A claimed or measured value in words: counts with separators, rates as percentages,
    purposes by their labels, lists joined (never a Python repr)."""
    if value is None or value == [] or value == "":
        return "—"
    if claim == "consent_rate" and not isinstance(value, (bool, list, Mapping)):
        from origine.audit.claims import claimed_rate  # the audit's own reading of a claimed rate

        rate = claimed_rate(value)
        if rate is not None:
            return i18n.ratio(rate, lang)
    if claim == "consent_purposes" and isinstance(value, list):
        return ", ".join(i18n.purpose_label(str(v), lang) for v in value)
    if isinstance(value, bool):
        return ("oui" if value else "non") if lang == "fr" else ("yes" if value else "no")
    if isinstance(value, int):
        return i18n.number(value, lang)
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",") if lang == "fr" else f"{value:g}"
    if isinstance(value, list):
        return ", ".join(claim_value(claim, v, lang) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {claim_value(claim, v, lang)}" for k, v in value.items())
    return str(value)


def _claim_label(claim: str, lang: str) -> str:
    label = i18n.label("claims", claim, lang)
    return label.replace("_", " ") if label == claim else label


def finding_sentence(finding: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """``(title, sentence)`` for a campaign finding, in plain words. Subject keys are
    never listed (counts say enough); unknown codes still read as a sentence."""
    code = str(finding.get("code"))
    spec = i18n.entry("findings", code, lang)
    if not isinstance(spec, Mapping):
        details = "; ".join(f"{k}: {claim_value('', v, lang)}" for k, v in finding.items()
                            if k not in ("code", "subject_keys") and not isinstance(v, (list, dict)))
        return _t("other_finding", lang, code=code), details
    values: dict[str, str] = {}
    if code == "NO_SENDER_ID":
        detail = str(finding.get("detail") or "")
        values["detail"] = i18n.entry("finding_details", detail, lang) or detail
    elif code == "SPECIAL_CATEGORY_TARGETING":
        values["criterion"] = str(finding.get("criterion"))
        values["category"] = i18n.label("special_categories", str(finding.get("category")), lang)
        values["where"] = i18n.label("matched_in", str(finding.get("matched_in")), lang)
    elif code == "CONTACTED_AFTER_STOP":
        values["numbers"] = _recipients(int(finding.get("numbers") or 0), lang)
        values["after_stop"] = i18n.number(int(finding.get("after_stop_reply") or 0), lang)
        values["after_ledger"] = i18n.number(int(finding.get("after_ledger_opt_out") or 0), lang)
    elif code == "CLAIM_MISMATCH":
        claim = str(finding.get("claim"))
        values.update(delivery=str(finding.get("delivery_id")), vendor=str(finding.get("vendor")),
                      claim=_claim_label(claim, lang), claimed=claim_value(claim, finding.get("claimed"), lang),
                      measured=claim_value(claim, finding.get("measured"), lang))
    try:
        sentence = str(spec["text"]).format(**values)
    except (KeyError, IndexError):  # a template naming a field this finding lacks
        sentence = str(spec["text"])
    return str(spec["label"]), sentence


def _reason_text(code: str, lang: str, days: Any) -> tuple[str, str]:
    spec = i18n.entry("reasons", code, lang)
    if not isinstance(spec, Mapping):
        return code, ""
    return str(spec["label"]), str(spec["text"]).replace("{days}", i18n.number(int(days or 0), lang))


def render_report(summary: Mapping[str, Any], validations: list[Mapping[str, Any]] | None = None,
                  lang: str | None = None) -> str:
    """The audit as HTML for people, in ``lang`` (default: the campaign country's language).

    Deterministic: the same summary, validations and language give the same bytes.
    """
    lang = report_lang(summary, lang)
    c = summary.get("campaign") or {}
    zone = i18n.display_zone(c.get("timezone"), c.get("country"))
    total = int(summary.get("targets") or 0)
    verdicts = summary.get("verdicts") or {}
    reasons = summary.get("reasons") or {}
    rules: Mapping[str, str] = summary.get("rules") or {}
    sent = i18n.parse_instant(c.get("sent_at"))
    sent_text = i18n.long_when(sent, zone, lang) if sent else "—"
    channel = i18n.label("channels", str(c.get("channel")), lang)
    purpose = i18n.purpose_label(str(c.get("purpose")), lang)
    parts: list[str] = []
    parts.append(f"<h1>{_e(_t('title', lang, id=summary.get('campaign_id')))}</h1>")
    parts.append("<p>" + _t("intro", lang, sponsor=_e(c.get("sponsor")), channel=_e(channel), purpose=_e(purpose),
                            sent=_e(sent_text), zone=_e(i18n.zone_name(zone, lang))) + " "
                 + _e(_t("targets", lang, n=i18n.number(total, lang))) + "</p>")
    if c.get("targeted_deliveries"):
        parts.append(f"<p>{_e(_t('deliveries', lang, list=', '.join(map(str, c['targeted_deliveries']))))} "
                     f"{_e(_t('validity', lang, days=i18n.number(int(c.get('validity_days') or 0), lang)))}</p>")

    # Verdicts: chart, then what each means.
    parts.append(f"<h2>{_e(_t('verdicts_h', lang))}</h2>")
    parts.append(_chart(_t("verdicts", lang),
                        [(i18n.label("verdicts", v, lang), int(verdicts.get(v, 0)), color) for v, color in COLORS.items()],
                        total, lang))
    parts.append(f"<p>{_e(_t('verdicts_lead', lang))}</p><dl class=\"defs\">")
    for v, color in COLORS.items():
        spec = i18n.entry("verdicts", v, lang) or {}
        parts.append(f'<dt><span class="tag" style="background:{color}">{_e(spec.get("label", v))}</span> '
                     f'<span class="muted">{_e(_recipients(int(verdicts.get(v, 0)), lang))}</span></dt>'
                     f"<dd>{_e(spec.get('text', ''))}</dd>")
    parts.append("</dl>")

    # Reasons: the ones found, charted; then every rule, explained.
    parts.append(f"<h2>{_e(_t('reasons_h', lang))}</h2><p>{_e(_t('reasons_lead', lang))}</p>")
    found = [(code, int(n)) for code, n in reasons.items() if int(n or 0)]
    if found:
        parts.append(_chart(_t("reasons", lang),
                            [(_reason_text(code, lang, c.get("validity_days"))[0], n,
                              COLORS.get(rules.get(code, ""), REASON_COLOR)) for code, n in found], total, lang))
    else:
        parts.append(f"<p>{_e(_t('no_reason', lang))}</p>")
    parts.append(f"<p><b>{_e(_t('rule', lang))}.</b> {_e(_t('rule_all', lang))}</p><dl class=\"defs\">")
    for code in dict.fromkeys([*rules, *reasons]):
        name, text = _reason_text(code, lang, c.get("validity_days"))
        verdict = rules.get(code, "")
        forced = _t("forces", lang, verdict=i18n.label("verdicts", verdict, lang)) if verdict else ""
        colon = " : " if lang == "fr" else ": "
        parts.append(f'<dt id="reason-{_e(code)}">{_e(name)} <code>{_e(code)}</code> '
                     f'<span class="muted">— {_e(_recipients(int(reasons.get(code, 0) or 0), lang))}</span></dt>'
                     f"<dd>{_e(text)} <i>{_e(_t('rule', lang))}{colon}{_e(forced)}.</i></dd>")
    parts.append("</dl>")

    # Findings, in sentences.
    parts.append(f"<h2>{_e(_t('findings_h', lang))}</h2>")
    findings = summary.get("findings") or []
    if findings:
        for f in findings:
            title, sentence = finding_sentence(f, lang)
            parts.append(f'<p class="finding"><b>{_e(title)}</b> <code>{_e(f.get("code"))}</code><br>{_e(sentence)}</p>')
    else:
        parts.append(f"<p>{_e(_t('no_findings', lang))}</p>")

    # Claims against measured.
    parts.append(f"<h2>{_e(_t('claims_h', lang))}</h2><p>{_e(_t('claims_lead', lang))}</p>")
    claim_rows = []
    for x in summary.get("claims") or []:
        claim = str(x.get("claim"))
        ok = x.get("ok")
        verdict = (f'<span class="ok">{_e(_t("claim_ok", lang))}</span>' if ok is True else
                   f'<span class="bad">{_e(_t("claim_bad", lang))}</span>' if ok is False else
                   f'<span class="muted">{_e(_t("claim_none", lang))}</span>')
        claim_rows.append([(_e(f"{x.get('vendor', '')}/{x.get('delivery_id')}"), ""), (_e(_claim_label(claim, lang)), ""),
                           (_e(claim_value(claim, x.get("claimed"), lang)), ""),
                           (_e(claim_value(claim, x.get("measured"), lang)), ""), (verdict, "")])
    parts.append(_table([_t("delivery", lang), _t("claim", lang), _t("claimed", lang), _t("measured", lang),
                         _t("verdict", lang)], claim_rows, _t("no_claims", lang)))

    parts.append(_breakdown(_t("by_vendor", lang), _t("vendor", lang), summary.get("vendors") or {}, lang))
    parts.append(_breakdown(_t("by_source", lang), _t("source", lang), summary.get("sources") or {}, lang))

    tf, sr = summary.get("target_file"), summary.get("send_report")
    if tf or sr:
        parts.append(f"<h2>{_e(_t('files_h', lang))}</h2>")
        n = lambda d, k: i18n.number(int(d.get(k) or 0), lang)  # noqa: E731
        if tf:
            parts.append(f"<p>{_e(_t('target_file', lang, file=tf.get('file'), rows=n(tf, 'rows'), blank=n(tf, 'blank_rows'), bad=n(tf, 'invalid_numbers')))}</p>")
        if sr:
            parts.append(f"<p>{_e(_t('send_report', lang, file=sr.get('file'), rows=n(sr, 'rows'), numbers=n(sr, 'numbers'), not_targeted=n(sr, 'not_targeted'), unusable=n(sr, 'unusable_rows')))}</p>")

    parts.append(f"<h2>{_e(_t('checks_h', lang))}</h2>")
    checks = [[(_e(v.get("suite")), ""),
               (f'<span class="ok">{_e(_t("passed", lang))}</span>' if v.get("passed") else
                f'<span class="bad">{_e(_t("failed", lang))}</span>', ""),
               (_e(i18n.number(int(v.get("rows") or 0), lang)), "n")] for v in validations or []]
    parts.append(_table([_t("suite", lang), _t("result", lang), _t("rows", lang)], checks, _t("no_checks", lang)))

    ledger = summary.get("ledger") or {}
    parts.append(f"<h2>{_e(_t('verify_h', lang))}</h2><p>" +
                 _t("verify", lang, size=_e(i18n.number(int(ledger.get("tree_size") or 0), lang)),
                    root=_e(ledger.get("root_hash"))) + "</p>")
    title = _e(_t("title", lang, id=summary.get("campaign_id")))
    body = "\n".join(parts)
    if lang == "fr":  # no line may start with ":" or "»": French spaces before them do not break
        for a, b in ((" :", "\u00a0:"), (" ;", "\u00a0;"), ("« ", "«\u00a0"), (" »", "\u00a0»")):
            body = body.replace(a, b)
    return (f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{_CSS}</style></head><body>\n" + body + "\n</body></html>\n")
