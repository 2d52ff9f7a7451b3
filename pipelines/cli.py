"""The ``origine`` console script: the commands that start Dagster runs, and every
command of :mod:`origine.cli`.

Domain code (``origine/``) never imports Dagster, ``assets`` or ``pipelines``
(docs/architecture.md). The commands that hand their work to Dagster (``ingest``,
``demo``, ``suppress``, ``audit``, and ``ui``, which starts Dagster itself) therefore
live here, beside the run starters of :mod:`pipelines.runs`; :data:`main` is one group
holding them and the commands :mod:`origine.cli` defines, which run without Dagster
(``python -m origine.cli`` still offers those alone).

Exit status: 0 done, 2 bad input (the message names file, row and column), 1
internal error. Findings are data, not failures.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import click

from origine import cli as domain_cli
from origine.cli import error_line, explained, guarded, home_option, json_option
from origine.errors import OrigineError
from origine.home import resolve_home


@click.group(help=domain_cli.main.help)
@click.version_option(package_name="origine")
def main() -> None:
    """The ``origine`` console script (its help is origine.cli's)."""
    # Runs print their own progress; Dagster's INFO lines would bury it.
    logging.getLogger("dagster").setLevel(logging.WARNING)


for _name, _command in domain_cli.main.commands.items():
    main.add_command(_command, _name)


def _print_reports(reports: Sequence[Any], as_json: bool) -> None:
    summaries = [r.summary() for r in reports]
    if as_json:
        click.echo(json.dumps(summaries, indent=2, ensure_ascii=False))
        return
    for s in summaries:
        dup = " (duplicate: already ingested, nothing added)" if s["duplicate"] else ""
        click.echo(f"{s['vendor']}/{s['delivery_id']}{dup}")
        click.echo(
            f"  rows read {s['rows_read']}, accepted {s['rows_accepted']}, "
            f"quarantined {s['rows_quarantined']}"
        )
        for code, n in s["quarantine_reasons"].items():
            click.echo(f"    quarantined {code}: {n}")
        for f in s["findings"]:
            detail = ", ".join(f"{k}={v}" for k, v in f.items() if k != "code")
            click.echo(f"  finding {f['code']}" + (f" ({detail})" if detail else ""))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@home_option
@json_option
def ingest(paths: tuple[Path, ...], home: Path | None, as_json: bool) -> None:
    """Ingest deliveries (folders or .zip files), each as a Dagster run.

    Each delivery lands or fails on its own: a bad one is reported (on stderr)
    and the others still land. The exit status is then 2 when every failure was
    bad input, 1 when any was something else.
    """
    from pipelines import runs

    def setup() -> Any:
        h = resolve_home(home)
        runs.activate(h)
        h.load_key()  # refuse early: no key, or the demo key outside a demo home
        return h

    h = guarded(setup, home)
    reports: list[Any] = []
    failures: list[BaseException] = []
    for p in paths:
        try:
            reports.append(runs.ingest_via_dagster(h, p, progress=not as_json))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # this delivery fails alone
            exc = explained(exc, h.root)
            failures.append(exc)
            click.echo(error_line(exc), err=True)
    _print_reports(reports, as_json)
    if failures:
        codes = {exc.exit_code if isinstance(exc, OrigineError) else 1 for exc in failures}
        sys.exit(1 if 1 in codes else max(codes))


@main.command()
@home_option
@click.option("--rows", default=3000, show_default=True, help="Rows in the French delivery.")
@json_option
def demo(home: Path | None, rows: int, as_json: bool) -> None:
    """Generate demo deliveries and run the pipeline on them end to end, through Dagster.

    Uses the public demo key, which only a home created by this command accepts;
    the home is ./.origine-demo unless --home is given (never $ORIGINE_HOME).
    """
    from pipelines import runs
    from origine.demo import write_demo_deliveries

    def go() -> list[Any]:
        h = resolve_home(home or Path(".origine-demo"))
        if h.warehouse.exists() and not h.is_demo:
            raise OrigineError(f"{h.root} is not a demo home: refusing to put demo data in it")
        runs.activate(h, demo=True)
        inbox = Path(tempfile.mkdtemp(prefix="origine-demo-", dir=h.scratch))
        try:
            paths = write_demo_deliveries(inbox, rows=rows)
            reports = [runs.ingest_via_dagster(h, p) for p in paths]
        finally:
            shutil.rmtree(inbox, ignore_errors=True)
        from origine.demo import write_demo_campaign
        from origine.export import audit_bundle

        out = h.root / "bundles" / "EU24-SMS-DEMO"
        result, manifest = audit_bundle(write_demo_campaign(h.campaigns), h, h.load_key(), out)
        if not as_json:
            click.echo(f"demo home: {h.root}  (see the runs: origine ui --home {h.root})")
            s = result.summary
            click.echo(f"audit of {s['campaign_id']}: {s['targets']} targets, " +
                       ", ".join(f"{k} {v}" for k, v in s["verdicts"].items()) +
                       f"; findings: {', '.join(sorted({f['code'] for f in s['findings']})) or 'none'}")
            click.echo(f"signed bundle: {out}  (check it: origine verify {out} --home {h.root})")
        return reports

    _print_reports(guarded(go, home), as_json)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@home_option
@click.option("--country", default="FR", show_default=True, help="Region for numbers without +prefix.")
@click.option("--origin", default=None, help="Origin when the file has no origin column (stop-reply, dpo-request, do-not-call).")
@click.option("--channel", default=None, help="Channel when the file has no channel column.")
@click.option("--timezone", "tz", default="Europe/Paris", show_default=True,
              help="IANA time zone of dates without an offset in the files (a French STOP list's "
                   "'07/06/2024 18:03' is Paris time); dates with an offset keep theirs.")
@json_option
def suppress(paths: tuple[Path, ...], home: Path | None, country: str, origin: str | None,
             channel: str | None, tz: str, as_json: bool) -> None:
    """Ingest suppression files (STOP replies, DPO requests, do-not-call lists) as opt-outs.

    A campaign's send report records its own STOP replies when the campaign is
    audited (origin campaign:<id>); this command is for lists from elsewhere.
    Each file is a Dagster run of the suppression_list asset (one partition per file).
    """
    from pipelines import runs
    from origine.signing import load_signer
    from origine.suppressions import check_timezone

    def go() -> list[dict[str, Any]]:
        check_timezone(tz)
        h = resolve_home(home)
        runs.activate(h)
        key = h.load_key()  # refuse early: no key, or the demo key outside a demo home
        load_signer(h.keys)
        return [
            runs.suppress_via_dagster(h, p, key=key, country=country.upper(), origin=origin, channel=channel,
                                      tz=tz)
            for p in paths
        ]

    reports = guarded(go, home)
    if as_json:
        click.echo(json.dumps(reports, indent=2))
        return
    for r in reports:
        dup = " (duplicate: already ingested, nothing added)" if r["duplicate"] else ""
        click.echo(f"{r['file']}{dup}: read {r['rows_read']}, accepted {r['rows_accepted']}, "
                   f"quarantined {r['rows_quarantined']} {r['quarantine_reasons'] or ''}")


@main.command("audit")
@click.argument("campaign", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the bundle into.")
@home_option
@click.option("--validity-days", default=1095, show_default=True, help="How long a consent stays valid.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(["non_compliant", "unverifiable"]),
              help="Exit 1 when any target has this verdict (findings are data otherwise).")
@click.option("--zip", "as_zip", is_flag=True, help="Also write the bundle as one file, DIR.zip.")
@click.option("--lang", type=click.Choice(["fr", "en"]), default=None,
              help="Language of report.html (default: the campaign country's, French for FR).")
@click.option("--send-list", "send_list", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write OUT.csv: per row of the campaign's target file, its position, its own id "
                   "(when the file has an id column), verdict and reasons; never a number.")
@click.option("--since", "since", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A checkpoint the regulator holds: the bundle carries the consistency proof from it.")
@json_option
def audit_cmd(campaign: Path, out_dir: Path, home: Path | None, validity_days: int,
              fail_on: tuple[str, ...], as_zip: bool, lang: str | None, send_list: Path | None,
              since: Path | None, as_json: bool) -> None:
    """Audit CAMPAIGN.yaml: a verdict per target, findings, claims; a signed bundle in --out.

    --out must be a new or empty folder, or an earlier bundle of the same campaign
    (replaced); anything else is refused (exit 2) before the ledger records the audit.
    The audit is a Dagster run of the campaign_audit and campaign_bundle assets (one
    partition per spec).
    """
    from pipelines import runs
    from origine.bundle import archive_path

    def go() -> Any:
        archive = archive_path(out_dir) if as_zip else None
        if send_list is not None:  # refused before the audit records anything
            from origine.campaign import load_campaign
            from origine.send_list import require_target_file

            require_target_file(load_campaign(campaign))
        h = resolve_home(home)
        runs.activate(h)
        key = h.load_key()  # refuse early: no key, or the demo key outside a demo home
        return (*runs.audit_via_dagster(h, campaign, out_dir, key=key, validity_days=validity_days,
                                        as_zip=as_zip, lang=lang, since=since), archive)

    result, manifest, archive = guarded(go, home)
    if send_list is not None:
        from origine.campaign import load_campaign
        from origine.send_list import write_send_list

        listed = guarded(lambda: write_send_list(load_campaign(campaign), resolve_home(home).load_key(),
                                                  result.targets_parquet, send_list), home)
        if not as_json:
            click.echo(f"send list {send_list}: {listed.rows} rows  " +
                       "  ".join(f"{k} {v}" for k, v in listed.verdicts.items()))
    s = result.summary
    if as_json:
        click.echo(json.dumps(s, indent=2, ensure_ascii=False))
    else:
        click.echo(f"campaign {s['campaign_id']}: {s['targets']} targets  " +
                   "  ".join(f"{k} {v}" for k, v in s["verdicts"].items()))
        for code, n in s["reasons"].items():
            if n:
                click.echo(f"  reason {code}: {n}")
        from origine.report import finding_sentence

        for f in s["findings"]:  # which delivery, which criterion: the report's sentence
            click.echo(f"  finding {f['code']}: {finding_sentence(f, lang or 'en')[1]}")
        click.echo(f"bundle {out_dir} signed by {manifest['signer']}" + (f"; zipped as {archive}" if archive else ""))
    if any(result.count(v) for v in fail_on):
        sys.exit(1)


@main.command()
@home_option
@click.option("--port", default=3000, show_default=True)
def ui(home: Path | None, port: int) -> None:
    """Start the Dagster UI (and daemon: sensors, schedules) on this home."""
    from pipelines import runs

    h = resolve_home(home)
    runs.activate(h)
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    cmd = [str(Path(sys.executable).parent / "dagster"), "dev", "-p", str(port)]
    cmd += ["-w", str(workspace)] if workspace.exists() else ["-m", "pipelines.definitions"]
    click.echo(f"Dagster UI on http://127.0.0.1:{port}  (home {h.root})")
    sys.exit(subprocess.call(cmd, cwd=workspace.parent if workspace.exists() else None))


if __name__ == "__main__":  # pragma: no cover
    main()
