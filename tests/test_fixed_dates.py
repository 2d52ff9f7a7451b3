"""The fixed-position date shapes (origine.dates._SHAPES, read from the bytes with
numpy) give what the reference gives, value for value, and so does everything near
them that they must leave to the regular expressions or the reference."""

from __future__ import annotations

from datetime import timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine.dates import parse_instants
from tests.row_reference import instants_one_by_one

TEMPLATES = ["dd/mm/yyyy", "dd/mm/yyyy HH:MM", "dd/mm/yyyy HH:MM:SS", "yyyy-mm-dd", "yyyy-mm-ddTHH:MM",
             "yyyy-mm-ddTHH:MM:SS", "yyyy-mm-dd HH:MM:SS"]
# At each position: mostly what the shape wants, sometimes any of the near misses.
NEAR = "0123456789/.-: Th+Z\u0661x"


@st.composite
def near_shape(draw) -> str:
    template = draw(st.sampled_from(TEMPLATES))
    # A real date and time written in the template (near misses of a real date are
    # what a wrong shape would read as a date), or digits at random.
    fields = {"d": draw(st.integers(1, 31)), "m": draw(st.integers(1, 12)), "y": draw(st.integers(1, 9999)),
              "H": draw(st.integers(0, 23)), "M": draw(st.integers(0, 59)), "S": draw(st.integers(0, 59))}
    text = template
    for c, width in (("d", 2), ("m", 2), ("y", 4), ("H", 2), ("M", 2), ("S", 2)):
        text = text.replace(c * width, f"{fields[c]:0{width}d}")
    out = list(text) if draw(st.booleans()) else [
        str(draw(st.integers(0, 9))) if c in "dmyHMS" else c for c in template]
    # Zero, one or two positions changed to a near miss (a digit where a separator
    # goes, a separator of the other shape, an Arabic-Indic digit, ...).
    for at in draw(st.lists(st.integers(0, len(template) - 1), max_size=2)):
        out[at] = draw(st.sampled_from(NEAR))
    pad = draw(st.sampled_from(["", " ", "\u00a0", "\t"]))
    return pad + "".join(out) + draw(st.sampled_from(["", "", " "]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.none(), near_shape(), st.just("")), min_size=1, max_size=30),
       zone=st.sampled_from(["UTC", "Europe/Paris", "America/Sao_Paulo", "Australia/Lord_Howe"]),
       layout=st.sampled_from(["plain", "sliced", "large"]))
def test_fixed_shapes_and_their_near_misses_match_the_reference(values, zone, layout) -> None:
    tz = timezone.utc if zone == "UTC" else ZoneInfo(zone)
    if layout == "sliced":  # an array that starts inside its buffers
        column = pa.array(["31/12/1999 23:59", *values, "x"], pa.string()).slice(1, len(values))
    else:
        column = pa.array(values, pa.large_string() if layout == "large" else pa.string())
    stamps, bad = parse_instants(column, tz)
    assert (stamps.to_pylist(), bad.tolist()) == instants_one_by_one(values, tz)


def test_a_column_of_one_shape_back_to_back_and_interleaved() -> None:
    """All values of one length (read as one view of the bytes) and mixed lengths
    (read position by position) give the same instants."""
    tz = ZoneInfo("Europe/Paris")
    same = [f"{d:02d}/{m:02d}/20{y:02d} {h:02d}:{mi:02d}" for d, m, y, h, mi in
            [(1, 1, 24, 0, 0), (31, 3, 24, 2, 30), (27, 10, 24, 2, 30), (29, 2, 23, 12, 0), (31, 12, 99, 23, 59)]]
    mixed = [v for pair in zip(same, ["2024-06-05", "5/6/2024", "", "2024-06-05T09:00:00+02:00", None]) for v in pair]
    for values in (same, mixed):
        stamps, bad = parse_instants(pa.array(values, pa.string()), tz)
        assert (stamps.to_pylist(), bad.tolist()) == instants_one_by_one(values, tz)


def test_every_one_character_change_of_a_shape_is_read_as_the_reference_reads_it() -> None:
    """Each template written with real dates, then every position replaced by every
    near-miss character (and deleted, and doubled): one column, compared value by value."""
    base = []
    for template in TEMPLATES:
        for d, m, y, hh, mi, ss in [(5, 6, 2024, 9, 0, 0), (31, 12, 1999, 23, 59, 59), (31, 3, 2024, 2, 30, 0)]:
            text = template
            for c, width, value in (("dd", 2, d), ("mm", 2, m), ("yyyy", 4, y), ("HH", 2, hh), ("MM", 2, mi),
                                    ("SS", 2, ss)):
                text = text.replace(c, f"{value:0{width}d}")
            base.append(text)
    values = list(base)
    for text in base:
        for at in range(len(text)):
            values += [text[:at] + c + text[at + 1:] for c in NEAR]
            values += [text[:at] + text[at + 1:], text[:at] + text[at] + text[at:]]
    for zone in (timezone.utc, ZoneInfo("Europe/Paris")):
        stamps, bad = parse_instants(pa.array(values, pa.string()), zone)
        assert (stamps.to_pylist(), bad.tolist()) == instants_one_by_one(values, zone)


def test_every_day_of_leap_and_century_years_including_impossible_ones() -> None:
    """The calendar arithmetic (days from the civil date, month lengths, leap years)
    against Python's, over years where it differs: 1, 4, 100, 400, 1900, 2000, 2024, 9999."""
    values = [f"{y:04d}-{m:02d}-{d:02d}T12:34:56" for y in (1, 4, 100, 400, 1900, 1970, 2000, 2023, 2024, 9999)
              for m in range(0, 14) for d in range(0, 33)]
    values += [f"{d:02d}/{m:02d}/{y:04d}" for y in (1600, 1700, 2100) for m in (2, 3) for d in (28, 29, 30)]
    stamps, bad = parse_instants(pa.array(values, pa.string()), timezone.utc)
    assert (stamps.to_pylist(), bad.tolist()) == instants_one_by_one(values, timezone.utc)
