"""Finding personal items embedded in text, and rewriting a text with each one replaced.

An item is an e-mail address, a phone number, an IBAN (mod-97 checked), a card number
(13 to 19 digits, Luhn checked) or an IPv4/IPv6 address, found anywhere in a longer text.
The rest of the text is kept as it is. What an item becomes is given by the caller
(`Replacers`), so that this module stays free of keys: it only finds and splices.

Texts are searched as UTF-8 bytes, every byte at or above 0x80 counting as a letter, so
that letters of any script count as letters around an e-mail address. A whole column is
searched in one pass over its values joined by newlines (no item crosses a tab or a
newline), which keeps the per-value cost in C; or a whole block of COPY rows, keeping the
items that start in one column's fields (`regions`, `Scrub.within`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.masking._vector import Bytes, Ints

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
MAX_LOCAL = 64  # bytes of an e-mail address's local part, at most (RFC 5321)
_LOCAL = _WORD | frozenset(b".%+-")
_HEX_OR_COLON = frozenset(b"0123456789ABCDEFabcdef:")
_IPV6_TOKEN = _HEX_OR_COLON | frozenset(b".")
_DOMAIN = (  # labels of letters, digits and inner hyphens; the last one starts with a letter
    rb"(?:[0-9A-Za-z\x80-\xff](?:[0-9A-Za-z\-\x80-\xff]*[0-9A-Za-z\x80-\xff])?\.)+"
    rb"[A-Za-z\x80-\xff][0-9A-Za-z\-\x80-\xff]*[0-9A-Za-z\x80-\xff]"
)
_AT_DOMAIN = re.compile(rb"@(?>" + _DOMAIN + rb")(?![0-9A-Za-z_\x80-\xff@])")
_RUN_CHARS = b"0123456789 ().-/+"
_IBAN_RUN = re.compile(rb"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}")
_DIGIT_BYTES = b"0123456789"
MIN_RUN_DIGITS = 4  # the fewest digits of an item found in a run (an IPv4 address)
MIN_ITEM_DIGITS = 7  # the fewest digits of a phone or card number
MAX_GAP = 3  # separators between two digits of one item, at most
_QUICK_BELOW = 4096  # shorter texts are first looked over for what every item holds
_RUN_TABLE = np.array([byte in _RUN_CHARS for byte in range(256)])
_LOCAL_FLAGS = bytes(byte in _LOCAL for byte in range(256))
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
Bools = npt.NDArray[np.bool_]
Within = Callable[[Ints], Bools]  # which of some byte offsets lie in the searched regions


def _everywhere(positions: Ints) -> Bools:
    return np.ones(len(positions), np.bool_)


def regions(starts: Ints, ends: Ints) -> Within:
    """Give the test of whether offsets lie in one of the regions `[starts[i], ends[i])`
    (sorted, not overlapping), e.g. one column's fields in a block of COPY rows."""

    def within(positions: Ints) -> Bools:
        if not len(starts):
            return np.zeros(len(positions), np.bool_)
        index = np.searchsorted(starts, positions, side="right") - 1
        inside: Bools = (index >= 0) & (positions < ends[np.maximum(index, 0)])
        return inside

    return within


def find_items(data: bytes, within: Within = _everywhere) -> list[Item]:
    """Give the items in `data` (UTF-8 text; tabs and newlines end every item), sorted,
    none overlapping (the earlier, then the longer, wins); with `within`, only those
    that start in its regions (bounded by tabs or newlines, so no item crosses one)."""
    text = np.frombuffer(data, np.uint8)
    is_digit = (text - np.uint8(48)) < np.uint8(10)  # wraps below 48: quicker than translate
    digits = np.flatnonzero(is_digit)
    sources = [
        _emails(data, within),
        _runs(data, digits, within),
        _ibans(data, text, is_digit, within),
        _ipv6s(data, within),
    ]
    found = [item for source in sources for item in source]
    if sum(1 for source in sources if source) <= 1:
        return found  # each finder gives its items in order, none overlapping
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


def _emails(data: bytes, within: Within) -> list[Item]:
    """E-mail addresses: each @ (found with numpy, those in the regions) followed by a
    domain (the regex, matched at each); the local parts, the runs of local-part bytes
    before them, found all at once."""
    ats = np.flatnonzero(np.frombuffer(data, np.uint8) == 64)
    found = [
        match.span() for at in ats[within(ats)].tolist() if (match := _AT_DOMAIN.match(data, at))
    ]
    if not found:
        return []
    ats, ends = np.array(found).T
    padded = np.frombuffer(b"\n" * (MAX_LOCAL + 1) + data, np.uint8)
    before = padded[ats[:, None] + np.arange(MAX_LOCAL, 0, -1)]  # backwards from the @
    local = np.frombuffer(before.tobytes().translate(_LOCAL_FLAGS), np.bool_)
    local = local.reshape(before.shape)
    lengths = np.where(local.all(axis=1), MAX_LOCAL + 1, np.argmin(local, axis=1))
    good = (lengths > 0) & (lengths <= MAX_LOCAL)  # longer: glued to a word, not an address
    starts = (ats - lengths)[good].tolist()
    return [(EMAIL, start, end) for start, end in zip(starts, ends[good].tolist(), strict=True)]


def _flags(data: bytes, table: bytes) -> npt.NDArray[np.bool_]:
    return np.frombuffer(data.translate(table), np.bool_)


def _run_spans(data: bytes, positions: Ints, within: Within) -> list[tuple[int, int]]:
    """The runs of digits (`positions`: of every digit in `data`) that may hold a phone or
    card number or an IPv4 address, from their first digit to their last: digits one
    after another, or apart by at most 3 separators (` ().-/+`); kept when they hold at
    least 7 digits, or 4 to 6 digits in at least 4 groups (a dotted IPv4 address)."""
    if len(positions) < MIN_RUN_DIGITS:
        return []
    gaps = np.diff(positions)
    joined = gaps == 1
    near = np.flatnonzero((gaps > 1) & (gaps <= MAX_GAP + 1))
    if len(near):
        text = np.frombuffer(data, np.uint8)
        places = np.minimum(positions[near, None] + np.arange(1, MAX_GAP + 1), len(data) - 1)
        between = _RUN_TABLE[text[places]]
        inside = np.arange(1, MAX_GAP + 1) < gaps[near, None]
        joined[near] = (between | ~inside).all(axis=1)
    cuts = np.flatnonzero(~joined) + 1
    firsts = np.concatenate(([0], cuts))
    lasts = np.concatenate((cuts, [len(positions)])) - 1
    counts = lasts - firsts + 1
    keep = counts >= MIN_ITEM_DIGITS
    few = np.flatnonzero(~keep & (counts >= MIN_RUN_DIGITS))
    if len(few):  # 4 to 6 digits: an IPv4 address needs 4 groups
        breaks = near[joined[near]]  # the gaps inside runs that part two groups
        inner = np.searchsorted(breaks, lasts[few]) - np.searchsorted(breaks, firsts[few])
        keep[few] = inner + 1 >= 4
    starts, ends = positions[firsts[keep]], positions[lasts[keep]] + 1
    chosen = within(starts)
    return list(zip(starts[chosen].tolist(), ends[chosen].tolist(), strict=True))


def _runs(data: bytes, digits: Ints, within: Within) -> list[Item]:
    items: list[Item] = []
    for start, end in _run_spans(data, digits, within):
        first = start - 1 if start > 0 and data[start - 1] == 43 else start  # a leading +
        if _word_before(data, first) or (end < len(data) and data[end] in _WORD):
            continue
        items += _within(data[first:end].decode(), first, kind_of_run, MIN_ITEM_DIGITS)
    return items


def _ibans(data: bytes, text: Bytes, is_digit: Bools, within: Within) -> list[Item]:
    """IBANs start with two capital letters and two digits: looked for only there
    (`text` is `data` as an array, `is_digit` where its digits are)."""
    if len(data) < 4:
        return []
    upper = (text - np.uint8(65)) < np.uint8(26)
    starts = np.flatnonzero(upper[:-3] & upper[1:-2] & is_digit[2:-1] & is_digit[3:])
    items: list[Item] = []
    for start in starts[within(starts)].tolist():
        match = _IBAN_RUN.match(data, start)
        if match is None or _word_before(data, start) or (items and start < items[-1][2]):
            continue
        text_ = match.group().decode()
        items += _within(text_, start, lambda part: IBAN if iban_valid(part) else None, 15)
    return items


def _ipv6s(data: bytes, within: Within) -> list[Item]:
    if b":" not in data:
        return []
    flags = _flags(data, _HEX_COLON_FLAGS)
    colon = np.frombuffer(data, np.uint8) == 58
    found = np.flatnonzero(colon[1:-1] & flags[:-2] & flags[2:]) + 1
    colons = found[within(found)].tolist()
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
        if len(data) < _QUICK_BELOW and not _maybe(data):
            return data
        return splice(data, *self.within(data, _everywhere))

    def within(self, data: bytes, within: Within) -> Splices:
        """Give where the items of `data` that start in the regions of `within` are, and
        what each becomes: (starts, ends, replacements), in order (see `splice`)."""
        items = find_items(data, within)
        starts = [item[1] for item in items]
        ends = [item[2] for item in items]
        return starts, ends, self._replaced(data, items)

    def _replaced(self, data: bytes, items: list[Item]) -> list[bytes]:
        """Give what each item becomes, counting them in `found`."""
        self.found += len(items)
        kinds = [item[0] for item in items]
        slices = [data[start:end] for _kind, start, end in items]
        if len(set(kinds)) == 1:
            replaced = self.replacers.of(kinds[0])(slices)
        else:
            replaced = [b""] * len(items)
            for kind in set(kinds):
                chosen = [i for i, one in enumerate(kinds) if one == kind]
                outputs = self.replacers.of(kind)([slices[i] for i in chosen])
                for index, out in zip(chosen, outputs, strict=True):
                    replaced[index] = out
        return replaced


Splices = tuple[list[int], list[int], list[bytes]]  # starts, ends, replacements


def splice(data: bytes, starts: list[int], ends: list[int], replacements: list[bytes]) -> bytes:
    """Give `data` with `data[starts[i]:ends[i]]` replaced by `replacements[i]` (the
    spans in order, not overlapping)."""
    if not starts:
        return data
    pieces: list[bytes] = [b""] * (2 * len(starts) + 1)
    pieces[0::2] = [data[a:b] for a, b in zip([0, *ends], [*starts, len(data)], strict=True)]
    pieces[1::2] = replacements
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
