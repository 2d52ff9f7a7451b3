"""Phone numbers at broker scale: :func:`phones.normalize` over a whole batch.

:func:`normalize_batch` gives, row by row and field by field, what
:func:`origine.phones.normalize` gives for the same value. It is not a second
definition: it replays ``clean_text`` and ``phonenumbers.parse`` /
``is_valid_number`` / ``number_type`` step for step on whole columns, and every
value it cannot follow with certainty goes through ``phones.normalize`` itself.

How the work is split:

* Byte scan (numpy over the Arrow buffers): one table lookup and one
  ``reduceat`` classify every value (digits, ``+``, separators, anything else)
  and pull out its digit string.
* Spreadsheet clean-up (pyarrow.compute) for values that need it: trim,
  ``="..."``, leading apostrophe, ``612345678.0``, scientific notation (exact
  expansion or PHONE_PRECISION_LOST). NBSP is treated as the space it is to
  both ``clean_text`` and ``parse``; other non-ASCII text, control characters
  and values over 250 characters get their clean-up from ``clean_text``.
* Parse (numpy on digit strings, RE2 for metadata patterns): international
  prefix, country code, default-country-code stripping, national prefix,
  possible lengths; exactly the branches of ``phonenumbers.parse``.
* Validation (RE2 via pyarrow.compute): the ``_number_type_helper`` cascade
  per country code, including regions sharing a code (leading digits first).

Rules come from the installed ``phonenumbers`` metadata at run time, lazily per
region and cached, so they cannot drift from the reference. Nothing is copied
by hand; patterns RE2 cannot compile send their region to the fallback.

What the fast path leaves to the reference (counted by :class:`BatchStats`):
letters (``parse`` turns three or more into keypad digits), extensions, ``;``,
``#``, ``tel:``, ``*``, several ``+`` or a ``+`` after the first character,
non-ASCII digits or separators other than NBSP, two digits with a ``+``, a
``+`` followed by no known country code (``parse`` retries without it),
national-prefix transform rules that fire (AR, BR, JP, NANPA islands...), and
default regions outside ``phonenumbers.SUPPORTED_REGIONS``. Text that cannot
hold two digits is decided without it: ``parse`` needs two ``\\d`` to start.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneNumberType, ValidationResult
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.phonemetadata import PhoneMetadata

from origine import phones

try:  # the regex parser Python's own ``re`` uses; only for length bounds
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = ["BatchStats", "SCHEMA", "country_rule", "normalize_batch", "rules_for_region"]

# Limits of phonenumbers.parse, read from the library so they follow it.
_MIN_NSN: int = _pnu._MIN_LENGTH_FOR_NSN
_MAX_NSN: int = _pnu._MAX_LENGTH_FOR_NSN
_MAX_INPUT: int = _pnu._MAX_INPUT_STRING_LENGTH
_MAX_CC_LEN: int = _pnu._MAX_LENGTH_COUNTRY_CODE

SCHEMA = pa.schema(
    [
        ("e164", pa.string()),
        ("valid", pa.bool_()),
        ("country_code", pa.int32()),
        ("line_type", pa.string()),
        ("reason", pa.string()),
    ]
)

# Rows per unit of work: small enough for the byte scan's temporaries to stay
# in cache-sized pieces, large enough that per-call overhead is negligible.
CHUNK_ROWS = 1 << 17

# Row status while a chunk is processed.
_PENDING, _MISSING, _UNPARSEABLE, _PRECISION_LOST, _FALLBACK, _PARSED = range(6)
_REASON_NAMES = [phones.PHONE_MISSING, phones.PHONE_UNPARSEABLE, phones.PHONE_PRECISION_LOST, phones.PHONE_INVALID]
_REASON_CODE = {name: i for i, name in enumerate(_REASON_NAMES)}
_STATUS_REASON = {_MISSING: 0, _UNPARSEABLE: 1, _PRECISION_LOST: 2}

# Line types as small codes (index into _TYPE_NAMES); -1 is UNKNOWN (invalid).
_TYPE_ORDER = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]
_TYPE_NAMES = [phones.LINE_TYPES[t] for t in _TYPE_ORDER]
_TYPE_CODE = {t: i for i, t in enumerate(_TYPE_ORDER)}
_NAME_CODE = {name: i for i, name in enumerate(_TYPE_NAMES)}
# The order _number_type_helper tests the special types in, before fixed/mobile.
_SPECIALS = [
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
]


@dataclass
class BatchStats:
    """Counters filled by :func:`normalize_batch` when one is passed in.

    ``fallback`` rows went through ``phones.normalize`` one by one;
    ``python_clean`` rows had only their spreadsheet clean-up done by
    ``phones.clean_text`` (then parsed by the fast path).
    """

    rows: int = 0
    fast: int = 0
    fallback: int = 0
    python_clean: int = 0
    fallback_examples: list[Any] = field(default_factory=list)

    def add(self, other: "BatchStats") -> None:
        """Accumulate another chunk's counters into this one."""
        self.rows += other.rows
        self.fast += other.fast
        self.fallback += other.fallback
        self.python_clean += other.python_clean
        room = 20 - len(self.fallback_examples)
        if room > 0:
            self.fallback_examples.extend(other.fallback_examples[:room])


# --------------------------------------------------------------------------
# Rules, derived from phonenumbers' metadata
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescRule:
    """One PhoneNumberDesc: RE2 full-match pattern, possible lengths, width.

    ``full`` is None when the desc can never match (absent, or no pattern).
    ``lengths`` is the possible-length gate of ``_is_number_matching_desc``
    (None: no gate). ``lo``/``hi`` bound the length of any string the pattern
    matches (from Python's own regex parser), so most non-matches need no regex.
    """

    full: str | None
    lengths: frozenset[int] | None
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class MetaRule:
    """What the fast path needs of one PhoneMetadata (a region or a non-geo code)."""

    name: str
    country_code: int
    general: DescRule
    specials: tuple[tuple[int, DescRule], ...]
    specials_union: DescRule | None
    fixed: DescRule
    mobile: DescRule
    same_fixed_mobile: bool
    idd_literal: str | None
    idd_prefix: str | None
    npp_literal: str | None
    npp_prefix: str | None
    npp_transform: bool
    length_check: tuple[int, ...]
    leading_digits: str | None


@dataclass(frozen=True, slots=True)
class CountryRule:
    """A country calling code: the metadata parse uses, and the regions to validate in."""

    country_code: int
    main: MetaRule
    regions: tuple[MetaRule, ...]


@dataclass(frozen=True, slots=True)
class RegionRules:
    """Everything a batch with this default region needs before it sees a number."""

    region: str
    meta: MetaRule
    valid_cc: np.ndarray  # bool[1000]: country codes phonenumbers knows


class _Unsupported(Exception):
    """A metadata pattern the vectorized engine cannot reproduce exactly."""


_LITERAL = re.compile(r"\d+")
_MAX_LEN_TABLE = 256


# Built from buffers: pa.array() would import pandas (0.7 s) on first use.
_PROBE = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(np.zeros(2, np.int32)), pa.py_buffer(b"")])


def _re2_ok(pattern: str) -> bool:
    try:
        pc.match_substring_regex(_PROBE, pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _width(pattern: str) -> tuple[int, int]:
    try:
        lo, hi = _sre_parse.parse(pattern).getwidth()
    except Exception:  # pragma: no cover - the bound is only an optimisation
        return 0, 1 << 30
    return int(lo), int(min(hi, 1 << 30))


def _desc(desc: Any) -> DescRule:
    if desc is None or not desc.national_number_pattern:
        return DescRule(None, None, 1, 0)
    pattern = desc.national_number_pattern
    full = f"^(?:{pattern})$"
    if not _re2_ok(full):
        raise _Unsupported(pattern)
    lengths = frozenset(desc.possible_length) if desc.possible_length else None
    lo, hi = _width(pattern)
    return DescRule(full, lengths, lo, hi)


def _prefix_rule(pattern: str | None) -> tuple[str | None, str | None]:
    """(literal, RE2 prefix pattern) for a pattern used with ``re.match``."""
    if not pattern:
        return None, None
    if _LITERAL.fullmatch(pattern):
        return pattern, None
    prefix = f"^(?:{pattern})"
    if not _re2_ok(prefix):
        raise _Unsupported(pattern)
    return None, prefix


def _meta_rule(md: Any, name: str) -> MetaRule | None:
    try:
        general = _desc(md.general_desc)
        if md.general_desc is None or not md.general_desc.possible_length:
            # _test_number_length would fail inside phonenumbers itself.
            raise _Unsupported("general desc")
        specials = []
        for attr, ptype in _SPECIALS:
            rule = _desc(getattr(md, attr))
            if rule.full is not None:
                specials.append((_TYPE_CODE[ptype], rule))
        union = None
        if specials:
            # A row matching none of the special patterns (most rows) skips the
            # cascade; the union has no length gate so it can only say "maybe".
            pats = [getattr(md, a).national_number_pattern for a, _ in _SPECIALS if _desc(getattr(md, a)).full]
            full = "^(?:" + "|".join(f"(?:{p})" for p in pats) + ")$"
            if not _re2_ok(full):
                raise _Unsupported("union")
            union = DescRule(full, None, min(r.lo for _, r in specials), max(r.hi for _, r in specials))
        idd_lit, idd_re = _prefix_rule(md.international_prefix)
        npp_lit, npp_re = _prefix_rule(md.national_prefix_for_parsing)
        ld_lit, ld_re = _prefix_rule(md.leading_digits)
        leading = ld_re if ld_re is not None else (f"^(?:{ld_lit})" if ld_lit else None)
        # phonenumbers' own length test, tabulated by length.
        lengths = tuple(int(_pnu._test_number_length("0" * k, md)) for k in range(_MAX_LEN_TABLE))
        return MetaRule(
            name=name,
            country_code=int(md.country_code),
            general=general,
            specials=tuple(specials),
            specials_union=union,
            fixed=_desc(md.fixed_line),
            mobile=_desc(md.mobile),
            same_fixed_mobile=bool(md.same_mobile_and_fixed_line_pattern),
            idd_literal=idd_lit,
            idd_prefix=idd_re,
            npp_literal=npp_lit,
            npp_prefix=npp_re,
            npp_transform=bool(md.national_prefix_transform_rule),
            length_check=lengths,
            leading_digits=leading,
        )
    except _Unsupported:
        return None


@lru_cache(maxsize=None)
def _region_meta(region: str) -> MetaRule | None:
    md = PhoneMetadata.metadata_for_region(region, None)
    return None if md is None else _meta_rule(md, region)


@lru_cache(maxsize=None)
def _nongeo_meta(cc: int) -> MetaRule | None:
    md = PhoneMetadata.metadata_for_nongeo_region(cc, None)
    return None if md is None else _meta_rule(md, f"001/{cc}")


@lru_cache(maxsize=None)
def country_rule(cc: int) -> CountryRule | None:
    """Rules for one country calling code, None if any part is unsupported."""
    regions = _pnu.COUNTRY_CODE_TO_REGION_CODE.get(cc)
    if not regions:
        return None
    main_region = phonenumbers.region_code_for_country_code(cc)
    main = _nongeo_meta(cc) if main_region == _pnu.REGION_CODE_FOR_NON_GEO_ENTITY else _region_meta(main_region)
    metas = []
    for r in regions:
        m = _nongeo_meta(cc) if r == _pnu.REGION_CODE_FOR_NON_GEO_ENTITY else _region_meta(r)
        if m is None or m.country_code != cc:
            return None
        metas.append(m)
    if main is None:
        return None
    return CountryRule(cc, main, tuple(metas))


@lru_cache(maxsize=None)
def rules_for_region(region: str) -> RegionRules | None:
    """Rules for a default region, or None when every value must use the reference.

    Only regions in ``phonenumbers.SUPPORTED_REGIONS`` get a fast path:
    ``parse`` treats anything else (lower case, "ZZ", "001") specially.
    """
    if not isinstance(region, str) or region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    meta = _region_meta(region)
    if meta is None:
        return None
    valid_cc = np.zeros(1000, dtype=bool)
    for cc in _pnu.COUNTRY_CODE_TO_REGION_CODE:
        if 0 < cc < 1000:
            valid_cc[cc] = True
    return RegionRules(region, meta, valid_cc)


# --------------------------------------------------------------------------
# Byte scan
# --------------------------------------------------------------------------

# Per byte: digit count in the low 32 bits (exact for any length), then 8-bit
# counters for '.', '+', "bad" bytes and non-printable bytes. The 8-bit fields
# only matter for values of at most _MAX_INPUT bytes, which cannot overflow.
_F_DOT, _F_PLUS, _F_BAD, _F_NONPRINT = 32, 40, 48, 56
_LUT = np.zeros(256, dtype=np.uint64)
for _b in range(256):
    _c = chr(_b)
    if "0" <= _c <= "9":
        _LUT[_b] = 1
    elif _c == ".":
        _LUT[_b] = 1 << _F_DOT
    elif _c == "+":
        _LUT[_b] = 1 << _F_PLUS
    elif _c in " -()/":
        # Separators phonenumbers treats as punctuation everywhere it looks
        # (viability, extraction, trailing clean-up) and that start no extension.
        _LUT[_b] = 0
    elif 0x20 < _b < 0x7F:
        _LUT[_b] = 1 << _F_BAD
    else:
        _LUT[_b] = (1 << _F_BAD) | (1 << _F_NONPRINT)
del _b, _c
_BYTE_MASK = np.uint64(0xFF)


@dataclass
class _Scan:
    """Byte classes of an Arrow string array and its digit strings."""

    lens: np.ndarray
    digits: np.ndarray
    dots: np.ndarray
    plus: np.ndarray
    bad: np.ndarray
    nonprint: np.ndarray
    first: np.ndarray
    dbuf: np.ndarray
    doff: np.ndarray  # int64[n+1], relative to dbuf


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(data bytes, offsets[n+1]) of a string/large_string array, zero-copy."""
    n = len(arr)
    bufs = arr.buffers()
    odt = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=odt)[arr.offset : arr.offset + n + 1] if n else np.zeros(1, odt)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return data, offs.astype(np.int64, copy=False)


def _scan(arr: pa.Array) -> _Scan:
    data, offs = _buffers(arr)
    n = len(arr)
    base = int(offs[0]) if n else 0
    seg = data[base : int(offs[-1])] if n else data[:0]
    starts = offs[:-1] - base
    lens = np.diff(offs)
    nonempty = lens > 0
    sums = np.zeros(n, dtype=np.uint64)
    first = np.zeros(n, dtype=np.uint8)
    if seg.size:
        idx = starts[nonempty]
        sums[nonempty] = np.add.reduceat(_LUT[seg], idx)
        first[nonempty] = seg[idx]
    digits = (sums & np.uint64(0xFFFFFFFF)).astype(np.int64)
    dmask = (seg - np.uint8(48)) < np.uint8(10)
    doff = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(digits, out=doff[1:])
    return _Scan(
        lens=lens,
        digits=digits,
        dots=((sums >> np.uint64(_F_DOT)) & _BYTE_MASK).astype(np.int64),
        plus=((sums >> np.uint64(_F_PLUS)) & _BYTE_MASK).astype(np.int64),
        bad=((sums >> np.uint64(_F_BAD)) & _BYTE_MASK).astype(np.int64),
        nonprint=((sums >> np.uint64(_F_NONPRINT)) & _BYTE_MASK).astype(np.int64),
        first=first,
        dbuf=seg[dmask],
        doff=doff,
    )


def _shape_ok(s: _Scan) -> np.ndarray:
    """Cleaned text the fast parse can follow exactly (see module docstring).

    Digits, spaces and ``.-()/`` only, at most one ``+`` and only as the first
    character, at least three digits (``parse`` treats two-digit strings
    specially), and no longer than parse's input limit.
    """
    return (
        (s.lens <= _MAX_INPUT)
        & (s.bad == 0)
        & ((s.plus == 0) | ((s.plus == 1) & (s.first == ord("+"))))
        & (s.digits >= 3)
    )


def _too_few_digits(s: _Scan) -> np.ndarray:
    """Cleaned text ``parse`` rejects whatever else it holds.

    Viability needs two ``\\d`` (Unicode digits); in ASCII text those are
    ASCII digits, and neither extraction nor RFC 3966 handling adds any.
    """
    return (s.lens <= _MAX_INPUT) & (s.nonprint == 0) & (s.digits < 2)


_ADJACENT_DIGITS = re.compile(r"[0-9]{2}")


def _two_digits(s: _Scan, texts: pa.Array, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cleaned ASCII texts with exactly two digits and no '+': (parse them, unparseable).

    ``parse`` accepts two digits only as the whole extracted string
    (``\\d{2}``): extraction runs from the first digit to the last
    alphanumeric, so with only separators around, the digits must be adjacent.
    Rare (garbage), so the adjacency test is plain Python on those rows.
    """
    cand = np.flatnonzero(
        rows & (s.digits == 2) & (s.plus == 0) & (s.bad == 0) & (s.nonprint == 0) & (s.lens <= _MAX_INPUT)
    )
    ok = np.zeros(len(rows), dtype=bool)
    no = np.zeros(len(rows), dtype=bool)
    if len(cand):
        adjacent = np.array([bool(_ADJACENT_DIGITS.search(t)) for t in texts.take(pa.array(cand)).to_pylist()])
        ok[cand[adjacent]] = True
        no[cand[~adjacent]] = True
    return ok, no


def _string_array(data: np.ndarray, offs: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    n = len(offs) - 1
    mask_buf = None
    null_count = 0
    if valid is not None:
        null_count = int(n - np.count_nonzero(valid))
        if null_count:
            mask_buf = pa.py_buffer(np.packbits(valid, bitorder="little"))
    if offs[-1] < (1 << 31) - 1:
        obuf = pa.py_buffer(offs.astype(np.int32))
        typ = pa.string()
    else:  # pragma: no cover - chunks are far smaller
        obuf = pa.py_buffer(offs.astype(np.int64))
        typ = pa.large_string()
    return pa.Array.from_buffers(typ, n, [mask_buf, obuf, pa.py_buffer(np.ascontiguousarray(data))], null_count)


def _gather_index(src_start: np.ndarray, lens: np.ndarray, offs: np.ndarray) -> np.ndarray:
    """Source index of every byte of the concatenation of segments."""
    shift = np.repeat(src_start - offs[:-1], lens)
    shift += _arange(int(offs[-1]))
    return shift


_ARANGE_CACHE = np.arange(1 << 20, dtype=np.int64)
_ARANGE_CACHE.flags.writeable = False


def _arange(n: int) -> np.ndarray:
    """np.arange(n) as a read-only view of a shared array (no allocation)."""
    global _ARANGE_CACHE
    cache = _ARANGE_CACHE
    if n > len(cache):
        cache = np.arange(max(n, 2 * len(cache)), dtype=np.int64)
        cache.flags.writeable = False
        _ARANGE_CACHE = cache
    return cache[:n]


def _gather_segments(buf: np.ndarray, src_start: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate buf[src_start[i] : src_start[i] + lens[i]]; returns (data, offsets)."""
    offs = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    if int(offs[-1]) == 0:
        return np.zeros(0, np.uint8), offs
    return buf[_gather_index(src_start, lens, offs)], offs


class _Digits:
    """The digit strings of one chunk, addressed by (row, start offset)."""

    def __init__(self, buf: np.ndarray, off: np.ndarray) -> None:
        self.buf = buf
        self.start = off[:-1]
        self.len = np.diff(off)

    def at(self, rows: np.ndarray, pos: np.ndarray | int) -> np.ndarray:
        """Digit value at ``pos`` of each row, -1 past the end."""
        pos = np.broadcast_to(np.asarray(pos, dtype=np.int64), rows.shape)
        ok = pos < self.len[rows]
        idx = np.where(ok, self.start[rows] + pos, 0)
        out = np.full(rows.shape, -1, dtype=np.int16)
        if self.buf.size:
            out[ok] = self.buf[idx[ok]].astype(np.int16) - 48
        return out

    def suffix(self, rows: np.ndarray, start: np.ndarray) -> pa.Array:
        """Arrow strings of row[start:] for each row."""
        lens = self.len[rows] - start
        data, offs = _gather_segments(self.buf, self.start[rows] + start, lens)
        return _string_array(data, offs)

    def startswith(self, rows: np.ndarray, start: np.ndarray, literal: str) -> np.ndarray:
        """Whether row[start:] starts with the digit string ``literal``."""
        ok = (self.len[rows] - start) >= len(literal)
        for j, ch in enumerate(literal):
            ok &= self.at(rows, start + j) == (ord(ch) - 48)
        return ok


# --------------------------------------------------------------------------
# Regex helpers (RE2 through pyarrow.compute)
# --------------------------------------------------------------------------


def _bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _regex(strings: pa.Array, pattern: str, which: np.ndarray | None = None) -> np.ndarray:
    """RE2 ``match_substring_regex`` on all strings, or only on rows ``which``."""
    n = len(strings)
    if which is None:
        return _bool(pc.match_substring_regex(strings, pattern)) if n else np.zeros(0, bool)
    idx = np.flatnonzero(which)
    out = np.zeros(n, dtype=bool)
    if len(idx) == 0:
        return out
    if len(idx) * 2 >= n:
        # Cheaper to run over everything than to copy most rows out first.
        return _bool(pc.match_substring_regex(strings, pattern)) & which
    out[idx] = _bool(pc.match_substring_regex(strings.take(pa.array(idx)), pattern))
    return out


def _match_desc(
    strings: pa.Array | Callable[[np.ndarray], pa.Array],
    lens: np.ndarray,
    desc: DescRule,
    gate: bool,
    which: np.ndarray | None = None,
) -> np.ndarray:
    """``_is_number_matching_desc`` (gate=True) or ``_match_national_number`` (gate=False).

    ``strings`` may be a function building the strings of the given rows, so
    that rows the length bounds already decide are never materialized.
    """
    if desc.full is None:
        return np.zeros(len(lens), dtype=bool)
    ok = (lens >= desc.lo) & (lens <= desc.hi)
    if gate and desc.lengths is not None:
        ok &= np.isin(lens, np.fromiter(desc.lengths, dtype=np.int64))
    if which is not None:
        ok &= which
    if callable(strings):
        out = np.zeros(len(lens), dtype=bool)
        idx = np.flatnonzero(ok)
        if len(idx):
            out[idx] = _bool(pc.match_substring_regex(strings(idx), desc.full))
        return out
    return _regex(strings, desc.full, ok)


def _prefix_len(strings: pa.Array, pattern: str) -> np.ndarray:
    """End of ``re.match(pattern, s)`` for each string, -1 when it does not match.

    RE2's leftmost-first choice among alternatives is Python's (backtracking)
    choice, so the end is the same. A '#' marks where the match was.
    """
    if len(strings) == 0:
        return np.zeros(0, dtype=np.int64)
    replaced = pc.replace_substring_regex(strings, pattern, "#", max_replacements=1)
    hit = _bool(pc.starts_with(replaced, "#"))
    before = pc.utf8_length(strings).to_numpy(zero_copy_only=False).astype(np.int64)
    after = pc.utf8_length(replaced).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(hit, before - (after - 1), -1)


# --------------------------------------------------------------------------
# Parse: phonenumbers.parse on digit strings
# --------------------------------------------------------------------------


class _Parse:
    """Per-row parse state of one chunk: status, country code, NSN start in D."""

    def __init__(self, n: int, status: np.ndarray) -> None:
        self.status = status
        self.cc = np.zeros(n, dtype=np.int32)
        self.start = np.zeros(n, dtype=np.int64)


def _country_code(D: _Digits, rows: np.ndarray, start: np.ndarray, valid_cc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_extract_country_code`` on row[start:]: (cc or 0, its length)."""
    d = [D.at(rows, start + j) for j in range(_MAX_CC_LEN)]
    cc = np.zeros(len(rows), dtype=np.int32)
    cclen = np.zeros(len(rows), dtype=np.int64)
    value = np.zeros(len(rows), dtype=np.int32)
    alive = d[0] > 0  # empty or leading '0': no country code
    for j in range(_MAX_CC_LEN):
        present = d[j] >= 0
        value = value * 10 + np.where(present, d[j], 0)
        hit = alive & present & (cc == 0) & valid_cc[np.clip(value, 0, 999)]
        cc[hit] = value[hit]
        cclen[hit] = j + 1
        alive &= present
    return cc, cclen


def _strip_national_prefix(
    D: _Digits, rows: np.ndarray, start: np.ndarray, meta: MetaRule
) -> tuple[np.ndarray, np.ndarray]:
    """``_maybe_strip_national_prefix_carrier_code``: (new start, needs fallback)."""
    new = start.copy()
    fallback = np.zeros(len(rows), dtype=bool)
    if meta.npp_literal is None and meta.npp_prefix is None:
        return new, fallback
    xlen = D.len[rows] - start
    cand = np.flatnonzero(xlen > 0)
    if len(cand) == 0:
        return new, fallback
    crow, cstart = rows[cand], start[cand]
    if meta.npp_literal is not None:
        hit = D.startswith(crow, cstart, meta.npp_literal)
        mend = np.where(hit, len(meta.npp_literal), -1)
        x = None
    else:
        x = D.suffix(crow, cstart)
        mend = _prefix_len(x, meta.npp_prefix)  # type: ignore[arg-type]
        hit = mend >= 0
    if not hit.any():
        return new, fallback
    if meta.npp_transform:
        # Whether the transform applies depends on which group took part in
        # the match; the reference decides those rows.
        fallback[cand[hit]] = True
        return new, fallback
    h = np.flatnonzero(hit)
    hrow, hstart, hend = crow[h], cstart[h], mend[h]
    hlen = D.len[hrow] - hstart
    viable = _match_desc(lambda i: D.suffix(hrow[i], hstart[i]), hlen, meta.general, gate=False)
    after = np.zeros(len(h), dtype=bool)
    v = np.flatnonzero(viable)
    if len(v):
        vrow, vstart = hrow[v], hstart[v] + hend[v]
        after[v] = _match_desc(lambda i: D.suffix(vrow[i], vstart[i]), hlen[v] - hend[v], meta.general, gate=False)
    keep = viable & ~after
    new[cand[h]] = hstart + np.where(keep, 0, hend)
    return new, fallback


def _parse(D: _Digits, plus: np.ndarray, st: _Parse, rules: RegionRules) -> None:
    """Replay ``phonenumbers.parse`` on rows whose status is _PENDING."""
    meta = rules.meta
    pending = np.flatnonzero(st.status == _PENDING)
    P = pending[plus[pending]]
    Q = pending[~plus[pending]]
    via_cc: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # rows, cc, start

    # '+' then a country code. Without a known code parse retries without the
    # '+' (and may still find one via the IDD); leave that to the reference.
    if len(P):
        cc, cclen = _country_code(D, P, np.zeros(len(P), np.int64), rules.valid_cc)
        st.status[P[cc == 0]] = _FALLBACK
        ok = cc > 0
        via_cc.append((P[ok], cc[ok], cclen[ok]))

    default_rows = Q
    if len(Q) and (meta.idd_literal or meta.idd_prefix):
        zero = np.zeros(len(Q), np.int64)
        if meta.idd_literal is not None:
            mend = np.where(D.startswith(Q, zero, meta.idd_literal), len(meta.idd_literal), -1)
        else:
            mend = _prefix_len(D.suffix(Q, zero), meta.idd_prefix)  # type: ignore[arg-type]
        # _parse_prefix_as_idd: not stripped when the next digit is a 0.
        nxt = D.at(Q, np.maximum(mend, 0))
        idd = (mend >= 0) & (nxt != 0)
        idd_rows, iend = Q[idd], mend[idd]
        default_rows = Q[~idd]
        if len(idd_rows):
            short = (D.len[idd_rows] - iend) <= _MIN_NSN  # TOO_SHORT_AFTER_IDD
            st.status[idd_rows[short]] = _UNPARSEABLE
            idd_rows, iend = idd_rows[~short], iend[~short]
            cc, cclen = _country_code(D, idd_rows, iend, rules.valid_cc)
            # INVALID_COUNTRY_CODE with no '+' to retry without: parse fails.
            st.status[idd_rows[cc == 0]] = _UNPARSEABLE
            ok = cc > 0
            via_cc.append((idd_rows[ok], cc[ok], iend[ok] + cclen[ok]))

    # No international prefix: maybe the default country code without '+'.
    dcc = meta.country_code
    dccs = str(dcc)
    R = default_rows
    national = R
    if len(R):
        has = D.startswith(R, np.zeros(len(R), np.int64), dccs)
        Rd = R[has]
        national = R[~has]
        if len(Rd):
            pot, fb = _strip_national_prefix(D, Rd, np.full(len(Rd), len(dccs), np.int64), meta)
            st.status[Rd[fb]] = _FALLBACK
            Rd, pot = Rd[~fb], pot[~fb]
            too_long = np.asarray(meta.length_check)[np.minimum(D.len[Rd], _MAX_LEN_TABLE - 1)] == ValidationResult.TOO_LONG
            cond = too_long.copy()
            rest = np.flatnonzero(~too_long)
            if len(rest):
                rr, rpot = Rd[rest], pot[rest]
                g_whole = _match_desc(lambda i: D.suffix(rr[i], np.zeros(len(i), np.int64)), D.len[rr], meta.general, gate=False)
                nw = np.flatnonzero(~g_whole)
                if len(nw):
                    wr, wp = rr[nw], rpot[nw]
                    cond[rest[nw]] = _match_desc(lambda i: D.suffix(wr[i], wp[i]), D.len[wr] - wp, meta.general, gate=False)
            via_cc.append((Rd[cond], np.full(int(cond.sum()), dcc, np.int32), pot[cond]))
            national = np.sort(np.concatenate([national, Rd[~cond]]))

    # Country code found: parse switches to the metadata of the code's main
    # region; TOO_SHORT_NSN is checked before the national prefix is stripped.
    groups: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for rows, cc, start in via_cc:
        if not len(rows):
            continue
        short = (D.len[rows] - start) < _MIN_NSN
        st.status[rows[short]] = _UNPARSEABLE
        rows, cc, start = rows[~short], cc[~short], start[~short]
        for code in np.unique(cc):
            sel = cc == code
            g = groups.setdefault(int(code), ([], []))
            g[0].append(rows[sel])
            g[1].append(start[sel])
    work: list[tuple[np.ndarray, np.ndarray, int, MetaRule | None]] = []
    for code, (rl, sl) in groups.items():
        crule = country_rule(code)
        work.append((np.concatenate(rl), np.concatenate(sl), code, crule.main if crule else None))
    if len(national):
        work.append((national, np.zeros(len(national), np.int64), dcc, meta))

    for rows, start, code, m in work:
        if m is None:
            st.status[rows] = _FALLBACK
            continue
        pot, fb = _strip_national_prefix(D, rows, start, m)
        st.status[rows[fb]] = _FALLBACK
        rows, start, pot = rows[~fb], start[~fb], pot[~fb]
        res = np.asarray(m.length_check)[np.minimum(D.len[rows] - pot, _MAX_LEN_TABLE - 1)]
        take = (res == ValidationResult.IS_POSSIBLE) | (res == ValidationResult.TOO_LONG)
        start = np.where(take, pot, start)
        nl = D.len[rows] - start
        bad = (nl < _MIN_NSN) | (nl > _MAX_NSN)
        st.status[rows[bad]] = _UNPARSEABLE
        good = rows[~bad]
        st.status[good] = _PARSED
        st.cc[good] = code
        st.start[good] = start[~bad]


# --------------------------------------------------------------------------
# Validation: is_valid_number / number_type
# --------------------------------------------------------------------------


def _number_type(meta: MetaRule, nsn: pa.Array, lens: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
    """``_number_type_helper`` for each string: a type code, -1 for UNKNOWN."""
    n = len(lens)
    out = np.full(n, -1, dtype=np.int8)
    todo = _match_desc(nsn, lens, meta.general, gate=True, which=which)
    if not todo.any():
        return out
    if meta.specials_union is not None:
        maybe = _match_desc(nsn, lens, meta.specials_union, gate=False, which=todo)
        for code, desc in meta.specials:
            if not maybe.any():
                break
            hit = _match_desc(nsn, lens, desc, gate=True, which=maybe)
            out[hit] = code
            maybe &= ~hit
            todo &= ~hit
    if not todo.any():
        return out
    fixed = _match_desc(nsn, lens, meta.fixed, gate=True, which=todo)
    if meta.same_fixed_mobile:
        out[fixed] = _TYPE_CODE[PhoneNumberType.FIXED_LINE_OR_MOBILE]
        return out
    mobile = _match_desc(nsn, lens, meta.mobile, gate=True, which=todo)
    out[fixed & mobile] = _TYPE_CODE[PhoneNumberType.FIXED_LINE_OR_MOBILE]
    out[fixed & ~mobile] = _TYPE_CODE[PhoneNumberType.FIXED_LINE]
    out[~fixed & mobile] = _TYPE_CODE[PhoneNumberType.MOBILE]
    return out


def _validate(crule: CountryRule, nsn: pa.Array, lens: np.ndarray) -> np.ndarray:
    """Type code of each NSN under ``is_valid_number`` + ``number_type``; -1 invalid."""
    if len(crule.regions) == 1:
        return _number_type(crule.regions[0], nsn, lens)
    # _region_code_for_number_from_list: first region whose leading digits
    # match, or (without leading digits) whose type is not UNKNOWN.
    n = len(lens)
    out = np.full(n, -1, dtype=np.int8)
    remaining = np.ones(n, dtype=bool)
    for meta in crule.regions:
        if not remaining.any():
            break
        if meta.leading_digits is not None:
            hit = _regex(nsn, meta.leading_digits, remaining)
            if hit.any():
                out[hit] = _number_type(meta, nsn, lens, which=hit)[hit]
        else:
            t = _number_type(meta, nsn, lens, which=remaining)
            hit = remaining & (t >= 0)
            out[hit] = t[hit]
        remaining &= ~hit
    return out


# --------------------------------------------------------------------------
# Input conversion and spreadsheet clean-up
# --------------------------------------------------------------------------

_RAW, _CLEAN = 0, 1  # text still to clean / text already through clean_text

_SCIENTIFIC_RE2 = r"^(?P<sign>[+-]?)(?P<whole>[0-9]+)(?:[.,](?P<frac>[0-9]*))?[eE]\+?(?P<exp>[0-9]{1,3})$"
_SCIENTIFIC_MATCH = r"^[+-]?[0-9]+(?:[.,][0-9]*)?[eE]\+?[0-9]{1,3}$"
_FLOAT_ZERO_RE2 = r"^\+?[0-9]+[.,]0+$"


@dataclass
class _Input:
    """A batch as strings plus what is already known without parsing."""

    texts: pa.Array  # string; null where status is preset
    kind: np.ndarray  # _RAW or _CLEAN per row
    status: np.ndarray  # _PENDING, or a preset _MISSING/_UNPARSEABLE/...
    raw: Any  # list or Arrow array: the values as given, for the fallback

    def value(self, i: int) -> Any:
        """Row i as ``phones.normalize`` receives it."""
        v = self.raw[i]
        return v.as_py() if isinstance(v, pa.Scalar) else v

    def values(self, rows: np.ndarray) -> list[Any]:
        """Rows as ``phones.normalize`` receives them, fetched in bulk."""
        if isinstance(self.raw, (pa.Array, pa.ChunkedArray)):
            return self.raw.take(pa.array(rows, pa.int64())).to_pylist()
        return [self.raw[int(i)] for i in rows]


def _from_python(values: Sequence[Any]) -> _Input:
    n = len(values)
    types = set(map(type, values))
    if types <= {str, type(None)}:
        try:
            texts = pa.array(values, pa.string())
        except (UnicodeEncodeError, pa.ArrowException):
            pass  # e.g. a lone surrogate: sorted out value by value below
        else:
            status = np.zeros(n, np.int8)
            if texts.null_count:
                status[_bool(texts.is_null())] = _MISSING
            return _Input(texts, np.zeros(n, np.int8), status, values)
    kind = np.zeros(n, np.int8)
    status = np.zeros(n, np.int8)
    texts: list[str | None] = [None] * n
    for i, v in enumerate(values):
        if type(v) is str:
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                status[i] = _FALLBACK  # Arrow cannot hold it; the reference can
            else:
                texts[i] = v
            continue
        # Everything else is cleaned exactly as the reference does it.
        text, reason = phones.clean_text(v)
        if text is None:
            status[i] = _MISSING if reason == phones.PHONE_MISSING else (
                _PRECISION_LOST if reason == phones.PHONE_PRECISION_LOST else _UNPARSEABLE
            )
        else:
            texts[i] = text
            kind[i] = _CLEAN
    return _Input(pa.array(texts, pa.string()), kind, status, values)


def _from_arrow(arr: pa.Array) -> _Input:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    n = len(arr)
    isnull = _bool(arr.is_null()) if arr.null_count else np.zeros(n, bool)
    status = np.where(isnull, _MISSING, _PENDING).astype(np.int8)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _Input(arr, np.zeros(n, np.int8), status, arr)
    if pa.types.is_string_view(t):
        return _Input(arr.cast(pa.string()), np.zeros(n, np.int8), status, arr)
    if pa.types.is_integer(t):
        # str(int) is what clean_text returns for an int.
        return _Input(arr.cast(pa.string()), np.full(n, _CLEAN, np.int8), status, arr)
    if pa.types.is_floating(t):
        x = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(x)
            integral = finite & (x == np.trunc(np.where(finite, x, 0)))
            small = integral & (np.abs(np.where(finite, x, 0)) < 2.0**63)
        status[~isnull & ~integral] = _UNPARSEABLE
        ints = pa.array(np.where(small, x, 0).astype(np.int64), mask=~small).cast(pa.string())
        out = _Input(ints, np.full(n, _CLEAN, np.int8), status, arr)
        big = np.flatnonzero(~isnull & integral & ~small)
        if len(big):
            texts = ints.to_pylist()
            for i in big:
                texts[i] = str(int(float(x[i])))
            out.texts = pa.array(texts, pa.string())
        return out
    if pa.types.is_boolean(t):
        status[~isnull] = _UNPARSEABLE
        return _Input(pa.nulls(n, pa.string()), np.zeros(n, np.int8), status, arr)
    # Decimals, binaries and the rest: the reference's own clean-up per value.
    inp = _from_python(arr.to_pylist())
    inp.raw = arr
    return inp


def _clean_ascii(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``clean_text`` for printable-ASCII strings, vectorized.

    Returns (cleaned text, status) with status _PENDING where the text is
    usable, else the reason clean_text gives. On printable ASCII ``str.strip``
    removes only spaces, ``.`` never meets a newline and ``\\d`` is [0-9], so
    these RE2 steps are the reference's regexes one for one.
    """
    t = pc.utf8_trim(texts, " ")
    excel = _bool(pc.match_substring_regex(t, r'^=".*"$'))
    if excel.any():
        inner = pc.utf8_trim(pc.utf8_slice_codeunits(t, 2, -1), " ")
        t = pc.if_else(pa.array(excel), inner, t)
    apos = _bool(pc.starts_with(t, "'"))
    if apos.any():
        t = pc.if_else(pa.array(apos), pc.utf8_trim(pc.utf8_slice_codeunits(t, 1), " "), t)
    status = np.zeros(len(t), dtype=np.int8)
    status[pc.utf8_length(t).to_numpy(zero_copy_only=False) == 0] = _MISSING
    # Matching is ~10x cheaper than extracting in RE2: match everything,
    # extract only where it matched.
    fz_hit = _bool(pc.match_substring_regex(t, _FLOAT_ZERO_RE2))
    if fz_hit.any():
        # "+612345678.00": trimming the zeros stops at the separator, which
        # is then the last character.
        t = pc.if_else(pa.array(fz_hit), pc.utf8_slice_codeunits(pc.utf8_rtrim(t, "0"), 0, -1), t)
    sci_hit = ~fz_hit & _bool(pc.match_substring_regex(t, _SCIENTIFIC_MATCH))
    if sci_hit.any():
        idx = np.flatnonzero(sci_hit)
        text, st = _expand_scientific(pc.extract_regex(t.take(pa.array(idx)), _SCIENTIFIC_RE2))
        status[idx] = st
        if (st == _PENDING).any():
            mask = np.zeros(len(t), dtype=bool)
            mask[idx[st == _PENDING]] = True
            t = pc.replace_with_mask(t, pa.array(mask), text.filter(pa.array(st == _PENDING)))
    return t, status


def _expand_scientific(groups: pa.StructArray) -> tuple[pa.Array, np.ndarray]:
    """``phones._expand_scientific`` on extracted (sign, whole, frac, exp) groups.

    With S = whole + frac, k = len(frac), E = exp: the value is integral iff
    frac[E:] is all zeros; the digits were all kept iff E <= k (or S is not all
    zeros); the integer is then (whole + frac[:E]) without leading zeros.
    """
    sign = groups.field("sign")
    whole = groups.field("whole")
    frac = groups.field("frac")
    exp = pc.cast(groups.field("exp"), pa.int64()).to_numpy(zero_copy_only=False)
    k = pc.utf8_length(frac).to_numpy(zero_copy_only=False).astype(np.int64)
    wl = pc.utf8_length(whole).to_numpy(zero_copy_only=False).astype(np.int64)
    s_all = pc.binary_join_element_wise(whole, frac, "")
    sig = pc.utf8_length(pc.utf8_ltrim(s_all, "0")).to_numpy(zero_copy_only=False).astype(np.int64)
    frac_sig = pc.utf8_length(pc.utf8_rtrim(frac, "0")).to_numpy(zero_copy_only=False).astype(np.int64)
    status = np.full(len(exp), _PENDING, dtype=np.int8)
    lost = (sig == 0) | (exp > k)
    status[lost] = _PRECISION_LOST
    status[frac_sig > exp] = _UNPARSEABLE  # not an integer: checked before precision
    status[_bool(pc.equal(sign, "-"))] = _UNPARSEABLE
    data, offs = _buffers(s_all)
    base = offs[:-1]
    lz = (wl + k) - sig
    ok = status == _PENDING
    length = np.where(ok, wl + np.minimum(exp, k) - lz, 0)
    body, boffs = _gather_segments(data, base + np.where(ok, lz, 0), length)
    return _string_array(body, boffs), status


# --------------------------------------------------------------------------
# One chunk
# --------------------------------------------------------------------------


@dataclass
class _ChunkOut:
    table: pa.Table
    stats: BatchStats


def _chunk(inp: _Input, lo: int, hi: int, region: str, rules: RegionRules | None) -> _ChunkOut:
    n = hi - lo
    texts = inp.texts.slice(lo, n)
    kind = inp.kind[lo:hi]
    status = inp.status[lo:hi].copy()
    stats = BatchStats(rows=n)

    if rules is None:
        status[status == _PENDING] = _FALLBACK
        return _finish(inp, lo, status, None, None, None, None, region, stats)

    raw_scan = _scan(texts)
    pending = status == _PENDING
    fast_raw = pending & (kind == _RAW) & _shape_ok(raw_scan) & (raw_scan.dots != 1)
    # A lone '.' may be Excel's "612345678.0": let the clean-up see it.
    fast_clean = pending & (kind == _CLEAN) & _shape_ok(raw_scan)
    direct = fast_raw | fast_clean

    # Rows whose text still has to be cleaned (or was cleaned but is odd).
    to_clean = np.flatnonzero(pending & (kind == _RAW) & ~fast_raw)
    odd_clean = pending & (kind == _CLEAN) & ~fast_clean
    status[odd_clean] = np.where(_too_few_digits(raw_scan)[odd_clean], _UNPARSEABLE, _FALLBACK)
    two_ok, two_no = _two_digits(raw_scan, texts, odd_clean)
    status[two_ok] = _PENDING
    status[two_no] = _UNPARSEABLE
    fast_clean |= two_ok
    direct |= two_ok

    cleaned_rows: list[np.ndarray] = []
    cleaned_texts: list[pa.Array] = []
    if len(to_clean):
        # One chunk is far below 2 GiB, so plain string offsets always fit.
        sub = texts.take(pa.array(to_clean)).cast(pa.string())
        nonprint = raw_scan.nonprint[to_clean] > 0
        if nonprint.any():
            # NBSP behaves exactly like a space in clean_text and in parse
            # (both whitespace, both phonenumbers punctuation).
            sub = pc.replace_substring(sub, "\u00a0", " ")
            nonprint = _scan(sub).nonprint > 0
        # The scan's 8-bit counters are exact only up to 255 bytes; longer
        # values are rare and go to clean_text whatever they hold.
        long_ = raw_scan.lens[to_clean] > _MAX_INPUT
        py = nonprint | long_
        ok = np.flatnonzero(~py)
        py_rows = to_clean[py]
        if len(ok):
            t, cst = _clean_ascii(sub if len(ok) == len(sub) else sub.take(pa.array(ok)))
            rows_ok = to_clean[ok]
            status[rows_ok] = cst
            keep = cst == _PENDING
            cleaned_rows.append(rows_ok[keep])
            cleaned_texts.append(t.filter(pa.array(keep)))
        if len(py_rows):
            stats.python_clean += len(py_rows)
            py_rows = np.sort(py_rows)
            out_rows, out_texts = [], []
            for r, value in zip(py_rows, inp.values(py_rows + lo), strict=True):
                text, reason = phones.clean_text(value)
                if text is None:
                    status[r] = _REASON_STATUS[reason]
                elif sum(map(str.isdecimal, text)) < 2:
                    # parse's viability needs two \d (Unicode Nd = isdecimal).
                    status[r] = _UNPARSEABLE
                else:
                    out_rows.append(r)
                    out_texts.append(text)
            if out_rows:
                cleaned_rows.append(np.asarray(out_rows, dtype=np.int64))
                cleaned_texts.append(pa.array(out_texts, pa.string()))

    # Digit strings of every row: from the raw scan where the raw text is
    # already clean, from a scan of the cleaned text elsewhere.
    if cleaned_rows:
        crows = np.concatenate(cleaned_rows)
        ctexts = pa.concat_arrays([a.cast(pa.string()) for a in cleaned_texts])
        if len(crows) > 1 and (np.diff(crows) < 0).any():
            order = np.argsort(crows, kind="stable")
            crows = crows[order]
            ctexts = ctexts.take(pa.array(order))
        cscan = _scan(ctexts)
        cfast = _shape_ok(cscan)
        two_ok, two_no = _two_digits(cscan, ctexts, ~cfast)
        status[crows[~cfast]] = np.where(_too_few_digits(cscan)[~cfast], _UNPARSEABLE, _FALLBACK)
        status[crows[two_no]] = _UNPARSEABLE
        status[crows[two_ok]] = _PENDING
        cfast |= two_ok
        dlen = np.where(direct, raw_scan.digits, 0)
        dlen[crows] = np.where(cfast, cscan.digits, 0)
        plus = np.where(direct, raw_scan.plus > 0, False)
        plus[crows] = cfast & (cscan.plus > 0)
        # Gather digit bytes from both scans into one buffer.
        both = np.concatenate([raw_scan.dbuf, cscan.dbuf])
        src = np.where(direct, raw_scan.doff[:-1], 0)
        src[crows] = cscan.doff[:-1][...] + len(raw_scan.dbuf)
        dbuf, doff = _gather_segments(both, src, dlen)
        in_clean = np.zeros(n, dtype=bool)
        in_clean[crows] = True
        status[~direct & (status == _PENDING) & ~in_clean] = _FALLBACK
    else:
        dlen = raw_scan.digits
        plus = raw_scan.plus > 0
        dbuf, doff = raw_scan.dbuf, raw_scan.doff
        status[~direct & (status == _PENDING)] = _FALLBACK

    D = _Digits(dbuf, doff)
    st = _Parse(n, status)
    _parse(D, plus, st, rules)

    # Validation per country code.
    ltype = np.full(n, -1, dtype=np.int8)
    parsed = np.flatnonzero(st.status == _PARSED)
    if len(parsed):
        ccs = st.cc[parsed]
        for code in np.unique(ccs):
            rows = parsed[ccs == code]
            crule = country_rule(int(code))
            if crule is None:
                st.status[rows] = _FALLBACK
                continue
            nsn = D.suffix(rows, st.start[rows])
            ltype[rows] = _validate(crule, nsn, D.len[rows] - st.start[rows])
    return _finish(inp, lo, st.status, st.cc, st.start, D, ltype, region, stats)


_REASON_STATUS = {
    phones.PHONE_MISSING: _MISSING,
    phones.PHONE_UNPARSEABLE: _UNPARSEABLE,
    phones.PHONE_PRECISION_LOST: _PRECISION_LOST,
}

_CC_TEXT = [str(i).encode() for i in range(1000)]
_CC_LEN = np.array([len(b) for b in _CC_TEXT], dtype=np.int64)
_CC_BYTES = np.zeros((1000, 3), dtype=np.uint8)
for _i, _b in enumerate(_CC_TEXT):
    _CC_BYTES[_i, : len(_b)] = np.frombuffer(_b, np.uint8)
del _i, _b


def _e164(n: int, rows: np.ndarray, cc: np.ndarray, start: np.ndarray, D: _Digits) -> pa.Array:
    """'+' + country code + NSN for ``rows``, null elsewhere, built in place."""
    clen = _CC_LEN[cc]
    nl = D.len[rows] - start
    lens = np.zeros(n, dtype=np.int64)
    lens[rows] = 1 + clen + nl
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    out = np.empty(int(offs[-1]), dtype=np.uint8)
    at = offs[rows]
    out[at] = ord("+")
    for j in range(3):
        m = clen > j
        out[at[m] + 1 + j] = _CC_BYTES[cc[m], j]
    body, boffs = _gather_segments(D.buf, D.start[rows] + start, nl)
    if body.size:
        out[_gather_index(at + 1 + clen, nl, boffs)] = body
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    return _string_array(out, offs, valid)


def _finish(
    inp: _Input,
    lo: int,
    status: np.ndarray,
    cc: np.ndarray | None,
    start: np.ndarray | None,
    D: _Digits | None,
    ltype: np.ndarray | None,
    region: str,
    stats: BatchStats,
) -> _ChunkOut:
    n = len(status)
    parsed = np.flatnonzero(status == _PARSED)
    ltype = np.full(n, -1, np.int8) if ltype is None else ltype
    valid = np.zeros(n, dtype=bool)
    valid[parsed] = ltype[parsed] >= 0
    reason = np.full(n, -1, dtype=np.int8)
    for s, code in _STATUS_REASON.items():
        reason[status == s] = code
    reason[parsed[~valid[parsed]]] = _REASON_CODE[phones.PHONE_INVALID]
    ccol = np.zeros(n, dtype=np.int32)
    has_cc = np.zeros(n, dtype=bool)
    if len(parsed):
        assert cc is not None and start is not None and D is not None
        ccol[parsed] = cc[parsed]
        has_cc[parsed] = True
        e164 = _e164(n, parsed, cc[parsed], start[parsed], D)
    else:
        e164 = pa.nulls(n, pa.string())
    ltype = np.where(valid, ltype, -1)

    fb = np.flatnonzero(status == _FALLBACK)
    stats.fallback = len(fb)
    stats.fast = n - len(fb)
    if len(fb):
        values = inp.values(fb + lo)
        stats.fallback_examples.extend(values[:20])
        results = [phones.normalize(v, region) for v in values]
        valid[fb] = [r.valid for r in results]
        fb_cc = [r.country_code for r in results]
        has_cc[fb] = [c is not None for c in fb_cc]
        ccol[fb] = [c or 0 for c in fb_cc]
        ltype[fb] = [-1 if r.line_type is None else _NAME_CODE[r.line_type] for r in results]
        reason[fb] = [-1 if r.reason is None else _REASON_CODE[r.reason] for r in results]
        fbmask = np.zeros(n, dtype=bool)
        fbmask[fb] = True
        e164 = pc.replace_with_mask(e164, pa.array(fbmask), pa.array([r.e164 for r in results], pa.string()))

    table = pa.table(
        [
            e164,
            pa.array(valid, pa.bool_()),
            pa.array(ccol, pa.int32(), mask=~has_cc),
            pa.array(_TYPE_NAMES, pa.string()).take(pa.array(ltype.astype(np.int32), mask=ltype < 0)),
            pa.array(_REASON_NAMES, pa.string()).take(pa.array(reason.astype(np.int32), mask=reason < 0)),
        ],
        schema=SCHEMA,
    )
    return _ChunkOut(table, stats)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def normalize_batch(
    values: pa.Array | pa.ChunkedArray | Sequence[Any],
    region: str,
    *,
    stats: BatchStats | None = None,
    threads: int | None = None,
) -> pa.Table:
    """Normalize a batch of delivered values with ``region`` as the default region.

    Row i of the result equals ``phones.normalize(values[i], region)`` field by
    field (for an Arrow array, ``values[i].as_py()``). Columns: ``e164`` (string,
    null when unparseable), ``valid`` (bool), ``country_code`` (int32, null when
    unparseable), ``line_type`` (string, null unless valid), ``reason`` (string,
    null when valid). Pass a :class:`BatchStats` to learn how many rows took the
    per-value fallback. ``threads`` defaults to the number of CPUs.
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        inp = _from_arrow(values)
    else:
        inp = _from_python(values if isinstance(values, Sequence) else list(values))
    n = len(inp.status)
    rules = rules_for_region(region)
    bounds = [(lo, min(lo + CHUNK_ROWS, n)) for lo in range(0, n, CHUNK_ROWS)]
    workers = max(1, min(threads or os.cpu_count() or 1, len(bounds)))
    if workers == 1:
        outs = [_chunk(inp, lo, hi, region, rules) for lo, hi in bounds]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outs = list(pool.map(lambda b: _chunk(inp, b[0], b[1], region, rules), bounds))
    if stats is not None:
        for o in outs:
            stats.add(o.stats)
    if not outs:
        return SCHEMA.empty_table()
    return pa.concat_tables([o.table for o in outs])
