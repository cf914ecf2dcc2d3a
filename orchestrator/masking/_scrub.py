"""Finding personal items embedded in text, and rewriting a text with each one replaced.

An item is an e-mail address, a phone number, an IBAN (mod-97 checked), a card number
(13 to 19 digits, Luhn checked) or an IPv4/IPv6 address, found anywhere in a longer text.
The rest of the text is kept as it is. What an item becomes is given by the caller
(`Replacers`), so that this module stays free of keys: it only finds and splices.

Texts are searched as `str` (UTF-8 decoded), so that letters of any script count as
letters around an e-mail address. A whole column is searched in one pass over its values
joined by newlines (no pattern crosses a newline), which keeps the per-value cost in C.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Replace = Callable[[list[bytes]], list[bytes]]  # items (UTF-8) to what they become, in order

EMAIL, PHONE, IBAN, CARD, IP = "email", "phone", "iban", "card", "ip"
KINDS = (EMAIL, PHONE, IBAN, CARD, IP)

_DATE = re.compile(r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{4}")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:[.,][0-9]+)?")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_CARD = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_SEPARATOR = re.compile(r"[ ().\-/]+")

# byte classes (bytes at or above 0x80 are parts of non-ASCII letters: word bytes)
_WORD = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") | frozenset(
    range(0x80, 0x100)
)
MAX_LOCAL = 128  # bytes of an e-mail address's local part looked at, at most
_LOCAL_REVERSED = re.compile(rb"[0-9A-Za-z_.%+\-\x80-\xff]+")  # matched backwards from the @
_HEX_OR_COLON = frozenset(b"0123456789ABCDEFabcdef:")
_IPV6_TOKEN = _HEX_OR_COLON | frozenset(b".")
_DOMAIN = re.compile(
    rb"(?:[0-9A-Za-z\x80-\xff](?:[0-9A-Za-z\-\x80-\xff]*[0-9A-Za-z\x80-\xff])?\.)+"
    rb"[A-Za-z\x80-\xff][0-9A-Za-z\-\x80-\xff]*[0-9A-Za-z\x80-\xff]"
)
_RUN_CHARS = b"0123456789 ().-/+"
_IBAN_RUN = re.compile(rb"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}")
_SMALL_IBANS = re.compile(rb"[A-Z]{2}[0-9]{2}")
_DIGIT_BYTES = b"0123456789"
MIN_RUN_DIGITS = 4  # the fewest digits of an item found in a run (an IPv4 address)
MIN_ITEM_DIGITS = 7  # the fewest digits of a phone or card number
MAX_GAP = 3  # separators between two digits of one item, at most
LARGE = 4096  # texts this long are searched with numpy for where items may start
_RUN_FLAGS = bytes(byte in _RUN_CHARS for byte in range(256))
_DIGIT_FLAGS = bytes(48 <= byte <= 57 for byte in range(256))
_UPPER_FLAGS = bytes(65 <= byte <= 90 for byte in range(256))
_HEX_COLON_FLAGS = bytes(byte in _HEX_OR_COLON for byte in range(256))


@dataclass(frozen=True)
class Replacers:
    """What each kind of item becomes, many at once (each output is never its item)."""

    email: Replace
    phone: Replace
    iban: Replace
    card: Replace
    ip: Replace

    def of(self, kind: str) -> Replace:
        """Give the replacer of `kind`."""
        replace: Replace = getattr(self, kind)
        return replace


# --- what an item is ----------------------------------------------------------------------


def luhn_sum(digits: str) -> int:
    """Give the Luhn sum of a digit string modulo 10 (0 when the check passes)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = (ord(char) - 48) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10


def luhn_valid(digits: str) -> bool:
    """Whether the digit string passes the Luhn check."""
    return luhn_sum(digits) == 0


def iban_valid(text: str) -> bool:
    """Whether `text` (spaces allowed) is shaped like an IBAN and passes mod 97."""
    compact = text.replace(" ", "")
    if _IBAN_SHAPE.fullmatch(compact) is None:
        return False
    return iban_remainder(compact[4:] + compact[:4]) == 1


def iban_remainder(text: str) -> int:
    """Give the IBAN number of `text` (letters as 10..35) modulo 97."""
    return int("".join(str(int(char, 36)) for char in text)) % 97


def is_card(text: str) -> bool:
    """Whether `text` is 13 to 19 digits (spaces or dashes between) passing Luhn."""
    if _CARD.fullmatch(text) is None:
        return False
    return luhn_valid(text.replace(" ", "").replace("-", ""))


def is_phone(text: str) -> bool:
    """Whether `text` looks like a phone number: 7 to 15 digits with a leading + or
    separators, not a plain number and holding no date."""
    if _PLAIN_NUMBER.fullmatch(text) or _DATE.search(text):
        return False
    digits = sum(char.isdigit() for char in text)
    if not 7 <= digits <= 15:
        return False
    return text.startswith("+") or _SEPARATOR.search(text) is not None


def is_ipv6(text: str) -> bool:
    """Whether `text` is an IPv6 address."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def kind_of_run(text: str) -> str | None:
    """Give the kind of a run of digits and separators when the whole run is an item."""
    if _IPV4.fullmatch(text):
        return IP
    if is_card(text):
        return CARD
    if is_phone(text):
        return PHONE
    return None


def _sub_spans(text: str) -> list[tuple[int, int]]:
    """The spans of `text` between its separators, longest first then leftmost: where a
    run that is not one item as a whole is searched for one."""
    cuts = [0]
    for match in _SEPARATOR.finditer(text):
        cuts += [match.start(), match.end()]
    cuts.append(len(text))
    starts, ends = cuts[0::2], cuts[1::2]
    spans = [(s, e) for i, s in enumerate(starts) for e in ends[i:]]
    spans.sort(key=lambda span: (span[0] - span[1], span[0]))
    return spans


def _within(
    text: str, start: int, kind_of: Callable[[str], str | None], shortest: int
) -> list[tuple[str, int, int]]:
    """The items of a run: the whole run when it is one, else the longest leftmost part
    between separators that is one, and the items before and after it."""
    if len(text) < shortest:
        return []
    kind = kind_of(text)
    if kind is not None:
        return [(kind, start, start + len(text))]
    for begin, end in _sub_spans(text):
        if end - begin < shortest or (begin, end) == (0, len(text)):
            continue
        kind = kind_of(text[begin:end])
        if kind is not None:
            before = _within(text[:begin], start, kind_of, shortest)
            rest = _within(text[end:], start + end, kind_of, shortest)
            return [*before, (kind, start + begin, start + end), *rest]
    return []


# --- finding items in bytes -----------------------------------------------------------------

Item = tuple[str, int, int]  # kind, start, end (byte offsets)


def find_items(data: bytes) -> list[Item]:
    """Give the items in `data` (UTF-8 text; newlines end every item), sorted, none
    overlapping (the earlier, then the longer, wins)."""
    found = [*_emails(data), *_runs(data), *_ibans(data), *_ipv6s(data)]
    found.sort(key=lambda item: (item[1], -item[2]))
    items: list[Item] = []
    reached = 0
    for item in found:
        if item[1] >= reached:
            items.append(item)
            reached = item[2]
    return items


def _word_before(data: bytes, pos: int) -> bool:
    return pos > 0 and data[pos - 1] in _WORD


def _emails(data: bytes) -> list[Item]:
    items = []
    at = data.find(b"@")
    while at >= 0:
        local = _LOCAL_REVERSED.match(data[max(0, at - MAX_LOCAL) : at][::-1])
        start = at - (local.end() if local else 0)
        domain = _DOMAIN.match(data, at + 1)
        if start < at and domain is not None and not _word_before(data, start):
            end = domain.end()
            if end >= len(data) or (data[end] not in _WORD and data[end] != 64):
                items.append((EMAIL, start, end))
        at = data.find(b"@", at + 1)
    return items


def _flags(data: bytes, table: bytes) -> npt.NDArray[np.bool_]:
    return np.frombuffer(data.translate(table), np.bool_)


def _run_spans(data: bytes) -> list[tuple[int, int]]:
    """The runs of digits that may hold a phone or card number or an IPv4 address, from
    their first digit to their last: digits one after another, or apart by at most 3
    separators (` ().-/+`); kept when they hold at least 7 digits, or 4 to 6 digits in
    at least 4 groups (a dotted IPv4 address)."""
    positions = np.flatnonzero(_flags(data, _DIGIT_FLAGS))
    if len(positions) < MIN_RUN_DIGITS:
        return []
    gaps = np.diff(positions)
    joined = gaps == 1
    near = np.flatnonzero((gaps > 1) & (gaps <= MAX_GAP + 1))
    if len(near):
        separators = _flags(data + b"x" * MAX_GAP, _RUN_FLAGS)
        between = separators[positions[near, None] + np.arange(1, MAX_GAP + 1)]
        inside = np.arange(1, MAX_GAP + 1) < gaps[near, None]
        joined[near] = (between | ~inside).all(axis=1)
    cuts = np.flatnonzero(~joined) + 1
    firsts = np.concatenate(([0], cuts))
    lasts = np.concatenate((cuts, [len(positions)])) - 1
    counts = lasts - firsts + 1
    groups = np.concatenate(([0], np.cumsum(gaps > 1)))
    spread = groups[lasts] - groups[firsts] + 1
    keep = (counts >= MIN_ITEM_DIGITS) | ((counts >= MIN_RUN_DIGITS) & (spread >= 4))
    starts, ends = positions[firsts[keep]], positions[lasts[keep]] + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _runs(data: bytes) -> list[Item]:
    items: list[Item] = []
    for start, end in _run_spans(data):
        first = start - 1 if start > 0 and data[start - 1] == 43 else start  # a leading +
        if _word_before(data, first) or (end < len(data) and data[end] in _WORD):
            continue
        items += _within(data[first:end].decode(), first, kind_of_run, MIN_ITEM_DIGITS)
    return items


def _ibans(data: bytes) -> list[Item]:
    if len(data) < LARGE:
        starts = [match.start() for match in _SMALL_IBANS.finditer(data)]
    else:
        upper, digit = _flags(data, _UPPER_FLAGS), _flags(data, _DIGIT_FLAGS)
        hits = upper[:-3] & upper[1:-2] & digit[2:-1] & digit[3:]
        starts = np.flatnonzero(hits).tolist()
    items: list[Item] = []
    for start in starts:
        match = _IBAN_RUN.match(data, start)
        if match is None or _word_before(data, start) or (items and start < items[-1][2]):
            continue
        text = match.group().decode()
        items += _within(text, start, lambda part: IBAN if iban_valid(part) else None, 15)
    return items


def _ipv6s(data: bytes) -> list[Item]:
    if b":" not in data:
        return []
    if len(data) < LARGE:
        colons = [i for i in range(len(data)) if data[i] == 58]
    else:
        flags = _flags(data, _HEX_COLON_FLAGS)
        colon = np.frombuffer(data, np.uint8) == 58
        colons = (np.flatnonzero(colon[1:-1] & flags[:-2] & flags[2:]) + 1).tolist()
    items: list[Item] = []
    reached = 0
    for colon in colons:
        if colon < reached:
            continue
        start, end = colon, colon
        while start > 0 and data[start - 1] in _IPV6_TOKEN:
            start -= 1
        while end < len(data) and data[end] in _IPV6_TOKEN:
            end += 1
        reached = end
        token = data[start:end].rstrip(b".")
        if _word_before(data, start) or (end < len(data) and data[end] in _WORD):
            continue
        if is_ipv6(token.decode()):
            items.append((IP, start, start + len(token)))
    return items


# --- replacing ------------------------------------------------------------------------------


class Scrub:
    """Rewrites texts with every embedded item replaced; `found` counts the items replaced
    since it was last reset."""

    def __init__(self, replacers: Replacers) -> None:
        self.replacers = replacers
        self.found = 0

    def text(self, text: str) -> str:
        """Give `text` with every item replaced (the rest kept)."""
        return self.data(text.encode()).decode()

    def data(self, data: bytes) -> bytes:
        """Give UTF-8 `data` with every item replaced (the rest kept); a newline is never
        inside an item, so many texts joined by newlines can go at once."""
        if not _maybe(data):
            return data
        items = find_items(data)
        if not items:
            return data
        self.found += len(items)
        replaced: list[bytes] = [b""] * len(items)
        for kind in KINDS:
            chosen = [index for index, item in enumerate(items) if item[0] == kind]
            if chosen:
                found = [data[items[i][1] : items[i][2]] for i in chosen]
                for index, out in zip(chosen, self.replacers.of(kind)(found), strict=True):
                    replaced[index] = out
        pieces, pos = [], 0
        for (_kind, start, end), out in zip(items, replaced, strict=True):
            pieces += [data[pos:start], out]
            pos = end
        pieces.append(data[pos:])
        return b"".join(pieces)


def _maybe(data: bytes) -> bool:
    """Whether `data` may hold an item: an @, a colon, or at least 4 digits."""
    if b"@" in data or b":" in data:
        return True
    return len(data) - len(data.translate(None, _DIGIT_BYTES)) >= MIN_RUN_DIGITS


def kinds(text: str) -> list[str]:
    """Give the kinds of the items in `text`, in order (nothing is replaced)."""
    data = text.encode()
    return [kind for kind, _start, _end in find_items(data)] if _maybe(data) else []
