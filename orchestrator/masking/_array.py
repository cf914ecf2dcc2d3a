"""PostgreSQL arrays in their text form (`{a,"b c",NULL,{1,2}}`), element by element.

`parse` reads what the server writes (and any input it accepts, with `,` as the
delimiter): optional dimension bounds (`[0:1]={...}`), nested braces for more dimensions,
unquoted elements (blanks around them dropped, backslash escapes undone, `NULL` in any
case is NULL) and double-quoted ones (`\\"` and `\\\\` inside). `dump` writes the same
structure back, every element quoted, so no element text can ever be read as another
(a quoted `"NULL"` stays the text NULL). Values are bytes: UTF-8 never puts an ASCII byte
inside a multi-byte character, so scanning bytes is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Element: TypeAlias = "bytes | list[Element] | None"

_BLANKS = b" \t\n\r\v\f"


class InvalidArray(ValueError):
    """The text is not an array literal (the message holds no part of it)."""


def parse(text: bytes) -> tuple[bytes, list[Element]]:
    """Give (dimension bounds prefix or b"", the nested elements) of an array literal.

    Raises InvalidArray when `text` is not one.
    """
    prefix = b""
    start = _skip(text, 0)
    if text[start : start + 1] == b"[":
        equals = text.find(b"=", start)
        if equals < 0:
            raise InvalidArray("not an array (bounds without =)")
        prefix, start = text[start : equals + 1].strip(), _skip(text, equals + 1)
    if text[start : start + 1] != b"{":
        raise InvalidArray("not an array (no opening brace)")
    elements, end = _list(text, start + 1)
    if _skip(text, end) != len(text):
        raise InvalidArray("not an array (text after the closing brace)")
    return prefix, elements


def dump(prefix: bytes, elements: list[Element]) -> bytes:
    """Give the array literal of `elements` (every element quoted, NULL as NULL)."""
    return prefix + _dump_list(elements)


def map_elements(elements: list[Element], apply: Callable[[bytes], bytes | None]) -> list[Element]:
    """Give `elements` with `apply` on every non-NULL element, at any depth."""
    return [
        None
        if item is None
        else map_elements(item, apply)
        if isinstance(item, list)
        else apply(item)
        for item in elements
    ]


def leaves(elements: list[Element]) -> list[bytes | None]:
    """Give every element at any depth, in order (NULL as None)."""
    found: list[bytes | None] = []
    for item in elements:
        if isinstance(item, list):
            found += leaves(item)
        else:
            found.append(item)
    return found


def _skip(text: bytes, pos: int) -> int:
    while pos < len(text) and text[pos] in _BLANKS:
        pos += 1
    return pos


def _list(text: bytes, pos: int) -> tuple[list[Element], int]:
    """Read the elements after an opening brace; give them and the position after `}`."""
    elements: list[Element] = []
    pos = _skip(text, pos)
    if text[pos : pos + 1] == b"}":
        return elements, pos + 1
    while True:
        pos = _skip(text, pos)
        head = text[pos : pos + 1]
        if head == b"{":
            inner, pos = _list(text, pos + 1)
            elements.append(inner)
        elif head == b'"':
            quoted, pos = _quoted(text, pos + 1)
            elements.append(quoted)
        elif head and head not in b",}":
            unquoted, pos = _unquoted(text, pos)
            elements.append(unquoted)
        else:
            raise InvalidArray("not an array (an element is missing)")
        pos = _skip(text, pos)
        head = text[pos : pos + 1]
        if head == b"}":
            return elements, pos + 1
        if head != b",":
            raise InvalidArray("not an array (no comma between elements)")
        pos += 1


def _quoted(text: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while pos < len(text):
        byte = text[pos]
        if byte == 0x22:  # "
            return bytes(out), pos + 1
        if byte == 0x5C:  # backslash
            pos += 1
            if pos >= len(text):
                break
            byte = text[pos]
        out.append(byte)
        pos += 1
    raise InvalidArray("not an array (an unclosed quote)")


def _unquoted(text: bytes, pos: int) -> tuple[bytes | None, int]:
    out, escaped_to = bytearray(), 0
    while pos < len(text) and text[pos] not in b',}{"':
        if text[pos] == 0x5C:
            pos += 1
            if pos >= len(text):
                raise InvalidArray("not an array (a backslash at the end)")
            escaped_to = len(out) + 1
        out.append(text[pos])
        pos += 1
    if pos < len(text) and text[pos] in b'{"':
        raise InvalidArray("not an array (a brace or quote inside an element)")
    end = len(out)  # trailing blanks are dropped, unless escaped
    while end > escaped_to and out[end - 1] in _BLANKS:
        end -= 1
    value = bytes(out[:end])
    if escaped_to == 0 and value.upper() == b"NULL":
        return None, pos
    return value, pos


def _dump_list(elements: list[Element]) -> bytes:
    parts = []
    for item in elements:
        if item is None:
            parts.append(b"NULL")
        elif isinstance(item, list):
            parts.append(_dump_list(item))
        else:
            parts.append(b'"' + item.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
    return b"{" + b",".join(parts) + b"}"
