"""Which CHECK constraints (of a column's domain, or of the column alone) a masked output
breaks, read from their definitions as `pg_get_constraintdef` writes them.

Only what can be decided is decided: a definition that is a conjunction (no OR, no NOT) of
regular-expression matches (`~`, `~*`, `!~`, `!~*` against a literal) and length
comparisons (`char_length(...) <= 40`) is evaluated atom by atom, and one failing atom
breaks it. Anything else (other functions, OR, regex features Python's `re` reads
differently) is left to the server, which refuses the row when it is restored (the
masked copy then fails closed).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence

_MATCH = re.compile(r"(!?~\*?)\s*'((?:[^']|'')*)'")
_LENGTH = re.compile(
    r"\b(?:char_length|character_length|length)\((?:[^()]|\([^()]*\))*\)\)?\s*"
    r"(<=|<|>=|>|=|<>)\s*(\d+)"
)
_UNDECIDABLE = re.compile(r"\bOR\b|\bNOT\b|\bCASE\b")
_POSIX_ONLY = re.compile(r"\\[mMyYAZ]|\[\[[.=]|\(\?[bceiqx]")
_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r"\s",
    "[:xdigit:]": "0-9A-Fa-f",
}
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "=": operator.eq,
    "<>": operator.ne,
}


def broken_by(definition: str, outputs: Sequence[str]) -> bool:
    """Whether the CHECK `definition` certainly refuses one of `outputs` (False when it
    cannot be decided here)."""
    if _UNDECIDABLE.search(definition):
        return False
    for match in _MATCH.finditer(definition):
        pattern = _python_pattern(match.group(2).replace("''", "'"))
        if pattern is None:
            continue
        sign = match.group(1)
        flags = re.IGNORECASE if sign.endswith("*") else 0
        for output in outputs:
            found = re.search(pattern, output, flags) is not None
            if found == sign.startswith("!"):
                return True
    for match in _LENGTH.finditer(definition):
        compare, limit = _COMPARE[match.group(1)], int(match.group(2))
        if any(not compare(len(output), limit) for output in outputs):
            return True
    return False


def _python_pattern(posix: str) -> str | None:
    """The POSIX regular expression as Python reads it, or None when it may read otherwise."""
    if _POSIX_ONLY.search(posix):
        return None
    for name, chars in _CLASSES.items():
        posix = posix.replace(name, chars)
    try:
        re.compile(posix)
    except re.error:
        return None
    return posix
