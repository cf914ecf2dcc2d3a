"""Finding personal data by column name and by sampled values, and writing a first rules file.

A column is flagged by its name (`email`, `homePhone`, `date_of_birth`, `tax_id`...,
matched whatever the case, underscores or camelCase) or by its values: when at least 60% of
the non-empty samples are e-mail addresses, IP addresses, IBANs (mod-97 checked), card
numbers (Luhn checked) or phone numbers. Each finding carries a transform that fits the
column (type, length, NOT NULL, unique keys) and a short reason for people.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrator.masking import _array, _scrub
from orchestrator.masking._yaml import yaml_key
from orchestrator.masking.plan import location
from orchestrator.masking.transforms import (
    INTEGER_TYPES,
    SpecError,
    TransformSpec,
    bytea_bytes,
    element_column,
    fit_problem,
    parse_spec,
)
from orchestrator.schema_facts import Column, ForeignKey, SchemaFacts, Table
from orchestrator.table_names import split_table_key

Samples = Mapping[str, Mapping[str, Sequence[str | None]]]  # table -> column -> values
VALUE_SHARE = 0.6
FREE_TEXT_LENGTH = 60  # characters on average, at least
FREE_TEXT_WORDS = 6  # in at least half the values
FREE_TEXT_DISTINCT = 0.5  # distinct values among those sampled, at least
SHIFT_DAYS = 30

_LABELS = {
    "email": "an e-mail",
    "phone": "a phone number",
    "first_name": "a first name",
    "last_name": "a last name",
    "full_name": "a full name",
    "username": "a user name",
    "address": "a postal address",
    "birth_date": "a birth date",
    "ip_address": "an IP address",
    "bank_account": "a bank account",
    "national_id": "a tax or national id",
    "secret": "a password or secret",
    "card_number": "a card number",
    "location": "a location",
}
_NAMES = [  # first match wins; each pattern sits between underscores of the normalized name
    ("ip_address", r"ip|ipv4|ipv6|ip_?addr(ess)?|remote_?addr(ess)?|client_?ip"),
    ("email", r"(e_?)?mail(s|_?addr(ess)?)?"),
    ("card_number", r"(card|cc|credit_?card)_?(number|no|num)|credit_?card|pan|cvv|cvc"),
    ("bank_account", r"iban|bic|swift|(bank_?)?account_?(number|no|num)|bank_?account"),
    (
        "national_id",
        r"ssn|social_?security(_?(number|no))?|tax_?(id|number|no)|tin|vat(_?(id|number|no))?"
        r"|national_?(id|number|no)|nin|passport(_?(number|no))?|driver_?s?_?licen[cs]e"
        r"|national_?insurance(_?(number|no))?|nino",
    ),
    (
        "secret",
        r"password|passwd|pwd|pass_?hash|password_?hash|secret|secret_?key|api_?key|token"
        r"|(access|refresh|auth|reset)_?token|otp_?secret|salt|private_?key",
    ),
    ("birth_date", r"birth_?date|date_?of_?birth|dob|birth_?day|born(_?on)?"),
    ("first_name", r"first_?name|given_?name|fore_?name|fname|middle_?name"),
    ("last_name", r"last_?name|sur_?name|family_?name|lname|maiden_?name"),
    (
        "full_name",
        r"full_?name|display_?name|contact_?name|customer_?name|person_?name|real_?name"
        r"|legal_?name|(card_?)?holder_?name|(recipient|spouse|partner|guardian|parent|mother"
        r"|father|beneficiary|next_?of_?kin)_?name",
    ),
    ("username", r"user_?name|login|nick_?name|screen_?name"),
    (
        "phone",
        r"phone(_?(number|no|num))?|telephone|tel|mobile(_?(phone|number|no))?|cell(_?phone)?"
        r"|fax|msisdn",
    ),
    (
        "address",
        r"address(_?line(_?\d)?)?|addr(_?\d)?|street(_?(name|address))?|house_?(number|no)"
        r"|city|town|zip(_?code)?|post_?code|postal_?code",
    ),
    (
        "location",
        r"lat|lng|lon|latitude|longitude|geo_?location|geo_?point|coordinates|gps",
    ),
]
_NAME_PATTERNS = [(kind, re.compile(f"_({pattern})_")) for kind, pattern in _NAMES]
_NOT_PERSONAL_ENDINGS = {"id", "ids", "uuid", "count", "type", "kind", "status", "verified"}
_NOT_PERSONAL_ENDINGS |= {"confirmed", "enabled", "at", "on", "flag", "format", "length"}
_NOT_PERSONAL_STARTS = {"is", "has", "can", "should"}

_TRANSFORMS: dict[str, list[TransformSpec]] = {
    "email": [TransformSpec("email", {"domain": "example.com"}), TransformSpec("hash")],
    "phone": [TransformSpec("phone"), TransformSpec("hash")],
    "first_name": [TransformSpec("first_name")],
    "last_name": [TransformSpec("last_name")],
    "full_name": [TransformSpec("full_name")],
    "address": [TransformSpec("redact", {"text": "REDACTED"}), TransformSpec("hash")],
    "birth_date": [TransformSpec("date_shift", {"days": SHIFT_DAYS})],
}
_TRANSFORMS["embedded"] = [TransformSpec("scrub", {"domain": "example.com"}), TransformSpec("hash")]
_TRANSFORMS["free_text"] = [TransformSpec("redact", {"text": "REDACTED"}), TransformSpec("hash")]
_TRANSFORMS["binary"] = [TransformSpec("redact", {"text": "REDACTED"})]
_NULL = TransformSpec("set_null")
_NO_UNIQUE_FIT = (
    "it is part of a unique key, and no transform that fits its type keeps values distinct "
    "(a constant or NULL would break the key and the restore)"
)
_FALLBACKS = [TransformSpec("hash"), TransformSpec("redact", {"text": "REDACTED"}), _NULL]
_PLACEHOLDERS: dict[str, Any] = {
    **dict.fromkeys(("int2", "int4", "int8", "numeric", "float4", "float8"), 0),
    "bool": False,
    "date": "1970-01-01",
    "timestamp": "1970-01-01 00:00:00",
    "timestamptz": "1970-01-01 00:00:00+00",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "inet": "192.0.2.1",  # TEST-NET-1, reserved for documentation
    "cidr": "192.0.2.0/24",
    "json": {},
    "jsonb": {},
}


@dataclass(frozen=True)
class Finding:
    """A column that looks personal: what it looks like (`kind`), why (`reason`), and the
    transform to give it (`spec`; None when nothing fits the column: review it by hand)."""

    table: str
    column: str
    kind: str
    spec: TransformSpec | None
    reason: str
    unique: bool = False  # part of a primary key or unique constraint or index


# --- by name ----------------------------------------------------------------------------


def normalize(name: str) -> str:
    """Give a column name as lowercase words joined by `_`: `homePhone2` -> `home_phone2`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return "_".join(word for word in re.split(r"[^a-z0-9]+", name.lower()) if word)


def kind_by_name(name: str) -> str | None:
    """Give the kind of personal data a column name suggests, or None."""
    words = normalize(name)
    padded = f"_{words}_"
    if not words or words.split("_")[0] in _NOT_PERSONAL_STARTS:
        return None
    for kind, pattern in _NAME_PATTERNS:
        match = pattern.search(padded)
        if match is None:
            continue
        # `email_verified`, `city_id` name a flag or a key, not the data; `tax_id` is data
        if match.end() < len(padded) and words.split("_")[-1] in _NOT_PERSONAL_ENDINGS:
            return None
        return kind
    return None


# --- by value ---------------------------------------------------------------------------

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_PHONE = re.compile(r"\+?[0-9 ().\-/]{7,25}")
_NOT_PHONE = re.compile(r"-?[0-9]+([.,][0-9]+)?|[0-9]{1,4}[./-][0-9]{1,2}[./-][0-9]{1,4}")


def is_email(value: str) -> bool:
    """Whether `value` looks like an e-mail address."""
    return _EMAIL.fullmatch(value.strip()) is not None


_IP_LIKE = re.compile(r"[0-9A-Fa-f:.]+(%[^%/]+)?(/[0-9A-Fa-f:.]+)?")


def is_ip_address(value: str) -> bool:
    """Whether `value` is an IPv4 or IPv6 address (optionally with a prefix length)."""
    text = value.strip()
    if ("." not in text and ":" not in text) or _IP_LIKE.fullmatch(text) is None:
        return False  # most values (numbers, words): no parse attempted, 25 µs each
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True


def is_iban(value: str) -> bool:
    """Whether `value` is an IBAN whose mod-97 check holds (spaces allowed)."""
    text = value.replace(" ", "").upper()
    if _IBAN.fullmatch(text) is None:
        return False
    digits = "".join(str(int(char, 36)) for char in text[4:] + text[:4])
    return int(digits) % 97 == 1


def is_card_number(value: str) -> bool:
    """Whether `value` is 13 to 19 digits (spaces or dashes allowed) passing the Luhn check."""
    digits = re.sub(r"[ -]", "", value.strip())
    if not (digits.isascii() and digits.isdigit() and 13 <= len(digits) <= 19):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def is_phone(value: str) -> bool:
    """Whether `value` looks like a phone number: 7 to 15 digits with a leading + or
    separators, and not a plain number or a date."""
    text = value.strip()
    if _PHONE.fullmatch(text) is None or _NOT_PHONE.fullmatch(text) is not None:
        return False
    digits = sum(char.isdigit() for char in text)
    return 7 <= digits <= 15 and (text.startswith("+") or re.search(r"[ ().\-/]", text) is not None)


_VALUE_TESTS = [  # first kind that enough samples match wins
    ("email", is_email, "e-mail addresses"),
    ("ip_address", is_ip_address, "IP addresses"),
    ("bank_account", is_iban, "IBANs (mod-97 checked)"),
    ("card_number", is_card_number, "card numbers (Luhn checked)"),
    ("phone", is_phone, "phone numbers"),
]


def kind_by_values(values: Sequence[str | None]) -> tuple[str, str] | None:
    """Give (kind, reason) when at least 60% of the non-empty `values` are of one kind."""
    present = [value for value in values if value is not None and value.strip()]
    if not present:
        return None
    for kind, test, label in _VALUE_TESTS:
        matching = sum(1 for value in present if test(value))
        if matching >= VALUE_SHARE * len(present):
            return kind, f"{matching} of {len(present)} sampled values are {label}"
    return None


_ITEM_LABELS = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "iban": "IBANs",
    "card": "card numbers",
    "ip": "IP addresses",
}


def embedded_items(values: Sequence[str | None]) -> tuple[int, str] | None:
    """Give (values holding an item, reason) when any of `values` holds an e-mail address,
    phone number, IBAN, card number or IP address anywhere in it (one is enough: a leak
    is worse than a false alarm); None when none does."""
    present = [value for value in values if value is not None and value.strip()]
    holding: dict[str, int] = {}
    count = 0
    for value in present:
        kinds = set(_scrub.kinds(value))
        count += bool(kinds)
        for kind in kinds:
            holding[kind] = holding.get(kind, 0) + 1
    if not count:
        return None
    parts = [
        f"{_ITEM_LABELS[kind]} inside {holding[kind]} of {len(present)} sampled values"
        for kind in _scrub.KINDS
        if kind in holding
    ]
    return count, "; ".join(parts)


def free_text(values: Sequence[str | None]) -> str | None:
    """Give why `values` look like prose nobody can review (long texts of many words, few
    repeated), or None: names and addresses inside prose cannot be found."""
    present = [value for value in values if value is not None and value.strip()]
    if not present:
        return None
    words = [len(value.split()) for value in present]
    average = sum(map(len, present)) / len(present)
    wordy = sum(1 for count in words if count >= FREE_TEXT_WORDS)
    distinct = len(set(present)) / len(present)
    if average < FREE_TEXT_LENGTH or wordy < len(present) / 2 or distinct < FREE_TEXT_DISTINCT:
        return None
    return (
        f"free text ({round(average)} characters on average): names and addresses inside "
        "prose are not found, redacted instead"
    )


# --- findings ---------------------------------------------------------------------------


def detect_column(
    table: str, column: Column, values: Sequence[str | None] = (), unique: bool = False
) -> Finding | None:
    """Give the finding for one column (None when it does not look personal).

    `unique` says the column is part of a unique key, so only transforms that keep values
    distinct will do. Text columns are read whole and for items inside them, JSON
    documents leaf by leaf, arrays element by element, bytea as UTF-8 text.
    """
    if column.generated or column.category == "B":
        return None
    if column.base_type in ("json", "jsonb"):
        return _json_finding(table, column, values, unique)
    if column.category == "A":
        return _array_finding(table, column, values, unique)
    if column.base_type == "bytea":
        return _bytea_finding(table, column, values, unique)
    return _text_finding(table, column, values, unique)


_PEOPLE = re.compile(
    r"users?|customers?|clients?|persons?|people|employees?|members?|contacts?|patients?"
    r"|students?|authors?|staff|owners?|guests?|subscribers?|applicants?|candidates?|drivers?"
)


def _person_name(table: str, column: str) -> bool:
    """Whether `column` is the `name` column of a table of people (`users.name`): alone,
    `name` names things as often as people (`products.name`)."""
    words = normalize(split_table_key(table)[1]).split("_")
    return normalize(column) == "name" and _PEOPLE.fullmatch(words[-1]) is not None


def _text_finding(
    table: str, column: Column, values: Sequence[str | None], unique: bool
) -> Finding | None:
    by_name = kind_by_name(column.name)
    people = by_name is None and _person_name(table, column.name)
    by_name = "full_name" if people else by_name
    by_values = kind_by_values(values)
    text = column.category == "S"
    record = column.category == "C"  # a composite type's text: items, never prose
    inside = embedded_items(values) if (text or record) and by_values is None else None
    prose = free_text(values) if text and by_values is None and inside is None else None
    of_people = " (the name column of a table of people)" if people else ""
    reasons = [f"name looks like {_LABELS[by_name]}{of_people}"] if by_name else []
    reasons += [found[1] for found in (by_values, inside) if found is not None]
    reasons += [prose] if prose is not None else []
    if not reasons:
        return None
    if by_values is not None:
        kind = by_values[0]
    elif inside is not None and by_name not in _TRANSFORMS:
        kind = "embedded"
    elif prose is not None and by_name is None:
        kind = "free_text"
    else:
        kind = str(by_name)
    spec = suggest_transform(kind, column, unique)
    return Finding(table, column.name, kind, spec, "; ".join(reasons))


def _bytea_finding(
    table: str, column: Column, values: Sequence[str | None], unique: bool
) -> Finding | None:
    """bytea that decodes as UTF-8 text is read like text: scrub when every sampled value
    decodes, redact when some do not (scrub stops on bytes that are not text)."""
    texts = [_bytea_text(value) for value in values if value is not None]
    decoded = [text for text in texts if text is not None]
    by_name = kind_by_name(column.name)
    inside = embedded_items(decoded)
    reasons = [f"name looks like {_LABELS[by_name]}"] if by_name else []
    reasons += [f"bytea holding UTF-8 text with {inside[1]}"] if inside else []
    if not reasons:
        return None
    kind = "embedded" if len(decoded) == len(texts) else "binary"
    return Finding(
        table, column.name, kind, suggest_transform(kind, column, unique), "; ".join(reasons)
    )


def _bytea_text(value: str) -> str | None:
    try:
        return bytea_bytes(value.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _array_finding(
    table: str, column: Column, values: Sequence[str | None], unique: bool
) -> Finding | None:
    """Arrays of text are read element by element: the element transform is what a text
    column of those elements would get, under `array`."""
    element = element_column(column)
    if element.category != "S":
        return None
    elements: list[str | None] = []
    for value in values:
        if value is None:
            continue
        try:
            found = _array.leaves(_array.parse(value.encode())[1])
        except _array.InvalidArray:
            continue
        elements += [None if item is None else item.decode() for item in found]
    inner = _text_finding(table, element, elements, unique)
    if inner is None or inner.spec is None:
        return None
    spec = parse_spec({"transform": "array", "each": _rule(inner.spec)})
    if fit_problem(spec, column, unique) is not None:
        return Finding(table, column.name, inner.kind, None, f"elements: {inner.reason}")
    return Finding(table, column.name, inner.kind, spec, f"elements: {inner.reason}")


def _rule(spec: TransformSpec) -> str | dict[str, Any]:
    """Give a rule as a rules file would write it: the name alone with default parameters,
    the rules inside `array` and `json` likewise."""
    try:
        if parse_spec(spec.name) == spec:
            return spec.name
    except SpecError:  # the transform has required parameters
        pass
    params = dict(spec.params)
    if "each" in params:
        params["each"] = _rule(parse_spec(params["each"]))
    if "paths" in params:
        params["paths"] = {path: _rule(parse_spec(raw)) for path, raw in params["paths"].items()}
    return {"transform": spec.name, **params}


# JSON leaves: what a leaf of each kind becomes (string transforms only: a leaf may be
# any JSON value, and these take any)
_LEAF_TRANSFORMS = {
    "email": TransformSpec("email", {"domain": "example.com"}),
    "phone": TransformSpec("phone"),
    "first_name": TransformSpec("first_name"),
    "last_name": TransformSpec("last_name"),
    "full_name": TransformSpec("full_name"),
}
_LEAF_DEFAULT = TransformSpec("hash")
_LEAF_REDACTED = ("address", "birth_date")


def _json_finding(
    table: str, column: Column, values: Sequence[str | None], unique: bool
) -> Finding | None:
    """Every string leaf of the sampled documents, by path (`contact.email`,
    `items.*.email`): paths whose key names or values look personal get their transform,
    and every other string leaf is scrubbed (`other_strings: scrub`)."""
    leaves: dict[str, list[str | None]] = {}
    strings: list[str | None] = []
    keys: list[str | None] = []
    for value in values:
        if value is None:
            continue
        try:
            document = json.loads(value)
        except ValueError:
            continue
        _collect_leaves(document, (), leaves, strings, keys)
    by_name = kind_by_name(column.name)
    paths: dict[str, str | dict[str, Any]] = {}
    for path, found in sorted(leaves.items()):
        kind = kind_by_name(path.rsplit(".", 1)[-1]) or _leaf_kind(found)
        if kind is not None:
            paths[path] = _rule(_leaf_transform(kind))
    inside, inside_keys = embedded_items(strings), embedded_items(keys)
    if not paths and inside is None and inside_keys is None and by_name is None:
        return None
    reasons = [f"name looks like {_LABELS[by_name]}"] if by_name else []
    reasons += [f"paths {', '.join(paths)}"] if paths else []
    reasons += [f"string leaves hold {inside[1]}"] if inside else []
    reasons += [f"object keys hold {inside_keys[1]}"] if inside_keys else []
    spec: TransformSpec | None = parse_spec(
        {"transform": "json", "paths": paths, "other_strings": "scrub"}
    )
    if spec is not None and fit_problem(spec, column, unique) is not None:
        spec = suggest_transform("json", column, unique)
    return Finding(table, column.name, "json", spec, "; ".join(reasons))


def _collect_leaves(
    node: Any,
    path: tuple[str, ...] | None,
    leaves: dict[str, list[str | None]],
    strings: list[str | None],
    keys: list[str | None],
) -> None:
    """Add the leaves of `node` to `leaves` by path (object keys, `*` for array
    elements): strings, and numbers as their JSON text (a card number may be one); every
    string leaf to `strings` too, and every object key to `keys` (other_strings scrubs
    both). Below a key that a path cannot name (with a dot, empty, or `*`) leaves have no
    path (`path` None): only other_strings reaches them."""
    if isinstance(node, dict):
        for key, value in node.items():
            keys.append(key)
            named = bool(key) and "." not in key and key != "*"
            child = (*path, key) if path is not None and named else None
            _collect_leaves(value, child, leaves, strings, keys)
    elif isinstance(node, list):
        for item in node:
            child = None if path is None else (*path, "*")
            _collect_leaves(item, child, leaves, strings, keys)
    elif isinstance(node, str | int | float) and not isinstance(node, bool):
        text = node if isinstance(node, str) else json.dumps(node)
        if isinstance(node, str):
            strings.append(text)
        if path:
            leaves.setdefault(".".join(path), []).append(text)


def _leaf_kind(values: list[str | None]) -> str | None:
    found = kind_by_values(values)
    return None if found is None else found[0]


def _leaf_transform(kind: str) -> TransformSpec:
    if kind in _LEAF_REDACTED:
        return TransformSpec("redact", {"text": "REDACTED"})
    return _LEAF_TRANSFORMS.get(kind, _LEAF_DEFAULT)


def suggest_transform(kind: str, column: Column, unique: bool = False) -> TransformSpec | None:
    """Give the first transform for `kind` that fits `column`, or None when none does."""
    candidates = [*_TRANSFORMS.get(kind, []), *_FALLBACKS]
    if column.base_type in INTEGER_TYPES:  # the digits' shape kept, keys kept unique
        candidates.append(TransformSpec("permute"))
    if column.base_type in _PLACEHOLDERS:
        candidates.append(TransformSpec("value", {"value": _PLACEHOLDERS[column.base_type]}))
    return next((spec for spec in candidates if fit_problem(spec, column, unique) is None), None)


def detect(schema: SchemaFacts, data_tables: Collection[str], samples: Samples) -> list[Finding]:
    """Give the findings of every column of every data table, partitions reported under
    their partitioned root (where a rule would name them), samples of all partitions
    pooled."""
    findings = []
    for root, members in _roots(schema, data_tables).items():
        table = schema.tables[root]
        unique = table.key_columns()
        for column in table.columns:
            values = [
                value
                for member in members
                for value in samples.get(member, {}).get(column.name, ())
            ]
            finding = detect_column(root, column, values, column.name in unique)
            if finding is not None:
                findings.append(dataclasses.replace(finding, unique=column.name in unique))
    return findings


def _roots(schema: SchemaFacts, data_tables: Collection[str]) -> dict[str, list[str]]:
    """Each partition root (or plain table) of the data tables, with the tables under it."""
    roots: dict[str, list[str]] = {}
    for key in sorted(data_tables):
        if key in schema.tables:
            root = schema.root_of(key)
            roots.setdefault(root if root in schema.tables else key, []).append(key)
    return dict(sorted(roots.items()))


# --- suggesting rules -------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    spec: TransformSpec | None  # None: keep
    comment: str = ""


class _Suggester:
    """Decides every column of the root tables: findings first, then foreign-key columns
    follow their key (so that `check` finds them consistent)."""

    def __init__(
        self, schema: SchemaFacts, roots: dict[str, list[str]], findings: list[Finding]
    ) -> None:
        self.schema, self.roots = schema, roots
        self.found = {(finding.table, finding.column): finding for finding in findings}
        self.decided: dict[tuple[str, str], _Choice] = {}
        self.deciding: set[tuple[str, str]] = set()

    def choice(self, root: str, column: str) -> _Choice:
        node = (root, column)
        if node in self.deciding:
            return _Choice(None, "references itself through foreign keys")
        if node not in self.decided:
            self.deciding.add(node)
            self.decided[node] = self._decide(root, column)
            self.deciding.discard(node)
        return self.decided[node]

    def _decide(self, root: str, column: str) -> _Choice:
        finding = self.found.get((root, column))
        reference = next(self._references(root, column), None)
        if reference is not None:
            table = self.schema.tables[root]
            unique = column in table.key_columns()
            return self._follow(*reference, finding, table.column(column), unique)
        if finding is None:
            return _Choice(None)
        if finding.spec is None and finding.unique:
            return _Choice(None, f"review: {finding.reason}; kept: {_NO_UNIQUE_FIT}")
        if finding.spec is None:
            return _Choice(None, f"review: {finding.reason}, but no transform fits this column")
        return _Choice(finding.spec, finding.reason)

    def _follow(
        self,
        fk: ForeignKey,
        referenced: str,
        finding: Finding | None,
        column: Column | None,
        unique: bool,
    ) -> _Choice:
        key = location(fk.references, referenced)
        target = self.schema.root_of(fk.references)
        if target not in self.roots:
            note = f"references {key}, whose data is not in the archive: mask both or neither"
            return _Choice(None, note if finding is not None else "")
        followed = self.choice(target, referenced)
        if followed.spec is not None and column is not None:
            if fit_problem(followed.spec, column, unique) is None:
                return _Choice(followed.spec, f"references {key}, masked the same way")
            if fit_problem(_NULL, column, unique) is None:  # a NULL reference is consistent
                return _Choice(_NULL, f"references {key}, whose transform does not fit here")
            return _Choice(None, f"review: references {key}, whose transform does not fit here")
        if finding is not None:
            return _Choice(None, f"{finding.reason}, but it references {key}, which is kept")
        return _Choice(None)

    def _references(self, root: str, column: str) -> Iterator[tuple[ForeignKey, str]]:
        tables: list[Table] = [self.schema.tables[root]]
        tables += [self.schema.tables[member] for member in self.roots.get(root, [])]
        for table in tables:
            for fk in table.foreign_keys:
                for own, referenced in zip(fk.columns, fk.referenced_columns, strict=False):
                    if own == column:
                        yield fk, referenced


def suggest_rules(
    schema: SchemaFacts,
    data_tables: Collection[str],
    samples: Samples,
    header: str,
    row_counts: Mapping[str, int] | None = None,
) -> str:
    """Give a complete rules file for the data tables: `unlisted_columns: fail`,
    `large_objects: skip`, and every non-generated column of every table (partitions under
    their root): personal ones with a transform and a comment saying why, foreign-key
    columns like their key, the rest `keep`. `header` opens the file as comment lines. With
    `row_counts`, a commented-out `subset:` section follows (masking.subset.hint).

    The result loads with `load_rules` and passes `check` against the same schema.
    """
    roots = _roots(schema, data_tables)
    suggester = _Suggester(schema, roots, detect(schema, data_tables, samples))
    lines = [_comment(line, "# ") for line in header.splitlines()]
    lines += ["unlisted_columns: fail", "large_objects: skip", "tables:"]
    for root in roots:
        columns = [column for column in schema.tables[root].columns if not column.generated]
        lines.append(f"  {yaml_key(root)}:" + ("" if columns else " {}"))
        for column in columns:
            choice = suggester.choice(root, column.name)
            comment = _comment(choice.comment, "  # ") if choice.comment else ""
            lines.append(f"    {yaml_key(column.name)}: {_yaml_rule(choice.spec)}{comment}")
    if row_counts is not None:
        from orchestrator.masking.subset import hint

        lines += hint(schema, row_counts)
    return "\n".join(lines) + "\n"


def _yaml_rule(spec: TransformSpec | None) -> str:
    if spec is None:
        return "keep"
    rule = _rule(spec)
    if isinstance(rule, str):
        return rule
    return str(
        yaml.safe_dump(rule, default_flow_style=True, sort_keys=False, width=1 << 20)
    ).strip()


def _comment(text: str, prefix: str) -> str:
    return prefix + "".join(char if char.isprintable() else "?" for char in text)
