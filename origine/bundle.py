"""The regulator's bundle: ledger evidence, inclusion proofs, a signed manifest, and
``verify``, which checks all of it offline without trusting the operator.

Layout, beside what the audit wrote (``summary.json``, ``targets.csv``,
``targets.parquet``)::

    ledger/events.jsonl   one line per cited leaf (ledger format v2: a target's row
                          and event leaves, the delivery leaves those row leaves
                          name, every key_map leaf), exactly the bytes hashed as
                          its Merkle leaf
    ledger/leaves.txt     the leaf index of each line of events.jsonl, ascending
    ledger/proof-nodes.txt  one batch proof for all of them (origine.ledger.batch_proof)
    ledger/proof.json     tree size, root and signed checkpoint proven against
                          (and the consistency proof from ``audit --since``)
    ledger/key-map.txt    the key-map chunks linking cited subject keys to current keys
    validations.json      the Great Expectations results behind the data used
    report.html           the page a person reads
    manifest.json         SHA-256 of every other file, signed (Ed25519) by the operator
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import pyarrow.parquet as pq

from origine import ledger, merkle, warehouse
from origine.errors import BadInput
from origine.signing import Signer, fingerprint, load_public_key, verify as verify_signature

MANIFEST = "manifest.json"
# Every file an audit bundle holds besides manifest.json. origine writes these and
# nothing else into a bundle folder, signs only these, and zips only these: a file
# someone else left in the folder (a campaign's raw target list) never gets signed.
BUNDLE_FILES = (
    "summary.json", "targets.csv", "targets.parquet", "validations.json", "report.html",
    "ledger/events.jsonl", "ledger/leaves.txt", "ledger/proof-nodes.txt", "ledger/proof.json",
    "ledger/key-map.txt",
)
EVIDENCE_FILES = tuple(n for n in BUNDLE_FILES if n.startswith("ledger/"))
BATCH_PROOF_FORMAT = "origine-batch-proof-v1"
# The bytes of a leaf from ledger_leaves' columns (ledger format v2). What verify reads
# of a leaf's bytes is _LEAVES_SQL: the two places the leaf format is known here.
LEAF_BYTES_SQL = ledger.PAYLOAD_SQL


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_evidence(
    con: duckdb.DuckDBPyConnection, out_dir: Path, summary: dict[str, Any], *, since: str | None = None
) -> int:
    """The ``ledger/`` files of a bundle for the audit's targets (docs/bundle-format.md).

    The cited leaves (ledger format v2) are every live leaf stating something of a
    target up to the summary's tree size (its row leaves, its opt-out, withdrawal
    and ``targeted`` leaves), the delivery leaf each cited row leaf names in its
    ``ev``, and every ``key_map`` leaf (what links stored subject keys to the
    targets' current keys after a rotation). They go from DuckDB to ``events.jsonl``
    with ``COPY``, never through Python lists. One batch proof for all of them against
    the summary's checkpoint, from stored nodes only (immutable once written: leaves a
    concurrent ingest appends later change nothing here). With ``since`` (a
    checkpoint's note text the regulator holds), also the RFC 9162 consistency proof
    from its size. Returns the number of cited leaves.
    """
    from origine.ledger import batch_proof

    size = int(summary["ledger"]["tree_size"])
    folder = out_dir / "ledger"
    folder.mkdir(exist_ok=True)
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bundle_keys AS SELECT subject_key FROM read_parquet('{warehouse.sql_text(out_dir / 'targets.parquet')}') WHERE subject_key IS NOT NULL")
    try:
        _cite(con, size)
        _copy_leaves(con, folder / "events.jsonl")
        con.execute(f"COPY (SELECT seq FROM _cited ORDER BY seq) TO '{warehouse.sql_text(folder / 'leaves.txt')}' "
                    "(FORMAT CSV, HEADER false)")
        cited = int(con.execute("SELECT count(*) FROM _cited").fetchone()[0])  # type: ignore[index]
        nodes = batch_proof.compute(con, "_cited", size) if size else 0
        if size:
            batch_proof.write_nodes(con, "_batch_proof", folder / "proof-nodes.txt")
        else:
            (folder / "proof-nodes.txt").write_bytes(b"")
        _write_key_map(con, folder / "key-map.txt")
        doc: dict[str, Any] = {
            "format": BATCH_PROOF_FORMAT,
            "tree_size": size,
            "root_hash": summary["ledger"]["root_hash"],
            "checkpoint": summary["ledger"].get("checkpoint"),
            "leaves": cited,
            "nodes": nodes,
        }
        if since is not None:
            doc["consistency"] = _consistency_from(con, since, size)
        (folder / "proof.json").write_text(json.dumps(doc, indent=1) + "\n")
    finally:
        for name in ("_bundle_keys", "_cited", "_cited_keys", "_batch_proof"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return cited


def _cite(con: duckdb.DuckDBPyConnection, size: int) -> None:
    """``_cited(seq)``: the leaves the bundle cites, below ``size``; ``_cited_keys``: the
    stored ``(key_id, subject_key)`` of each cited leaf stating a subject (what the key
    map must link to a target's current key).

    Read from ``ledger_leaves`` directly, not through the ``ledger_events`` view: the
    view expands every row leaf into its events, and citing needs only which leaves
    name a target. A row leaf's key id is its delivery leaf's; an event leaf carries
    its own. A subject is matched under its key of the current generation (stored,
    unless the key map links it), as ``ledger_current_of`` does.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cited_keys AS
        WITH l AS (
            SELECT l.seq, l.subject_key,
                   CASE WHEN l."type" = 'row' THEN d.key_id ELSE l.key_id END AS key_id
            FROM ledger_leaves l
            LEFT JOIN (SELECT seq AS d_seq, key_id FROM ledger_leaves WHERE "type" = 'delivery') d
                   ON l."type" = 'row' AND d.d_seq = l.delivery_seq
            WHERE l.erased_at IS NULL AND l.subject_key IS NOT NULL AND l.seq < $1
        )
        SELECT seq, key_id, subject_key FROM l
        WHERE subject_key IN (SELECT subject_key FROM _bundle_keys)
          AND NOT EXISTS (SELECT 1 FROM subject_key_map m
                          WHERE m.key_id IS NOT DISTINCT FROM l.key_id AND m.subject_key = l.subject_key)
        UNION ALL
        SELECT l.seq, l.key_id, l.subject_key
        FROM (SELECT * FROM subject_key_map WHERE current_key IN (SELECT subject_key FROM _bundle_keys)) m
        JOIN l ON m.key_id IS NOT DISTINCT FROM l.key_id AND m.subject_key = l.subject_key
        """,
        [size],
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cited AS SELECT DISTINCT seq FROM (
            SELECT seq FROM _cited_keys
            UNION ALL SELECT seq FROM ledger_leaves WHERE "type" = 'key_map' AND seq < $1
            UNION ALL SELECT delivery_seq FROM ledger_leaves
                      WHERE "type" = 'row' AND seq IN (SELECT seq FROM _cited_keys)
        ) ORDER BY seq
        """,
        [size],
    )


# Cited leaves sorted per part of this many: one ORDER BY over millions of leaf bytes
# holds them all in memory (3.7M leaves: 2.4 GiB peak); per part, a part's worth.
_LEAVES_PER_PART = 1 << 18


def _copy_leaves(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """The bytes of the leaves ``_cited`` lists, one per line in ascending index, from
    DuckDB to ``path`` (COPY, no Python lists): sorted part by part over ranges of
    indices (the leaves table is stored in index order, so each range scans only its
    own row groups), the parts appended in order."""
    bounds = [int(b) for (b,) in con.execute(
        f"SELECT seq FROM (SELECT seq, row_number() OVER (ORDER BY seq) - 1 AS n FROM _cited) "
        f"WHERE n % {_LEAVES_PER_PART} = 0 ORDER BY seq"
    ).fetchall()]
    part = path.with_name(path.name + ".part")
    try:
        with open(path, "wb") as out:
            for i, low in enumerate(bounds):
                high = bounds[i + 1] if i + 1 < len(bounds) else None
                where = f"seq >= {low}" + (f" AND seq < {high}" if high is not None else "")
                con.execute(
                    f"COPY (SELECT {LEAF_BYTES_SQL} FROM ledger_leaves WHERE {where} AND seq IN "
                    f"(SELECT seq FROM _cited WHERE {where}) ORDER BY seq) TO '{warehouse.sql_text(part)}' "
                    "(FORMAT CSV, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x1f')"
                )
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
    finally:
        part.unlink(missing_ok=True)




def _write_key_map(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``key-map.txt``: the digest of every chunk of the subject key map (as the latest
    ``key_map`` leaf commits to it), then the chunks holding a cited leaf's subject key
    (docs/bundle-format.md)."""
    from origine.ledger.digests import CHUNK, KEY_MAP

    line, order = KEY_MAP
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _km AS SELECT {line} AS line, key_id, subject_key, "
        f"row_number() OVER (ORDER BY {order}) - 1 AS n FROM subject_key_map"
    )
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _km_out AS "
            f"SELECT 0 AS part, n // {CHUNK} AS c, 0::BIGINT AS n, "
            f"'digest ' || (n // {CHUNK}) || ' ' || count(*) || ' ' || sha256(string_agg(line, chr(10) ORDER BY n)) AS text "
            f"FROM _km GROUP BY n // {CHUNK} "
            f"UNION ALL SELECT 1, n // {CHUNK}, n, line FROM _km "
            f"WHERE n // {CHUNK} IN (SELECT DISTINCT k.n // {CHUNK} FROM _km k JOIN _cited_keys e "
            "ON e.subject_key = k.subject_key AND e.key_id IS NOT DISTINCT FROM k.key_id)"
        )
        con.execute(
            f"COPY (SELECT CASE WHEN part = 1 AND n % {CHUNK} = 0 THEN 'chunk ' || c || chr(10) || text "
            "ELSE text END FROM _km_out ORDER BY part, c, n) "
            f"TO '{warehouse.sql_text(path)}' (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x1f')"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _km")
        con.execute("DROP TABLE IF EXISTS _km_out")


def _consistency_from(con: duckdb.DuckDBPyConnection, note: str, size: int) -> dict[str, Any]:
    """The RFC 9162 consistency proof from the checkpoint ``note`` (its size) to ``size``."""
    import base64

    from origine.ledger.checkpoint import Checkpoint

    body = note.split("\n\n", 1)[0] + "\n"
    try:
        old = Checkpoint.parse(body)
    except ValueError as exc:
        raise BadInput(f"not a checkpoint: {exc}", column="--since") from None
    if not 0 < old.size <= size:
        raise BadInput(f"the checkpoint's tree size {old.size} is not within this bundle's tree (size {size})",
                       column="--since")
    proof = ledger.consistency(con, old.size, size)
    return {"old_size": old.size, "old_root": base64.b64encode(old.root).decode(), "new_size": size,
            "proof": [base64.b64encode(h).decode() for h in proof]}


def sign_bundle(out_dir: Path, signer: Signer, files: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``manifest.json``: the SHA-256 of the bundle's files, signed by the operator.

    ``files`` are the names (relative, ``/``-separated) origine wrote; by default those
    of :data:`BUNDLE_FILES` that exist. Nothing else in the folder is listed.
    """
    names = sorted(files if files is not None else [n for n in BUNDLE_FILES if (out_dir / n).is_file()])
    files = {name: _file_sha256(out_dir / name) for name in names}
    body = {"version": 1, "files": files, "signer": signer.fingerprint}
    manifest = {**body, "public_key": signer.public_pem().decode(), "signature": signer.sign(_canonical(body))}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _file_sha256(path: Path) -> str:
    """Streamed: a bundle's leaves run to gigabytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
                info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                with open(out_dir / name, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)  # streamed: never a whole file in memory
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
    checked: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        """Record a problem."""
        self.ok = False
        self.problems.append(message)

    def statement(self) -> str:
        """A short statement for people."""
        if not self.ok:
            return "bundle does NOT verify: " + self.problems[0]
        c = self.checked
        since = f", consistent with the checkpoint of size {c['since']}" if "since" in c else ""
        return (f"bundle verified: {c.get('files', 0)} file hashes, operator signature, signed checkpoint, "
                f"{c.get('proofs', 0)} cited leaves proven against tree size {c.get('tree_size', 0)}{since}, "
                f"{c.get('targets', 0)} verdicts and their reasons re-derived from the cited leaves")


# Small files of a bundle read whole; everything else is streamed.
_SMALL_CAP = 64 << 20
_READ = 1 << 20


class _Source:
    """A bundle folder or zip, read member by member (a zip is never extracted)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.db: duckdb.DuckDBPyConnection | None = None
        self.scratch: Path | None = None
        self.targets_loaded = False
        self._budget = 0
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile):
                raise BadInput("not a bundle folder or zip", file=str(path)) from None
            from origine.limits import expansion_limit

            names = [i.filename for i in self.zip.infolist()]
            if len(set(names)) != len(names):
                raise BadInput("the zip names a member twice", file=str(path))
            for name in names:
                p = PurePosixPath(name)
                if p.is_absolute() or ".." in p.parts:
                    raise BadInput("a zip member leaves the bundle", file=str(path))
            # What the members declare, and every byte one read of a member yields, are
            # held to one cap (bombs, and members lying about their size, stop there).
            self._budget = expansion_limit(path.stat().st_size)
            if sum(i.file_size for i in self.zip.infolist()) > self._budget:
                from origine.limits import too_expanded

                raise BadInput(too_expanded("the zipped bundle", self._budget), file=str(path))
        elif not path.is_dir():
            raise BadInput("not a bundle folder or zip", file=str(path))

    def names(self) -> set[str]:
        if self.zip is not None:
            return {n for n in self.zip.namelist() if not n.endswith("/")}
        return {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}

    def open(self, name: str) -> Iterator[bytes]:
        """The member's bytes in chunks; ``FileNotFoundError`` when absent."""
        if self.zip is None:
            with open(self.path / name, "rb") as fh:
                while chunk := fh.read(_READ):
                    yield chunk
            return
        from origine.limits import too_expanded

        try:
            member = self.zip.open(name)
        except KeyError:
            raise FileNotFoundError(name) from None
        left = self._budget
        with member:
            while True:
                try:
                    chunk = member.read(_READ)
                except (zipfile.BadZipFile, OSError, EOFError, zlib_error) as exc:
                    raise BadInput(f"zip member {name} is corrupt ({type(exc).__name__})", file=str(self.path)) from None
                if not chunk:
                    return
                left -= len(chunk)
                if left < 0:
                    raise BadInput(too_expanded(f"zip member {name}", self._budget), file=str(self.path))
                yield chunk

    def lines(self, name: str) -> Iterator[bytes]:
        """The member's lines without their newline, streamed."""
        from origine.limits import max_line_bytes

        cap = max_line_bytes()
        rest = b""
        for chunk in self.open(name):
            rest += chunk
            parts = rest.split(b"\n")
            rest = parts.pop()
            if len(rest) > cap:
                raise BadInput(f"a line longer than {cap:,} bytes", file=name)
            yield from parts
        if rest:
            yield rest

    def read(self, name: str) -> bytes:
        out = bytearray()
        for chunk in self.open(name):
            out += chunk
            if len(out) > _SMALL_CAP:
                raise BadInput(f"larger than {_SMALL_CAP:,} bytes", file=name)
        return bytes(out)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.zip is not None:
            self.zip.close()


try:
    from zlib import error as zlib_error
except ImportError:  # pragma: no cover
    zlib_error = OSError  # type: ignore[misc,assignment]


def verify_bundle(path: Path, *, public_key: Path | None = None, home_keys: Path | None = None,
                  since: Path | None = None) -> Verification:
    """Check a bundle (folder or zip) offline, streaming, in bounded memory: the
    signed manifest, the signed checkpoint, one batch proof for every cited leaf
    (docs/bundle-format.md), the counts, every verdict and all its reasons re-derived
    from the cited leaves, and the report. With ``since`` (a checkpoint file the
    regulator holds), the bundle's checkpoint must consistently extend it.

    Stops at the first thing that does not hold (``ok`` false, naming it);
    :class:`BadInput` for unusable input (no bundle, unreadable key, a zip past the caps).
    """
    src = _Source(Path(path))
    try:
        result = Verification()
        key = _public_key(public_key, home_keys)
        if key is None:
            result.fail("no public key to check the signature with: give --public-key")
            return result
        for step in (_check_manifest, _check_proofs, _check_summary, _check_reasons, _check_report):
            step(src, result, key, since)
            if not result.ok:
                break
        return result
    finally:
        src.close()


def _public_key(public_key: Path | None, home_keys: Path | None) -> Any:
    try:
        if public_key is not None:
            return load_public_key(public_key)
        if home_keys is not None and (home_keys / "operator_ed25519.pub.pem").exists():
            return load_public_key(home_keys / "operator_ed25519.pub.pem")
    except (OSError, ValueError, TypeError):
        raise BadInput("unreadable public key (PEM Ed25519 expected)", file=str(public_key or home_keys),
                       column="--public-key") from None
    return None


def _check_manifest(src: _Source, result: Verification, key: Any, since: Path | None) -> None:
    try:
        manifest = json.loads(src.read(MANIFEST))
        files, signature = dict(manifest["files"]), manifest["signature"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        result.fail("manifest.json is missing or unreadable")
        return
    if not isinstance(signature, str):
        # Not the shape origine writes: unusable input (exit 2), where a wrong hex
        # signature is a bundle that does not verify (exit 1).
        raise BadInput("the signature is not a string (hex expected)", file=MANIFEST, column="signature")
    body = {"version": manifest.get("version"), "files": files, "signer": manifest.get("signer")}
    if manifest.get("signer") != fingerprint(key) or not verify_signature(key, _canonical(body), signature):
        result.fail("manifest.json: the signature is not the operator's (or the manifest was changed)")
        return
    present = src.names() - {MANIFEST}
    for name in sorted(set(files) | present):
        if name not in present:
            result.fail(f"{name}: listed in the manifest but missing")
            return
        if name not in files:
            result.fail(f"{name}: present but not in the manifest")
            return
        digest = hashlib.sha256()
        for chunk in src.open(name):
            digest.update(chunk)
        if digest.hexdigest() != files[name]:
            result.fail(f"{name}: SHA-256 differs from the manifest")
            return
    result.checked["files"] = len(files)


def _json(src: _Source, name: str, result: Verification) -> Any:
    try:
        return json.loads(src.read(name))
    except (FileNotFoundError, ValueError):
        result.fail(f"{name}: missing or unreadable")
        return None


def _check_proofs(src: _Source, result: Verification, key: Any, since: Path | None) -> None:
    """The signed checkpoint, and the batch proof of every line of events.jsonl."""
    import base64

    from origine.ledger import batch_proof
    from origine.ledger.checkpoint import verify_checkpoint

    proof, summary = _json(src, "ledger/proof.json", result), _json(src, "summary.json", result)
    if not result.ok:
        return
    head = summary.get("ledger") or {}
    size, root_hex = proof.get("tree_size"), proof.get("root_hash")
    if (size, root_hex, proof.get("checkpoint")) != (head.get("tree_size"), head.get("root_hash"), head.get("checkpoint")):
        result.fail("ledger/proof.json: tree head or checkpoint differs from summary.json's")
        return
    if proof.get("format") != BATCH_PROOF_FORMAT:
        result.fail(f"ledger/proof.json: not a {BATCH_PROOF_FORMAT} proof")
        return
    try:
        checkpoint = verify_checkpoint(str(proof.get("checkpoint")), key)
    except ValueError as exc:
        result.fail(f"ledger/proof.json: the checkpoint does not verify with the operator's key ({exc})")
        return
    if (checkpoint.size, checkpoint.root.hex()) != (size, root_hex):
        result.fail("ledger/proof.json: tree size or root differs from the signed checkpoint's")
        return
    if since is not None and not _check_since(since, proof, checkpoint, key, result):
        return
    indices = src.lines("ledger/leaves.txt")
    state = {"n": 0, "last": -1}
    sha = hashlib.sha256

    def leaves() -> Iterator[tuple[int, bytes]]:
        for line in src.lines("ledger/events.jsonl"):
            raw = next(indices, None)
            try:
                index = int(raw) if raw is not None else -1
            except ValueError:
                index = -1
            if index <= state["last"] or index >= size:
                raise batch_proof.BatchProofError(
                    f"ledger/leaves.txt line {state['n'] + 1}: not an ascending leaf index below {size}")
            state["last"] = index
            state["n"] += 1
            yield index, sha(b"\x00" + line).digest()
        if next(indices, None) is not None:
            raise batch_proof.BatchProofError("ledger/leaves.txt has more lines than events.jsonl")

    try:
        if size == 0:
            if next(src.lines("ledger/events.jsonl"), None) is not None:
                raise batch_proof.BatchProofError("leaves cited in an empty tree")
        else:
            got = batch_proof.root_from(
                leaves(), lambda level: batch_proof.read_nodes(src.lines("ledger/proof-nodes.txt"), level), size)
            if got != checkpoint.root:
                result.fail("ledger/events.jsonl: the cited leaves and the batch proof do not give the signed root "
                            "(a leaf edited, or the proof altered)")
                return
    except batch_proof.BatchProofError as exc:
        result.fail(f"ledger: the batch proof does not hold: {exc}")
        return
    result.checked["proofs"] = state["n"]
    result.checked["tree_size"] = size
    result.checked["checkpoint"] = base64.b64encode(checkpoint.root).decode()


def _check_since(path: Path, proof: dict[str, Any], checkpoint: Any, key: Any, result: Verification) -> bool:
    import base64

    from origine.ledger.checkpoint import verify_checkpoint

    try:
        note = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise BadInput("unreadable checkpoint file", file=str(path), column="--since") from None
    try:
        old = verify_checkpoint(note, key)
    except ValueError as exc:
        raise BadInput(f"not a checkpoint signed by the operator's key ({exc})", file=str(path),
                       column="--since") from None
    doc = proof.get("consistency")
    if old.origin != checkpoint.origin:
        result.fail(f"--since: the checkpoint is of another ledger ({old.origin})")
        return False
    if old.size == checkpoint.size:
        ok = old.root == checkpoint.root
    elif not isinstance(doc, dict) or doc.get("old_size") != old.size:
        result.fail(f"--since: the bundle carries no consistency proof from size {old.size} "
                    "(audit with --since this checkpoint)")
        return False
    else:
        try:
            path_ = [base64.b64decode(h, validate=True) for h in doc.get("proof") or []]
        except (ValueError, TypeError):
            path_ = []
        ok = merkle.verify_consistency(old.size, checkpoint.size, old.root, checkpoint.root, path_)
    if not ok:
        result.fail(f"--since: the bundle's checkpoint (size {checkpoint.size}) does not extend the one held "
                    f"(size {old.size}): history rewritten")
        return False
    result.checked["since"] = old.size
    return True


# ---------------------------------------------------------------- re-deriving the verdicts

_BATCH = 1 << 16


def _load_lines(con: duckdb.DuckDBPyConnection, table: str, lines: Iterable[bytes],
                indices: Iterable[bytes]) -> None:
    """``table(seq, line)`` from the streamed lines of events.jsonl and leaves.txt
    (already checked to pair up, ascending), a batch at a time (DuckDB spills)."""
    import pyarrow as pa

    con.execute(f"CREATE OR REPLACE TABLE {table} (seq BIGINT, line VARCHAR)")
    seqs: list[int] = []
    batch: list[str] = []
    for line, index in zip(lines, indices):
        seqs.append(int(index))
        batch.append(line.decode("utf-8", "replace"))
        if len(batch) == _BATCH:
            _insert(con, table, pa, seqs, batch)
            seqs, batch = [], []
    if batch:
        _insert(con, table, pa, seqs, batch)


def _insert(con: duckdb.DuckDBPyConnection, table: str, pa: Any, seqs: list[int], batch: list[str]) -> None:
    chunk = pa.table({"seq": pa.array(seqs, pa.int64()), "line": pa.array(batch, pa.string())})
    con.register("_chunk", chunk)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _chunk")
    finally:
        con.unregister("_chunk")


def _leaves_sql() -> str:
    """What verify reads of a leaf: the ``ledger_leaves`` columns (ledger format v2,
    docs/ledger-format.md) parsed from each cited leaf's bytes (``_lines``), so the
    ledger's own ``ledger_events`` view and the audit's rules run over them unchanged.
    Row and delivery leaves state Unix seconds; event leaves RFC 3339 instants.
    ``_bytes`` (the line) is kept beside the columns: the bytes must be exactly what
    the columns give back (``PAYLOAD_SQL``), so nothing in a leaf escapes this parse."""
    from origine.ledger.events import LEAF_COLUMNS

    summarized = "_type IN ('row', 'delivery')"
    unix = lambda path: f"to_timestamp(({path})::BIGINT)"  # noqa: E731
    at_text = "j->>'at'"
    given = {
        "type": "j->>'type'",
        "subject_key": "j->>'subject'",
        "key_id": "j->>'key_id'",
        "at": f"CASE WHEN {summarized} THEN {unix(at_text)} "
              "ELSE strptime(j->>'at', '%Y-%m-%dT%H:%M:%S.%fZ')::TIMESTAMPTZ END",
        "purpose": "j->>'purpose'",
        "bundled": "CASE WHEN _type = 'row' THEN (j->'consent'->>'bundled')::BOOLEAN ELSE (j->>'bundled')::BOOLEAN END",
        "channel": "j->>'channel'",
        "origin": "j->>'origin'",
        "party_from": "j->>'from'",
        "party_to": "CASE WHEN _type = 'delivery' THEN j->>'recipient' ELSE j->>'to' END",
        "source": "j->>'source'",
        "proof": "CASE WHEN _type = 'row' THEN j->'consent'->>'proof' ELSE j->>'proof' END",
        "campaign_id": "j->>'campaign'",
        "evidence_kind": "j->'evidence'->>'kind'",
        "vendor": "CASE WHEN _type = 'delivery' THEN j->>'vendor' ELSE j->'evidence'->>'vendor' END",
        "delivery_id": "CASE WHEN _type = 'delivery' THEN j->>'delivery' ELSE j->'evidence'->>'delivery_id' END",
        "file": "j->'evidence'->>'file'",
        "file_sha256": "j->'evidence'->>'file_sha256'",
        "row": "CASE WHEN _type = 'row' THEN (j->'ev'->>2)::BIGINT ELSE (j->'evidence'->>'row')::BIGINT END",
        "purposes": "from_json(j->'consent'->'purposes', '[\"VARCHAR\"]')",
        "consent_at": unix("j->'consent'->>'at'"),
        "opted_out_at": unix("j->>'opted_out'"),
        "cc": "(j->>'cc')::INTEGER",
        "line": "j->>'line'",
        "delivery_seq": "(j->'ev'->>0)::BIGINT",
        "file_index": "(j->'ev'->>1)::INTEGER",
        "files": "from_json(j->'files', '[{\"name\": \"VARCHAR\", \"rows\": \"BIGINT\", \"sha256\": \"VARCHAR\"}]')",
        "claims": "NULL",  # the raw text, set by _read_claims
    }
    cols = ", ".join(f'CAST({given[n]} AS {t}) AS "{n}"' for n, t in LEAF_COLUMNS)
    return (f"SELECT seq, {cols}, NULL::BLOB AS leaf_hash, NULL::TIMESTAMPTZ AS erased_at, _bytes "
            "FROM (SELECT seq, _bytes, j, j->>'type' AS _type FROM "
            "(SELECT seq, line AS _bytes, line::JSON AS j FROM _lines))")


# Leaf types that are leaves of their own (the others are events the view derives).
_LEAF_KINDS = ("row", "delivery", "opted_out", "consent_withdrawn", "targeted", "erased", "key_map")


# The verifier's scratch database: in memory up to this, spilling to a temporary folder
# past it (a bundle of any size in bounded memory; the Python side holds one batch).
_VERIFY_MEMORY = "1GB"


def _verifier_db(src: _Source) -> duckdb.DuckDBPyConnection:
    """One scratch DuckDB per verify (targets loaded once), spilling to a temp folder."""
    if src.db is None:
        src.scratch = Path(tempfile.mkdtemp(prefix="origine-verify-"))
        con = duckdb.connect(config={"memory_limit": _VERIFY_MEMORY, "threads": 2,
                                     "temp_directory": str(src.scratch)})
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        src.db = con
    return src.db


def _check_summary(src: _Source, result: Verification, key: Any, since: Path | None) -> None:
    """The counts of summary.json are targets.csv's; targets.csv and targets.parquet agree."""
    summary = _json(src, "summary.json", result)
    if not result.ok:
        return
    con = _verifier_db(src)
    if not _load_targets(src, con, result):
        return
    total, parquet = con.execute("SELECT (SELECT count(*) FROM _t), (SELECT count(*) FROM _tp)").fetchone()  # type: ignore[misc]
    if summary.get("targets") != total or parquet != total:
        result.fail(f"summary.json says {summary.get('targets')} targets; targets.csv has {total}, "
                    f"targets.parquet {parquet}")
        return
    verdicts = dict(con.execute("SELECT verdict, count(*) FROM _t GROUP BY 1").fetchall())
    reasons = dict(con.execute("SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM _t) GROUP BY 1").fetchall())
    for label, stated, counted in (("", summary.get("verdicts") or {}, verdicts),
                                   ("reason ", summary.get("reasons") or {}, reasons)):
        for name in sorted(set(stated) | set(counted)):
            if stated.get(name, 0) != counted.get(name, 0):
                result.fail(f"summary.json: {label}{name} = {stated.get(name, 0)}, targets.csv has "
                            f"{counted.get(name, 0)}")
                return
    bad = con.execute(
        "SELECT coalesce(a.subject_key, b.subject_key) FROM (SELECT *, row_number() OVER (ORDER BY subject_key) AS i FROM _t) a "
        "FULL JOIN (SELECT *, row_number() OVER (ORDER BY subject_key) AS i FROM _tp) b USING (i) "
        "WHERE a.subject_key IS DISTINCT FROM b.subject_key OR a.verdict IS DISTINCT FROM b.verdict "
        "OR a.reasons IS DISTINCT FROM b.reasons OR a.line_type IS DISTINCT FROM b.line_type LIMIT 1"
    ).fetchone()
    if bad:
        result.fail(f"targets.csv and targets.parquet disagree on subject {str(bad[0])[:16]}…")
        return
    result.checked["targets"] = int(total)


def _load_targets(src: _Source, con: duckdb.DuckDBPyConnection, result: Verification) -> bool:
    """``_t`` from targets.csv and ``_tp`` from targets.parquet, streamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from origine.limits import max_line_bytes

    if src.targets_loaded:
        return True
    csv.field_size_limit(max_line_bytes())
    con.execute("CREATE OR REPLACE TABLE _t (subject_key VARCHAR, verdict VARCHAR, reasons VARCHAR[], line_type VARCHAR)")
    text = (line.decode("utf-8", "replace") + "\n" for line in src.lines("targets.csv"))
    try:
        reader = csv.DictReader(text)
        batch: list[dict[str, Any]] = []
        for n, row in enumerate(reader, 2):
            if None in row or any(row.get(c) is None for c in ("subject_key", "verdict", "reasons")):
                result.fail(f"targets.csv row {n}: not the columns origine writes")
                return False
            batch.append({"subject_key": row["subject_key"] or None, "verdict": row["verdict"],
                          "reasons": [x for x in row["reasons"].lstrip("'").split("|") if x],
                          "line_type": (row.get("line_type") or "").lstrip("'") or None})
            if len(batch) == _BATCH:
                _insert_rows(con, "_t", batch)
                batch = []
        if batch:
            _insert_rows(con, "_t", batch)
    except csv.Error as exc:
        result.fail(f"targets.csv: not the CSV origine writes ({str(exc)[:80]})")
        return False
    con.execute("CREATE OR REPLACE TABLE _tp (subject_key VARCHAR, verdict VARCHAR, reasons VARCHAR[], line_type VARCHAR)")
    try:
        handle = src.path / "targets.parquet" if src.zip is None else src.zip.open("targets.parquet")
        for part in pq.ParquetFile(handle).iter_batches(1 << 16, columns=["subject_key", "verdict", "reasons", "line_type"]):
            con.register("_chunk", pa.Table.from_batches([part]))
            try:
                con.execute("INSERT INTO _tp SELECT subject_key, verdict, reasons, line_type FROM _chunk")
            finally:
                con.unregister("_chunk")
    except (OSError, ValueError, KeyError, pa.ArrowException, duckdb.Error):
        result.fail("targets.parquet: missing or unreadable")
        return False
    src.targets_loaded = True
    return True


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    con.register("_chunk", pa.Table.from_pylist(rows, schema=pa.schema(
        [("subject_key", pa.string()), ("verdict", pa.string()), ("reasons", pa.list_(pa.string())),
         ("line_type", pa.string())])))
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _chunk")
    finally:
        con.unregister("_chunk")


def _check_reasons(src: _Source, result: Verification, key: Any, since: Path | None) -> None:
    """Every verdict follows from its reasons by summary.json's rule table, and every
    target's reasons are those the audit's rules give on the cited leaves: the leaves'
    bytes parsed (ledger format v2), expanded into events by the ledger's own view,
    and the audit's own SQL run over them. Consents, opt-outs, transfers and
    provenance come from the row leaves and the delivery leaves they name (which must
    be cited), later events from their own leaves, the line type from the row leaves'
    ``line``; only a target without any row leaf keeps targets.csv's line type and
    validity (an invalid number has no leaf)."""
    from origine.audit import rules as audit_rules
    from origine.ledger.events import EVENTS_VIEW
    from origine.ledger.state import STATE_VIEWS

    summary = _json(src, "summary.json", result)
    if not result.ok:
        return
    rules: dict[str, str] = summary.get("rules") or {}
    if set(rules) != set(audit_rules.REASONS) or not set(rules.values()) <= set(audit_rules.VERDICTS):
        result.fail("summary.json: the rule table does not list the ten reasons, each with a verdict")
        return
    campaign = summary.get("campaign") or {}
    try:
        spec = audit_rules.SendFacts(sent_at=_instant(campaign["sent_at"]), channel=campaign["channel"],
                                     purpose=campaign["purpose"])
        days = int(campaign["validity_days"])
    except (KeyError, TypeError, ValueError):
        result.fail("summary.json: the campaign's send time, channel, purpose or validity is missing")
        return
    con = _verifier_db(src)
    try:
        if not _load_targets(src, con, result):
            return
        problem = read_leaves(con, src.lines("ledger/events.jsonl"), src.lines("ledger/leaves.txt"))
        if problem:
            result.fail(f"ledger/events.jsonl: {problem}")
            return
        result.checked["leaves"] = {str(t): int(n) for t, n in con.execute(
            'SELECT "type", count(*) FROM ledger_leaves GROUP BY 1 ORDER BY 1').fetchall()}
        con.execute(EVENTS_VIEW)
        if not _load_key_map(src, con, result):
            return
        con.execute(STATE_VIEWS)
        # The number's line type is the row leaves' (under the target's current key).
        con.execute(
            """
            CREATE TEMP TABLE _leaf_lines AS
            SELECT coalesce(m.current_key, r.subject_key) AS subject_key, min(r.line) AS line
            FROM ledger_leaves r
            LEFT JOIN ledger_leaves d ON d."type" = 'delivery' AND d.seq = r.delivery_seq
            LEFT JOIN subject_key_map m ON m.key_id IS NOT DISTINCT FROM d.key_id AND m.subject_key = r.subject_key
            WHERE r."type" = 'row'
            GROUP BY ALL
            """
        )
        con.execute(
            "CREATE TEMP TABLE _targets AS SELECT t.subject_key, "
            "t.subject_key IS NULL OR (list_contains(t.reasons, 'INVALID_NUMBER') AND l.subject_key IS NULL) AS invalid, "
            "CASE WHEN l.subject_key IS NOT NULL THEN l.line ELSE t.line_type END AS line_type "
            "FROM _t t LEFT JOIN _leaf_lines l ON l.subject_key = t.subject_key"
        )
        con.execute("CREATE TEMP TABLE _target_keys AS SELECT subject_key FROM _targets WHERE subject_key IS NOT NULL")
        audit_rules.collect_events(con, spec)
        audit_rules.evaluate(con, spec, days)
        order = {r: i for i, r in enumerate(audit_rules.REASONS)}
        con.execute("CREATE TEMP TABLE _order AS SELECT unnest(?::VARCHAR[]) AS r, unnest(?::INTEGER[]) AS i",
                    [list(order), list(order.values())])
        non_compliant = [r for r, v in rules.items() if v == audit_rules.NON_COMPLIANT]
        bad = con.execute(
            """
            WITH t AS (SELECT *, row_number() OVER (ORDER BY subject_key) AS i FROM _t),
                 v AS (SELECT *, row_number() OVER (ORDER BY subject_key) AS i FROM _verdicts)
            SELECT t.subject_key, t.verdict, t.reasons, v.reasons,
                   CASE WHEN len(list_intersect(t.reasons, $nc)) > 0 THEN 'non_compliant'
                        WHEN len(t.reasons) > 0 THEN 'unverifiable' ELSE 'compliant' END AS expected
            FROM t FULL JOIN v USING (i)
            WHERE t.subject_key IS DISTINCT FROM v.subject_key
               OR list_sort(t.reasons) IS DISTINCT FROM list_sort(v.reasons)
               OR t.verdict IS DISTINCT FROM expected
            ORDER BY t.subject_key LIMIT 1
            """,
            {"nc": non_compliant},
        ).fetchone()
        if bad:
            subject, verdict, stated, derived, expected = bad
            who = f"subject {str(subject)[:16]}…" if subject else "a target without a key"
            if verdict != expected:
                result.fail(f"{who}: verdict {verdict} does not follow from its reasons {list(stated or [])} "
                            "by summary.json's rules")
            else:
                missing = sorted(set(derived or []) - set(stated or []))
                extra = sorted(set(stated or []) - set(derived or []))
                result.fail(f"{who}: the cited leaves give reasons {list(derived or [])}, targets.csv says "
                            f"{list(stated or [])}" + (f" (missing {', '.join(missing)})" if missing else "")
                            + (f" (not supported: {', '.join(extra)})" if extra else ""))
            return
        stated = con.execute(
            "SELECT t.subject_key, t.line_type, l.line FROM _t t JOIN _leaf_lines l USING (subject_key) "
            "WHERE t.line_type IS DISTINCT FROM l.line ORDER BY t.subject_key LIMIT 1"
        ).fetchone()
        if stated:
            result.fail(f"subject {str(stated[0])[:16]}…: targets.csv says line type {stated[1]}, "
                        f"its row leaves say {stated[2]}")
            return
        result.checked["reasons"] = len(order)
    finally:
        con.execute("DROP VIEW IF EXISTS ledger_events")
        for name in ("ledger_leaves", "_parsed", "_lines", "subject_key_map", "_targets", "_target_keys",
                     "_leaf_lines", "_verdicts", "_order", "_per"):
            con.execute(f"DROP TABLE IF EXISTS {name}")


def read_leaves(con: duckdb.DuckDBPyConnection, lines: Iterable[bytes], indices: Iterable[bytes]) -> str | None:
    """Table ``ledger_leaves`` in ``con`` from the bytes of cited leaves (``lines``, one
    leaf each, and their leaf indices), read as ledger format v2
    (docs/bundle-format.md §5.1); returns what does not hold, naming the leaf, or None.

    Every leaf must be canonical: the columns parsed from it give back exactly its
    bytes (the ledger's ``PAYLOAD_SQL``; a delivery leaf's ``claims`` object is
    checked in Python, whose ``json.dumps`` wrote it). Every row leaf must name, in
    its ``ev``, an earlier cited delivery leaf and one of that leaf's files.
    """
    from origine.ledger.events import PAYLOAD_SQL

    _load_lines(con, "_lines", lines, indices)
    try:
        try:
            con.execute(f"CREATE OR REPLACE TABLE _parsed AS {_leaves_sql()}")
        except duckdb.Error:
            return f"leaf {_first_unparsable(con)} is not a leaf of ledger format v2 (not JSON of its shape)"
        bad_claims = _read_claims(con)
        if bad_claims is not None:
            return f"leaf {bad_claims} is not a canonical leaf of ledger format v2 (its claims)"
        # A member this parse does not read, a duplicate key, a null, another key
        # order, spacing, escaping or version: the bytes do not come back.
        bad = con.execute(
            f"SELECT seq, _type FROM (SELECT *, \"type\" AS _type FROM _parsed) "
            f"WHERE _type IS NULL OR _type NOT IN {_LEAF_KINDS!r} OR {PAYLOAD_SQL} IS DISTINCT FROM _bytes "
            "ORDER BY seq LIMIT 1"
        ).fetchone()
        if bad:
            kind = "" if bad[1] in _LEAF_KINDS else f" (type {str(bad[1])[:32]})"
            return f"leaf {bad[0]} is not a canonical leaf of ledger format v2{kind}"
        con.execute("CREATE OR REPLACE TABLE ledger_leaves AS SELECT * EXCLUDE (_bytes) FROM _parsed")
    finally:
        con.execute("DROP TABLE IF EXISTS _parsed")
        con.execute("DROP TABLE IF EXISTS _lines")
    # A row leaf states only what its row says: vendor, delivery id, delivery time,
    # recipient and key id are its delivery leaf's, which the bundle must cite.
    orphan = con.execute(
        "SELECT r.seq, r.delivery_seq, d.seq IS NULL, r.delivery_seq >= r.seq FROM ledger_leaves r "
        "LEFT JOIN ledger_leaves d ON d.\"type\" = 'delivery' AND d.seq = r.delivery_seq "
        "WHERE r.\"type\" = 'row' AND (d.seq IS NULL OR r.delivery_seq >= r.seq "
        "OR r.file_index >= len(d.files) OR r.file_index < 0) "
        "ORDER BY r.seq LIMIT 1"
    ).fetchone()
    if orphan:
        seq, dseq, missing, later = orphan
        if missing:
            return f"row leaf {seq} names delivery leaf {dseq}, which the bundle does not cite as a delivery leaf"
        if later:
            return f"row leaf {seq} names delivery leaf {dseq}, which comes after it"
        return f"row leaf {seq} names a file its delivery leaf {dseq} does not list"
    return None


_CLAIMS_AT = re.compile(r'\{(?:"at":-?[0-9]+,)?"claims":')


def _read_claims(con: duckdb.DuckDBPyConnection) -> int | None:
    """Set the ``claims`` of each parsed delivery leaf to its raw text, when that text
    is the canonical JSON origine writes (docs/ledger-format.md: Python's ``json.dumps``
    with sorted keys, numbers kept as the vendor's); returns the first leaf whose
    claims are not, else None. Delivery leaves are one per delivery: few, so Python."""
    import pyarrow as pa

    from origine.ledger.events import canonical_json

    rows: list[tuple[int, str]] = []
    for seq, line in con.execute(
        "SELECT seq, _bytes FROM _parsed WHERE \"type\" = 'delivery' AND _bytes LIKE '%\"claims\":%' ORDER BY seq"
    ).fetchall():
        found = _CLAIMS_AT.match(line)
        if found is None:
            continue  # claims elsewhere than canonical order: the round trip fails on it
        try:
            value, end = json.JSONDecoder().raw_decode(line, found.end())
            raw = line[found.end():end]
            if not isinstance(value, dict) or canonical_json(value) != raw:
                return int(seq)
        except ValueError:
            return int(seq)
        rows.append((int(seq), raw))
    if rows:
        con.register("_claims", pa.table({"seq": pa.array([r[0] for r in rows], pa.int64()),
                                          "claims": pa.array([r[1] for r in rows], pa.string())}))
        try:
            con.execute("UPDATE _parsed SET claims = c.claims FROM _claims c WHERE _parsed.seq = c.seq")
        finally:
            con.unregister("_claims")
    return None


def _first_unparsable(con: duckdb.DuckDBPyConnection) -> Any:
    """The index of the first cited leaf that is not a JSON object (for the message)."""
    row = con.execute(
        "SELECT seq FROM _lines WHERE NOT coalesce(json_valid(line), false) "
        "OR json_type(line::JSON) <> 'OBJECT' ORDER BY seq LIMIT 1"
    ).fetchone()
    return row[0] if row else "(one)"


def _load_key_map(src: _Source, con: duckdb.DuckDBPyConnection, result: Verification) -> bool:
    """``subject_key_map`` from key-map.txt's chunks, each checked against its digest,
    and the digests against the latest cited ``key_map`` leaf."""
    from origine.ledger.digests import CHUNK

    con.execute("CREATE TABLE subject_key_map (key_id VARCHAR, subject_key VARCHAR, current_key VARCHAR)")
    digests: list[tuple[int, str]] = []
    total = 0
    current: list[str] | None = None
    chunk_no = -1
    rows: list[tuple[str | None, str, str]] = []

    def close_chunk() -> bool:
        if current is None:
            return True
        if not 0 <= chunk_no < len(digests) or hashlib.sha256("\n".join(current).encode()).hexdigest() != digests[chunk_no][1] \
                or len(current) != digests[chunk_no][0]:
            result.fail(f"ledger/key-map.txt: chunk {chunk_no} does not match its digest")
            return False
        return True

    try:
        for raw in src.lines("ledger/key-map.txt"):
            line = raw.decode("utf-8")
            if line.startswith("digest "):
                _, c, count, digest = line.split(" ")
                if int(c) != len(digests) or current is not None:
                    raise ValueError
                digests.append((int(count), digest))
                total += int(count)
            elif line.startswith("chunk "):
                if not close_chunk():
                    return False
                chunk_no, current = int(line.split(" ")[1]), []
            elif current is not None:
                current.append(line)
                key_id, subject, now = line.split(" ")
                rows.append((key_id or None, subject, now))
                if len(rows) >= _BATCH:
                    _insert_map(con, rows)
                    rows = []
                if len(current) > CHUNK:
                    raise ValueError
            else:
                raise ValueError
    except (ValueError, UnicodeDecodeError):
        result.fail("ledger/key-map.txt: not the key map format")
        return False
    if not close_chunk():
        return False
    if rows:
        _insert_map(con, rows)
    latest = con.execute("SELECT proof, \"row\" FROM ledger_events WHERE type = 'key_map' ORDER BY seq DESC LIMIT 1").fetchone()
    listed = hashlib.sha256("\n".join(d for _, d in digests).encode()).hexdigest()
    if latest is None and digests:
        result.fail("ledger/key-map.txt: a key map without a cited key_map leaf committing to it")
        return False
    if latest is not None and (latest[0] != listed or latest[1] != total):
        result.fail("ledger/key-map.txt: the chunk digests are not those the latest key_map leaf commits to")
        return False
    return True


def _insert_map(con: duckdb.DuckDBPyConnection, rows: list[tuple[str | None, str, str]]) -> None:
    import pyarrow as pa

    con.register("_chunk", pa.table({"key_id": pa.array([r[0] for r in rows], pa.string()),
                                     "subject_key": pa.array([r[1] for r in rows], pa.string()),
                                     "current_key": pa.array([r[2] for r in rows], pa.string())}))
    try:
        con.execute("INSERT INTO subject_key_map SELECT * FROM _chunk")
    finally:
        con.unregister("_chunk")


def _check_report(src: _Source, result: Verification, key: Any, since: Path | None) -> None:
    """report.html is exactly what summary.json and validations.json render to, in the
    language the page declares: a page saying anything the signed summary does not fails."""
    from origine.report import lang_of, render_report

    summary, validations = _json(src, "summary.json", result), _json(src, "validations.json", result)
    if not result.ok:
        return
    try:
        page = src.read("report.html").decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
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
