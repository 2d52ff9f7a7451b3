"""Personal data in vendors' free text, replaced by keyed tokens.

Vendors write what they like in ``source``, ``consent_proof``, ``acquired_from``,
the manifest's ``recipient`` and ``claims``: ``parrainage par 06 11 22 33 99``,
``SMS de 0611223399``, ``IP 82.64.1.10 / form v3``. Stored verbatim, that text would
carry raw numbers into the warehouse, the ledger and every export. Here each phone
number (any national or international writing, digit groups separated by spaces,
dots, dashes, slashes, ``(0)``), e-mail address and IP address (v4 and v6) in a text
becomes a typed token: ``[tel:…]``, ``[email:…]``, ``[ip:…]``, the first
:data:`TOKEN_HEX` hex digits of ``HashKey.subject_key`` of the normalized value
(E.164 for a number, read with the delivery's region). The same value gives the same
token, and a number's token is its subject key's prefix, so it can still be looked up.

Numbers are what ``phonenumbers`` calls *possible* for the region (or valid once
read as international digits without their ``+``), with at least 8 digits; dates
(``2024-03-12``, ``12/03/2024``, ``20240312``), times, versions (``v3``, ``3.2.1``),
postal codes and other short numbers are left as written, as are digit runs inside
long hexadecimal words (hashes). A 9-digit identifier is indistinguishable from the
9 significant digits of a French number and is tokenized.

Scale: :func:`candidates` is one vectorized regular expression over a column (a
superset of what :func:`scrub_text` can find), so rows without a digit run, ``@``
or ``:`` cost nothing in Python; callers scrub distinct values only.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import NumberParseException, PhoneNumberFormat

from origine.keys import HashKey

TEL, EMAIL, IP = "tel", "email", "ip"
TOKEN_HEX = 12  # 48 bits of the subject key: few collisions among all numbers of a country
MIN_DIGITS = 8
MAX_DIGITS = 17  # 15 for E.164, plus an international prefix "00" or a "(0)"
MAX_PARSES = 64  # phone parses per run of digit groups; beyond, the run's rest is withheld
WITHHELD = "[tel:withheld]"
# Keys the tokens personal_data_kinds makes and drops: random, never stored or shown.
_DETECTION_KEY = HashKey(os.urandom(32))

# Characters that may separate digit groups of one written number.
_SEP = " \t\u00a0.\\-/()"
# The cheap prefilter, in the syntax both RE2 (Arrow) and Python share: 8 digits
# with at most 3 separators between consecutive ones (every number scrub_text
# tokenizes has such a chain), an '@', a dotted quad, or two colons around hex.
PREFILTER = (
    f"[0-9](?:[{_SEP}]{{0,3}}[0-9]){{{MIN_DIGITS - 1}}}"
    "|@"
    "|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"
    "|:[0-9A-Fa-f]{0,4}:"
)
_PREFILTER = re.compile(PREFILTER)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
# A run of digit groups stops before an IP or e-mail address that follows it, so
# "+33600000000 82.64.1.10" is a number and an address, not one run.
_NOT_NEXT = (
    rf"(?!(?<![\w.]){_IPV4}(?![\w]|\.[0-9]))"
    r"(?![0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)"
    r"(?![0-9][\w.%+'\-]*@[\w\-]+\.)"
)
_FIND = re.compile(
    "|".join(
        [
            r"(?P<token>\[(?:tel|email|ip):(?:[0-9a-f]{1,64}|withheld)\])",  # already scrubbed: leave it
            r"(?P<email>[\w.%+'\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,})",
            rf"(?P<ipv4>(?<![\w.]){_IPV4}(?![\w]|\.[0-9]))",
            rf"(?P<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_IPV4}|[0-9A-Fa-f]{{1,4}})?(?![\w:]))",
            rf"(?P<run>(?:\(?\+[ \u00a0]?)?[0-9](?:[0-9]|[{_SEP}]{{1,3}}(?=\(?[0-9]){_NOT_NEXT})*)",
        ]
    )
)
_DIGITS = re.compile(r"[0-9]+")
_HEX_WORD = re.compile(r"[0-9A-Za-z]*")


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """A text with its personal data replaced, and the kinds replaced (``tel``, ``email``, ``ip``)."""

    text: str
    kinds: frozenset[str] = frozenset()


def keyed(value: str, key: HashKey) -> str:
    """The token digits of a normalized value: the prefix of its subject key."""
    ascii_value = value if value.isascii() else value.encode("ascii", "backslashreplace").decode("ascii")
    return key.subject_key(ascii_value)[:TOKEN_HEX]


def tel_token(e164: str, key: HashKey) -> str:
    """``[tel:…]`` for a number in E.164 (its subject key's first hex digits)."""
    return f"[{TEL}:{keyed(e164, key)}]"


def email_token(address: str, key: HashKey) -> str:
    """``[email:…]`` for an e-mail address (case-folded before keying)."""
    return f"[{EMAIL}:{keyed(address.casefold(), key)}]"


def ip_token(address: str, key: HashKey) -> str:
    """``[ip:…]`` for an IP address (its compressed canonical form keyed); ValueError if not one."""
    return f"[{IP}:{keyed(str(ipaddress.ip_address(address)), key)}]"


def has_candidates(text: str) -> bool:
    """True when ``text`` may hold a number, e-mail or IP address (the prefilter, in Python)."""
    return _PREFILTER.search(text) is not None


def scrub_text(text: str, key: HashKey, region: str) -> Scrubbed:
    """``text`` with every phone number, e-mail and IP address replaced by its token."""
    if not _PREFILTER.search(text):
        return Scrubbed(text)
    kinds: set[str] = set()

    def replace(m: re.Match[str]) -> str:
        kind = m.lastgroup
        found = m.group()
        if kind == "email":
            kinds.add(EMAIL)
            return email_token(found, key)
        if kind in ("ipv4", "ipv6"):
            if not any(c.isalnum() for c in found):
                return found
            try:
                token = ip_token(found, key)
            except ValueError:  # a time (10:30:00) or other colon shape
                return found
            kinds.add(IP)
            return token
        if kind == "run":
            if _inside_hex_word(text, m.start(), m.end()):
                return found
            out = _scrub_run(found, key, region)
            if out != found:
                kinds.add(TEL)
            return out
        return found

    out = _FIND.sub(replace, text)
    return Scrubbed(out, frozenset(kinds))


def personal_data_kinds(text: str, region: str) -> frozenset[str]:
    """The kinds of personal data :func:`scrub_text` finds in ``text`` (``tel``, ``email``,
    ``ip``), for a value that must hold none rather than be stored scrubbed (an identifier).
    The tokens are made with a key of this process's own and dropped."""
    return scrub_text(text, _DETECTION_KEY, region).kinds


@lru_cache(maxsize=65_536)
def phone_e164(text: str, region: str) -> str | None:
    """E.164 of ``text`` (digits and separators only) when it can be a phone number, else None."""
    digits = sum(c.isdigit() for c in text)
    if digits < MIN_DIGITS or digits > MAX_DIGITS:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if text.lstrip(" (\u00a0").startswith("+"):
        return None
    # International digits written without their '+', or after "00" where the region's
    # international prefix is another (011 in the US): only a valid number counts.
    plain = "".join(c for c in text if c.isdigit())
    for international in ([plain[2:]] if plain.startswith("00") else []) + ([plain] if digits >= 10 else []):
        try:
            number = phonenumbers.parse("+" + international, None)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return None


def _scrub_run(run: str, key: HashKey, region: str) -> str:
    """Tokenize the phone numbers in a run of digit groups: from each group, the
    longest stretch of groups that reads as a number wins (a run may hold a date and
    a number, or two numbers, side by side)."""
    groups = [(m.start(), m.end()) for m in _DIGITS.finditer(run)]
    if sum(e - s for s, e in groups) < MIN_DIGITS:
        return run
    dated = _date_groups(run, groups)
    out: list[str] = []
    pos = 0
    i = 0
    budget = MAX_PARSES
    while i < len(groups):
        if budget <= 0:
            # A hostile run (thousands of digit groups) would cost a parse per stretch:
            # what is left of it is withheld whole rather than read.
            rest = run[groups[i][0] :]
            if sum(c.isdigit() for c in rest) >= MIN_DIGITS:
                out.append(run[pos : groups[i][0]])
                out.append(WITHHELD)
                pos = len(run)
            break
        stretch: list[tuple[int, int]] = []  # (last group, digits) of the candidate stretches from i
        digits = 0
        for j in range(i, len(groups)):
            if j in dated:
                break
            digits += groups[j][1] - groups[j][0]
            if digits > MAX_DIGITS:
                break
            stretch.append((j, digits))
        hit: tuple[int, int, str] | None = None
        start = _start_with_prefix(run, groups[i][0])
        for j, n in reversed(stretch):
            if n < MIN_DIGITS:
                break
            budget -= 1
            e164 = phone_e164(run[start : groups[j][1]], region)
            if e164 is not None:
                hit = (start, j, e164)
                break
        if hit is None:
            i += 1
            continue
        start, j, e164 = hit
        out.append(run[pos:start])
        out.append(tel_token(e164, key))
        pos = groups[j][1]
        i = j + 1
    out.append(run[pos:])
    return "".join(out)


def _start_with_prefix(run: str, start: int) -> int:
    """Where a number starting at digit ``start`` begins: at its '+' (or '(+') if written."""
    k = start
    while k > 0 and run[k - 1] in " \u00a0(":
        k -= 1
    if k > 0 and run[k - 1] == "+":
        k -= 1
        if k > 0 and run[k - 1] == "(":
            k -= 1
        return k
    return start


def _date_groups(run: str, groups: list[tuple[int, int]]) -> set[int]:
    """Indices of the groups that write a date (three groups with one separator, or YYYYMMDD)."""
    dated: set[int] = set()
    for i, (s, e) in enumerate(groups):
        if e - s == 8 and (_is_date(run[s : s + 4], run[s + 4 : s + 6], run[s + 6 : e])
                           or _is_date(run[s + 4 : e], run[s + 2 : s + 4], run[s : s + 2])):
            dated.add(i)
    for i in range(len(groups) - 2):
        (a0, a1), (b0, b1), (c0, c1) = groups[i : i + 3]
        sep1, sep2 = run[a1:b0], run[b1:c0]
        if sep1 != sep2 or sep1 not in ("/", ".", "-"):
            continue
        a, b, c = run[a0:a1], run[b0:b1], run[c0:c1]
        if (len(a) == 4 and len(b) <= 2 and len(c) <= 2 and _is_date(a, b, c)) or (
            len(c) == 4 and len(a) <= 2 and len(b) <= 2 and (_is_date(c, b, a) or _is_date(c, a, b))
        ):
            dated.update((i, i + 1, i + 2))
    return dated


def _is_date(year: str, month: str, day: str) -> bool:
    try:
        y = int(year)
        return 1900 <= y <= 2100 and date(y, int(month), int(day)) is not None
    except ValueError:
        return False


def _inside_hex_word(text: str, start: int, end: int) -> bool:
    """True when the digits at ``start:end`` belong to a long hexadecimal word (a hash)."""
    if start > 0 and text[start - 1] in "+(":
        return False
    left = start
    while left > 0 and text[left - 1].isascii() and text[left - 1].isalnum():
        left -= 1
    right = _HEX_WORD.match(text, end).end()  # type: ignore[union-attr]
    word = text[left:right]
    if left == start and right == end:
        return False
    return len(word) >= 16 and all(c in "0123456789abcdefABCDEF" for c in word)


# ---------------------------------------------------------------- columns and documents


_SAMPLE = 1024


def candidates(values: pa.Array) -> np.ndarray:
    """Rows of a string column that may hold personal data (nulls: False), vectorized."""
    hit = pc.match_substring_regex(values, PREFILTER)
    return np.asarray(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def scrub_column(values: pa.Array, scrub: Callable[[str], Scrubbed]) -> tuple[pa.Array, np.ndarray, set[str]]:
    """A string column with ``scrub`` applied to the distinct values the prefilter
    keeps: ``(column, rows that held personal data, kinds found)``."""
    if len(values) > _SAMPLE and len(pc.unique(values.slice(0, _SAMPLE))) < _SAMPLE // 2:
        # Vendors repeat a few sources endlessly: the prefilter then runs over the
        # distinct values (encoding is ~7x cheaper than the regular expression).
        encoded = pc.dictionary_encode(values)
        dictionary = encoded.dictionary
        keep = candidates(dictionary)
        if not keep.any():
            return values, np.zeros(len(values), dtype=bool), set()
        entries = dictionary.to_pylist()
        results = [scrub(v) if k else Scrubbed(v) for v, k in zip(entries, keep)]
        index = encoded.indices
        found = np.array([bool(r.kinds) for r in results], dtype=bool)[
            np.asarray(index.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        ] & np.asarray(pc.is_valid(index).to_numpy(zero_copy_only=False), dtype=bool)
        kinds = set().union(*(r.kinds for r in results))
        return pa.array([r.text for r in results], pa.string()).take(index), found, kinds
    mask = candidates(values)
    if not mask.any():
        return values, np.zeros(len(values), dtype=bool), set()
    rows = pa.array(np.flatnonzero(mask), pa.int64())
    encoded = pc.dictionary_encode(values.take(rows))
    results = [scrub(v) for v in encoded.dictionary.to_pylist()]
    index = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    replaced = pa.array([r.text for r in results], pa.string()).take(pa.array(index))
    found = np.zeros(len(values), dtype=bool)
    found[mask] = np.array([bool(r.kinds) for r in results], dtype=bool)[index]
    kinds = set().union(*(r.kinds for r in results))
    return pc.replace_with_mask(values, pa.array(mask), replaced), found, kinds


def scrub_document(doc: Any, scrub: Callable[[str], Scrubbed]) -> tuple[Any, set[str]]:
    """Every string (keys too) of a JSON-like document scrubbed: ``(document, kinds found)``."""
    kinds: set[str] = set()

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            result = scrub(value)
            kinds.update(result.kinds)
            return result.text
        if isinstance(value, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(doc), kinds


# ---------------------------------------------------------------- column names in messages


def may_hold_personal_data(text: str) -> bool:
    """True when a header cell could be a data cell holding personal data: it has a
    run of 6 or more digits (a number, whatever its writing), an '@', or an IP's shape."""
    return sum(c.isdigit() for c in text) >= 6 or has_candidates(text)


def shown_column(name: str, position: int) -> str:
    """A column's name fit for a message: itself, or ``column N`` (1-based) when the
    "name" may be personal data (a file without a header row, JSON keyed by number)."""
    return f"column {position}" if may_hold_personal_data(name) else name


def describe_columns(columns: Sequence[str]) -> str:
    """The columns a file has, for an error message, never echoing a cell that may
    hold personal data (see :func:`shown_column`)."""
    if not columns:
        return "none"
    return ", ".join(shown_column(str(c), i) for i, c in enumerate(columns, 1))


__all__: Sequence[str] = (
    "EMAIL", "IP", "PREFILTER", "Scrubbed", "TEL", "TOKEN_HEX", "candidates", "describe_columns",
    "email_token", "has_candidates", "ip_token", "keyed", "may_hold_personal_data", "phone_e164",
    "scrub_column", "scrub_document", "scrub_text", "shown_column", "tel_token",
)
