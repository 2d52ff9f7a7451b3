"""The regulator's bundle: ledger evidence, inclusion proofs, a signed manifest, and
``verify``, which checks all of it offline without trusting the operator.

Layout, beside what the audit wrote (``summary.json``, ``targets.csv``,
``targets.parquet``)::

    ledger/events.jsonl   one line per ledger event the verdicts rely on, each line
                          exactly the bytes hashed as its Merkle leaf
    ledger/proofs.json    RFC 9162 inclusion proofs against summary.json's tree head
    validations.json      the Great Expectations results behind the data used
    report.html           the page a person reads
    manifest.json         SHA-256 of every other file, signed (Ed25519) by the operator
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import duckdb
import pyarrow.parquet as pq

from origine import ledger, merkle
from origine.errors import BadInput
from origine.signing import Signer, fingerprint, load_public_key, verify as verify_signature

MANIFEST = "manifest.json"
# Every file an audit bundle holds besides manifest.json. origine writes these and
# nothing else into a bundle folder, signs only these, and zips only these: a file
# someone else left in the folder (a campaign's raw target list) never gets signed.
BUNDLE_FILES = (
    "summary.json", "targets.csv", "targets.parquet", "validations.json", "report.html",
    "ledger/events.jsonl", "ledger/proofs.json",
)


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_evidence(con: duckdb.DuckDBPyConnection, out_dir: Path, summary: dict[str, Any]) -> int:
    """``ledger/events.jsonl`` and ``ledger/proofs.json`` for the audit's targets.

    The events are every live event of each target up to the summary's tree size,
    in ledger order; the proofs are against that tree head. Returns the event count.
    """
    size = int(summary["ledger"]["tree_size"])
    root = summary["ledger"]["root_hash"]
    keys = pq.read_table(out_dir / "targets.parquet", columns=["subject_key"])
    con.register("_bundle_keys", keys)
    try:
        rows = con.execute(
            # Matched through ledger_current (targets carry current keys), the payload
            # from the stored columns (what the leaf hash covers).
            f"SELECT seq, {ledger.PAYLOAD_SQL} AS payload FROM ledger_events WHERE seq IN ("
            "SELECT seq FROM ledger_current_of('_bundle_keys') WHERE erased_at IS NULL AND seq < ?) ORDER BY seq",
            [size],
        ).fetchall()
    finally:
        con.unregister("_bundle_keys")
    (out_dir / "ledger").mkdir(exist_ok=True)
    with open(out_dir / "ledger" / "events.jsonl", "wb") as fh:
        for _, payload in rows:
            fh.write(payload.encode("utf-8") + b"\n")
    proofs = ledger.inclusion_proofs(con, [seq for seq, _ in rows], size) if size else {}
    doc = {
        "tree_size": size,
        "root_hash": root,
        "hash": "SHA-256, RFC 9162 section 2.1: leaf = H(0x00 || line bytes without the newline)",
        "entries": [
            {"leaf_index": seq, "line": line, "audit_path": [h.hex() for h in proofs[seq]]}
            for line, (seq, _) in enumerate(rows)
        ],
    }
    (out_dir / "ledger" / "proofs.json").write_text(json.dumps(doc, indent=1) + "\n")
    return len(rows)


def sign_bundle(out_dir: Path, signer: Signer, files: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``manifest.json``: the SHA-256 of the bundle's files, signed by the operator.

    ``files`` are the names (relative, ``/``-separated) origine wrote; by default those
    of :data:`BUNDLE_FILES` that exist. Nothing else in the folder is listed.
    """
    names = sorted(files if files is not None else [n for n in BUNDLE_FILES if (out_dir / n).is_file()])
    files = {name: hashlib.sha256((out_dir / name).read_bytes()).hexdigest() for name in names}
    body = {"version": 1, "files": files, "signer": signer.fingerprint}
    manifest = {**body, "public_key": signer.public_pem().decode(), "signature": signer.sign(_canonical(body))}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def zip_bundle(out_dir: Path, archive: Path) -> Path:
    """The bundle as one zip (fixed timestamps: same files, same bytes).

    Holds ``manifest.json`` and the files it lists, nothing else of the folder;
    written beside and renamed, so a failure never leaves half an archive.
    """
    try:
        listed = json.loads((out_dir / MANIFEST).read_text())["files"]
        names = sorted(str(n) for n in listed) + [MANIFEST]
    except (OSError, ValueError, KeyError, TypeError):
        names = [n for n in BUNDLE_FILES if (out_dir / n).is_file()]
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(names):
                zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), (out_dir / name).read_bytes())
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive


def archive_path(out_dir: Path) -> Path:
    """``DIR.zip`` beside the bundle folder ``DIR`` (``--zip``); ``--out .`` gives ``../<cwd name>.zip``."""
    from origine.errors import BadInput

    folder = Path(out_dir).resolve()
    if not folder.name:
        raise BadInput("--zip needs a bundle folder with a name (the archive is written beside it as DIR.zip)",
                       file=str(out_dir), column="--out")
    return folder.with_name(folder.name + ".zip")


def _bundle_layout(name: str) -> bool:
    """A name origine writes in a bundle folder (or the temporary file it renames into one)."""
    base = name[: -len(".tmp")] if name.endswith(".tmp") else name
    return base in BUNDLE_FILES or base == MANIFEST


def _campaign_of(summary: bytes) -> Any:
    try:
        return json.loads(summary).get("campaign_id")
    except (ValueError, AttributeError):
        return None


def check_out_dir(out_dir: Path, campaign_id: str, *, archive: Path | None = None) -> list[str]:
    """Refuse (:class:`~origine.errors.BadInput`, exit 2) an output that is not new, empty,
    or an earlier bundle of the same campaign; returns the earlier bundle's file names.

    Run before the audit appends anything to the ledger. An earlier bundle qualifies
    when every file in the folder has a name origine writes there and its
    ``summary.json`` names ``campaign_id`` (a bundle an interrupted audit left without
    its manifest included): the new bundle replaces it. Anything else is refused, so
    origine never signs, zips or overwrites a file it did not write (a campaign's own
    folder holds its raw target list). ``archive`` (``--zip``) must likewise be absent
    or a zip of such a bundle. Names found in the folder are never echoed (a file name
    can be a phone number).
    """
    from origine.errors import BadInput

    label = str(out_dir)
    hint = (f"give a new or empty folder, or the folder of an earlier bundle of campaign {campaign_id}: "
            "origine signs every file of a bundle, so it writes only into a folder of its own")
    out_dir = Path(out_dir)
    present: list[str] = []
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise BadInput("--out must be a folder; this is a file", file=label, column="--out")
        present = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if not p.is_dir())
    if present:
        foreign = [n for n in present if not _bundle_layout(n)]
        summary = out_dir / "summary.json"
        if foreign:
            raise BadInput(f"the folder holds {len(foreign)} file(s) that are not part of an origine bundle; "
                           + hint, file=label, column="--out")
        if not summary.is_file() or _campaign_of(summary.read_bytes()) != campaign_id:
            raise BadInput(f"the folder is not a bundle of campaign {campaign_id}; " + hint,
                           file=label, column="--out")
    if archive is not None and (archive.exists() or archive.is_symlink()):
        if not _is_bundle_zip(archive, campaign_id):
            raise BadInput(f"{archive.name} exists and is not a zipped bundle of campaign {campaign_id}: "
                           "move it away or choose another --out", file=str(archive), column="--zip")
    return present


def _is_bundle_zip(archive: Path, campaign_id: str) -> bool:
    if not archive.is_file() or archive.is_symlink():
        return False
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            if not names or not all(_bundle_layout(n) for n in names) or "summary.json" not in names:
                return False
            with zf.open("summary.json") as fh:
                return _campaign_of(fh.read(1 << 24)) == campaign_id
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return False


# ---------------------------------------------------------------- verify


@dataclass
class Verification:
    """The outcome of :func:`verify_bundle`: everything holds, or the first thing that does not."""

    ok: bool = True
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        """Record a problem."""
        self.ok = False
        self.problems.append(message)

    def statement(self) -> str:
        """A short statement for people."""
        if not self.ok:
            return "bundle does NOT verify: " + self.problems[0]
        c = self.checked
        return (f"bundle verified: {c.get('files', 0)} file hashes, operator signature, "
                f"{c.get('proofs', 0)} inclusion proofs against tree head {c.get('tree_size', 0)}, "
                f"{c.get('targets', 0)} verdicts consistent with the summary and the cited events")


def verify_bundle(path: Path, *, public_key: Path | None = None, home_keys: Path | None = None) -> Verification:
    """Check a bundle (folder or zip) offline. Stops at the first category that fails."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        tmp = Path(tempfile.mkdtemp(prefix="verify-"))
        try:
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    p = PurePosixPath(name)
                    if p.is_absolute() or ".." in p.parts:
                        result = Verification()
                        result.fail(f"zip member {name!r} leaves the bundle")
                        return result
                zf.extractall(tmp)
            return _verify_folder(tmp, public_key, home_keys)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _verify_folder(path, public_key, home_keys)


def _verify_folder(root: Path, public_key: Path | None, home_keys: Path | None) -> Verification:
    result = Verification()
    for step in (_check_manifest, _check_proofs, _check_summary, _check_reasons, _check_report):
        step(root, result, public_key, home_keys)
        if not result.ok:
            break
    return result


def _check_manifest(root: Path, result: Verification, public_key: Path | None, home_keys: Path | None) -> None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files, signature = dict(manifest["files"]), manifest["signature"]
    except (OSError, ValueError, KeyError, TypeError):
        result.fail("manifest.json is missing or unreadable")
        return
    if not isinstance(signature, str):
        # Not the shape origine writes: unusable input (exit 2), where a wrong hex
        # signature is a bundle that does not verify (exit 1).
        raise BadInput("the signature is not a string (hex expected)", file=MANIFEST, column="signature")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST}
    for name in sorted(set(files) | present):
        if name not in present:
            result.fail(f"{name}: listed in the manifest but missing")
            return
        if name not in files:
            result.fail(f"{name}: present but not in the manifest")
            return
        if hashlib.sha256((root / name).read_bytes()).hexdigest() != files[name]:
            result.fail(f"{name}: SHA-256 differs from the manifest")
            return
    if public_key is not None:
        key = load_public_key(public_key)
    elif home_keys is not None and (home_keys / "operator_ed25519.pub.pem").exists():
        key = load_public_key(home_keys / "operator_ed25519.pub.pem")
    else:
        result.fail("no public key to check the signature with: give --public-key")
        return
    body = {"version": manifest.get("version"), "files": files, "signer": manifest.get("signer")}
    if manifest.get("signer") != fingerprint(key) or not verify_signature(key, _canonical(body), signature):
        result.fail("manifest.json: the signature is not the operator's (or the manifest was changed)")
        return
    result.checked["files"] = len(files)


def _load(root: Path, name: str, result: Verification) -> Any:
    try:
        return json.loads((root / name).read_text())
    except (OSError, ValueError):
        result.fail(f"{name}: missing or unreadable")
        return None


def _check_proofs(root: Path, result: Verification, *_: Any) -> None:
    proofs, summary = _load(root, "ledger/proofs.json", result), _load(root, "summary.json", result)
    if not result.ok:
        return
    lines = (root / "ledger" / "events.jsonl").read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    size, root_hash = proofs.get("tree_size"), proofs.get("root_hash")
    if (size, root_hash) != (summary.get("ledger", {}).get("tree_size"), summary.get("ledger", {}).get("root_hash")):
        result.fail("ledger/proofs.json: tree head differs from summary.json's")
        return
    entries = proofs.get("entries") or []
    if len(entries) != len(lines) or sorted(e.get("line") for e in entries) != list(range(len(lines))):
        result.fail("ledger/proofs.json: not exactly one proof per line of events.jsonl")
        return
    try:
        root_bytes = bytes.fromhex(root_hash)
    except (TypeError, ValueError):
        result.fail("ledger/proofs.json: root_hash is not hex")
        return
    for entry in entries:
        try:
            path = [bytes.fromhex(h) for h in entry["audit_path"]]
            leaf = merkle.leaf_hash(lines[entry["line"]])
            ok = merkle.verify_inclusion(leaf, entry["leaf_index"], size, path, root_bytes)
        except (KeyError, TypeError, ValueError, IndexError):
            ok = False
        if not ok:
            result.fail(f"ledger/events.jsonl line {entry.get('line')}: inclusion proof does not verify "
                        f"(event edited, or proof altered)")
            return
    result.checked["proofs"] = len(entries)
    result.checked["tree_size"] = size


def _targets(root: Path) -> list[dict[str, str]]:
    with open(root / "targets.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_summary(root: Path, result: Verification, *_: Any) -> None:
    summary = _load(root, "summary.json", result)
    if not result.ok:
        return
    rows = _targets(root)
    verdicts = Counter(r["verdict"] for r in rows)
    reasons = Counter(x for r in rows for x in r["reasons"].lstrip("'").split("|") if x)
    parquet = pq.read_table(root / "targets.parquet").to_pylist()
    if summary.get("targets") != len(rows) or len(parquet) != len(rows):
        result.fail(f"summary.json says {summary.get('targets')} targets; targets.csv has {len(rows)}, "
                    f"targets.parquet {len(parquet)}")
        return
    for verdict, n in (summary.get("verdicts") or {}).items():
        if verdicts.get(verdict, 0) != n:
            result.fail(f"summary.json: {verdict} = {n}, targets.csv has {verdicts.get(verdict, 0)}")
            return
    for reason, n in (summary.get("reasons") or {}).items():
        if reasons.get(reason, 0) != n:
            result.fail(f"summary.json: reason {reason} = {n}, targets.csv has {reasons.get(reason, 0)}")
            return
    for a, b in zip(sorted(rows, key=lambda r: r["subject_key"]), sorted(parquet, key=lambda r: r["subject_key"] or "")):
        if a["subject_key"] != (b["subject_key"] or "") or a["verdict"] != b["verdict"]:
            result.fail(f"targets.csv and targets.parquet disagree on subject {a['subject_key'][:16]}…")
            return
    result.checked["targets"] = len(rows)


def _check_reasons(root: Path, result: Verification, *_: Any) -> None:
    """Each verdict follows from its reasons by the rule table, and the reasons that
    depend only on the ledger follow from the cited events."""
    summary = _load(root, "summary.json", result)
    if not result.ok:
        return
    rules: dict[str, str] = summary.get("rules") or {}
    campaign = summary.get("campaign") or {}
    sent_at, purpose, channel = campaign.get("sent_at"), campaign.get("purpose"), campaign.get("channel")
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in (root / "ledger" / "events.jsonl").read_bytes().splitlines():
        event = json.loads(line)
        events[event.get("subject")].append(event)
    sent = _instant(sent_at)
    for row in _targets(root):
        subject, verdict = row["subject_key"], row["verdict"]
        reasons = [x for x in row["reasons"].lstrip("'").split("|") if x]
        expected = ("non_compliant" if any(rules.get(r) == "non_compliant" for r in reasons)
                    else "unverifiable" if reasons else "compliant")
        if verdict != expected:
            result.fail(f"subject {subject[:16]}…: verdict {verdict} does not follow from reasons {reasons}")
            return
        mine = [e for e in events.get(subject, []) if e.get("at") is None or _instant(e["at"]) <= sent]
        delivered = any(e["type"] == "delivered" for e in mine)
        if ("NO_PROVENANCE" in reasons) == delivered:
            result.fail(f"subject {subject[:16]}…: NO_PROVENANCE {'listed' if delivered else 'missing'} "
                        "but the cited events say otherwise")
            return
        opted = any(e["type"] == "opted_out" and e.get("channel") in (channel, "all") for e in mine)
        if opted and "OPTED_OUT" not in reasons:
            result.fail(f"subject {subject[:16]}…: an opt-out before the send is cited but OPTED_OUT is missing")
            return
        granted = [e for e in mine if e["type"] == "consent_granted" and e.get("purpose") == purpose and e.get("at")]
        if granted and "PURPOSE_NOT_CONSENTED" in reasons:
            result.fail(f"subject {subject[:16]}…: PURPOSE_NOT_CONSENTED, but a consent for {purpose} is cited")
            return
        if verdict == "compliant" and not (granted and delivered and not opted):
            result.fail(f"subject {subject[:16]}…: compliant without a cited delivery and consent for {purpose}")
            return


def _check_report(root: Path, result: Verification, *_: Any) -> None:
    """report.html is exactly what summary.json and validations.json render to, in the
    language the page declares: a page saying anything the signed summary does not fails."""
    from origine.errors import BadInput
    from origine.report import lang_of, render_report

    summary, validations = _load(root, "summary.json", result), _load(root, "validations.json", result)
    if not result.ok:
        return
    try:
        page = (root / "report.html").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        result.fail("report.html: missing or unreadable")
        return
    lang = lang_of(page)
    try:
        expected = render_report(summary, validations, lang) if lang else None
    except (BadInput, ValueError, TypeError, KeyError, AttributeError):
        expected = None
    if expected != page:
        result.fail(f"report.html does not match summary.json (rendered again in {lang or 'no declared language'})")
        return
    result.checked["report"] = 1


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
