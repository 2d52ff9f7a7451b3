"""``report.html``: one self-contained page (no network) a person reads."""

from __future__ import annotations

import html
from typing import Any, Mapping

COLORS = {"compliant": "#2e7d32", "non_compliant": "#c62828", "unverifiable": "#f9a825"}


def _bars(counts: Mapping[str, int], title: str, colors: Mapping[str, str] | None = None) -> str:
    """A horizontal bar chart as inline SVG."""
    items = [(k, v) for k, v in counts.items() if v] or [("none", 0)]
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        width = int(360 * value / top)
        color = (colors or {}).get(label, "#1565c0")
        y = 24 * i
        rows.append(
            f'<text x="0" y="{y + 15}" font-size="12">{html.escape(label)}</text>'
            f'<rect x="200" y="{y + 3}" width="{width}" height="16" fill="{color}"><title>{value}</title></rect>'
            f'<text x="{206 + width}" y="{y + 15}" font-size="12">{value}</text>'
        )
    height = 24 * len(items)
    return (f'<figure><figcaption>{html.escape(title)}</figcaption>'
            f'<svg role="img" aria-label="{html.escape(title)}" width="640" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg></figure>')


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>none</td></tr>'}</tbody></table>"


def render_report(summary: Mapping[str, Any], validations: list[Mapping[str, Any]] | None = None) -> str:
    """The audit as HTML: campaign, verdict and reason charts, breakdowns, findings, claims."""
    c = summary.get("campaign", {})
    verdicts = summary.get("verdicts", {})
    breakdown = lambda key: [[name, *(counts.get(v, 0) for v in COLORS)] for name, counts in summary.get(key, {}).items()]  # noqa: E731
    findings = [[f.get("code"), ", ".join(f"{k}={v}" for k, v in f.items() if k not in ("code", "subject_keys"))]
                for f in summary.get("findings", [])]
    claims = [[x.get("vendor", ""), x.get("delivery_id"), x.get("claim"), x.get("claimed"), x.get("measured"),
               "ok" if x.get("ok") else "MISMATCH"] for x in summary.get("claims", [])]
    checks = [[v.get("suite"), "passed" if v.get("passed") else "FAILED", v.get("rows")] for v in validations or []]
    ledger = summary.get("ledger", {})
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>origine audit {html.escape(str(summary.get('campaign_id')))}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}figure{{margin:1em 0}}figcaption{{font-weight:bold}}
code{{background:#f4f4f4;padding:0 .2em}}</style></head><body>
<h1>Audit of campaign {html.escape(str(summary.get('campaign_id')))}</h1>
<p>Sponsor <b>{html.escape(str(c.get('sponsor')))}</b>, channel <b>{html.escape(str(c.get('channel')))}</b>,
purpose <b>{html.escape(str(c.get('purpose')))}</b>, sent {html.escape(str(c.get('sent_at')))}.
{summary.get('targets', 0)} distinct targets.</p>
{_bars(verdicts, 'Verdicts', COLORS)}
{_bars(summary.get('reasons', {}), 'Reasons')}
<h2>Per vendor</h2>{_table(['vendor', *COLORS], breakdown('vendors'))}
<h2>Per source</h2>{_table(['source', *COLORS], breakdown('sources'))}
<h2>Findings</h2>{_table(['code', 'detail'], findings)}
<h2>Vendor claims against what was measured</h2>{_table(['vendor', 'delivery', 'claim', 'claimed', 'measured', ''], claims)}
<h2>Checks on the data</h2>{_table(['Great Expectations suite', 'result', 'rows'], checks)}
<h2>How to verify this bundle</h2>
<p>Every verdict rests on the ledger events in <code>ledger/events.jsonl</code>, each line the exact bytes of an
RFC 9162 Merkle leaf; <code>ledger/proofs.json</code> proves each one is in the ledger whose tree head is
size {ledger.get('tree_size')}, root <code>{html.escape(str(ledger.get('root_hash')))}</code>.
<code>manifest.json</code> lists the SHA-256 of every file, signed with the operator's Ed25519 key.
Run <code>origine verify BUNDLE --public-key operator.pub.pem</code>, or check the proofs with any RFC 9162 tool.
No phone number appears anywhere in this bundle: targets are identified by keyed hashes only.</p>
</body></html>
"""
