"""A delivery's ``vendor`` and ``delivery_id`` never hold a phone number.

They name the delivery in the ledger's leaves, Dagster's partitions and run keys, the
warehouse and every export, and must match the vendor's own records, so they are not
stored scrubbed like a file name: a manifest whose identifier reads as a number is
refused (exit 2), and the refusal does not echo it.
"""

from __future__ import annotations

import re

import pytest
import phonenumbers
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from origine.errors import BadInput
from origine.manifest import parse_manifest
from tests.privacy import Scanner, assert_no_raw_number, written_forms
from tests.processes import run_cli

IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _manifest(delivery_id: str = "D-1", vendor: str = "acme") -> bytes:
    return (f"delivery_id: '{delivery_id}'\nvendor: '{vendor}'\ncountry: FR\n"
            "delivered_at: 2024-06-01T10:00:00+02:00\nfiles:\n  - path: a.csv\n    sha256: '"
            + "0" * 64 + "'\n").encode()


@pytest.mark.parametrize("ident", ["D-1", "SC-2024-06-05-001", "INV-20240605-0001", "EU24-SMS-01",
                                   "2024-06-07", "BENCH-1", "12345678", "0000012345", "0000000123",
                                   "batch-000000042", "INV-0012345678", "20240607"])
def test_ordinary_identifiers_pass(ident: str) -> None:
    m = parse_manifest(_manifest(delivery_id=ident, vendor="v" + ident), label="manifest.yaml")
    assert m.delivery_id == ident


@settings(max_examples=60, deadline=None)
@given(
    subscriber=st.integers(min_value=10_000_000, max_value=99_999_999),
    mobile=st.sampled_from("67"),
    prefix=st.sampled_from(["", "D-", "lot_", "x."]),
    suffix=st.sampled_from(["", "-a", "_v2"]),
    field=st.sampled_from(["delivery_id", "vendor"]),
    data=st.data(),
)
def test_an_identifier_holding_a_valid_number_is_refused(subscriber, mobile, prefix, suffix, field, data) -> None:
    e164 = f"+33{mobile}{subscriber}"
    assume(phonenumbers.is_valid_number(phonenumbers.parse(e164)))  # 07 10… is not allocated
    forms = [f for f in written_forms(e164) if IDENT.match(prefix + f + suffix)]
    form = prefix + data.draw(st.sampled_from(forms)) + suffix
    doc = _manifest(**{field: form})
    with pytest.raises(BadInput) as caught:
        parse_manifest(doc, label="manifest.yaml")
    assert caught.value.column == field
    assert_no_raw_number(Scanner([e164]).scan_text(str(caught.value), "error"))


def test_the_cli_refuses_it_with_exit_2_and_no_echo(home, key, make_delivery) -> None:
    path = make_delivery({"a.csv": b"phone\n0612345678\n"}, delivery_id="0698765432")
    result = run_cli(home, "ingest", str(path))
    assert result.returncode == 2, result.stderr
    assert "delivery_id" in result.stderr and "Traceback" not in result.stderr
    hits = Scanner(["+33698765432"]).scan_text(result.stdout + result.stderr, "ingest output")
    hits += Scanner(["+33698765432"]).scan_tree(home.root, exclude=["landing"])
    assert_no_raw_number(hits)
