"""Personal data in vendors' free text, header cells in messages, purpose codes as written.

Issue 17 items 1, 2, 3 and 15: a number, e-mail or IP address a vendor writes in
``source``, ``consent_proof``, ``acquired_from``, a purpose word, the manifest's
``recipient`` or ``claims`` never reaches the home; it is stored as a keyed token
(the number's is its subject key's prefix, so it can still be looked up). A header
cell that may be a data cell is never echoed in an error. Every purpose code maps to
itself, however it is cased or spaced.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from origine import freetext
from origine.audit import audit
from origine.errors import BadInput
from origine.freetext import describe_columns, email_token, ip_token, scrub_column, scrub_text, tel_token
from origine.home import Home
from origine.ingest import DeliveryReport, intake
from origine.keys import HashKey
from origine.purposes import default_purposes, parse_purposes, taxonomy_codes
from origine.suppressions import ingest_suppressions
from tests.privacy import Scanner, assert_no_raw_number

KEY = HashKey(bytes(range(1, 33)))


def scrub(text: str, region: str = "FR") -> str:
    return scrub_text(text, KEY, region).text


def tel(e164: str) -> str:
    return tel_token(e164, KEY)


# ---------------------------------------------------------------- the scrubber, unit by unit


@pytest.mark.parametrize(
    "text,expected",
    [
        # the issue's own examples
        ("parrainage par 06 11 22 33 99", "parrainage par {t}"),
        ("SMS de 0611223399", "SMS de {t}"),
        # every common writing of the same number gives the same token
        ("+33611223399", "{t}"), ("+33 6 11 22 33 99", "{t}"), ("+33 (0)6 11 22 33 99", "{t}"),
        ("(+33) 6.11.22.33.99", "{t}"), ("0033 6 11 22 33 99", "{t}"), ("0033611223399", "{t}"),
        ("06.11.22.33.99", "{t}"), ("06-11-22-33-99", "{t}"), ("06/11/22/33/99", "{t}"),
        ("611223399", "{t}"), ("33611223399", "{t}"), ("06\u00a011\u00a022\u00a033\u00a099", "{t}"),
        ("tel:0611223399.", "tel:{t}."), ("tel0611223399", "tel{t}"),
        # beside a date, or two numbers in a row
        ("le 12/03/2024 0611223399", "le 12/03/2024 {t}"),
        ("06 11 22 33 99 / 06 11 22 33 99", "{t} / {t}"),
        ("[tel:0123456789ab] 06 11 22 33 99", "[tel:0123456789ab] {t}"),
    ],
)
def test_numbers_in_any_writing_become_the_same_token(text: str, expected: str) -> None:
    assert scrub(text) == expected.format(t=tel("+33611223399"))


def test_the_token_is_the_subject_keys_prefix_so_a_lookup_finds_it() -> None:
    assert tel("+33611223399") == "[tel:" + KEY.subject_key("+33611223399")[: freetext.TOKEN_HEX] + "]"
    # and under a rotated key, the rotated subject key's
    rotated = KEY.with_layer(bytes(range(40, 72)))
    assert scrub_text("0611223399", rotated, "FR").text == "[tel:" + rotated.subject_key("+33611223399")[:12] + "]"


def test_foreign_numbers_need_their_country_code_and_keep_it() -> None:
    assert scrub("+221 77 123 45 67") == tel("+221771234567")
    assert scrub("221771234567") == tel("+221771234567")  # E.164 without its '+'
    assert scrub("00212 6 12 34 56 78") == tel("+212612345678")
    # a national writing is read in the delivery's country
    assert scrub("06 12 34 56 78", region="MA") == tel("+212612345678")


def test_email_and_ip_addresses_become_tokens() -> None:
    assert scrub("mail Jean.Dupont@Example.fr svp") == f"mail {email_token('jean.dupont@example.fr', KEY)} svp"
    assert scrub("0611223399@sms.example.com") == email_token("0611223399@sms.example.com", KEY)
    assert scrub("IP 82.64.1.10 / form v3") == f"IP {ip_token('82.64.1.10', KEY)} / form v3"
    assert scrub("from 2001:db8::1, then 2001:0db8:0000:0000:0000:0000:0000:0001") == (
        f"from {ip_token('2001:db8::1', KEY)}, then {ip_token('2001:db8::1', KEY)}"
    )
    result = scrub_text("a@b.fr 82.64.1.10 0611223399", KEY, "FR")
    assert result.kinds == {"tel", "email", "ip"}


@pytest.mark.parametrize("address", ["0.0.0.0", "82.64.1.10", "2001:db8::1", "12jean@example.fr"])
def test_a_number_then_an_address_are_two_tokens(address: str) -> None:
    """Found by the property test: the number's run of digit groups swallowed the
    dotted quad after it, and the quad was stored as written."""
    alone = scrub(address)
    assert alone != address
    assert scrub(f" +33611223399  {address} ") == f" {tel('+33611223399')}  {alone} "
    assert scrub(f"{address} 06 11 22 33 99") == f"{alone} {tel('+33611223399')}"


@pytest.mark.parametrize(
    "text",
    [
        "jeu-concours-ete-2023", "collecte le 2024-03-12", "12/03/2024", "12.03.2024 10:30", "2024-03-12T10:30:00+02:00",
        "20240312", "le 12/03/2024 à 10h30", "form v3", "v3.2.1", "version 10.4.2", "v10.4.2.1", "build 1234567", "75011 Paris",
        "1 000 000 euros", "ref 12-34", "06.11.22", "horaire 10:30:00", "case 3 de 5",
        "sha256 9f3c71d2a8e04b6655c1f0e7d3a2b4c8e1f09a7b6c5d4e3f2a1b0c9d8e7f612345678901",
        "", "   ", "n/a", "Zoroastrisme-Unique",
    ],
)
def test_dates_versions_and_short_numbers_are_left_as_written(text: str) -> None:
    result = scrub_text(text, KEY, "FR")
    assert (result.text, result.kinds) == (text, frozenset())


def test_a_column_is_scrubbed_like_each_of_its_values() -> None:
    values = ["jeu", None, "SMS de 0611223399", "jeu", "SMS de 0611223399", "a@b.fr", "2024-03-12", ""] * 50
    column, found, kinds = scrub_column(pa.array(values, pa.string()), lambda t: scrub_text(t, KEY, "FR"))
    assert column.to_pylist() == [None if v is None else scrub(v) for v in values]
    assert found.tolist() == [v is not None and bool(scrub_text(v, KEY, "FR").kinds) for v in values]
    assert kinds == {"tel", "email"}


def test_a_column_without_candidates_is_returned_as_is() -> None:
    values = pa.array(["jeu-concours-ete-2023", "carte-fidelite-2022", None] * 1000)
    calls: list[str] = []
    column, found, kinds = scrub_column(values, lambda t: calls.append(t) or scrub_text(t, KEY, "FR"))
    assert column is values and not found.any() and kinds == set() and calls == []


prefilter_text = st.text(alphabet=st.sampled_from(list("0123456789 .-/()+@:abcdef\u00a0\tx")), max_size=40)


@settings(max_examples=400, deadline=None)
@given(text=prefilter_text)
def test_the_vectorized_prefilter_is_the_python_one_and_misses_nothing(text: str) -> None:
    """RE2 (Arrow) and Python agree on the prefilter, and whatever the scrubber
    changes, the prefilter had kept: a row it drops would keep its number."""
    arrow = freetext.candidates(pa.array([text], pa.string())).tolist()[0]
    assert arrow == freetext.has_candidates(text)
    result = scrub_text(text, KEY, "FR")
    if result.text != text or result.kinds:
        assert arrow
    # scrubbing is idempotent: a token is never scrubbed again
    assert scrub(result.text) == result.text


# ---------------------------------------------------------------- header cells in messages (item 1)


def test_describe_columns_names_data_looking_cells_by_position() -> None:
    assert describe_columns(["0612121212", "nom", "jean@example.fr", "82.64.1.10", "06 12 12 12 12", "date 2024"]) == (
        "column 1, nom, column 3, column 4, column 5, date 2024"
    )
    assert describe_columns([]) == "none"


def ingest(path: Path, home: Home, key: HashKey) -> DeliveryReport:
    report = intake.prepare(path, home, key)
    return intake.commit(report, home, label=str(path))


def _xlsx(rows: list[list[Any]]) -> bytes:
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,data",
    [
        ("a.csv", b"0612121212;jean@example.fr;jeu\n0633445566;x@y.fr;jeu\n"),
        ("a.xlsx", _xlsx([[612121212, "06 12 12 12 12", "jeu"], [633445566, "06 33 44 55 66", "jeu"]])),
        ("a.jsonl", b'{"0612121212": "jeu", "82.64.1.10": "x"}\n'),
    ],
)
def test_a_file_without_header_never_echoes_its_first_row(home, key, make_delivery, name, data) -> None:
    with pytest.raises(BadInput) as caught:
        ingest(make_delivery({name: data}), home, key)
    message = str(caught.value)
    assert "required column missing" in message and "column 1" in message
    for needle in ("0612121212", "612121212", "06 12 12 12 12", "jean@example.fr", "82.64.1.10"):
        assert needle not in message


def test_the_audits_target_file_without_header_is_not_echoed(home, key, tmp_path) -> None:
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / "numbers.csv").write_text("0612121212\n0633445566\n")
    (folder / "campaign.yaml").write_text(
        "campaign_id: C1\nsponsor: Parti A\nchannel: sms\npurpose: political.electoral\nsender: PARTI-A\n"
        "message: Votez. STOP au 36789\nsent_at: 2024-06-07T18:00:00+02:00\ntargets: {file: numbers.csv}\n"
    )
    with pytest.raises(BadInput) as caught:
        audit(folder / "campaign.yaml", home, key, tmp_path / "out")
    assert "column 1" in str(caught.value) and "0612121212" not in str(caught.value)


def test_a_suppression_file_without_header_is_not_echoed(home, key, tmp_path) -> None:
    path = tmp_path / "stop.csv"
    path.write_text("0612121212;sms\n0633445566;sms\n")
    with pytest.raises(BadInput) as caught:
        ingest_suppressions(path, warehouse_path=home.warehouse, key=key)
    assert "column 1" in str(caught.value) and "0612121212" not in str(caught.value)


# ---------------------------------------------------------------- through the real ingest (items 2, 3)


def stored_text(home: Home) -> str:
    """Everything the home holds, as text: plain files as they are, Parquet files
    (compressed pages) decoded, every table of the warehouse read back. ``landing/``
    (the vendor's own files, kept as delivered) is not the warehouse's."""
    parts: list[str] = []
    for path in sorted(home.root.rglob("*")):
        if not path.is_file() or "landing" in path.relative_to(home.root).parts:
            continue
        if path.suffix == ".parquet":
            parts.append(json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False))
        elif path == home.warehouse or path.suffix in (".duckdb", ".wal"):
            continue
        else:
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall():
            parts.append(repr(con.execute(f'SELECT * FROM "{table}"').fetchall()))
    finally:
        con.close()
    return "\n".join(parts)


def find_raw(text: str, forms: list[str]) -> list[str]:
    """Forms present in ``text``: digit-only forms bounded by non-hex characters (hex
    keys and digests hold digit runs by chance), others by non-alphanumerics."""
    hits = []
    for form in forms:
        if re.fullmatch(r"[0-9]+", form):
            pattern = rf"(?<![0-9a-fA-F]){re.escape(form)}(?![0-9a-fA-F])"
        else:
            pattern = rf"(?<![0-9A-Za-z]){re.escape(form)}(?![0-9A-Za-z])"
        if re.search(pattern, text, flags=re.IGNORECASE):
            hits.append(form)
    return hits


def number_forms(e164: str) -> list[str]:
    """E.164, without '+', with '00', national, the significant digits, grouped."""
    number = phonenumbers.parse(e164)
    cc, nsn = str(number.country_code), phonenumbers.national_significant_number(number)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    national_digits = re.sub(r"[^0-9]", "", national)
    forms = [e164, cc + nsn, "00" + cc + nsn, national_digits, nsn]
    for sep in (" ", ".", "-"):
        forms.append(national.replace(" ", sep))
        forms.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL).replace(" ", sep))
    return sorted(set(forms))


def written(e164: str, style: int, sep: str) -> str:
    """One way a vendor writes ``e164`` (a French number also in national writings)."""
    number = phonenumbers.parse(e164)
    cc, nsn = str(number.country_code), phonenumbers.national_significant_number(number)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    styles = [e164, "00" + cc + nsn, cc + nsn, international.replace(" ", sep)]
    if cc == "33":  # France has a trunk prefix, Senegal none
        national = "0" + nsn
        styles += [national, nsn, sep.join(national[i:i + 2] for i in range(0, 10, 2)),
                   f"+33 (0){nsn[0]} " + " ".join(nsn[i:i + 2] for i in range(1, 9, 2))]
    return styles[style % len(styles)]


french_mobile = st.builds(lambda p, n: f"+33{p}{n:08d}", st.sampled_from("67"), st.integers(0, 10**8 - 1)).filter(
    lambda e: phonenumbers.is_valid_number(phonenumbers.parse(e)))
senegal_mobile = st.builds(lambda p, n: f"+221{p}{n:07d}", st.sampled_from(["77", "78", "76", "70"]),
                           st.integers(0, 10**7 - 1)).filter(lambda e: phonenumbers.is_valid_number(phonenumbers.parse(e)))
phone_item = st.builds(lambda e, style, sep: ("tel", e, written(e, style, sep)),
                       st.one_of(french_mobile, french_mobile, senegal_mobile), st.integers(0, 20), st.sampled_from(" .-"))
email_item = st.builds(
    lambda local, domain, tld, upper: ("email", f"{local}@{domain}.{tld}",
                                       (f"{local}@{domain}.{tld}".upper() if upper else f"{local}@{domain}.{tld}")),
    st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True), st.booleans(),
)
ip_item = st.one_of(
    st.ip_addresses(v=4).map(lambda a: ("ip", str(a), str(a))),
    st.ip_addresses(v=6).filter(lambda a: len(str(a)) >= 7)
    .flatmap(lambda a: st.sampled_from([("ip", str(a), str(a)), ("ip", str(a), a.exploded)])),
)
item = st.one_of(phone_item, phone_item, email_item, ip_item)
# Free text around them: letters (accented too), spaces and punctuation, no digits
# (a digit glued to a number makes another number, which no one could tell apart).
filler = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzéèàçÉ ABCXYZ,.-_'()!?/")), max_size=12)


@st.composite
def free_text(draw: Any) -> tuple[str, list[tuple[str, str, str]]]:
    """A text with 1-3 embedded items, and the items (kind, normalized value, as written)."""
    items = draw(st.lists(item, min_size=1, max_size=3))
    parts = [draw(filler)]
    for it in items:
        parts += [" ", it[2], " ", draw(filler)]
    return "".join(parts), items


def raw_forms_of(items: list[tuple[str, str, str]]) -> list[str]:
    forms: list[str] = []
    for kind, value, as_written in items:
        forms.append(as_written)
        if kind == "tel":
            forms += number_forms(value)
        elif kind == "ip":
            address = ipaddress.ip_address(value)
            forms += [str(address), address.exploded]
        else:
            forms.append(value)
    return forms


def token_of(kind: str, value: str, key: HashKey) -> str:
    return {"tel": tel_token, "email": email_token, "ip": ip_token}[kind](value, key)


def csv_delivery(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(texts=st.lists(free_text(), min_size=6, max_size=6))
@example(texts=[("parrainage par 06 11 22 33 99", [("tel", "+33611223399", "06 11 22 33 99")]),
                ("SMS de 0611223399", [("tel", "+33611223399", "0611223399")]),
                ("IP 82.64.1.10 / form v3", [("ip", "82.64.1.10", "82.64.1.10")]),
                ("par jean.dupont@example.fr", [("email", "jean.dupont@example.fr", "jean.dupont@example.fr")]),
                ("word 0633445566", [("tel", "+33633445566", "0633445566")]),
                ("+221 77 123 45 67 partenaire", [("tel", "+221771234567", "+221 77 123 45 67")])])
def test_random_free_text_reaches_no_stored_file_raw(tmp_path_factory, key, make_delivery, texts) -> None:
    """Numbers, e-mails and IPs embedded in every free-text field of a delivery (rows'
    source, consent_proof, acquired_from and purpose words; the manifest's recipient
    and claims) are found nowhere in the home afterwards; their tokens are."""
    home = Home(tmp_path_factory.mktemp("home") / "home").ensure()
    source, proof, acquired, purpose, recipient, claimed = texts
    rows = [
        {"phone": "0612345678", "source": source[0], "consent_proof": proof[0], "acquired_from": acquired[0],
         "consent_purposes": "sondages|" + purpose[0], "consent_at": "2024-01-02"},
        {"phone": "0612345679", "source": "jeu-concours-ete-2023", "consent_proof": "", "acquired_from": "",
         "consent_purposes": "sondages", "consent_at": "12/03/2024"},
    ]
    path = make_delivery({"contacts.csv": csv_delivery(rows)}, recipient=recipient[0],
                         claims={"row_count": 2, "sources": [claimed[0], "jeu-concours-ete-2023"]})
    report = ingest(path, home, key)
    assert report.rows_accepted == 2
    stored = stored_text(home)
    items = [it for _, its in texts for it in its]
    assert find_raw(stored, raw_forms_of(items)) == []
    # and the shared scanner (every grouping of every digit string, inside DuckDB,
    # Parquet and SQLite files) finds none of the numbers either
    assert_no_raw_number(Scanner([v for k, v, _ in items if k == "tel"]).scan_tree(home.root, exclude=["landing"]))
    # (a purpose word is quoted cut to 80 characters: its last token may be cut too)
    for kind, value, _ in [it for text in (source, proof, acquired, recipient, claimed) for it in text[1]]:
        assert token_of(kind, value, key) in stored
    found = {f["field"] for f in report.findings if f["code"] == "PERSONAL_DATA_IN_TEXT"}
    assert found == {"source", "consent_proof", "acquired_from", "consent_purposes", "recipient", "claims"}


def test_the_issues_examples_through_ingest(home, key, make_delivery) -> None:
    """Items 2 and 3 as reported: a purpose word and free text quoting numbers."""
    text = ("phone;source;consent_proof;acquired_from;consent_purposes\n"
            "0612345678;parrainage par 06 11 22 33 99;SMS de 0611223399;IP 82.64.1.10 / form v3;word=0633445566\n"
            "0612345679;jeu-concours-ete-2023;form v3;;sondages\n")
    report = ingest(make_delivery({"a.csv": text.encode()}, recipient="party-a 0611223399"), home, key)
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        stored = con.execute(
            "SELECT source, consent_proof, acquired_from FROM delivery_rows ORDER BY row").fetchall()
        details = [json.loads(d) for (d,) in con.execute("SELECT detail FROM findings").fetchall()]
        recipient = con.execute("SELECT recipient FROM deliveries").fetchone()[0]
    finally:
        con.close()
    t = tel_token("+33611223399", key)
    assert stored == [(f"parrainage par {t}", f"SMS de {t}", f"IP {ip_token('82.64.1.10', key)} / form v3"),
                      ("jeu-concours-ete-2023", "form v3", None)]
    assert recipient == f"party-a {t}"
    unknown = [f for f in report.findings if f["code"] == "UNKNOWN_PURPOSE"]
    assert unknown == [{"code": "UNKNOWN_PURPOSE", "word": f"word={tel_token('+33633445566', key)}", "rows": 1}]
    personal = {f["field"]: f for f in report.findings if f["code"] == "PERSONAL_DATA_IN_TEXT"}
    assert personal["source"] == {"code": "PERSONAL_DATA_IN_TEXT", "field": "source", "rows": 1, "kinds": ["tel"]}
    assert personal["acquired_from"]["kinds"] == ["ip"] and personal["consent_purposes"]["rows"] == 1
    assert personal["recipient"]["rows"] == 0
    assert details == report.findings
    for needle in ("0611223399", "0633445566", "82.64.1.10", "611223399"):
        assert needle not in json.dumps(details) and needle not in (Path(report.segment) / "report.json").read_text()


def test_a_profile_mapping_the_number_onto_a_free_text_field_stores_tokens(home, key, make_delivery) -> None:
    (home.profiles / "acme.yaml").write_text("columns:\n  consent_proof: [Portable 2]\n")
    text = "phone;Portable 2\n0612345678;06 33 44 55 66\n0612345679;+33 6 33 44 55 67\n"
    report = ingest(make_delivery({"a.csv": text.encode()}), home, key)
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        proofs = [p for (p,) in con.execute("SELECT consent_proof FROM delivery_rows ORDER BY row").fetchall()]
    finally:
        con.close()
    assert proofs == [tel_token("+33633445566", key), tel_token("+33633445567", key)]
    assert {"code": "PERSONAL_DATA_IN_TEXT", "field": "consent_proof", "rows": 2, "kinds": ["tel"]} in report.findings


# ---------------------------------------------------------------- purpose codes as written (item 15)


@pytest.mark.parametrize("code", taxonomy_codes())
def test_every_purpose_code_maps_to_itself(code: str) -> None:
    pmap = default_purposes()
    assert pmap.lookup(code) == code
    assert parse_purposes(code, pmap) == parse_purposes(f" {code.upper()} ", pmap)
    assert parse_purposes(code, pmap).codes == (code,)


def _variant(code: str, flips: list[bool], underscore: str, around_dot: str, accent: bool) -> str:
    text = "".join(c.upper() if f else c for c, f in zip(code, flips + [False] * len(code)))
    text = text.replace("_", underscore).replace(".", f"{around_dot}.{around_dot}")
    if accent:  # an accent a keyboard added on a vowel is folded away
        text = text.replace("e", "é", 1).replace("a", "à", 1)
    return text


@settings(max_examples=300, deadline=None)
@given(code=st.sampled_from(taxonomy_codes()), flips=st.lists(st.booleans(), max_size=30),
       underscore=st.sampled_from(["_", " ", "-", "  "]), around_dot=st.sampled_from(["", " "]), accent=st.booleans())
def test_purpose_codes_in_any_case_accent_or_spacing_map_to_themselves(code, flips, underscore, around_dot, accent) -> None:
    assert default_purposes().lookup(_variant(code, flips, underscore, around_dot, accent)) == code


def test_transfer_third_party_as_written_is_consent_not_an_unknown_word(home, key, make_delivery) -> None:
    text = "phone;consent_purposes;consent_at\n0612345678;transfer.third_party|political.electoral;2024-01-02\n"
    report = ingest(make_delivery({"a.csv": text.encode()}), home, key)
    assert not [f for f in report.findings if f["code"] == "UNKNOWN_PURPOSE"]
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT consent_purposes, flags FROM delivery_rows").fetchall() == [
            (["political.electoral", "transfer.third_party"], [])]
    finally:
        con.close()


@settings(max_examples=1500, deadline=None)
@given(text=free_text(), region=st.sampled_from(["FR", "SN", "MA", "US"]))
def test_random_free_text_keeps_no_raw_form(text, region) -> None:
    """The scrubber alone, over many more texts than the ingest test can afford (a
    French number's national writings count only in a French delivery)."""
    written_text, items = text
    assume(region == "FR" or not any(k == "tel" and v.startswith("+33") and not w.startswith(("+", "00", "33"))
                                     for k, v, w in items))
    result = scrub_text(written_text, KEY, region)
    checked = [it for it in items if not (it[0] == "tel" and region != "FR" and not it[2].startswith(("+", "00")))]
    assert find_raw(result.text, raw_forms_of(checked)) == []
    for kind, value, _ in checked:
        assert token_of(kind, value, KEY) in result.text


@pytest.mark.parametrize("distinct", [3, 700, 5000])
def test_a_long_column_is_scrubbed_like_each_of_its_values_whatever_its_repetition(distinct: int) -> None:
    """Both ways through scrub_column (prefilter over the column, or over its distinct
    values when they repeat) give what scrub_text gives value by value."""
    pool = [None, "jeu", "SMS de 0611223399", "a@b.fr", "2024-03-12"] + [f"ref {i} tel 06 12 {i % 100:02d} 34 56"
                                                                      for i in range(distinct)]
    values = [pool[(i * 7919) % min(len(pool), distinct)] for i in range(6000)]
    column, found, kinds = scrub_column(pa.array(values, pa.string()), lambda t: scrub_text(t, KEY, "FR"))
    assert column.to_pylist() == [None if v is None else scrub(v) for v in values]
    assert found.tolist() == [v is not None and bool(scrub_text(v, KEY, "FR").kinds) for v in values]
    assert kinds == {k for v in values if v is not None for k in scrub_text(v, KEY, "FR").kinds}


def test_a_hostile_run_of_digit_groups_costs_a_bounded_number_of_parses() -> None:
    """Thousands of single digits in one cell: after a fixed number of phone parses
    the rest of the run is withheld whole (never stored as written), and quickly."""
    import random
    import time

    rng = random.Random(17)
    text = " ".join(str(rng.randrange(10)) for _ in range(5000))
    freetext.phone_e164.cache_clear()
    start = time.process_time()
    result = scrub_text(text, KEY, "FR")
    assert time.process_time() - start < 2.0
    assert freetext.phone_e164.cache_info().misses <= freetext.MAX_PARSES
    assert result.text.endswith(freetext.WITHHELD) and result.kinds == {"tel"}
    assert not re.search(r"[0-9](?:[ ]?[0-9]){7}", re.sub(r"\[tel:[0-9a-f]+\]", "", result.text))
    assert scrub(result.text) == result.text


def test_header_cells_that_may_be_data_are_stored_by_position(home, key, make_delivery) -> None:
    """A JSON Lines file keyed by numbers beside its phone key: the report, the
    warehouse's file list and its format never hold those keys."""
    data = b'{"phone": "0612345678", "0633445566": "x", "jean@example.fr": "y", "source": "jeu"}\n'
    report = ingest(make_delivery({"a.jsonl": data}), home, key)
    f = report.files[0]
    assert f.columns == f.format["columns"] == ["phone", "column 2", "column 3", "source"]
    assert f.ignored_columns == ["column 2", "column 3"]
    text = stored_text(home)
    assert "0633445566" not in text and "jean@example.fr" not in text
