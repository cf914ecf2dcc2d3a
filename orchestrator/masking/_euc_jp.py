"""PostgreSQL's EUC_JP, read as Python text: PostgreSQL maps EUC_JP as eucJP-ms does
(Microsoft's code page 932 for JIS X 0208, NEC's row 13, IBM's extensions in 0x8F F3F3 to
0x8F F4FE), where Python's `euc_jp` follows JIS: the wave dash 0xA1C1 is U+FF5E to the
server and U+301C to Python, and '①' (0xADA1) or '髙' (0x8F F4FB) are no EUC_JP at all to Python.

`decode` reads with Python's `euc_jp` (C speed), an error handler taking the sequences it
refuses (row 13 by way of code page 932, the IBM rows by table), and a translation of the
characters it reads otherwise than the server does. A test holds every one of the 17,000
codes to what a live server gives.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

ERRORS = "orchestrator-pg-euc-jp"
# PostgreSQL's characters for 0x8F F3F3 to 0x8F F4FE, in order (IBM's extensions)
_IBM_FIRST = (0xF3 - 0xA1) * 94 + (0xF3 - 0xA1)
# (escaped: they hold compatibility ideographs, which an editor's normalization would change)
_IBM = (
    "\u2170\u2171\u2172\u2173\u2174\u2175\u2176\u2177\u2178\u2179\u2160\u2161\u2162\u2163"
    "\u2164\u2165\u2166\u2167\u2168\u2169\uff07\uff02\u3231\u2116\u2121\u70bb\u4efc\u50f4"
    "\u51ec\u5307\u5324\ufa0e\u548a\u5759\ufa0f\ufa10\u589e\u5bec\u5cf5\u5d53\ufa11\u5fb7"
    "\u6085\u6120\u654e\u663b\u6665\ufa12\uf929\u6801\ufa13\ufa14\u6a6b\u6ae2\u6df8\u6df2"
    "\u7028\ufa15\ufa16\u7501\u7682\u769e\ufa17\u7930\ufa18\ufa19\ufa1a\ufa1b\u7ae7\ufa1c"
    "\ufa1d\u7da0\u7dd6\ufa1e\u8362\ufa1f\u85b0\ufa20\ufa21\u8807\ufa22\u8b7f\u8cf4\u8d76"
    "\ufa23\ufa24\ufa25\u90de\ufa26\u9115\ufa27\ufa28\u9592\uf9dc\ufa29\u973b\u974d\u9751"
    "\ufa2a\ufa2b\ufa2c\u999e\u9ad9\u9b72\ufa2d\u9ed1"
)


def _sjis(first: int, second: int) -> bytes:
    """The code page 932 (Shift_JIS) bytes of the two-byte EUC_JP code `first second`."""
    row, cell = first - 0x80, second - 0x80
    lead = ((row + 1) >> 1) + (0x70 if row <= 0x5E else 0xB0)
    trail = cell + (0x1F + (cell >= 0x60) if row % 2 else 0x7E)
    return bytes((lead, trail))


def _two_byte(first: int, second: int) -> str | None:
    """PostgreSQL's character for a two-byte EUC_JP code, None when it has none."""
    if not (0xA1 <= first <= 0xF8 and 0xA1 <= second <= 0xFE) or first >= 0xF5:
        return None  # rows 0xF5 and on: user-defined, which PostgreSQL refuses
    try:
        return _sjis(first, second).decode("cp932")
    except UnicodeDecodeError:
        return None


def _handle(error: UnicodeError) -> tuple[str, int]:
    """The error handler: PostgreSQL's character for the sequence Python's `euc_jp` refused,
    or the error again when PostgreSQL has none either."""
    assert isinstance(error, UnicodeDecodeError)
    data, start = error.object, error.start
    if data[start] == 0x8F and len(data) >= start + 3:
        index = (data[start + 1] - 0xA1) * 94 + (data[start + 2] - 0xA1) - _IBM_FIRST
        if 0xA1 <= data[start + 2] <= 0xFE and 0 <= index < len(_IBM):
            return _IBM[index], start + 3
    elif len(data) >= start + 2 and (found := _two_byte(data[start], data[start + 1])):
        return found, start + 2
    raise error


@functools.cache
def _translation() -> tuple[dict[str, str], re.Pattern[str]]:
    """The characters Python's `euc_jp` reads otherwise than PostgreSQL, to PostgreSQL's,
    and a pattern finding them (a substitution touches only those: 20 times quicker than
    `str.translate`, which looks every character up)."""
    table = {"\u00a6": "\uffe4"}  # 0x8F A2C3
    for first in range(0xA1, 0xF5):
        for second in range(0xA1, 0xFF):
            ours = _two_byte(first, second)
            try:
                python = bytes((first, second)).decode("euc_jp")
            except UnicodeDecodeError:
                continue
            if ours is not None and python != ours:
                table[python] = ours
    return table, re.compile("|".join(map(re.escape, table)))


codecs.register_error(ERRORS, _handle)


class IncrementalDecoder(codecs.IncrementalDecoder):
    """PostgreSQL's EUC_JP read piece by piece (a sequence cut between pieces waits)."""

    def __init__(self, errors: str = "strict") -> None:
        super().__init__(errors)
        self.inner = codecs.getincrementaldecoder("euc_jp")(ERRORS)

    def decode(self, input: Buffer, final: bool = False) -> str:
        """Give the text of `input` and of what was left from before, in PostgreSQL's
        reading; UnicodeDecodeError where PostgreSQL has no character either."""
        text = str(self.inner.decode(input, final))
        table, found = _translation()
        return found.sub(lambda match: table[match.group()], text)

    def reset(self) -> None:
        """Forget what was left from before."""
        self.inner.reset()


NAME = "postgresql_euc_jp"


def _decode(data: Buffer, errors: str = "strict", /) -> tuple[str, int]:
    """Decode all of `data` (the codec's stateless decode)."""
    whole = bytes(data)
    return IncrementalDecoder(errors).decode(whole, final=True), len(whole)


def _encode(text: str, errors: str = "strict", /) -> tuple[bytes, int]:
    raise NotImplementedError("masking only reads EUC_JP")


def _search(name: str) -> codecs.CodecInfo | None:
    if name != NAME:
        return None
    return codecs.CodecInfo(_encode, _decode, incrementaldecoder=IncrementalDecoder, name=NAME)


codecs.register(_search)
