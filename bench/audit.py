"""Benchmark the campaign audit against a plain scan of the same ledger.

    .venv/bin/python bench/audit.py [--events N] [--targets M] [--route deliveries|file] [--dir DIR]

Builds, directly in DuckDB SQL (not through ingest), a warehouse whose ledger holds
about N events (default 5M) over random hex subject keys: per subject a
``collected``, one or two ``consent_granted`` (electoral, marketing, transfer),
a ``delivered``, and for some a ``transferred`` (acquired_from), an ``opted_out``
(vendor flag) or a ``consent_withdrawn``; the matching ``delivery_rows`` and
``deliveries`` (with claims) and a tree head covering them. Leaf hashes are not
computed (the audit never reads them; ``--payload`` computes
them when you want the ledger's real size on disk).

The campaign targets M subjects (default 1M): ``--route deliveries`` names the
delivery holding them (20 % of them were also delivered by a second vendor);
``--route file`` writes a CSV of M valid French mobile numbers instead (the
subjects' keys are then HMACs of those numbers) so the audit also reads,
normalizes and hashes them.

Each measurement runs in a fresh child process, so its peak RSS is its own:

* baseline: ``SELECT count(DISTINCT subject_key) FROM ledger_events``;
* audit: ``origine.audit.audit`` (first run: appends M ``targeted`` events);
* re-audit: the same campaign again (nothing appended, same verdicts).

With ``--rotate``, then:

* rotate: ``origine.rotation.rotate`` layers a new key over every stored subject
  key (delivery rows re-keyed in place, every ledger subject mapped);
* audit after rotation: the campaign audited again under the rotated key, through
  the mapping (same verdicts and reasons as before the rotation).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402

from origine import ledger, merkle, warehouse  # noqa: E402
from origine.home import Home  # noqa: E402
from origine.keys import HashKey  # noqa: E402
from origine.signing import load_signer  # noqa: E402

# Events per subject of the mix below, and extra events per target (the second
# vendor's re-delivery of every 5th target), measured at 5M and 47M events.
EVENTS_PER_SUBJECT = 3.346
EXTRA_PER_TARGET = 0.668
SENT_AT = "2024-06-07T18:00:00+02:00"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root: Path, events: int, targets: int, route: str, payload: bool) -> dict[str, object]:
    """Create the home, its warehouse and the campaign under ``root``; return facts about them."""
    home = Home(root / "home").ensure()
    secret = secrets.token_bytes(32)
    (root / "key.hex").write_text(secret.hex())
    key = HashKey(secret)
    subjects = max(int((events - EXTRA_PER_TARGET * targets) / EVENTS_PER_SUBJECT), targets, 1)
    second = targets // 5  # targets also delivered by a second vendor
    started = time.perf_counter()
    con = warehouse.connect(home.warehouse)
    con.execute("SET preserve_insertion_order = false")
    warehouse.check_key(con, key.key_id)
    salt = secrets.token_hex(8)
    if route == "file":
        # The targets' keys are HMACs of real numbers: 06 + 8 digits, all valid mobiles.
        keys = [key.subject_key(f"+336{i:08d}") for i in range(targets)]
        con.register("_file_keys", pa.table({"i": pa.array(range(targets), pa.int64()), "k": keys}))
        key_sql = f"coalesce(fk.k, sha256('{salt}' || s.i::VARCHAR))"
        join_sql = "LEFT JOIN _file_keys fk ON fk.i = s.i"
    else:
        key_sql = f"sha256('{salt}' || s.i::VARCHAR)"
        join_sql = ""
    # One row per (subject, delivery): subjects 0..targets-1 in T-1 (vendor alpha), the
    # rest spread over 8 other deliveries, and every 5th target again in R-1 (beta).
    con.execute(
        f"""
        CREATE TEMP TABLE subj AS
        SELECT s.i, {key_sql} AS subject_key, (hash(s.i, '{salt}') >> 1)::BIGINT AS h
        FROM range({subjects}) s(i) {join_sql}
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE placed AS
        SELECT i, subject_key, h,
               CASE WHEN i < {targets} THEN 'alpha' ELSE ['alpha', 'beta', 'gamma', 'delta'][1 + i % 4] END AS vendor,
               CASE WHEN i < {targets} THEN 'T-1' ELSE 'B-' || (i % 8)::VARCHAR END AS delivery_id,
               i AS ord
        FROM subj
        UNION ALL
        SELECT i, subject_key, (hash(h) >> 1)::BIGINT, 'beta', 'R-1', i FROM subj WHERE i < {targets} AND i % 5 = 0 AND {second} > 0
        """
    )
    con.execute(
        """
        INSERT INTO delivery_rows
        SELECT vendor, delivery_id, 'contacts.csv', repeat('a', 64), row_number() OVER (PARTITION BY vendor, delivery_id ORDER BY ord),
               subject_key, (SELECT value FROM meta WHERE name = 'key_id'), 33,
               CASE WHEN h % 20 = 0 THEN 'fixed_line' ELSE 'mobile' END,
               ['jeu-concours-ete-2023', 'carte-fidelite', 'petition', 'quiz-2022', 'newsletter'][1 + (h >> 3) % 5],
               TIMESTAMPTZ '2019-01-01' + to_days(((h >> 7) % 1900)::INTEGER),
               CASE (h >> 11) % 10
                    WHEN 0 THEN []::VARCHAR[]
                    WHEN 1 THEN ['marketing.commercial']
                    WHEN 2 THEN ['marketing.commercial', 'political.electoral']
                    WHEN 3 THEN ['political.electoral', 'transfer.third_party']
                    ELSE ['political.electoral'] END,
               (h >> 15) % 10 = 0,
               CASE WHEN (h >> 11) % 10 = 0 THEN NULL
                    ELSE TIMESTAMPTZ '2020-01-01' + to_days(((h >> 19) % 1700)::INTEGER) END,
               CASE WHEN (h >> 23) % 10 = 0 THEN NULL ELSE 'proof-' || ((h >> 27) % 100000)::VARCHAR END,
               CASE WHEN (h >> 31) % 5 = 0 THEN 'databroker-x' END,
               CASE WHEN (h >> 35) % 33 = 0 THEN TIMESTAMPTZ '2023-01-01' + to_days(((h >> 39) % 700)::INTEGER) END,
               []::VARCHAR[]
        FROM placed
        """
    )
    con.execute(
        """
        INSERT INTO deliveries
        SELECT vendor, delivery_id, repeat('f', 64), 'party-a', TIMESTAMPTZ '2024-06-05 07:00:00+00', 'FR',
               (SELECT value FROM meta WHERE name = 'key_id'), count(*), count(*), 0,
               json_object('row_count', count(*), 'consent_purposes', ['political.electoral'],
                           'consent_rate', 1.0, 'sources', ['jeu-concours-ete-2023']),
               '{}', now()
        FROM delivery_rows GROUP BY vendor, delivery_id
        """
    )
    # The leaves ingest would record for those rows (ledger format v2: a delivery leaf
    # per delivery, then one row leaf per row), plus a few DPO withdrawals as event leaves.
    con.execute(
        """
        CREATE TEMP TABLE dseq AS
        SELECT vendor, delivery_id, count(*) AS n,
               sum(count(*) + 1) OVER (ORDER BY vendor, delivery_id) - count(*) - 1 AS seq
        FROM delivery_rows GROUP BY vendor, delivery_id
        """
    )
    delivery = ledger.flat_columns(
        type="'delivery'", at="TIMESTAMPTZ '2024-06-05 07:00:00+00'", vendor="vendor", delivery_id="delivery_id",
        party_to="'party-a'", key_id="(SELECT value FROM meta WHERE name = 'key_id')",
        files="[struct_pack(name := 'contacts.csv', \"rows\" := n, sha256 := repeat('a', 64))]",
    )
    row = ledger.flat_columns(
        type="'row'", subject_key="r.subject_key", at="r.collected_at", source="r.source",
        purposes="r.consent_purposes", consent_at="r.consent_at", bundled="r.bundled_consent",
        proof="r.consent_proof", party_from="r.acquired_from", opted_out_at="r.opted_out_at",
        cc="r.country_code", line="r.line_type", delivery_seq="d.seq", file_index="0", row='r."row"',
    )
    withdrawal = ledger.flat_columns(
        type="'consent_withdrawn'", subject_key="subject_key", key_id="key_id", at="TIMESTAMPTZ '2024-03-01'",
        purpose="'political.electoral'", origin="'dpo-request'", evidence_kind="'dpo'", file="'dpo.csv'",
        file_sha256="repeat('d', 64)",
    )
    names = ", ".join(f'"{n}"' for n, _ in ledger.LEAF_COLUMNS)
    leaf = ledger.LEAF_SQL if payload else "unhex(repeat('00', 32))"
    con.execute(
        f"""
        INSERT INTO ledger_leaves (seq, {names}, leaf_hash, erased_at)
        SELECT seq, {names}, {leaf}, NULL FROM (
            SELECT seq, {delivery} FROM dseq
            UNION ALL
            SELECT d.seq + r."row" AS seq, {row} FROM delivery_rows r JOIN dseq d USING (vendor, delivery_id)
            UNION ALL
            SELECT (SELECT sum(n + 1) FROM dseq) + row_number() OVER (ORDER BY subject_key) - 1 AS seq, {withdrawal}
            FROM delivery_rows WHERE subject_key < '04'
        )
        """
    )
    # The synthetic events' tree and a signed checkpoint of it: every later append (the
    # audit's, a rotation's) first checks the latest checkpoint against the stored tree.
    frontier = merkle.Frontier()
    with tempfile.TemporaryDirectory(dir=home.scratch) as tmp:
        nodes = ledger.ParquetNodeWriter(Path(tmp) / "nodes.parquet")
        try:
            for batch in con.sql("SELECT leaf_hash FROM ledger_leaves ORDER BY seq").to_arrow_reader(1 << 16):
                frontier.extend(batch.column(0).to_pylist(), nodes)
        finally:
            nodes.close()
        con.execute("INSERT INTO ledger_nodes SELECT 0, seq, leaf_hash FROM ledger_leaves")
        con.execute("INSERT INTO ledger_nodes SELECT * FROM read_parquet(?)", [str(nodes.path)])
    ledger.record_head(con, frontier, reason="bench: synthetic ledger", signer=load_signer(home.keys))
    size = con.execute("SELECT count(*) FROM ledger_events").fetchone()[0]  # type: ignore[index]
    rows = con.execute("SELECT count(*) FROM delivery_rows").fetchone()[0]  # type: ignore[index]
    con.execute("CHECKPOINT")
    con.close()
    built = time.perf_counter() - started

    folder = root / "campaign"
    folder.mkdir(exist_ok=True)
    if route == "file":
        with (folder / "targets.csv").open("w") as out:
            out.write("phone\n")
            out.writelines(f"06{i:08d}\n" for i in range(targets))
        target_yaml = "  file: targets.csv\n"
    else:
        target_yaml = "  deliveries: [alpha/T-1]\n"
    (folder / "campaign.yaml").write_text(
        "campaign_id: BENCH-1\nsponsor: Parti A\nchannel: sms\npurpose: political.electoral\n"
        "sender: PARTI-A\nmessage: \"Parti A: votez le 9 juin. STOP au 36789\"\n"
        f"sent_at: {SENT_AT}\ntargeting: {{age: 18-35}}\ntargets:\n{target_yaml}",
        encoding="utf-8",
    )
    return {"events": size, "subjects": subjects, "delivery_rows": rows, "targets": targets, "build_s": built}


def measure(root: Path, what: str) -> dict[str, object]:
    """Run one measurement in this (child) process; return its figures."""
    home = Home(root / "home")
    if what == "baseline":
        started = time.perf_counter()
        con = duckdb.connect(str(home.warehouse), read_only=True)
        n = con.execute("SELECT count(DISTINCT subject_key) FROM ledger_events").fetchone()[0]  # type: ignore[index]
        con.close()
        return {"seconds": time.perf_counter() - started, "rss_mib": peak_rss_mib(), "result": int(n)}
    key = HashKey(bytes.fromhex((root / "key.hex").read_text()))
    if what == "rotate":
        from origine.rotation import rotate

        layer = secrets.token_bytes(32)
        started = time.perf_counter()
        con = warehouse.connect(home.warehouse)
        new, result = rotate(con, key, layer, segments=home.segments)
        con.close()
        seconds = time.perf_counter() - started
        (root / "layer.hex").write_text(layer.hex())
        return {"seconds": seconds, "rss_mib": peak_rss_mib(), "rekeyed": result.rows_rekeyed,
                "mapped": result.ledger_subjects_mapped}
    if (root / "layer.hex").exists():
        key = key.with_layer(bytes.fromhex((root / "layer.hex").read_text()))
    from origine.audit import audit

    started = time.perf_counter()
    result = audit(root / "campaign" / "campaign.yaml", home, key, root / f"out-{what}")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rss_mib": peak_rss_mib(),
        "targets": result.summary["targets"],
        "verdicts": result.summary["verdicts"],
        "reasons": {k: v for k, v in result.summary["reasons"].items() if v},
        "appended": result.appended,
        "held_s": result.warehouse_seconds,
        "summary_sha256": hashlib.sha256(result.summary_path.read_bytes()).hexdigest(),
        "csv_sha256": hashlib.sha256(result.targets_csv.read_bytes()).hexdigest(),
    }


def child(root: Path, what: str) -> dict[str, object]:
    """Run ``measure`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--dir", str(root)], capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"{what} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the data, run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="ledger events (about)")
    parser.add_argument("--targets", type=int, default=1_000_000, help="campaign targets")
    parser.add_argument("--route", choices=("deliveries", "file"), default="deliveries")
    parser.add_argument("--payload", action="store_true", help="compute real payloads and leaf hashes")
    parser.add_argument("--rotate", action="store_true", help="then rotate the key and audit again")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (kept; default: a temp folder, removed)")
    parser.add_argument("--build-only", action="store_true", help="build the data in --dir and stop")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only and args.dir is None:
        parser.error("--build-only needs --dir")
    if args.measure:
        print(json.dumps(measure(args.dir, args.measure)))
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="origine-bench-audit-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.build_only:
            facts = build(root, args.events, args.targets, args.route, args.payload)
            (root / "facts.json").write_text(json.dumps(facts))
            return
        # Building runs in its own process too: peak RSS is inherited across fork and
        # exec, and the builder's memory would otherwise crowd the measurements.
        cmd = [sys.executable, __file__, "--build-only", "--dir", str(root), "--events", str(args.events),
               "--targets", str(args.targets), "--route", args.route] + (["--payload"] if args.payload else [])
        subprocess.run(cmd, check=True)
        facts = json.loads((root / "facts.json").read_text())
        print(f"ledger events          {facts['events']:,}  ({facts['subjects']:,} subjects, "
              f"{facts['delivery_rows']:,} delivery rows; built in {facts['build_s']:.1f} s)")
        print(f"campaign targets       {facts['targets']:,}  (route: {args.route})", flush=True)
        base = child(root, "baseline")
        print(f"baseline count(DISTINCT subject_key) scan   {base['seconds']:7.2f} s  "
              f"{facts['events'] / base['seconds']:14,.0f} events/s  peak RSS {base['rss_mib']:8.1f} MiB")
        for what in ("audit", "reaudit"):
            r = child(root, what)
            label = "audit (appends targeted)" if what == "audit" else "re-audit (appends nothing)"
            print(f"{label:<43} {r['seconds']:7.2f} s  {r['targets'] / r['seconds']:14,.0f} targets/s  "
                  f"peak RSS {r['rss_mib']:8.1f} MiB  ({r['seconds'] / base['seconds']:.1f}x baseline)")
            print(f"  warehouse held {r['held_s']:.2f} s (an ingest in another process waits that long)")
            sys.stdout.flush()
            if what == "audit":
                first = r
                print(f"  verdicts {r['verdicts']}")
                print(f"  reasons  {r['reasons']}")
                print(f"  appended {r['appended']:,} targeted events")
            else:
                same = (r["summary_sha256"], r["csv_sha256"]) == (first["summary_sha256"], first["csv_sha256"])
                print(f"  appended {r['appended']:,}; summary.json and targets.csv identical: {same}")
        if args.rotate:
            r = child(root, "rotate")
            rows = sum(r["rekeyed"].values())
            print(f"{'rotate (new key layered over the old)':<43} {r['seconds']:7.2f} s  "
                  f"{(rows + r['mapped']) / r['seconds']:14,.0f} keys/s     "
                  f"peak RSS {r['rss_mib']:8.1f} MiB  ({r['seconds'] / base['seconds']:.1f}x baseline)")
            print(f"  re-keyed {r['rekeyed']}; ledger subjects mapped {r['mapped']:,}")
            r = child(root, "reaudit-rotated")
            print(f"{'audit after rotation':<43} {r['seconds']:7.2f} s  {r['targets'] / r['seconds']:14,.0f} "
                  f"targets/s  peak RSS {r['rss_mib']:8.1f} MiB  ({r['seconds'] / base['seconds']:.1f}x baseline)")
            same = (r["verdicts"], r["reasons"]) == (first["verdicts"], first["reasons"])
            print(f"  appended {r['appended']:,}; same verdicts and reasons as before the rotation: {same}")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
