"""The ``origine`` commands that need no Dagster: the ledger, verify, prove, lookup,
erase, quarantine, config and keys.

The console script is :func:`pipelines.cli.main`, which adds the commands that start
Dagster runs (ingest, demo, suppress, audit, ui) to these: domain code never imports
Dagster or ``pipelines``. The helpers below (options, :func:`guarded`) are shared
with it, so every command fails the same way.

Exit status: 0 done, 2 bad input (the message names file, row and column), 1
internal error. Findings are data, not failures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from origine.errors import BadInput, OrigineError, storage_problem
from origine.home import resolve_home

home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="origine home (default: $ORIGINE_HOME, else ~/.origine).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def explained(exc: BaseException, home: Any = None) -> BaseException:
    """A full disk or a read-only home said plainly, whatever layer noticed it."""
    if isinstance(exc, OrigineError):
        return exc
    return storage_problem(exc, home) or exc


def error_line(exc: BaseException) -> str:
    """The one line a failed command prints on stderr."""
    if isinstance(exc, OrigineError):
        return f"origine: error: {exc}"
    return f"origine: internal error: {type(exc).__name__}: {exc}"


def _fail(exc: BaseException, home: Path | None = None) -> None:
    exc = explained(exc, resolve_home(home).root)
    click.echo(error_line(exc), err=True)
    sys.exit(exc.exit_code if isinstance(exc, OrigineError) else 1)


def guarded(fn: Callable[[], Any], home: Path | None = None) -> Any:
    """``fn()``; any error leaves the process with its exit status and one line on stderr."""
    try:
        return fn()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # every error leaves with a status and one line
        _fail(exc, home)


@click.group()
@click.version_option(package_name="origine")
def main() -> None:
    """origine: where did you get my number, and did I ever agree to this?"""


@main.group()
def ledger() -> None:
    """The provenance ledger: check it, show its head and checkpoint, prove consistency, apply retention."""


def _read_only_ledger(home: Path | None) -> Any:
    """A read-only connection to the home's warehouse (a regulator's read-only copy
    works: nothing is created or upgraded), DuckDB's spill files outside the home."""
    import tempfile

    from origine import ledger as ledger_mod
    from origine import warehouse

    h = resolve_home(home)
    if not h.warehouse.exists():
        raise OrigineError(f"no warehouse at {h.warehouse}: give --home")
    con = warehouse.connect(h.warehouse, read_only=True)
    con.execute("SET temp_directory = ?", [str(Path(tempfile.gettempdir()) / "origine-duckdb")])
    try:
        ledger_mod.require_current(con)
    except BaseException:
        con.close()
        raise
    return con


@ledger.command("check")
@home_option
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The operator's public key (PEM) every checkpoint must be signed by; default: the home's.")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="A checkpoint kept outside the home: prove the ledger extends it.")
@json_option
def ledger_check(home: Path | None, public_key: Path | None, checkpoint_file: Path | None, as_json: bool) -> None:
    """Verify every event, tree node, signed checkpoint, erasure and the key map (exit 1 if not).

    Trusts nothing stored in the warehouse; read-only (works on a read-only copy).
    """
    from origine import ledger as ledger_mod
    from origine.signing import load_public_key

    def go() -> Any:
        from origine.errors import BadInput

        key = None
        if public_key is not None:
            try:
                key = load_public_key(public_key)
            except OrigineError:
                raise BadInput("not an Ed25519 public key (PEM)", file=str(public_key), column="--public-key") from None
        note = None
        if checkpoint_file is not None:
            try:
                note = checkpoint_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                raise BadInput("unreadable checkpoint (not UTF-8 text)", file=str(checkpoint_file),
                               column="--checkpoint") from None
        con = _read_only_ledger(home)
        try:
            return ledger_mod.check_ledger(con, public_key=key, checkpoint=note)
        finally:
            con.close()

    result = guarded(go, home)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.describe())
    sys.exit(0 if result.ok else 1)


@ledger.command("head")
@home_option
@json_option
def ledger_head(home: Path | None, as_json: bool) -> None:
    """The latest tree head (size, root, time, reason, origin); read-only."""
    from origine import ledger as ledger_mod

    def go() -> Any:
        con = _read_only_ledger(home)
        try:
            return ledger_mod.latest_head(con)
        finally:
            con.close()

    head = guarded(go, home)
    doc = head.to_dict() if head else {"tree_size": 0, "root_hash": None}
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in doc.items() if k != "checkpoint"))


@ledger.command("checkpoint")
@home_option
def ledger_checkpoint(home: Path | None) -> None:
    """Print the latest signed checkpoint (C2SP tlog-checkpoint, signed note) as is.

    Keep it outside the home: `origine ledger check --checkpoint FILE` later proves
    the ledger still extends it.
    """
    from origine import ledger as ledger_mod

    def go() -> Any:
        con = _read_only_ledger(home)
        try:
            head = ledger_mod.latest_head(con)
        finally:
            con.close()
        if head is None:
            raise OrigineError("the ledger is empty: no checkpoint yet")
        return head.checkpoint

    click.echo(guarded(go, home), nl=False)


@ledger.command("consistency")
@home_option
@click.option("--from", "old_size", type=int, required=True, help="The tree size of the checkpoint you hold.")
@json_option
def ledger_consistency(home: Path | None, old_size: int, as_json: bool) -> None:
    """An RFC 9162 consistency proof from tree size --from to the latest checkpoint.

    Prints the two sizes, then one base64 hash per line (JSON: the same, and the
    latest checkpoint).
    """
    import base64

    from origine import ledger as ledger_mod
    from origine.errors import BadInput

    def go() -> Any:
        con = _read_only_ledger(home)
        try:
            head = ledger_mod.latest_head(con)
            size = head.tree_size if head else 0
            if not 0 < old_size <= size:
                raise BadInput(f"--from must be between 1 and the latest tree size ({size})", column="--from")
            return head, ledger_mod.consistency(con, old_size, size)
        finally:
            con.close()

    head, proof = guarded(go, home)
    hashes = [base64.b64encode(h).decode() for h in proof]
    if as_json:
        click.echo(json.dumps({"old_size": old_size, "new_size": head.tree_size, "proof": hashes,
                               "checkpoint": head.checkpoint}, indent=2))
    else:
        click.echo(f"consistency {old_size} {head.tree_size}")
        for h in hashes:
            click.echo(h)


@ledger.command("retention")
@home_option
@click.option("--days", default=3 * 365, show_default=True, help="Keep data this long after last contact.")
@json_option
def ledger_retention(home: Path | None, days: int, as_json: bool) -> None:
    """Erase subjects past retention (their events' hashes stay; old heads stay verifiable)."""
    from origine import warehouse
    from origine.retention import apply_retention
    from origine.signing import load_signer

    def go() -> Any:
        h = resolve_home(home).ensure()
        with warehouse.session(h.warehouse) as con:
            return apply_retention(con, days=days, signer=load_signer(h.keys))

    result = guarded(go, home).to_dict()
    click.echo(json.dumps(result, indent=2) if as_json else
               f"erased {result['events']} events of {result['subjects']} subjects (last contact before {result['cutoff']})")


@ledger.command("index")
@home_option
@json_option
def ledger_index(home: Path | None, as_json: bool) -> None:
    """Rebuild lookup's index of the ledger (a derived table; `ledger retention` refreshes it
    daily). Lookups stay right without it, only slower: they scan events not indexed."""
    from origine import subject_index, warehouse

    def go() -> Any:
        h = resolve_home(home)
        h.require()
        with warehouse.session(h.warehouse) as con:
            return subject_index.refresh(con, force=True)

    result = guarded(go, home)
    click.echo(json.dumps(result, indent=2) if as_json else f"lookup index covers events up to seq {result['indexed_upto']}")


@main.command("verify")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(exists=True, path_type=Path))
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The operator's public key (PEM); default: this home's own key.")
@home_option
@click.option("--since", "since", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A checkpoint you hold: the bundle's checkpoint must consistently extend it.")
@json_option
def verify_cmd(bundle_path: Path, public_key: Path | None, home: Path | None, since: Path | None,
               as_json: bool) -> None:
    """Check a bundle offline: file hashes, signature, checkpoint, batch proof, counts, every
    verdict and reason re-derived from the cited leaves, the report (exit 1 names the first
    thing that does not hold, 2 for unusable input)."""
    from origine.bundle import verify_bundle

    result = guarded(lambda: verify_bundle(bundle_path, public_key=public_key,
                                            home_keys=resolve_home(home).keys, since=since))
    if as_json:
        click.echo(json.dumps({"ok": result.ok, "problem": result.problems[0] if result.problems else None,
                               "checked": result.checked}, indent=2))
    else:
        click.echo(result.statement())
    sys.exit(0 if result.ok else 1)


@main.command("prove")
@click.argument("seqs", metavar="SEQ...", nargs=-1, type=int, required=True)
@home_option
def prove_cmd(seqs: tuple[int, ...], home: Path | None) -> None:
    """Classic RFC 9162 inclusion proofs of leaves SEQ... against the latest checkpoint (JSON):
    per leaf its index, bytes, leaf hash and audit path (base64, bottom-up)."""
    import base64

    from origine import ledger as ledger_mod
    from origine import merkle, warehouse
    from origine.bundle import LEAF_BYTES_SQL

    def go() -> Any:
        h = resolve_home(home).ensure()
        with warehouse.session(h.warehouse, read_only=True) as con:
            head = ledger_mod.latest_head(con)
            if head is None:
                raise OrigineError("the ledger is empty: nothing to prove")
            out = []
            for seq in seqs:
                if not 0 <= seq < head.tree_size:
                    raise BadInput(f"no leaf {seq} in the tree of size {head.tree_size}", column="SEQ")
                (payload,) = con.execute(f"SELECT {LEAF_BYTES_SQL} FROM ledger_leaves WHERE seq = ?", [seq]).fetchone()
                path = ledger_mod.inclusion_proofs(con, [seq], head.tree_size)[seq]
                out.append({"leaf_index": seq, "leaf": payload,
                            "leaf_hash": base64.b64encode(merkle.leaf_hash(payload.encode())).decode(),
                            "audit_path": [base64.b64encode(x).decode() for x in path]})
            return {"tree_size": head.tree_size,
                    "root_hash": base64.b64encode(bytes.fromhex(head.root_hash)).decode(),
                    "checkpoint": head.checkpoint, "proofs": out}

    click.echo(json.dumps(guarded(go, home), indent=2, ensure_ascii=False))


@main.command("lookup")
@click.argument("number", required=False)
@click.option("--batch", "batch_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A list of numbers (CSV with a phone column, or JSON list): one answer per row, "
                   "by its position, as CSV (JSON with --json); the numbers are never printed.")
@home_option
@click.option("--country", default="FR", show_default=True, help="Region for a number without +prefix.")
@click.option("--letter", "as_letter", is_flag=True,
              help="Write the answer as a GDPR art. 15 letter (needs $ORIGINE_HOME/controller.yaml).")
@click.option("--lang", type=click.Choice(["fr", "en"]), default="fr", show_default=True, help="The letter's language.")
@click.option("--html", "as_html", is_flag=True, help="The letter as printable HTML (A4) instead of text.")
@click.option("--date", "letter_date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date written on the letter (default: today).")
@json_option
def lookup_cmd(number: str | None, batch_file: Path | None, home: Path | None, country: str, as_letter: bool,
               lang: str, as_html: bool, letter_date: Any, as_json: bool) -> None:
    """Everything this home holds about NUMBER (or each number of --batch FILE), without
    ever printing a number; numbers held only in quarantine (refused as invalid) too.

    Exit 2 when the home does not exist or the key is not the home's.
    """
    from origine.lookup import lookup_number

    if (number is None) == (batch_file is None):
        _fail(BadInput("give a NUMBER or --batch FILE (one of the two)", column="NUMBER"), home)
    if batch_file is not None:
        _print_batch(guarded(lambda: _batch_lookup(home, batch_file, country.upper()), home), as_json)
        return
    assert number is not None

    answer = guarded(lambda: lookup_number(resolve_home(home), number, country.upper()), home)
    if as_letter:
        from origine.letter import write_letter

        click.echo(guarded(lambda: write_letter(
            resolve_home(home), answer, lang=lang, as_html=as_html, country=country.upper(),
            today=letter_date.date() if letter_date else None), home), nl=False)
    elif as_json:
        click.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"subject {answer.subject_key}: {len(answer.events)} events, "
                   f"campaigns {answer.campaigns or 'none'}")
        for e in answer.events:
            click.echo("  " + " ".join(f"{k}={v}" for k, v in e.items() if k != "evidence"))


@main.group()
def config() -> None:
    """The home's settings: the data controller the access letter names (controller.yaml)."""


@config.command("show")
@home_option
def config_show(home: Path | None) -> None:
    """Print $ORIGINE_HOME/controller.yaml as the letter reads it (exit 2 if unusable)."""
    from dataclasses import asdict

    from origine.letter import CONTROLLER_FILE, load_controller

    h = resolve_home(home)
    controller = guarded(lambda: load_controller(h.root), home)
    click.echo(f"# {h.root / CONTROLLER_FILE}")
    click.echo(yaml_dump({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(controller).items()}))


@config.command("set")
@click.argument("name", metavar="KEY")
@click.argument("values", nargs=-1, required=True)
@home_option
def config_set(name: str, values: tuple[str, ...], home: Path | None) -> None:
    """Set KEY of controller.yaml: name, address LINE..., dpo_email, dpo_name,
    dpo_address LINE..., city, retention_days."""
    from origine.letter import set_controller

    missing = guarded(lambda: set_controller(resolve_home(home).ensure().root, name, values), home)
    click.echo(f"{name} set" + (f"; still to set before a letter can be written: {', '.join(missing)}"
                                if missing else ""))


def yaml_dump(doc: Any) -> str:
    """YAML for people (accents kept, keys in their order)."""
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).rstrip("\n")


def _batch_lookup(home: Path | None, batch_file: Path, country: str) -> list[dict[str, Any]]:
    from origine.lookup import lookup_batch

    return lookup_batch(resolve_home(home), batch_file, country)


def _print_batch(answers: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(answers, indent=2, ensure_ascii=False))
        return
    import csv
    import io

    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["row", "status", "subject_key", "events", "quarantined_rows", "campaigns"])
    for a in answers:
        out.writerow([a["row"], a["status"], a.get("subject_key") or "", len(a.get("events", [])),
                      len(a.get("quarantined", [])), "|".join(a.get("campaigns", []))])
    click.echo(buf.getvalue(), nl=False)


@main.command("erase")
@click.argument("number", required=False)
@click.option("--batch", "batch_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Erase every number of a list (as lookup --batch reads it).")
@click.option("--reason", default=None,
              help="Why (e.g. 'art. 17 request by mail, ref R-12'); required, kept in the ledger: "
                   "no number, e-mail or 6+ digits in it.")
@home_option
@click.option("--country", default="FR", show_default=True, help="Region for a number without +prefix.")
@json_option
def erase_cmd(number: str | None, batch_file: Path | None, reason: str | None, home: Path | None, country: str,
              as_json: bool) -> None:
    """Erase a data subject on request (GDPR art. 17): attributes removed, a signed erasure leaf.

    As retention does: the events' leaf hashes stay, so earlier checkpoints still
    verify and `origine ledger check` passes. Numbers held only in quarantine are
    erased too; the request is recorded even when nothing was held.
    """
    from origine.erasure import check_reason, erase_subjects
    from origine.lookup import parsed_subject, read_batch, subject_for

    def go() -> Any:
        if (number is None) == (batch_file is None):
            raise BadInput("give a NUMBER or --batch FILE (one of the two)", column="NUMBER")
        h = resolve_home(home)
        h.require()
        key = h.load_key()
        check_reason(reason, key, country.upper())  # before reading any number
        if batch_file is not None:
            keys = [n.subject_key for n in read_batch(batch_file, country.upper(), key) if n.subject_key]
        else:
            assert number is not None
            subject, _ = parsed_subject(number, country.upper(), key)
            keys = [subject if subject is not None else subject_for(number, country.upper(), key)]
        return erase_subjects(h, keys, reason=reason or "", key=key, region=country.upper())

    result = guarded(go, home).to_dict()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"erased {result['events']} events of {result['subjects']} subject(s) on request; "
                   f"erasure leaf seq {result['erasure_seq']}, tree size {result['tree_size']}")


@main.command("quarantine")
@click.argument("vendor")
@click.argument("delivery_id")
@home_option
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the CSV to this file (default: print it).")
def quarantine_cmd(vendor: str, delivery_id: str, home: Path | None, csv_out: Path | None) -> None:
    """The rows of VENDOR's delivery DELIVERY_ID refused at intake, as CSV for the vendor:
    file, row, reason, column (the rows' content is not kept, so never a number)."""
    from origine import warehouse
    from origine.send_list import quarantine_csv

    def go() -> str:
        h = resolve_home(home)
        h.require()
        with warehouse.session(h.warehouse, read_only=True) as con:
            return quarantine_csv(con, vendor, delivery_id)

    text = guarded(go, home)
    if csv_out is None:
        click.echo(text, nl=False)
    else:
        csv_out.write_text(text, encoding="utf-8")
        click.echo(f"{text.count(chr(10)) - 1} quarantined rows written to {csv_out}")


@main.group()
def key() -> None:
    """The operator's keys: the signing key, and rotation of the hashing key."""


@key.command("show")
@home_option
def key_show(home: Path | None) -> None:
    """Print the operator's public key fingerprint and PEM (never the private key)."""
    from origine.signing import load_signer

    signer = guarded(lambda: load_signer(resolve_home(home).ensure().keys))
    click.echo(signer.fingerprint)
    click.echo(signer.public_pem().decode().strip())


@key.command("rotate")
@home_option
@json_option
def key_rotate(home: Path | None, as_json: bool) -> None:
    """Layer a new secret over every stored subject key (no raw number needed).

    The new layer is read from $ORIGINE_NEW_KEY_LAYER (64+ hex characters), never
    from the command line; the current key and layers from $ORIGINE_HASH_KEY and
    $ORIGINE_HASH_KEY_LAYERS. Afterwards append the layer to $ORIGINE_HASH_KEY_LAYERS.
    """
    import os

    from origine import warehouse
    from origine.errors import HashKeyError
    from origine.keys import parse_secret
    from origine.rotation import NEW_LAYER_ENV, rotate

    def go() -> Any:
        h = resolve_home(home).ensure()
        text = os.environ.get(NEW_LAYER_ENV)
        if not text:
            raise HashKeyError(f"set ${NEW_LAYER_ENV} to the new layer's secret (64+ hex characters)")
        layer = parse_secret(text, origin=f"${NEW_LAYER_ENV}")
        with warehouse.session(h.warehouse) as con:
            return rotate(con, h.load_key(), layer, segments=h.segments)[1]

    result = guarded(go, home).to_dict()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"rotated {result['from_key_id']} -> {result['to_key_id']}: "
                   f"{sum(result['rows_rekeyed'].values())} rows re-keyed, "
                   f"{result['ledger_subjects_mapped']} ledger subjects mapped, "
                   f"{result['segments_removed']} stale segments removed")
        click.echo("now append the new layer to $ORIGINE_HASH_KEY_LAYERS (oldest first, comma-separated)")


if __name__ == "__main__":  # pragma: no cover
    main()
