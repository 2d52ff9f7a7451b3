"""A JSON Lines row holding a lone surrogate escape (``"\\ud800"``) decodes to a string
no store can encode: it once crashed the ingest with a UnicodeEncodeError traceback
after the whole read. It is a malformed row (quarantined); a surrogate pair is text."""

from __future__ import annotations

import json

from origine.ingest import intake


def test_a_lone_surrogate_is_a_malformed_row_and_a_pair_is_text(home, key, make_delivery) -> None:
    lines = [
        '{"phone": "0612345678", "source": "ok \\ud83d\\ude00"}',  # a pair: U+1F600
        '{"phone": "0612345679", "source": "a\\ud800b"}',  # lone high surrogate
        '{"phone": "0612345670", "consent_proof": "x\\uDC00y"}',  # lone low surrogate, upper case
        '{"phone": "0612345671", "\\ud800": "key"}',  # in a key
    ]
    path = make_delivery({"c.jsonl": ("\n".join(lines) + "\n").encode()})
    report = intake.commit(intake.prepare(path, home, key), home, label="d")
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (4, 1, 3)
    assert report.quarantine_reasons == {"MALFORMED_ROW": 3}
    assert json.dumps(report.to_dict())  # the report itself stays encodable
