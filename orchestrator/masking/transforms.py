"""Keyed, deterministic transforms: what a masked column's values become.

An output depends only on the key (MASK_KEY), the transform's name, its parameters and the
input value, never on the table or column, so a value masks the same way wherever it
appears and in every run; another key gives unrelated outputs.

Tokens come from a keyed PRF, PMAC-style on AES-256 (`_prf`): for each transform with its
parameters (its canonical spec), keyed BLAKE2b of the spec under MASK_KEY's root key gives
three AES-256 keys (`enc`, `off`, `fin`); a value `v` is encoded as its 4-byte big-endian
length followed by `v`, zero-padded to whole 16-byte blocks `M_i`; `S` is the XOR of
`AES_enc(M_i XOR AES_off(i))`, and token block `j` is `AES_fin(S XOR j)` (i and j as 16-byte
big-endian numbers). A transform takes as many token blocks as it needs.

Each token transform is built twice, with bit-identical results (tests hold them to it):
`apply` for one value, and `column` for many values at once, such as a block's column
(numpy, a few AES calls for the whole column).

Values travel as UTF-8 bytes (COPY text with the escapes undone), so the stream never
decodes what it does not have to. NULL stays NULL for every transform except `value`.
An empty string stays empty for the token transforms (it holds nothing to hide). Otherwise
an output never equals its input, except where the rule asks for a fixed output (`redact`,
`value`), for `infinity` under `date_shift`, and for JSON leaves no path reaches.
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime
import functools
import hashlib
import ipaddress
import itertools
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from orchestrator.errors import ConfigError
from orchestrator.masking import _array, _checks, _dates, _jsonpath, _scrub
from orchestrator.masking._names import FIRST_NAMES, LAST_NAMES
from orchestrator.masking._prf import Prf
from orchestrator.masking._vector import (
    Ints,
    Values,
    keep_mask,
    leading_mask,
    split_lines,
    split_rows,
    translate,
    values_of,
    windows,
)

if TYPE_CHECKING:  # pydantic stays out of the filter's start-up
    from orchestrator.schema_facts import Column

KEY_SETTING = "MASK_KEY"
MIN_KEY_LENGTH = 16
MAX_SHIFT_DAYS = 36525
DEFAULT_DOMAIN = "example.com"
DEFAULT_REDACTION = "REDACTED"
EMAIL_TOKEN_LENGTH = 26  # lowercase base32 characters, 5 bits each
MIN_EMAIL_TOKEN = 8
MIN_EMAIL_LENGTH = 20
MIN_HASH_LENGTH = 16
STRING_TRANSFORMS = ("email", "first_name", "last_name", "full_name", "phone", "hash", "redact")
DATE_TYPES = ("date", "timestamp", "timestamptz")
JSON_TYPES = ("json", "jsonb")
UNIQUE_SAFE = ("keep", "email", "hash", "permute")
INTEGER_TYPES = ("int2", "int4", "int8")
_SAME_FOR_ALL = "gives every row the same value, but the column is part of a unique key"
OTHER_STRINGS = ("keep", "scrub")

ValueFn = Callable[[bytes], bytes | None]


class ColumnFn(Protocol):
    """The outputs of many non-NULL values at once, exactly as `apply` gives them one by
    one; `found` is `values_of(values)` when the caller already has it."""

    def __call__(self, values: list[bytes], found: Values | None = None, /) -> list[bytes]: ...


_Many = Callable[[list[bytes], Values], list[bytes]]
_Build = Callable[["TransformSpec", "MaskKey", str, int | None], "Compiled"]


class SpecError(ValueError):
    """A column rule names no known transform or gives it wrong parameters."""


class TransformError(ValueError):
    """A value cannot be transformed; the message says why and never holds the value."""


@dataclass(frozen=True)
class TransformSpec:
    """A transform and its parameters, defaults filled in (so equal rules compare equal)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_rule(self) -> str | dict[str, Any]:
        """Give the spec as a rules file writes it: a bare name, or a mapping with params."""
        return {"transform": self.name, **self.params} if self.params else self.name

    def canonical(self) -> str:
        """Give the spec as canonical JSON text (what its keys are derived from)."""
        return json.dumps([self.name, self.params], sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """Give the spec for people: `email` or `date_shift (days: 30)`."""
        if not self.params:
            return self.name
        shown = ", ".join(f"{key}: {json.dumps(value)}" for key, value in self.params.items())
        return f"{self.name} ({shown})"

    @property
    def masks(self) -> bool:
        """Whether the transform changes values (everything but keep)."""
        return self.name != "keep"


@dataclass(frozen=True)
class Compiled:
    """A transform ready to run on one column's values.

    `apply` takes a non-NULL value and gives its output (None for NULL, only when
    `nullable`); `on_null` is the output for a NULL input (None: NULL stays NULL); `plain`
    says outputs never hold a backslash, tab, newline or carriage return, so they need no
    COPY escaping. `column`, when there is one, gives the outputs of many non-NULL values
    at once, exactly `[apply(value) for value in values]`, only faster; `filler` is a
    value it always takes without error, to stand in for values masked another way.
    `fixed` says every value and NULL alike give `on_null`. `column_plain` says that
    outputs of values without those bytes hold none either, so the column path applies to
    such values even when `plain` is False. `tally`, when there is one, counts the
    embedded items the transform replaced (scrub). `joined`, when there is one, gives
    the outputs of values without those bytes joined by newlines, from the values joined
    by newlines (one pass over a block's column). `splices`, when there is one, finds
    what to rewrite in the fields of a whole block of rows without taking the fields out:
    given the block and which offsets lie in the column's fields (fields without those
    bytes), it gives the spans to replace and their replacements, in order (scrub).
    """

    apply: ValueFn
    on_null: bytes | None = None
    plain: bool = False
    nullable: bool = False
    column: ColumnFn | None = None
    filler: bytes = b""
    fixed: bool = False
    column_plain: bool = False
    tally: Tally | None = None
    joined: Callable[[bytes], bytes] | None = None
    splices: Callable[[bytes, _scrub.Within], _scrub.Splices] | None = None


class Tally:
    """A count of items replaced, with the tallies of inner transforms (array elements,
    JSON leaves) added in `total`."""

    __slots__ = ("count", "parts")

    def __init__(self, parts: tuple[Tally, ...] = ()) -> None:
        self.count, self.parts = 0, parts

    def total(self) -> int:
        """Give the items counted here and in the inner tallies."""
        return self.count + sum(part.total() for part in self.parts)

    def reset(self) -> None:
        """Count from zero again, inner tallies included."""
        self.count = 0
        for part in self.parts:
            part.reset()


class MaskKey:
    """The secret every transform is keyed with; its repr never shows it."""

    __slots__ = ("_root",)

    def __init__(self, text: str) -> None:
        self._root = hashlib.blake2b(text.encode(), digest_size=32, person=b"mask-root").digest()

    def __repr__(self) -> str:
        return "MaskKey(***)"

    def prf(self, spec: TransformSpec) -> Prf:
        """Give the PRF of one transform with its parameters: three independent AES-256 keys,
        each keyed BLAKE2b of the canonical spec under the root key with its own tag."""
        domain = spec.canonical().encode()
        enc, off, fin = (
            hashlib.blake2b(domain, key=self._root, digest_size=32, person=tag).digest()
            for tag in (b"mask-prf-enc", b"mask-prf-off", b"mask-prf-fin")
        )
        return Prf(enc, off, fin)


def load_key(text: str | None, register: bool = True) -> MaskKey:
    """Give the MaskKey for the MASK_KEY setting and (with `register`) register it as a
    secret for the logs (the filter program does not: it masks its one error line itself).

    Raises ConfigError (naming MASK_KEY, never the key) when it is unset, blank or shorter
    than 16 characters.
    """
    if not text or not text.strip():
        raise ConfigError(f"{KEY_SETTING} is not set: masking needs a secret key")
    if len(text) < MIN_KEY_LENGTH:
        raise ConfigError(f"{KEY_SETTING} must be at least {MIN_KEY_LENGTH} characters long")
    if register:
        from orchestrator import logs  # structlog: 0.1 s of the filter program's start-up

        logs.register_secret(text)
    return MaskKey(text)


# --- rules: parsing and checking specs --------------------------------------------------


def parse_spec(raw: object) -> TransformSpec:
    """Give the spec of a column rule: a transform name, or a mapping with `transform:`.

    Raises SpecError for an unknown transform, unknown or missing parameters, or bad values.
    """
    if isinstance(raw, str):
        name, params = raw, {}
    elif isinstance(raw, Mapping) and isinstance(raw.get("transform"), str):
        name = raw["transform"]
        params = {key: value for key, value in raw.items() if key != "transform"}
    else:
        raise SpecError("a column rule is a transform name or a mapping with transform:")
    kind = _KINDS.get(name)
    if kind is None:
        raise SpecError(f"unknown transform {name!r} (known: {', '.join(sorted(_KINDS))})")
    if any(not isinstance(key, str) for key in params):
        raise SpecError(f"{name}: parameter names must be text")
    return TransformSpec(name, kind.params(name, params))


def fit_problem(spec: TransformSpec, column: Column, unique: bool = False) -> str | None:
    """Give why `spec` cannot apply to `column`, or None when it fits.

    `unique` says the column is part of a primary key or unique constraint or index:
    then only transforms that keep distinct values distinct (`unique_safe`) fit.
    """
    if column.generated and spec.masks:
        return "a generated column is computed on restore from other columns: only keep applies"
    misfit = _KINDS[spec.name].fits(spec, column, unique)
    if misfit is None and unique and not unique_safe(spec):
        return _not_unique_message(spec)
    if misfit is None and unique and spec.masks and column.collation == "other":
        return (
            "the column's nondeterministic collation finds values equal that differ in more "
            "than case (accents, punctuation): a key and its references would mask to "
            "different values (keep it, or give it a deterministic or case-only collation)"
        )
    if misfit is None and column.checks and spec.masks:
        return _check_problem(spec, column)
    return misfit


_PROBES = (b"someone@domain.example", b"x")  # inputs whose outputs show a transform's shape


def _check_problem(spec: TransformSpec, column: Column) -> str | None:
    """Why an output of `spec` breaks a CHECK of `column` (its domain's or its own), or
    None when none certainly does. Decided for the transforms whose outputs have one
    shape whatever the input (email, hash, redact, value: from probe inputs under a
    probe key); the others are left to the server at restore."""
    if spec.name not in ("email", "hash", "redact", "value") or spec.params.get("value", 0) is None:
        return None
    compiled = compile_spec(spec, _probe_key(), column.base_type, column.max_length)
    outputs = [out.decode() for probe in _PROBES if (out := compiled.apply(probe)) is not None]
    for definition in column.checks:
        if _checks.broken_by(definition, outputs):
            return f"gives values that the column's {definition} refuses"
    return None


@functools.cache
def _probe_key() -> MaskKey:
    return MaskKey("orchestrator-check-probe-key")


def unique_safe(spec: TransformSpec) -> bool:
    """Whether `spec` keeps distinct values distinct (so unique keys hold): keep, email,
    hash, and array or json transforms made only of those."""
    if spec.name in UNIQUE_SAFE:
        return True
    if spec.name == "array":
        return unique_safe(parse_spec(spec.params["each"]))
    if spec.name == "json":
        inner = [parse_spec(raw) for raw in spec.params["paths"].values()]
        return "other_strings" not in spec.params and all(map(unique_safe, inner))
    return False


def _not_unique_message(spec: TransformSpec) -> str:
    if spec.name == "set_null" or (spec.name == "value" and spec.params["value"] is None):
        return "gives every row NULL, but the column is part of a unique key"
    if spec.name in ("redact", "value"):
        return _SAME_FOR_ALL
    return (
        f"{spec.name} can give two rows the same value, but the column is part of a unique "
        "key (use hash, or email for e-mail addresses)"
    )


def compile_spec(
    spec: TransformSpec, key: MaskKey, base_type: str = "text", max_length: int | None = None
) -> Compiled:
    """Give `spec` ready to run on values of a column of `base_type` and `max_length`."""
    compiled = _KINDS[spec.name].build(spec, key, base_type, max_length)
    if base_type == "bpchar" and spec.name in STRING_TRANSFORMS:
        return _ignoring_padding(compiled)  # char(n) pads with blanks that carry no meaning
    if (fold := _FOLDS.get(base_type)) and spec.name in STRING_TRANSFORMS:
        return _ignoring_case(compiled, fold)  # keys equal to the server may differ in case
    return compiled


def apply_text(compiled: Compiled, value: str | None) -> str | None:
    """Give the output of `compiled` for a value as text (None for NULL); for tests and tools."""
    out = compiled.on_null if value is None else compiled.apply(value.encode())
    return None if out is None else out.decode()


def _ignoring_padding(compiled: Compiled) -> Compiled:
    apply, column = compiled.apply, compiled.column

    def unpadded(value: bytes) -> bytes | None:
        return apply(value.rstrip(b" "))

    def unpadded_column(values: list[bytes], _found: Values | None = None, /) -> list[bytes]:
        assert column is not None
        return column(list(map(bytes.rstrip, values, itertools.repeat(b" "))))

    return dataclasses.replace(
        compiled, apply=unpadded, column=None if column is None else unpadded_column
    )


def within_bytes(compiled: Compiled, limit: int) -> Compiled:
    """`compiled` with every output cut to at most `limit` bytes, at the start of a UTF-8
    character: a varchar(n) counts bytes in a database of one byte a character (SQL_ASCII),
    where an output cut to n characters may not fit."""
    apply, column, joined = compiled.apply, compiled.column, compiled.joined

    def cut(data: bytes) -> bytes:
        if len(data) <= limit:
            return data
        end = limit
        while end and 0x80 <= data[end] < 0xC0:  # a continuation byte: not a start
            end -= 1
        return data[:end]

    def applied(value: bytes) -> bytes | None:
        out = apply(value)
        return None if out is None else cut(out)

    def columned(values: list[bytes], found: Values | None = None, /) -> list[bytes]:
        assert column is not None
        return list(map(cut, column(values, found)))

    def joined_cut(text: bytes) -> bytes:
        assert joined is not None
        return b"\n".join(map(cut, joined(text).split(b"\n")))

    return dataclasses.replace(
        compiled,
        apply=applied,
        column=None if column is None else columned,
        joined=None if joined is None else joined_cut,
        splices=None,  # a rewrite in place cannot cut
    )


def _ignoring_case(compiled: Compiled, fold: Callable[[bytes], bytes]) -> Compiled:
    """`compiled` run on each value as `fold` writes it (in lower case, as citext compares
    values): 'Ann@X.example' referenced as 'ANN@x.example' masks alike, so the key holds."""
    apply, column = compiled.apply, compiled.column

    def lowered(value: bytes) -> bytes | None:
        return apply(fold(value))

    def lowered_column(values: list[bytes], _found: Values | None = None, /) -> list[bytes]:
        assert column is not None
        return column(list(map(fold, values)))

    return dataclasses.replace(
        compiled, apply=lowered, column=None if column is None else lowered_column
    )


def case_folded(value: bytes) -> bytes:
    """Give UTF-8 `value` in lower case (Unicode's), as citext compares it."""
    if value.isascii():
        return value.lower()
    return value.decode("utf-8", "surrogateescape").lower().encode("utf-8", "surrogateescape")


def caseless(value: bytes) -> bytes:
    """Give UTF-8 `value` case-folded and in NFKC form, as a case-insensitive ICU collation
    (und-u-ks-level2) compares values: 'Straße', 'STRASSE' and 'strasse' alike."""
    if value.isascii():
        return value.lower()
    text = value.decode("utf-8", "surrogateescape")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return folded.encode("utf-8", "surrogateescape")


def unpadded_text(value: bytes) -> bytes:
    """Give `value` without its trailing blanks, as char(n) compares it."""
    return value.rstrip(b" ")


def comparable(base_type: str) -> Callable[[bytes], bytes] | None:
    """Give what writes a value of `base_type` (COPY text, not NULL) so that values the
    type's equality finds equal are written alike: citext in lower case, a caseless
    collation's text case-folded, char(n) without its padding; None when equal values have
    one text form already."""
    return {**_FOLDS, "bpchar": unpadded_text}.get(base_type)


# the base types whose equality ignores case (schema_facts.CASELESS: a text column whose
# nondeterministic collation does) and how values are written alike for them
_FOLDS: dict[str, Callable[[bytes], bytes]] = {"citext": case_folded, "caseless": caseless}


# --- parameters -------------------------------------------------------------------------

_REQUIRED = object()
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


def _take(name: str, params: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(known))
    if unknown:
        allowed = ", ".join(known) if known else "none"
        raise SpecError(f"{name}: unknown parameter {unknown[0]!r} (allowed: {allowed})")
    taken = {key: params.get(key, default) for key, default in known.items()}
    missing = [key for key, value in taken.items() if value is _REQUIRED]
    if missing:
        raise SpecError(f"{name}: parameter {missing[0]!r} is required")
    return taken


def _no_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return _take(name, params, {})


def _email_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    taken = _take(name, params, {"domain": DEFAULT_DOMAIN})
    domain = taken["domain"]
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain.lower()):
        raise SpecError(f"{name}: domain must be a domain name like example.com")
    return {"domain": domain.lower()}


def _redact_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    taken = _take(name, params, {"text": DEFAULT_REDACTION})
    if not isinstance(taken["text"], str):
        raise SpecError(f"{name}: text must be text (quote it)")
    return taken


def _value_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"value": _json_value(name, _take(name, params, {"value": _REQUIRED})["value"])}


def _json_value(name: str, value: Any) -> Any:
    """YAML dates become ISO text; anything else must be plain JSON data."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        return [_json_value(name, item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: _json_value(name, item) for key, item in value.items()}
    raise SpecError(f"{name}: value must be text, a number, true/false, null, a list or a map")


def _shift_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    days = _take(name, params, {"days": _REQUIRED})["days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= MAX_SHIFT_DAYS:
        raise SpecError(f"{name}: days must be a whole number from 1 to {MAX_SHIFT_DAYS}")
    return {"days": days}


def _json_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    taken = _take(name, params, {"paths": {}, "other_strings": "keep"})
    paths, other = taken["paths"], taken["other_strings"]
    if other not in OTHER_STRINGS:
        raise SpecError(f"{name}: other_strings must be {' or '.join(OTHER_STRINGS)}")
    if not isinstance(paths, Mapping) or (not paths and other == "keep"):
        raise SpecError(f"{name}: paths must map JSON paths to transforms")
    normalized: dict[str, Any] = {}
    for path, raw in paths.items():
        if not isinstance(path, str) or "" in path.split("."):
            raise SpecError(f"{name}: path {path!r} must be dot-separated keys, like a.b.*")
        normalized[path] = _inner_rule(f"{name}: path {path}", raw, _NOT_IN_JSON)
    return {"paths": normalized, **({"other_strings": other} if other != "keep" else {})}


def _scrub_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return _email_params(name, params)


def _array_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    raw = _take(name, params, {"each": _REQUIRED})["each"]
    return {"each": _inner_rule(f"{name}: each", raw, _NOT_IN_ARRAY)}


_NOT_IN_JSON = {
    "json": "json cannot be nested",
    "array": "array applies to array columns only",
}
_NOT_IN_ARRAY = {"array": "arrays of arrays are one array (give the element's)"}


def _inner_rule(where: str, raw: object, refused: Mapping[str, str]) -> dict[str, Any]:
    """Give the rule of a transform inside another (a JSON path's, an array's elements')
    with its defaults; SpecError prefixed with `where` when it is bad or `refused` there."""
    try:
        inner = parse_spec(raw)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if inner.name in refused:
        raise SpecError(f"{where}: {refused[inner.name]}")
    return {"transform": inner.name, **inner.params}


# --- fitting a column -------------------------------------------------------------------


def _fits_any(_spec: TransformSpec, _column: Column, _unique: bool) -> str | None:
    return None


def _fits_set_null(spec: TransformSpec, column: Column, _unique: bool) -> str | None:
    return f"{spec.name} on a NOT NULL column" if column.not_null else None


def _fits_text(spec: TransformSpec, column: Column, unique: bool) -> str | None:
    if spec.name == "redact" and column.base_type == "bytea":
        return _fits_fixed(spec.params["text"], column, unique)
    if column.category != "S":
        return f"{spec.name} needs a text column, not {column.type}"
    needed = _email_length(spec) if spec.name == "email" else None
    needed = MIN_HASH_LENGTH if spec.name == "hash" else needed
    if needed is not None and column.max_length is not None and column.max_length < needed:
        return f"{spec.name} needs a column of at least {needed} characters, not {column.type}"
    if spec.name == "redact":
        return _fits_fixed(spec.params["text"], column, unique)
    return None


def _fits_scrub(spec: TransformSpec, column: Column, _unique: bool) -> str | None:
    # a composite type's text: its items hold no quote, comma or parenthesis, nor do their
    # replacements, so the record stays valid
    if column.category not in ("S", "C") and column.base_type != "bytea":
        return f"{spec.name} needs a text or bytea column (or a composite type), not {column.type}"
    return None


_ELEMENT_CATEGORIES = {
    **dict.fromkeys(("text", "varchar", "bpchar", "citext", "name"), "S"),
    **dict.fromkeys(("int2", "int4", "int8", "numeric", "float4", "float8"), "N"),
    **dict.fromkeys(DATE_TYPES, "D"),
    "bool": "B",
    "inet": "I",
    "cidr": "I",
}


def element_column(column: Column) -> Column:
    """Give the column an element of array `column` would be (its type, length)."""
    base = column.base_type[1:] if column.base_type.startswith("_") else column.base_type
    shown = column.type[:-2] if column.type.endswith("[]") else column.type
    category = _ELEMENT_CATEGORIES.get(base, "U")
    update = {"type": shown, "base_type": base, "category": category, "not_null": False}
    return column.model_copy(update=update)


def _fits_array(spec: TransformSpec, column: Column, unique: bool) -> str | None:
    if column.category != "A":
        return f"{spec.name} needs an array column, not {column.type}"
    misfit = fit_problem(parse_spec(spec.params["each"]), element_column(column), unique)
    return None if misfit is None else f"each: {misfit}"


def _email_length(spec: TransformSpec) -> int:
    return max(MIN_EMAIL_LENGTH, MIN_EMAIL_TOKEN + 1 + len(spec.params["domain"]))


def _fits_fixed(text: str, column: Column, unique: bool) -> str | None:
    if column.max_length is not None and len(text) > column.max_length:
        return f"the text is longer than {column.type} allows"
    if unique:
        return _SAME_FOR_ALL
    return None


def _fits_type(names: tuple[str, ...]) -> Callable[[TransformSpec, Column, bool], str | None]:
    def fits(spec: TransformSpec, column: Column, _unique: bool) -> str | None:
        if column.base_type not in names:
            return f"{spec.name} needs a column of type {' or '.join(names)}, not {column.type}"
        return None

    return fits


def _fits_value(spec: TransformSpec, column: Column, unique: bool) -> str | None:
    value = spec.params["value"]
    if value is None:
        return _fits_set_null(spec, column, unique)
    if column.base_type in JSON_TYPES:
        return _SAME_FOR_ALL if unique else None
    if isinstance(value, list | dict):
        return f"a list or map value fits only a json or jsonb column, not {column.type}"
    try:
        text = _value_text(value, column.base_type)
    except ValueError as exc:
        return f"value does not fit {column.type}: {exc}"
    if column.labels and text not in column.labels:
        return f"value {text!r} is not a label of {column.type} ({', '.join(column.labels)})"
    if column.category == "S":
        return _fits_fixed(text, column, unique)
    if unique:
        return _SAME_FOR_ALL
    return None


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|[+-]?Infinity")
_INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_INT_LIMITS = {name: (-limit, limit - 1) for name, limit in _INT_RANGES.items()}
_BOOLEANS = {"t": True, "true": True, "y": True, "yes": True, "on": True, "1": True}
_BOOLEANS |= {"f": False, "false": False, "n": False, "no": False, "off": False, "0": False}


def _value_text(value: str | bool | int | float, base_type: str) -> str:
    """Give the COPY text of a fixed value for `base_type`; ValueError when it cannot be one."""
    if base_type == "bool":
        flag = value if isinstance(value, bool) else _BOOLEANS.get(str(value).strip().lower())
        if flag is None:
            raise ValueError("not true or false")
        return "t" if flag else "f"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    check = _VALUE_CHECKS.get(base_type)
    return text if check is None else check(text)


def _check_int(base_type: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not _INTEGER.fullmatch(text.strip()):
            raise ValueError("not a whole number")
        number = int(text.strip())
        if not -_INT_RANGES[base_type] <= number < _INT_RANGES[base_type]:
            raise ValueError("out of range")
        return str(number)

    return check


def _check_number(text: str) -> str:
    if not _NUMBER.fullmatch(text.strip()):
        raise ValueError("not a number")
    return text.strip()


def _check_date(text: str) -> str:
    try:
        _dates.shift(text.strip().encode(), 0)
    except _dates.NotADate:
        raise ValueError("not a date in YYYY-MM-DD form") from None
    return text.strip()


def _check_uuid(text: str) -> str:
    return str(uuid.UUID(text))


def _check_inet(text: str) -> str:
    return str(ipaddress.ip_interface(text.strip()))


_VALUE_CHECKS: dict[str, Callable[[str], str]] = {
    **{name: _check_int(name) for name in _INT_RANGES},
    "numeric": _check_number,
    "float4": _check_number,
    "float8": _check_number,
    **{name: _check_date for name in DATE_TYPES},
    "uuid": _check_uuid,
    "inet": _check_inet,
    "cidr": _check_inet,
}


# --- building ---------------------------------------------------------------------------

_BASE32 = bytes(b"abcdefghijklmnopqrstuvwxyz234567"[byte & 31] for byte in range(256))
_DIGITS = bytes(b"0123456789"[byte % 10] for byte in range(256))
_SEPARATORS = b" +-.()/"  # what phone keeps in place; every other byte becomes a digit
_PHONE_LAYOUT = bytes(byte if byte in _SEPARATORS else ord("X") for byte in range(256))
_FIRST_DIGIT = bytes(  # a phone number rarely starts with 0 after its + or bracket
    ord("1") + byte % 9 if byte % 10 == 0 else _DIGITS[byte] for byte in range(256)
)
_DIGIT_FLAGS = bytes(byte not in _SEPARATORS + b"\n" for byte in range(256))
SHIFT_MEMO = 1 << 16  # dates shifted, remembered per column (least recently used dropped)
BLOCK_DIGITS = 16  # token digits in one PRF block
COLUMN_PHONE_DIGITS = 2 * BLOCK_DIGITS  # phone values with more take the one-value path


def _build_keep(_spec: TransformSpec, _key: MaskKey, _type: str, _max: int | None) -> Compiled:
    return Compiled(lambda value: value)


def _build_set_null(_spec: TransformSpec, _key: MaskKey, _type: str, _max: int | None) -> Compiled:
    return Compiled(lambda _value: None, plain=True, nullable=True, fixed=True)


def _build_email(spec: TransformSpec, key: MaskKey, _type: str, max_length: int | None) -> Compiled:
    """`<token>@<domain>`: each token character is the low 5 bits of one token byte, so
    26 characters carry 130 bits; a short column gets a shorter token."""
    domain: str = spec.params["domain"]
    suffix = b"@" + domain.encode()
    length = EMAIL_TOKEN_LENGTH if max_length is None else max_length - len(suffix)
    length = min(EMAIL_TOKEN_LENGTH, length)
    if length < 1:
        raise SpecError(f"email: a column of {max_length} characters cannot hold an address")
    prf = key.prf(spec)

    def email(value: bytes) -> bytes:
        if not value:
            return value
        token = prf.token(value, 2)
        out = token[:length].translate(_BASE32) + suffix
        while out == value:
            token = prf.token(token, 2)
            out = token[:length].translate(_BASE32) + suffix
        return out

    tail = np.frombuffer(suffix + b"\n", np.uint8)

    def emails(values: list[bytes], found: Values) -> list[bytes]:
        lines = np.empty((len(found), length + len(tail)), np.uint8)
        lines[:, :length] = translate(prf.tokens(found, 2)[:, :length], _BASE32)
        lines[:, length:] = tail
        return _never_the_input(split_lines(lines), values, found, email)

    return Compiled(email, plain=True, column=_columnwise(email, emails))


def _build_hash(spec: TransformSpec, key: MaskKey, _type: str, max_length: int | None) -> Compiled:
    """The 128-bit token in lowercase hex, cut to the column."""
    prf = key.prf(spec)
    length = 32 if max_length is None else min(32, max_length)

    def hash_(value: bytes) -> bytes:
        if not value:
            return value
        token = prf.token(value, 1)
        out = binascii.hexlify(token)[:length]
        while out == value:
            token = prf.token(token, 1)
            out = binascii.hexlify(token)[:length]
        return out

    def hashes(values: list[bytes], found: Values) -> list[bytes]:
        hexed = np.frombuffer(binascii.hexlify(prf.tokens(found, 1).data), np.uint8).reshape(-1, 32)
        return _never_the_input(split_rows(hexed[:, :length]), values, found, hash_)

    return Compiled(hash_, plain=True, column=_columnwise(hash_, hashes))


def _columnwise(one: Callable[[bytes], bytes], many: _Many) -> ColumnFn:
    """Give the column function of a transform from its one-value and its column paths:
    values that cannot form a column (one holds a newline) go one by one."""

    def column(values: list[bytes], found: Values | None = None, /) -> list[bytes]:
        if not values:
            return []
        found = values_of(values) if found is None else found
        return list(map(one, values)) if found is None else many(values, found)

    return column


def _never_the_input(
    outputs: list[bytes], values: list[bytes], found: Values, one: Callable[[bytes], bytes]
) -> list[bytes]:
    """Give the column outputs of a fixed-length transform with empty values kept empty and
    any output equal to its input re-derived (by `one`, the one-value path, which does it)."""
    size = len(outputs[0]) if outputs else 0
    for index in np.flatnonzero((found.lengths == 0) | (found.lengths == size)).tolist():
        if outputs[index] == values[index] or not values[index]:
            outputs[index] = one(values[index])
    return outputs


def _fitting(names: tuple[str, ...], max_length: int | None) -> tuple[bytes, ...]:
    """The names that fit the column, or all of them cut to fit when none does."""
    encoded = tuple(name.encode() for name in names)
    if max_length is None:
        return encoded
    fit = tuple(name for name in encoded if len(name) <= max_length)
    return fit or tuple(name[:max_length] for name in encoded)


def _first_names(max_length: int | None) -> tuple[bytes, ...]:
    return _fitting(FIRST_NAMES, max_length)


def _last_names(max_length: int | None) -> tuple[bytes, ...]:
    return _fitting(LAST_NAMES, max_length)


def _full_names(max_length: int | None) -> tuple[bytes, ...]:
    """Every "First Last" that fits the column (about 29,000 without a limit); in a column
    too short for any, first names alone."""
    room = 1 << 30 if max_length is None else max_length
    names = tuple(
        pair
        for first in FIRST_NAMES
        for last in LAST_NAMES
        if len(pair := f"{first} {last}".encode()) <= room
    )
    return names or _fitting(FIRST_NAMES, max_length)


_LOWER = bytes(range(256)).lower()


class _Lowered:
    """The choices of a name transform in lowercase, as an array padded with zeros."""

    def __init__(self, choices: tuple[bytes, ...]) -> None:
        self.width = max(len(choice) for choice in choices)
        self.sizes = np.array([len(choice) for choice in choices])
        self.rows = np.frombuffer(
            b"".join(choice.lower().ljust(self.width, b"\0") for choice in choices), np.uint8
        ).reshape(len(choices), self.width)


def _same_names(found: Values, indexes: Ints, lowered: _Lowered) -> Ints:
    """Which values are, whatever the case, the choice at their index (so they take the
    next one): checked only where the lengths agree."""
    candidates: Ints = np.flatnonzero(lowered.sizes.take(indexes) == found.lengths)
    if not len(candidates):
        return candidates
    lengths = found.lengths[candidates]
    got = translate(windows(found, lowered.width, rows=candidates), _LOWER)
    got = got & keep_mask(lowered.width).take(lengths, 0)
    same = (got == lowered.rows.take(indexes[candidates], 0)).all(axis=1)
    same_ones: Ints = candidates[same]
    return same_ones


@functools.cache
def _name_choices(
    choose: Callable[[int | None], tuple[bytes, ...]], max_length: int | None
) -> tuple[tuple[bytes, ...], npt.NDArray[np.object_], _Lowered]:
    """The choices of a name transform for a column of `max_length`, as a tuple, an object
    array and lowercased (all read-only): built once per process, not once per column (the
    full names are about 29,000, and one filter compiles the plans of many tables)."""
    choices = choose(max_length)
    table = np.empty(len(choices), dtype=object)
    table[:] = choices
    return choices, table, _Lowered(choices)


def _build_name(choose: Callable[[int | None], tuple[bytes, ...]]) -> _Build:
    """A name from the choices that fit the column, picked by the first 8 token bytes (as a
    big-endian number, modulo the count); the next one when it is the input, whatever the
    case."""

    def build(spec: TransformSpec, key: MaskKey, _type: str, max_length: int | None) -> Compiled:
        choices, table, lowered = _name_choices(choose, max_length)
        count, prf = len(choices), key.prf(spec)

        def name(value: bytes) -> bytes:
            if not value:
                return value
            index = int.from_bytes(prf.token(value, 1)[:8]) % count
            out = choices[index]
            if len(out) == len(value) and out.lower() == value.lower():
                out = choices[(index + 1) % count]
            return out

        def names(values: list[bytes], found: Values) -> list[bytes]:
            numbers = prf.tokens(found, 1).view(">u8")[:, 0]
            indexes = (numbers % np.uint64(count)).astype(np.int64)
            outputs: list[bytes] = table.take(indexes).tolist()
            for index in _same_names(found, indexes, lowered).tolist():
                outputs[index] = choices[(indexes[index] + 1) % count]
            for index in np.flatnonzero(found.lengths == 0).tolist():
                outputs[index] = b""
            return outputs

        return Compiled(name, plain=True, column=_columnwise(name, names))

    return build


def _build_phone(spec: TransformSpec, key: MaskKey, _type: str, max_length: int | None) -> Compiled:
    """Digits (and any letters) become token digits, the k-th digit position taking the k-th
    token byte modulo 10 (the first never 0); spaces and `+-.()/` stay in place."""
    prf = key.prf(spec)
    templates: dict[bytes, tuple[bytes, int]] = {}

    def phone(value: bytes) -> bytes:
        if not value:
            return value
        layout = value.translate(_PHONE_LAYOUT)
        template = templates.get(layout)
        if template is None:
            template = _phone_template(layout)
            if len(templates) >= 4096:
                templates.clear()
            templates[layout] = template
        slots, count = template
        blocks = max(1, -(-count // 16))
        token = prf.token(value, blocks)
        out = _phone_fill(slots, count, token)
        while out == value:
            token = prf.token(token, blocks)
            out = _phone_fill(slots, count, token)
        return out[:max_length]

    def phones(values: list[bytes], found: Values) -> list[bytes]:
        outputs, others = _phone_column(found, prf, max_length)
        for index in others:
            outputs[index] = phone(values[index])
        return outputs

    return Compiled(phone, plain=True, column=_columnwise(phone, phones))


_IDENTITY = bytes(range(256))
_SLOT = 0x80  # in a template, the n-th digit position is the byte 0x80 + n
_SLOTS = 128  # positions past these stay b"X" in the template and are filled one by one
_X = ord("X")


def _phone_template(layout: bytes) -> tuple[bytes, int]:
    """Give the layout with its digit positions numbered as slot bytes, and their count."""
    if b"X" not in layout:  # only separators: every character becomes a digit
        layout = b"X" * len(layout)
    slots, count = bytearray(layout), 0
    for position, byte in enumerate(layout):
        if byte == _X:
            if count < _SLOTS:
                slots[position] = _SLOT + count
            count += 1
    return bytes(slots), count


def _phone_fill(slots: bytes, count: int, token: bytes) -> bytes:
    """Give the template with its digit positions filled from `token`: one `translate` for
    the first 128 (far cheaper than formatting digit by digit)."""
    digits = token[:1].translate(_FIRST_DIGIT) + token[1:count].translate(_DIGITS)
    first = digits[:_SLOTS]
    out = slots.translate(_IDENTITY[:_SLOT] + first + _IDENTITY[_SLOT + len(first) :])
    if count <= _SLOTS:
        return out
    rest = iter(digits[_SLOTS:])
    return bytes(next(rest) if byte == _X else byte for byte in out)


def _phone_column(found: Values, prf: Prf, limit: int | None) -> tuple[list[bytes], list[int]]:
    """The phone outputs of a column, and the indexes of those the one-value path must
    make instead: outputs equal to their input (to derive again), values with more than
    COLUMN_PHONE_DIGITS digit positions or only separators, values longer than `limit`
    (bytes, to be cut).

    Works on the joined values: the positions of every digit, value after value, take the
    token digits each value uses, laid end to end in the same order.
    """
    start, stop = int(found.starts[0]), int(found.ends[-1]) + 1
    body = found.text[start:stop]
    flags = np.frombuffer(body.translate(_DIGIT_FLAGS), np.bool_)
    positions = np.flatnonzero(flags)  # of every digit, value after value
    starts, ends = found.starts - start, found.ends - start
    counts = np.add.reduceat(flags.view(np.uint8), starts, dtype=np.int32)
    long = counts > COLUMN_PHONE_DIGITS
    others = ((counts == 0) & (found.lengths > 0)) | long
    if limit is not None:
        others |= found.lengths > limit
    if long.any():  # their digits are left out, so as not to shift the others'
        flags = flags.copy()
        for index in np.flatnonzero(long).tolist():
            flags[int(found.starts[index]) - start : int(ends[index])] = False
        positions, counts = np.flatnonzero(flags), np.where(long, 0, counts)
    text = np.frombuffer(body, np.uint8)
    if not len(positions):
        return split_lines(body), np.flatnonzero(others).tolist()
    blocks = 2 if int(counts.max()) > BLOCK_DIGITS else 1
    tokens = prf.tokens(found, blocks)
    used = translate(tokens, _DIGITS)[leading_mask(blocks * BLOCK_DIGITS).take(counts, 0)]
    some = counts > 0
    firsts = (np.cumsum(counts) - counts)[some]  # where each value's digits start in `used`
    used[firsts] = translate(tokens[some, 0], _FIRST_DIGIT)
    out = text.copy()
    out[positions] = used
    others |= ~np.logical_or.reduceat(out != text, starts) & some  # the input: derive anew
    return split_lines(out), np.flatnonzero(others).tolist()


def _build_redact(
    spec: TransformSpec, _key: MaskKey, base_type: str, max_length: int | None
) -> Compiled:
    text = spec.params["text"][:max_length].encode()
    if base_type == "bytea":
        text = bytea_text(text)

    def texts(values: list[bytes], _found: Values | None = None, /) -> list[bytes]:
        return [text] * len(values)

    return Compiled(lambda _value: text, plain=_is_plain(text), column=texts)


def _build_value(spec: TransformSpec, key: MaskKey, base_type: str, max_: int | None) -> Compiled:
    value = spec.params["value"]
    if value is None:
        return _build_set_null(spec, key, base_type, max_)
    if base_type in JSON_TYPES or isinstance(value, list | dict):
        text = _jsonpath.dump(value)
    else:
        text = _value_text(value, base_type)
    out = text.encode()
    return Compiled(lambda _value: out, on_null=out, plain=_is_plain(out), fixed=True)


def _is_plain(text: bytes) -> bool:
    return not any(char in text for char in (b"\\", b"\t", b"\n", b"\r"))


FEISTEL_ROUNDS = 6


def _build_permute(spec: TransformSpec, key: MaskKey, base_type: str, _max: int | None) -> Compiled:
    """A keyed permutation of the integers with the same sign and number of digits that
    fit the type: within each such class (`[10^(k-1), 10^k - 1]` cut to the type's range,
    0..9 for one digit), `P^-1((P(x) + 1) mod N)` where P is a Feistel permutation of the
    class (the PRF as round function, cycle-walking into the class). One cycle through
    the whole class: distinct stays distinct (keys hold) and no value maps to itself."""
    lowest, highest = _INT_LIMITS[base_type]
    prf = key.prf(spec)

    def permute(value: bytes) -> bytes:
        try:
            number = int(value)
        except ValueError:
            raise TransformError("not a whole number") from None
        if not lowest <= number <= highest:
            raise TransformError("out of the column type's range")
        size = abs(number)
        digits = len(str(size))
        floor = 0 if digits == 1 and number >= 0 else 1 if digits == 1 else 10 ** (digits - 1)
        ceiling = min(10**digits - 1, highest if number >= 0 else -lowest)
        cycle = _Cycle(prf, ceiling - floor + 1, bytes((digits, number < 0)))
        out = floor + cycle.next(size - floor)
        return str(-out if number < 0 else out).encode()

    return Compiled(permute, plain=True)


class _Cycle:
    """A keyed permutation P of [0, count) and the cycle `P^-1(P(x) + 1 mod count)`."""

    def __init__(self, prf: Prf, count: int, tweak: bytes) -> None:
        self.prf, self.count, self.tweak = prf, count, tweak
        self.half = max(1, -(-(count - 1).bit_length() // 2))
        self.mask = (1 << self.half) - 1

    def next(self, x: int) -> int:
        """Give the element after `x` on the cycle."""
        if self.count < 2:
            return x
        return self._walk(self._inverse, (self._walk(self._forward, x) + 1) % self.count)

    def _walk(self, step: Callable[[int], int], x: int) -> int:
        x = step(x)
        while x >= self.count:  # cycle-walking: at most 4 steps on average
            x = step(x)
        return x

    def _round(self, number: int, half: int) -> int:
        block = self.prf.block(self.tweak + bytes((number,)) + half.to_bytes(15 - len(self.tweak)))
        return int.from_bytes(block[:8]) & self.mask

    def _forward(self, x: int) -> int:
        left, right = x >> self.half, x & self.mask
        for number in range(FEISTEL_ROUNDS):
            left, right = right, left ^ self._round(number, right)
        return (left << self.half) | right

    def _inverse(self, x: int) -> int:
        left, right = x >> self.half, x & self.mask
        for number in reversed(range(FEISTEL_ROUNDS)):
            left, right = right ^ self._round(number, left), left
        return (left << self.half) | right


def _build_date_shift(spec: TransformSpec, key: MaskKey, _type: str, _max: int | None) -> Compiled:
    """Move the date by an offset in [-days, -1] or [1, days], chosen by the value's token."""
    days = spec.params["days"]
    prf = key.prf(spec)

    def date_shift(value: bytes) -> bytes:
        number = int.from_bytes(prf.token(value, 1)[:8]) % (2 * days)
        return _shifted(value, number - days + (number >= days))

    remembered = functools.lru_cache(maxsize=SHIFT_MEMO)(_shifted)  # birth dates repeat

    def date_shifts(values: list[bytes], found: Values) -> list[bytes]:
        numbers = prf.tokens(found, 1).view(">u8")[:, 0] % np.uint64(2 * days)
        offsets = numbers.astype(np.int64) - days + (numbers >= days)
        plain = _dates.shift_plain_dates(values, offsets)  # a column of plain dates at once
        return plain if plain is not None else list(map(remembered, values, offsets.tolist()))

    column = _columnwise(date_shift, date_shifts)
    return Compiled(date_shift, plain=True, column=column, filler=b"infinity")


def _shifted(value: bytes, offset: int) -> bytes:
    """Give `value` with its date moved by `offset` days; TransformError when it is not a
    date or timestamp in ISO form."""
    try:
        return _dates.shift(value, offset)
    except _dates.NotADate as exc:
        raise TransformError(str(exc)) from None


def _build_json(spec: TransformSpec, key: MaskKey, _type: str, _max: int | None) -> Compiled:
    tallies: list[Tally] = []
    paths = [
        (tuple(path.split(".")), _json_leaf(parse_spec(inner), key, path, tallies))
        for path, inner in spec.params["paths"].items()
    ]
    other = None
    if spec.params.get("other_strings") == "scrub":
        scrub = _scrubber(key, DEFAULT_DOMAIN)
        tallies.append(scrub.tally)
        other = scrub.text

    def json_(value: bytes) -> bytes:
        try:
            document = _jsonpath.parse(value.decode())
            document = _jsonpath.rewrite_all(document, paths, other)
            return _jsonpath.dump(document).encode()
        except UnicodeDecodeError:
            raise TransformError("not valid UTF-8") from None
        except _jsonpath.InvalidJson as exc:
            raise TransformError(str(exc)) from None
        except RecursionError:
            raise TransformError("JSON nested too deeply") from None

    return Compiled(json_, tally=Tally(tuple(tallies)) if tallies else None)


def _json_leaf(
    spec: TransformSpec, key: MaskKey, path: str, tallies: list[Tally]
) -> Callable[[Any], Any]:
    """What one path does to each leaf it reaches: JSON null stays null (except under
    `value`); a string transform on a number or true/false works on its JSON text. A
    value it cannot take is a TransformError naming the path."""
    if spec.name == "keep":
        return lambda leaf: leaf
    if spec.name == "value":
        return lambda _leaf: spec.params["value"]
    compiled = compile_spec(spec, key)
    apply = compiled.apply
    if compiled.tally is not None:
        tallies.append(compiled.tally)

    def leaf(node: Any) -> Any:
        if node is None:
            return None
        text = node if type(node) is str else _jsonpath.dump(node)
        try:
            out = apply(text.encode())
        except TransformError as exc:
            raise TransformError(f"json path {path}: {exc}") from None
        return None if out is None else out.decode()

    return leaf


# --- scrub: items embedded in text ---------------------------------------------------------


@dataclass(frozen=True)
class _Scrubber:
    """Texts with their embedded items replaced, and the tally of items replaced."""

    scrub: _scrub.Scrub
    tally: Tally

    def text(self, text: str) -> str:
        """Give `text` scrubbed, counting its items in the tally."""
        return self.data(text.encode()).decode()

    def data(self, data: bytes) -> bytes:
        """Give UTF-8 `data` scrubbed (texts joined by newlines may go at once)."""
        before = self.scrub.found
        out = self.scrub.data(data)
        self.tally.count += self.scrub.found - before
        return out

    def within(self, data: bytes, within: _scrub.Within) -> _scrub.Splices:
        """Give the items of `data` that start where `within` says, and what each becomes
        (`Scrub.within`), counting them in the tally."""
        before = self.scrub.found
        found = self.scrub.within(data, within)
        self.tally.count += self.scrub.found - before
        return found


def _scrubber(key: MaskKey, domain: str) -> _Scrubber:
    """The scrubber under `key`: an e-mail becomes what `email` (with `domain`, in an
    unbounded column) gives for it and a phone number what `phone` gives, so a scrubbed
    item matches the same value masked in a column; IBANs, card numbers and IP addresses
    get token-made values of the same kind (see `_item_replacer`)."""
    email = compile_spec(TransformSpec("email", {"domain": domain}), key).column
    phone = compile_spec(TransformSpec("phone"), key).column
    assert email is not None and phone is not None
    iban, card, ip = (_item_replacer(key, kind, make) for kind, make in _FAKES.items())
    replacers = _scrub.Replacers(email, phone, iban, card, ip)
    return _Scrubber(_scrub.Scrub(replacers), Tally())


def _item_replacer(
    key: MaskKey, kind: str, make: Callable[[str, bytes], str]
) -> Callable[[list[bytes]], list[bytes]]:
    """Items of `kind` made anew from their tokens (`make`), derived again from the
    token while the output equals the item."""
    prf = key.prf(TransformSpec("scrub", {"item": kind}))

    def replace(item: bytes) -> bytes:
        text = item.decode()
        token = prf.token(item, 2)
        out = make(text, token)
        while out == text:
            token = prf.token(token, 2)
            out = make(text, token)
        return out.encode()

    return lambda items: list(map(replace, items))


def _fake_iban(item: str, token: bytes) -> str:
    body = iter(token[2:] * 2)
    chars = [
        chr(48 + next(body) % 10)
        if char.isdigit()
        else chr(65 + next(body) % 26)
        if char != " "
        else " "
        for char in item[4:]
    ]
    bban = "".join(chars)
    check = 98 - _scrub.iban_remainder(bban.replace(" ", "") + item[:2] + "00")
    return f"{item[:2]}{check:02d}{bban}"


def _fake_card(item: str, token: bytes) -> str:
    digits = iter(token)
    out = [item[0]] + [chr(48 + next(digits) % 10) if char.isdigit() else char for char in item[1:]]
    places = [i for i, char in enumerate(out) if char.isdigit()]
    out[places[-1]] = "0"
    body = "".join(out[i] for i in places)
    out[places[-1]] = str((10 - _scrub.luhn_sum(body)) % 10)
    return "".join(out)


def _fake_ip(item: str, token: bytes) -> str:
    if ":" in item:
        return str(ipaddress.IPv6Address(b"\xfd" + token[1:16]))
    return f"10.{token[0]}.{token[1]}.{token[2]}"


_FAKES: dict[str, Callable[[str, bytes], str]] = {
    "iban": _fake_iban,
    "card": _fake_card,
    "ip": _fake_ip,
}


def _build_scrub(
    spec: TransformSpec, key: MaskKey, base_type: str, max_length: int | None
) -> Compiled:
    """Every embedded item replaced, the rest of the text kept; cut to the column's
    length in characters. On bytea, the bytes are read as UTF-8 text and written back as
    hex; bytes that are not UTF-8 text are a TransformError (fail closed)."""
    scrubber = _scrubber(key, spec.params["domain"])

    def cut(data: bytes) -> bytes:
        if max_length is None or len(data) <= max_length:
            return data
        # varchar(n) counts characters; a byte that is no UTF-8 (a SQL_ASCII database's)
        # counts as one
        text = data.decode("utf-8", "surrogateescape")
        return text[:max_length].encode("utf-8", "surrogateescape")

    if base_type == "bytea":

        def scrub_bytea(value: bytes) -> bytes:
            try:
                text = bytea_bytes(value).decode()
            except UnicodeDecodeError:
                raise TransformError(
                    "bytea value is not UTF-8 text: scrub cannot read it (use redact or set_null)"
                ) from None
            return bytea_text(cut(scrubber.text(text).encode()))

        return Compiled(scrub_bytea, tally=scrubber.tally)

    def scrub(value: bytes) -> bytes:
        return cut(scrubber.data(value))

    def scrubs(values: list[bytes], _found: Values | None = None, /) -> list[bytes]:
        if not values:
            return []
        outputs = split_lines(scrubber.data(b"\n".join(values)) + b"\n")
        return outputs if max_length is None else list(map(cut, outputs))

    def joined(text: bytes) -> bytes:
        out = scrubber.data(text)
        return out if max_length is None else b"\n".join(map(cut, out.split(b"\n")))

    return Compiled(
        scrub,
        column=scrubs,
        column_plain=True,
        tally=scrubber.tally,
        joined=joined,
        splices=scrubber.within if max_length is None else None,  # an item may grow
    )


def bytea_bytes(value: bytes) -> bytes:
    """Give the bytes of a bytea value as COPY text holds it (escapes undone): hex
    (`\\x4142`) or the older escape form (`AB`, `\\101`, `\\\\`). ValueError when
    it is neither."""
    if value.startswith(b"\\x"):
        return bytes.fromhex(value[2:].decode("ascii"))
    return _BYTEA_ESCAPE.sub(_bytea_escaped, value)


_BYTEA_ESCAPE = re.compile(rb"\\([0-7]{3}|\\)")


def _bytea_escaped(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    return b"\\" if code == b"\\" else bytes((int(code, 8),))


def bytea_text(data: bytes) -> bytes:
    """Give `data` as a bytea value in hex form (before COPY escaping)."""
    return b"\\x" + binascii.hexlify(data)


# --- arrays -------------------------------------------------------------------------------


def _build_array(
    spec: TransformSpec, key: MaskKey, base_type: str, max_length: int | None
) -> Compiled:
    """Each element through the `each` transform (NULL elements stay NULL), the array
    written back with every element quoted."""
    element = base_type[1:] if base_type.startswith("_") else base_type
    inner = compile_spec(parse_spec(spec.params["each"]), key, element, max_length)
    apply = inner.apply

    def element_of(value: bytes) -> bytes | None:
        return apply(value)

    def array(value: bytes) -> bytes:
        try:
            prefix, elements = _array.parse(value)
        except _array.InvalidArray as exc:
            raise TransformError(str(exc)) from None
        return _array.dump(prefix, _array.map_elements(elements, element_of))

    tally = None if inner.tally is None else Tally((inner.tally,))
    return Compiled(array, tally=tally)


# --- the registry -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    params: Callable[[str, Mapping[str, Any]], dict[str, Any]]
    fits: Callable[[TransformSpec, Column, bool], str | None]
    build: Callable[[TransformSpec, MaskKey, str, int | None], Compiled]


_KINDS: dict[str, _Kind] = {
    "keep": _Kind(_no_params, _fits_any, _build_keep),
    "set_null": _Kind(_no_params, _fits_set_null, _build_set_null),
    "email": _Kind(_email_params, _fits_text, _build_email),
    "first_name": _Kind(_no_params, _fits_text, _build_name(_first_names)),
    "last_name": _Kind(_no_params, _fits_text, _build_name(_last_names)),
    "full_name": _Kind(_no_params, _fits_text, _build_name(_full_names)),
    "phone": _Kind(_no_params, _fits_text, _build_phone),
    "hash": _Kind(_no_params, _fits_text, _build_hash),
    "redact": _Kind(_redact_params, _fits_text, _build_redact),
    "value": _Kind(_value_params, _fits_value, _build_value),
    "date_shift": _Kind(_shift_params, _fits_type(DATE_TYPES), _build_date_shift),
    "permute": _Kind(_no_params, _fits_type(INTEGER_TYPES), _build_permute),
    "json": _Kind(_json_params, _fits_type(JSON_TYPES), _build_json),
    "scrub": _Kind(_scrub_params, _fits_scrub, _build_scrub),
    "array": _Kind(_array_params, _fits_array, _build_array),
}
TRANSFORMS: tuple[str, ...] = tuple(_KINDS)
