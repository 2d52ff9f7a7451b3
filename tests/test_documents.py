"""The documents users write (manifests, campaign specs, vendor profiles) are read strictly:
no YAML alias bomb, no key given twice, no unknown key, bounded size, and every key they
accept is in docs/input-reference.md (issue 17, items 7, 9, 12 and 16)."""

from __future__ import annotations

import ast
import inspect
import json
import resource
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine import bundle, campaign, demo, documents, input_reference, manifest, profiles
from origine.ingest import intake
from origine.campaign import CAMPAIGN_SCHEMA, load_campaign, parse_campaign
from pipelines.cli import main
from origine.documents import MAX_DOCUMENT_BYTES, Schema, check_keys, load_json, load_yaml
from origine.errors import BadInput
from origine.home import Home
from origine.keys import HashKey
from origine.manifest import MANIFEST_SCHEMA, normal_path, parse_manifest, peek_identity
from origine.profiles import PROFILE_SCHEMA, load_profile, parse_profile
from origine.purposes import default_purposes, parse_purposes
from origine.validation import SuiteError, load_suite

REPO = Path(__file__).resolve().parent.parent

# The issue's manifest (431 bytes with its own keys; 342 here): nine levels of nine
# aliases, 9^9 = 387 million "lol"s once yaml.safe_load expands them.
BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)

MANIFEST = (
    "delivery_id: D-1\nvendor: acme\nrecipient: party-a\ndelivered_at: 2024-06-05T09:00:00+02:00\n"
    "country: FR\nfiles: [{path: a.csv}]\n"
)

CAMPAIGN = {
    "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
    "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
    "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"},
    "targets": {"deliveries": ["D-1"]},
}


def ingest(path: Path, home: Home, key: HashKey):
    return intake.commit(intake.prepare(path, home, key), home, label=str(path))


def delivery(root: Path, manifest_text: str, files: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in (files if files is not None else {"a.csv": b"phone\n0612345678\n"}).items():
        (root / name).write_bytes(data)
    (root / "manifest.yaml").write_text(manifest_text, encoding="utf-8")
    return root


def bomb_document(head: str) -> str:
    """A real document whose first keys are valid, then the alias bomb."""
    return head + BILLION_LAUGHS


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- item 7: the alias bomb


def test_a_billion_laughs_manifest_is_refused_at_once_with_exit_2(home, key, tmp_path) -> None:
    d = delivery(tmp_path / "bomb", bomb_document(MANIFEST))
    before = cpu_seconds()
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert cpu_seconds() - before < 5
    assert "manifest.yaml" in str(err.value) and "anchors" in err.value.message
    assert err.value.exit_code == 2
    result = CliRunner().invoke(main, ["ingest", str(d), "--home", str(home.root)])
    assert result.exit_code == 2 and "manifest.yaml" in result.stderr and "not accepted" in result.stderr
    assert "Traceback" not in result.output


def test_a_billion_laughs_in_a_zipped_manifest_is_refused_before_partitioning(tmp_path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.yaml", bomb_document(MANIFEST))
        zf.writestr("a.csv", "phone\n0612345678\n")
    with pytest.raises(BadInput, match="not accepted"):
        peek_identity(archive)


def test_a_billion_laughs_campaign_is_refused(tmp_path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(bomb_document(yaml.safe_dump(CAMPAIGN)))
    with pytest.raises(BadInput) as err:
        load_campaign(path)
    assert str(path) in str(err.value) and err.value.exit_code == 2


def test_a_billion_laughs_profile_is_refused(home, key, tmp_path) -> None:
    home.profiles.mkdir(parents=True, exist_ok=True)
    (home.profiles / "acme.yaml").write_text(bomb_document("columns: {phone: [Portable]}\n"))
    d = delivery(tmp_path / "d", MANIFEST)
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert "acme.yaml" in str(err.value)


def test_an_alias_bomb_in_a_suite_is_refused(tmp_path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("suite: s\nchecks: [{expect: expect_column_to_exist, column: x}]\n" + BILLION_LAUGHS)
    with pytest.raises(SuiteError, match="not accepted"):
        load_suite(path)


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: 2\n",                           # an anchor alone: refused, it has no use here
    "a: {k: 1}\nb:\n  <<: {k: 2}\n",              # a merge key without alias
])
def test_anchors_and_merge_keys_are_refused(text) -> None:
    with pytest.raises(BadInput, match="not accepted"):
        load_yaml(text.encode(), label="doc.yaml")


def test_a_megabyte_of_tiny_values_is_refused_in_bounded_time_and_memory() -> None:
    # Without aliases, 1 MiB of `1,` is 500,000 nodes: ~9 s and ~350 MiB for PyYAML.
    raw = ("x: [" + "1," * ((MAX_DOCUMENT_BYTES - 16) // 2) + "1]\n").encode()
    assert len(raw) <= MAX_DOCUMENT_BYTES
    before = cpu_seconds()
    with pytest.raises(BadInput, match="more than 100000 values"):
        load_yaml(raw, label="doc.yaml")
    assert cpu_seconds() - before < 10


def test_an_oversized_manifest_is_refused_without_being_read_whole(home, key, tmp_path) -> None:
    d = delivery(tmp_path / "big", MANIFEST + "#" + "x" * MAX_DOCUMENT_BYTES + "\n")
    with pytest.raises(BadInput, match="larger than"):
        ingest(d, home, key)
    # A zipped manifest that expands to 64 MiB from a few KiB is read only up to the limit.
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.yaml", MANIFEST + "#" + " " * (64 << 20) + "\n")
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(BadInput, match="more than"):
        peek_identity(archive)


@pytest.mark.parametrize("text", ["[" * 100_000, "a:\n" + "".join("  " * i + "- \n" for i in range(1, 60))])
def test_deep_nesting_is_refused(text) -> None:
    with pytest.raises(BadInput, match="nested|deep"):
        load_yaml(text.encode(), label="doc.yaml")
    with pytest.raises(BadInput, match="nested|deep"):
        load_json(("[" * 100_000).encode(), label="doc.json")


# ---------------------------------------------------------------- item 16: duplicate keys


def test_a_key_given_twice_in_a_manifest_is_refused_naming_both_lines(home, key, tmp_path) -> None:
    d = delivery(tmp_path / "dup", MANIFEST + "timezone: Europe/Paris\ntimezone: UTC\n")
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert err.value.column == "timezone" and "lines 7 and 8" in err.value.message
    assert "manifest.yaml" in str(err.value)


def test_a_key_given_twice_in_a_json_manifest_is_refused(tmp_path) -> None:
    raw = json.dumps({"delivery_id": "D-1", "vendor": "acme", "delivered_at": "2024-06-05", "country": "FR",
                      "files": [{"path": "a.csv"}]})
    raw = raw[:-1] + ', "files": [{"path": "b.csv", "path": "a.csv"}]}'
    with pytest.raises(BadInput) as err:
        parse_manifest(raw.encode(), label="d/manifest.json", json_format=True)
    assert err.value.column == "files" and "twice" in err.value.message
    nested = raw.replace(', "files": [{"path": "b.csv", "path": "a.csv"}]', "").replace(
        '{"path": "a.csv"}', '{"path": "a.csv", "rows": 1, "rows": 2}')
    with pytest.raises(BadInput) as err:
        parse_manifest(nested.encode(), label="d/manifest.json", json_format=True)
    assert err.value.column == "files[1].rows"


def test_a_key_given_twice_in_a_campaign_or_profile_is_refused(tmp_path) -> None:
    text = yaml.safe_dump(CAMPAIGN, sort_keys=False) + "channel: voice\n"
    with pytest.raises(BadInput) as err:
        parse_campaign(text.encode(), path=tmp_path / "c.yaml")
    assert err.value.column == "channel"
    with pytest.raises(BadInput) as err:
        load_yaml(b"purposes:\n  Offres: marketing.commercial\n  Offres: political.electoral\n", label="p.yaml")
    assert err.value.column == "purposes.Offres"


# ---------------------------------------------------------------- item 16: unknown keys


@pytest.mark.parametrize("extra,column,suggestion", [
    ("timezon: Europe/Paris\n", "timezon", "timezone"),
    ("claim: {row_count: 1}\n", "claim", "claims"),
    ("Country_code: FR\n", "Country_code", "country"),
    ("claims: {row_cont: 1}\n", "claims.row_cont", "row_count"),
])
def test_unknown_manifest_keys_are_refused_with_the_closest_known(tmp_path, extra, column, suggestion) -> None:
    with pytest.raises(BadInput) as err:
        parse_manifest((MANIFEST + extra).encode(), label="d/manifest.yaml")
    assert err.value.column == column and f"did you mean {suggestion!r}" in err.value.message
    assert err.value.exit_code == 2


def test_an_unknown_files_entry_key_is_refused(tmp_path) -> None:
    text = MANIFEST.replace("[{path: a.csv}]", "[{path: a.csv, sha: " + "0" * 64 + "}]")
    with pytest.raises(BadInput) as err:
        parse_manifest(text.encode(), label="d/manifest.yaml")
    assert err.value.column == "files[1].sha" and "did you mean 'sha256'" in err.value.message


def test_a_claim_origine_does_not_check_is_kept(tmp_path) -> None:
    m = parse_manifest((MANIFEST + "claims: {row_count: 1, quality: premium}\n").encode(), label="m.yaml")
    assert m.claims == {"row_count": 1, "quality": "premium"}


def test_timezon_would_have_read_dates_as_utc(home, key, tmp_path) -> None:
    """The issue's case end to end: the misspelt key stops the ingest instead of shifting dates."""
    d = delivery(tmp_path / "tz", MANIFEST + "timezon: Europe/Paris\n",
                 {"a.csv": b"phone,consent_at\n0612345678,2024-01-02 14:30\n"})
    with pytest.raises(BadInput, match="did you mean 'timezone'"):
        ingest(d, home, key)


@pytest.mark.parametrize("change,column,suggestion", [
    ({"targetting": {"confession": "catholique"}}, "targetting", "targeting"),
    ({"sendreport": "r.csv"}, "sendreport", "send_report"),
    ({"targets": {"delivery": ["D-1"]}}, "targets.delivery", "deliveries"),
])
def test_unknown_campaign_keys_are_refused(tmp_path, change, column, suggestion) -> None:
    doc = {**CAMPAIGN, **change}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(BadInput) as err:
        load_campaign(path)
    assert err.value.column == column and f"did you mean {suggestion!r}" in err.value.message
    assert str(path) in str(err.value)


def test_targetting_would_have_dropped_the_special_category_finding(home, key, make_delivery, tmp_path) -> None:
    """The issue's case end to end: the audit stops instead of losing SPECIAL_CATEGORY_TARGETING."""
    from origine.audit import audit

    ingest(make_delivery({"a.csv": b"phone,consent_purposes,consent_at\n0612345678,electoral,2024-01-02\n"},
                         delivery_id="D-1"), home, key)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**{k: v for k, v in CAMPAIGN.items() if k != "targeting"},
                                    "targetting": {"confession": "catholique"}}, allow_unicode=True))
    with pytest.raises(BadInput, match="did you mean 'targeting'"):
        audit(path, home, key, tmp_path / "out")
    path.write_text(yaml.safe_dump({**CAMPAIGN, "targeting": {"confession": "catholique"}}, allow_unicode=True))
    result = audit(path, home, key, tmp_path / "out")
    assert "SPECIAL_CATEGORY_TARGETING" in {f["code"] for f in result.summary["findings"]}


@pytest.mark.parametrize("text,column,suggestion", [
    ("column: {phone: [Portable]}\n", "column", "columns"),
    ("columns: {phon: [Portable]}\n", "columns.phon", "phone"),
    ("date_format: ['%d/%m/%Y']\n", "date_format", "date_formats"),
    ("separator: ';'\n", "separator", "purpose_separator"),
])
def test_unknown_profile_keys_are_refused(tmp_path, text, column, suggestion) -> None:
    (tmp_path / "acme.yaml").write_text(text)
    with pytest.raises(BadInput) as err:
        load_profile("acme", tmp_path)
    assert err.value.column == column and f"did you mean {suggestion!r}" in err.value.message
    assert "acme.yaml" in str(err.value)


def test_an_unknown_key_that_looks_like_a_number_is_not_echoed() -> None:
    with pytest.raises(BadInput) as err:
        parse_manifest((MANIFEST + "0612345678: x\n").encode(), label="m.yaml")
    assert "0612345678" not in str(err.value) and "612345678" not in str(err.value)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=30).filter(lambda k: k not in MANIFEST_SCHEMA.names()))
def test_any_undeclared_top_level_key_is_refused_by_name(name) -> None:
    doc = {**yaml.safe_load(MANIFEST), name: "x"}
    raw = json.dumps(doc, default=str).encode()
    with pytest.raises(BadInput) as err:
        parse_manifest(raw, label="m.json", json_format=True)
    assert "unknown key" in err.value.message and err.value.file == "m.json"


# ---------------------------------------------------------------- item 9: profiles that are not mappings


@pytest.mark.parametrize("text,column", [
    ("- phone\n- Portable\n", None),                      # a list
    ("columns: {phone: 5}\n", "columns.phone"),          # the issue's `phone: 5`
    ("columns: [phone]\n", "columns"),
    ("columns: {phone: [Portable, 5]}\n", "columns.phone"),
    ("purposes: [a, b]\n", "purposes"),
    ("purposes: {Offres: [marketing.commercial]}\n", "purposes.Offres"),
    ("purposes: {Offres: marketing}\n", "purposes.Offres"),
    ("purpose_separator: 5\n", "purpose_separator"),
    ("date_formats: ['%d/%m/%Y %Q']\n", "date_formats[1]"),
    ("vendor: other\n", "vendor"),
    (b"\xff: x\n", None),                                  # not UTF-8
])
def test_an_unusable_profile_exits_2_naming_file_and_field(home, key, tmp_path, text, column) -> None:
    home.profiles.mkdir(parents=True, exist_ok=True)
    (home.profiles / "acme.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    d = delivery(tmp_path / "d", MANIFEST)
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert err.value.column == column and "acme.yaml" in str(err.value)


@pytest.mark.parametrize("text", ["- phone\n- Portable\n", "columns: {phone: 5}\n"])
def test_the_issues_profiles_exit_2_from_the_cli(home, key, tmp_path, text) -> None:
    """Were AttributeError and TypeError (exit 1, a Python error)."""
    home.profiles.mkdir(parents=True, exist_ok=True)
    (home.profiles / "acme.yaml").write_text(text)
    result = CliRunner().invoke(main, ["ingest", str(delivery(tmp_path / "d", MANIFEST)), "--home", str(home.root)])
    assert result.exit_code == 2 and "acme.yaml" in result.stderr
    assert "Error" not in result.stderr.replace("origine: error", "")


def test_a_profile_is_applied(home, key, tmp_path) -> None:
    home.profiles.mkdir(parents=True, exist_ok=True)
    (home.profiles / "acme.yaml").write_text(
        "vendor: acme\ncolumns: {phone: Portable, consent_purposes: [Optins]}\n"
        "purposes: {Offres partenaires: transfer.third_party, Jeu: null}\n"
        "purpose_separator: ';'\ndate_formats: '%d.%m.%Y'\n")
    p = load_profile("acme", home.profiles)
    assert p.canonical_for("PORTABLE") == "phone" and p.canonical_for("optins") == "consent_purposes"
    assert p.date_formats == ("%d.%m.%Y",) and p.purpose_separator == ";"
    assert parse_purposes("Offres partenaires;Jeu", p.purposes, ";").codes == ("transfer.third_party",)
    d = delivery(tmp_path / "d", MANIFEST, {"a.csv": b"Portable,Optins\n0612345678,Offres partenaires\n"})
    assert ingest(d, home, key).rows_accepted == 1


def test_yaml_1_1_words_are_text(tmp_path) -> None:
    """`country: NO` is Norway, and the taxonomy's bundled word `yes` is the word, not True."""
    m = parse_manifest(MANIFEST.replace("country: FR", "country: NO").encode(), label="m.yaml")
    assert m.country == "NO"
    assert parse_purposes("yes", default_purposes()).bundled


# ---------------------------------------------------------------- item 9: a bundle signature that is not text


@pytest.fixture
def signed_bundle(home, key, make_delivery, tmp_path) -> Path:
    from origine.export import audit_bundle

    ingest(make_delivery({"c.csv": b"phone,consent_purposes,consent_at\n0612345678,electoral,2024-01-02\n"},
                         delivery_id="D-1", delivered_at="2024-02-01T00:00:00Z"), home, key)
    spec = tmp_path / "campaign.yaml"
    spec.write_text(yaml.safe_dump(CAMPAIGN))
    out = tmp_path / "bundle"
    audit_bundle(spec, home, key, out)
    assert bundle.verify_bundle(out, home_keys=home.keys).ok
    return out


@pytest.mark.parametrize("signature", [5, None, ["ab"], {"hex": "ab"}])
def test_a_non_string_bundle_signature_exits_2_naming_the_field(home, signed_bundle, tmp_path, signature) -> None:
    doc = json.loads((signed_bundle / "manifest.json").read_text())
    doc["signature"] = signature
    (signed_bundle / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput) as err:
        bundle.verify_bundle(signed_bundle, home_keys=home.keys)
    assert err.value.column == "signature" and "not a string" in err.value.message
    result = CliRunner().invoke(main, ["verify", str(signed_bundle), "--home", str(home.root)])
    assert result.exit_code == 2 and "signature" in result.stderr and "Traceback" not in result.output
    # A string that is not the signature still "does not verify" (exit 1).
    doc["signature"] = "00" * 64
    (signed_bundle / "manifest.json").write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["verify", str(signed_bundle), "--home", str(home.root)])
    assert result.exit_code == 1 and "does NOT verify" in result.stdout


# ---------------------------------------------------------------- item 12: one file, three spellings


def test_one_file_listed_under_three_spellings_is_refused_and_nothing_is_read(home, key, tmp_path) -> None:
    text = MANIFEST.replace("[{path: a.csv}]", "[contacts.csv, ./contacts.csv, .//contacts.csv]")
    d = delivery(tmp_path / "d", text, {"contacts.csv": b"phone\n0612345678\n0612345679\n"})
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert err.value.column == "files[2].path"
    assert "'./contacts.csv'" in err.value.message and "files[1] ('contacts.csv')" in err.value.message
    assert not home.warehouse.exists() or _rows(home) == 0


def _rows(home: Home) -> int:
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return con.execute("SELECT count(*) FROM delivery_rows").fetchone()[0] if "delivery_rows" in tables else 0
    finally:
        con.close()


_part = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_ "), min_size=1, max_size=8)


@given(st.lists(_part, min_size=1, max_size=4), st.lists(st.sampled_from(["/", "//", "/./", "\\", "/.//"]), min_size=3, max_size=3),
       st.sampled_from(["", "./", ".//", "././"]))
def test_every_spelling_of_a_path_has_one_normal_form(parts, seps, lead) -> None:
    plain = "/".join(parts)
    spelled = lead + "".join(p + (seps[i % 3] if i < len(parts) - 1 else "") for i, p in enumerate(parts))
    assert normal_path(spelled) == normal_path(plain) == plain


def test_different_files_in_different_folders_stay_apart() -> None:
    text = MANIFEST.replace("[{path: a.csv}]", "[a/contacts.csv, b/contacts.csv, contacts.csv]")
    assert len(parse_manifest(text.encode(), label="m.yaml").files) == 3


# ---------------------------------------------------------------- any bytes: BadInput or a document, never a crash


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=300),
    st.text(st.sampled_from(list("ab:- []{}&*!<>,'\"\n#|%@`?\\0\t.")), max_size=120).map(str.encode),
    st.sampled_from([MANIFEST, yaml.safe_dump(CAMPAIGN)]).flatmap(
        lambda base: st.integers(0, len(base)).flatmap(
            lambda i: st.text(st.sampled_from(list(":-&* []{}\n!x5")), max_size=6).map(
                lambda junk: (base[:i] + junk + base[i:]).encode()))),
))
def test_any_bytes_give_a_document_or_bad_input(tmp_path, raw) -> None:
    for parse in (
        lambda: parse_manifest(raw, label="m.yaml"),
        lambda: parse_manifest(raw, label="m.json", json_format=True),
        lambda: parse_campaign(raw, path=tmp_path / "c.yaml"),
        lambda: parse_profile("acme", load_yaml(raw, label="p.yaml"), label="p.yaml"),
    ):
        try:
            parse()
        except BadInput as exc:
            assert exc.exit_code == 2 and exc.file in ("m.yaml", "m.json", str(tmp_path / "c.yaml"), "p.yaml")


# ---------------------------------------------------------------- the reference page


def test_the_reference_page_is_generated_from_the_declarations() -> None:
    page = (REPO / "docs" / "input-reference.md").read_text(encoding="utf-8")
    assert page == input_reference.render(), (
        "docs/input-reference.md is stale: .venv/bin/python -m origine.input_reference > docs/input-reference.md"
    )


def _declared(schema: Schema) -> set[str]:
    names = set(schema.names())
    for k in schema.keys:
        if k.keys is not None:
            names |= _declared(k.keys)
    return names


def _keys_read(module: Any, functions: list[str]) -> set[str]:
    """String keys the given functions read: ``x.get("k")``, ``x["k"]``, ``required("k")``, ``text("k")``."""
    found: set[str] = set()
    for name in functions:
        tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(module, name))))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                func = node.func
                if (isinstance(func, ast.Attribute) and func.attr == "get") or \
                        (isinstance(func, ast.Name) and func.id in ("required", "text")):
                    found.add(node.args[0].value)
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                    and isinstance(node.slice.value, str) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("doc", "item", "value"):
                found.add(node.slice.value)
    return found


@pytest.mark.parametrize("module,functions,schema", [
    (manifest, ["parse_manifest", "_file_entry"], MANIFEST_SCHEMA),
    (campaign, ["parse_campaign", "_targets"], CAMPAIGN_SCHEMA),
    (profiles, ["parse_profile"], PROFILE_SCHEMA),
])
def test_every_key_the_code_reads_is_declared(module, functions, schema) -> None:
    read = _keys_read(module, functions)
    assert read, "the reader reads no key: the test no longer sees the code"
    assert read <= _declared(schema), read - _declared(schema)


def test_every_declared_key_is_read_by_the_code() -> None:
    """Declared and read agree both ways (the claims are read by the audit, the columns by name)."""
    read = _keys_read(manifest, ["parse_manifest", "_file_entry"])
    assert set(MANIFEST_SCHEMA.names()) <= read
    assert {"path", "sha256", "rows"} <= read
    assert set(CAMPAIGN_SCHEMA.names()) <= _keys_read(campaign, ["parse_campaign", "_targets"])
    assert set(PROFILE_SCHEMA.names()) <= _keys_read(profiles, ["parse_profile"])


def test_the_demo_and_the_examples_use_only_declared_keys(tmp_path) -> None:
    folders = demo.write_demo_deliveries(tmp_path / "deliveries", rows=30)
    assert len(folders) == 3
    for folder in folders:
        parse_manifest((folder / "manifest.yaml").read_bytes(), label=str(folder))
    load_campaign(demo.write_demo_campaign(tmp_path / "campaigns"))
    for doc in input_reference.DOCUMENTS:
        example = load_yaml(doc.example.encode(), label=doc.name)
        check_keys(example, doc.schema, label=doc.name)


def test_documents_module_needs_nothing_of_origine_but_errors() -> None:
    imports = {n.module for n in ast.walk(ast.parse(inspect.getsource(documents)))
               if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("origine")}
    assert imports == {"origine.errors"}


def test_one_file_under_two_names_on_disk_is_refused(home, key, tmp_path) -> None:
    """A hard link (or, on a case-insensitive file system, `Contacts.csv`) is the same file."""
    text = MANIFEST.replace("[{path: a.csv}]", "[a.csv, b.csv]")
    d = delivery(tmp_path / "d", text, {"a.csv": b"phone\n0612345678\n"})
    (d / "b.csv").hardlink_to(d / "a.csv")
    with pytest.raises(BadInput) as err:
        ingest(d, home, key)
    assert err.value.column == "files[2].path" and "same file as files[1]" in err.value.message
