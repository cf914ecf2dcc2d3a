"""Finding personal data by name and by value; suggested rules that load and pass check."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.masking.detect import (
    detect,
    detect_column,
    is_card_number,
    is_iban,
    is_phone,
    kind_by_name,
    kind_by_values,
    normalize,
    suggest_rules,
)
from orchestrator.masking.rules import check, load_rules, plan
from orchestrator.masking.transforms import TransformSpec, parse_spec
from orchestrator.schema_facts import Column, ForeignKey, SchemaFacts, Table


def col(
    name: str, type_: str = "text", base: str | None = None, category: str = "S", **more: Any
) -> Column:
    return Column(name=name, type=type_, base_type=base or type_, category=category, **more)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("homePhone2", "home_phone2"),
        ("HTTPServerIP", "http_server_ip"),
        ("E-Mail Address", "e_mail_address"),
    ],
)
def test_names_are_normalized_to_words(name: str, words: str) -> None:
    assert normalize(name) == words


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("email", "email"),
        ("E_Mail", "email"),
        ("contactEmailAddress", "email"),
        ("work_emails", "email"),
        ("phone", "phone"),
        ("mobileNumber", "phone"),
        ("tel", "phone"),
        ("fax", "phone"),
        ("first_name", "first_name"),
        ("FirstName", "first_name"),
        ("given_name", "first_name"),
        ("surname", "last_name"),
        ("lastName", "last_name"),
        ("full_name", "full_name"),
        ("displayName", "full_name"),
        ("username", "username"),
        ("street", "address"),
        ("address_line_2", "address"),
        ("city", "address"),
        ("zip", "address"),
        ("postcode", "address"),
        ("birth_date", "birth_date"),
        ("dateOfBirth", "birth_date"),
        ("dob", "birth_date"),
        ("ip_address", "ip_address"),
        ("lastLoginIp", "ip_address"),
        ("iban", "bank_account"),
        ("tax_id", "national_id"),
        ("SSN", "national_id"),
        ("vat_number", "national_id"),
        ("national_id", "national_id"),
        ("password_hash", "secret"),
        ("api_key", "secret"),
        ("reset_token", "secret"),
        ("card_number", "card_number"),
        ("creditCard", "card_number"),
        ("middle_name", "first_name"),
        ("maidenName", "last_name"),
        ("recipient_name", "full_name"),
        ("spouse_name", "full_name"),
        ("emergency_contact_name", "full_name"),
        ("national_insurance_number", "national_id"),
        ("nino", "national_id"),
        ("latitude", "location"),
        ("lng", "location"),
        ("gps_coordinates", "location"),
        ("geo_location", "location"),
        # not personal either
        ("location", None),
        ("location_id", None),
        ("product_name", None),
        # not personal
        ("email_verified", None),
        ("is_email_confirmed", None),
        ("city_id", None),
        ("phone_type", None),
        ("token_count", None),
        ("telemetry", None),
        ("description", None),
        ("name", None),
        ("emailed_at", None),
        ("tipo", None),
    ],
)
def test_column_names_suggest_kinds(name: str, kind: str | None) -> None:
    assert kind_by_name(name) == kind


@pytest.mark.parametrize(
    ("table", "column", "spec"),
    [
        ("public.users", "name", "full_name"),
        ("public.user", "Name", "full_name"),
        ('crm."Customer"', "name", "full_name"),
        ("hr.employees", "name", "full_name"),
        ("public.people", "name", "full_name"),
        ("public.products", "name", None),  # a thing's name, not a person's
        ("public.users", "name_id", None),
        ("public.users", "role_name", None),
    ],
)
def test_a_column_called_name_in_a_table_of_people_is_a_full_name(
    table: str, column: str, spec: str | None
) -> None:
    finding = detect_column(table, col(column), ["Ann Lee", "Bo Chen"])
    assert (finding.spec if finding else None) == (parse_spec(spec) if spec else None)
    if finding is not None:
        assert (
            finding.reason == "name looks like a full name (the name column of a table of people)"
        )


@pytest.mark.parametrize(
    ("value", "card"),
    [
        ("4111 1111 1111 1111", True),
        ("5500-0000-0000-0004", True),
        ("4111111111111112", False),
        ("411111111111", False),
        ("12345678901234567890", False),
    ],
)
def test_card_numbers_need_13_to_19_digits_and_the_luhn_check(value: str, card: bool) -> None:
    assert is_card_number(value) is card


@pytest.mark.parametrize(
    ("value", "iban"),
    [
        ("DE89 3704 0044 0532 0130 00", True),
        ("GB82WEST12345698765432", True),
        ("GB82WEST12345698765433", False),
        ("DE89370400440532013", False),
    ],
)
def test_ibans_need_the_mod_97_check(value: str, iban: bool) -> None:
    assert is_iban(value) is iban


@pytest.mark.parametrize(
    ("value", "ip"),
    [
        ("10.0.0.1", True),
        (" 192.168.1.0/24 ", True),
        ("10.1.2.3/255.255.0.0", True),
        ("::1", True),
        ("2001:db8::8a2e:370:7334", True),
        ("::ffff:192.0.2.128", True),
        ("fe80::1%eth0", True),
        ("fe80::1%2/64", True),
        ("ABCD:EF01::1", True),
        ("1.2.3", False),
        ("256.1.1.1", False),
        ("cafe", False),
        ("42", False),
        ("3232235777", False),
        ("deadbeef:", False),
        ("hello world", False),
        ("10.0.0.1 x", False),
        ("", False),
    ],
)
def test_ip_addresses_are_told_from_hex_and_numbers(value: str, ip: bool) -> None:
    from orchestrator.masking.detect import is_ip_address

    assert is_ip_address(value) is ip


@pytest.mark.parametrize(
    ("value", "phone"),
    [
        ("+1 555 0100", True),
        ("(030) 1234-5678", True),
        ("+441234567890", True),
        ("2024-05-17", False),
        ("17.05.2024", False),
        ("1234567.89", False),
        ("123", False),
        ("5550100", False),
    ],
)
def test_phone_numbers_are_told_from_dates_and_numbers(value: str, phone: bool) -> None:
    assert is_phone(value) is phone


@pytest.mark.parametrize(
    ("values", "kind", "reason"),
    [
        (["a@b.org"] * 37 + ["n/a"] * 3, "email", "37 of 40 sampled values are e-mail addresses"),
        (
            ["a@b.org", None, "", "c@d.net", "x"],
            "email",
            "2 of 3 sampled values are e-mail addresses",
        ),
        (
            ["10.0.0.1", "::1", "192.168.1.0/24"],
            "ip_address",
            "3 of 3 sampled values are IP addresses",
        ),
        (
            ["4111111111111111", "5500000000000004", "no"],
            "card_number",
            "2 of 3 sampled values are card numbers (Luhn checked)",
        ),
        (["4111111111111112", "5500000000000005", "1234567890123"], None, None),
        (
            ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
            "bank_account",
            "2 of 2 sampled values are IBANs (mod-97 checked)",
        ),
        (
            ["+1 555 0100", "+44 20 7946 0958", "hello"],
            "phone",
            "2 of 3 sampled values are phone numbers",
        ),
        (["a@b.org", "x", "y"], None, None),
        ([None, ""], None, None),
    ],
)
def test_sampled_values_reveal_kinds_when_60_percent_match(
    values: list[str | None], kind: str | None, reason: str | None
) -> None:
    found = kind_by_values(values)
    assert found == (None if kind is None else (kind, reason))


def test_emails_in_a_column_named_misc_are_found_by_value() -> None:
    finding = detect_column("public.t", col("misc"), ["x@y.org", "z@w.com", "q@r.net"])
    assert finding is not None
    assert (finding.kind, finding.spec, finding.reason) == (
        "email",
        TransformSpec("email", {"domain": "example.com"}),
        "3 of 3 sampled values are e-mail addresses",
    )


@pytest.mark.parametrize(
    ("column", "unique", "spec"),
    [
        (col("email"), False, TransformSpec("email", {"domain": "example.com"})),
        (
            col("email", "character varying(18)", "varchar", max_length=18),
            False,
            TransformSpec("hash"),
        ),
        (
            col("email", "character varying(10)", "varchar", max_length=10),
            False,
            TransformSpec("redact", {"text": "REDACTED"}),
        ),
        (
            col("email", "character varying(5)", "varchar", max_length=5),
            False,
            TransformSpec("set_null"),
        ),
        (col("street"), True, TransformSpec("hash")),
        (col("birth_date", "date", "date", "D"), False, TransformSpec("date_shift", {"days": 30})),
        (
            col("birth_date", "date", "date", "D", not_null=True),
            False,
            TransformSpec("date_shift", {"days": 30}),
        ),
        (col("dob"), False, TransformSpec("hash")),
        (col("phone", "bigint", "int8", "N", not_null=True), False, TransformSpec("permute")),
        (col("card_no", "bigint", "int8", "N", not_null=True), True, TransformSpec("permute")),
        (
            col("card_no", "numeric", "numeric", "N", not_null=True),
            False,
            TransformSpec("value", {"value": 0}),
        ),
        (
            col("ip_address", "inet", "inet", "I", not_null=True),
            False,
            TransformSpec("value", {"value": "192.0.2.1"}),
        ),
        (col("ip_address", "inet", "inet", "I"), False, TransformSpec("set_null")),
        (col("token", "uuid", "uuid", "U", not_null=True), True, None),
    ],
)
def test_the_suggested_transform_fits_the_column(
    column: Column, unique: bool, spec: TransformSpec | None
) -> None:
    finding = detect_column("public.t", column, unique=unique)
    assert finding is not None
    assert finding.spec == spec


def test_flags_and_generated_columns_are_not_findings() -> None:
    assert detect_column("public.t", col("email_ok", "boolean", "bool", "B")) is None
    assert detect_column("public.t", col("email", generated=True)) is None


# --- suggested rules --------------------------------------------------------------------

ID = col("id", "integer", "int4", "N", not_null=True)
EVENT_COLUMNS = (
    ID,
    col("customer_email", "character varying(80)", "varchar", max_length=80),
    col("ip", "inet", "inet", "I"),
    col("payload", "jsonb", "jsonb", "U"),
)
SCHEMA = SchemaFacts(
    tables={
        "public.customer": Table(
            columns=(
                ID,
                col("email", "character varying(120)", "varchar", max_length=120, not_null=True),
                col("FirstName"),
                col("surname"),
                col("phone"),
                col("birth_date", "date", "date", "D"),
                col("misc"),
                col("notes"),
                col("on"),
                col("email_lower", generated=True),
            ),
            unique=(("id",), ("email",)),
        ),
        "public.events": Table(
            partitioned=True,
            columns=EVENT_COLUMNS,
            foreign_keys=(
                ForeignKey(
                    columns=("customer_email",),
                    references="public.customer",
                    referenced_columns=("email",),
                ),
            ),
        ),
        "public.events_1": Table(parent="public.events", columns=EVENT_COLUMNS),
        "public.events_2": Table(parent="public.events", columns=EVENT_COLUMNS),
        "public.referral": Table(
            columns=(ID, col("referrer_email"), col("code")),
            foreign_keys=(
                ForeignKey(
                    columns=("referrer_email",),
                    references="public.events",
                    referenced_columns=("customer_email",),
                ),
            ),
        ),
        "public.note": Table(
            columns=(ID, col("author_email")),
            foreign_keys=(
                ForeignKey(
                    columns=("author_email",),
                    references="public.archive",
                    referenced_columns=("email",),
                ),
            ),
        ),
        "public.archive": Table(columns=(col("email"),)),
        "public.login": Table(
            columns=(col("user_email", "character varying(12)", "varchar", max_length=12),),
            foreign_keys=(
                ForeignKey(
                    columns=("user_email",),
                    references="public.customer",
                    referenced_columns=("email",),
                ),
            ),
        ),
        '"odd.schema"."dotted.table"': Table(
            columns=(col("a.b"), col('say "hi"'), col("yes"), col("mail #1"))
        ),
        "public.empty": Table(),
    }
)
DATA = [
    "public.login",
    "public.customer",
    "public.events_1",
    "public.events_2",
    "public.referral",
    "public.note",
    '"odd.schema"."dotted.table"',
    "public.empty",
]
SAMPLES = {
    "public.customer": {"misc": ["a@b.org", "c@d.org", None], "notes": ["hello", "world"]},
    "public.events_1": {"payload": ['{"a": "x@y.org"}']},
    '"odd.schema"."dotted.table"': {"a.b": ["4111111111111111", "5500000000000004"]},
}


def test_suggested_rules_load_and_pass_check() -> None:
    text = suggest_rules(SCHEMA, DATA, SAMPLES, "Suggested rules\nreview before use")
    rules = load_rules(text, "DEV_MASK_RULES")
    assert check(rules, SCHEMA, DATA) == []
    assert plan(rules, SCHEMA, DATA)  # and they plan


def test_suggested_rules_say_why_and_follow_foreign_keys() -> None:
    text = suggest_rules(SCHEMA, DATA, SAMPLES, "Suggested rules\nreview before use")
    assert text.startswith(
        "# Suggested rules\n# review before use\n"
        "unlisted_columns: fail\nlarge_objects: skip\ntables:\n"
    )
    lines = text.splitlines()
    for expected in [
        "  public.customer:",
        "    id: keep",
        "    email: email  # name looks like an e-mail",
        "    FirstName: first_name  # name looks like a first name",
        "    surname: last_name  # name looks like a last name",
        "    phone: phone  # name looks like a phone number",
        "    birth_date: {transform: date_shift, days: 30}  # name looks like a birth date",
        "    misc: email  # 2 of 2 sampled values are e-mail addresses",
        "    notes: keep",
        '    "on": keep',
        "  public.events:",
        "    customer_email: email  # references public.customer.email, masked the same way",
        "    ip: set_null  # name looks like an IP address",
        "    payload: {transform: json, paths: {a: email}, other_strings: scrub}  # paths a; "
        "string leaves hold e-mail addresses inside 1 of 1 sampled values",
        "  public.referral:",
        "    referrer_email: email  # references public.events.customer_email, masked the same way",
        "    author_email: keep  # references public.archive.email, whose data is not in the "
        "archive: mask both or neither",
        '  "\\"odd.schema\\".\\"dotted.table\\"":',
        "    a.b: hash  # 2 of 2 sampled values are card numbers (Luhn checked)",
        '    "say \\"hi\\"": keep',
        '    "yes": keep',
        '    "mail #1": email  # name looks like an e-mail',
        "  public.empty: {}",
        "    user_email: set_null  # references public.customer.email, whose transform does not "
        "fit here",
    ]:
        assert expected in lines
    assert "email_lower" not in text
    assert "events_1" not in text  # partitions are listed under their root


def test_detect_reports_partitions_under_their_root_with_pooled_samples() -> None:
    samples = {
        "public.events_1": {"payload": ["x"]},
        "public.events_2": {"customer_email": ["a@b.org"]},
    }
    findings = {
        (f.table, f.column): f
        for f in detect(SCHEMA, ["public.events_1", "public.events_2"], samples)
    }
    assert set(findings) == {("public.events", "customer_email"), ("public.events", "ip")}
    assert (
        findings[("public.events", "customer_email")].reason
        == "name looks like an e-mail; 1 of 1 sampled values are e-mail addresses"
    )


# --- items hidden inside values ---------------------------------------------------------

PROSE = (
    "The customer asked about the delivery window again and we promised a call back "
    "before the end of the week, see ticket history for details"
)
CODES = ["ACTIVE", "PENDING", "CLOSED", "AB-12", "X1", "gold", "eu-west-1", "v2.3.1", "2024-05-17"]


def spec_of(rule: object) -> TransformSpec:
    return parse_spec(rule)


@pytest.mark.parametrize(
    ("column", "values", "spec", "reason"),
    [
        (
            col("notes"),
            ["ok"] * 999 + ["reach me at someone@domain.org"],
            spec_of("scrub"),
            "e-mail addresses inside 1 of 1000 sampled values",
        ),
        (
            col("notes"),
            ["call +1 202 555 0143 after 5", "fine", "IBAN DE89 3704 0044 0532 0130 00"],
            spec_of("scrub"),
            "phone numbers inside 1 of 3 sampled values; IBANs inside 1 of 3 sampled values",
        ),
        (
            col("notes"),
            [f"{PROSE} #{n}" for n in range(50)],
            spec_of({"transform": "redact", "text": "REDACTED"}),
            "free text (141 characters on average): names and addresses inside prose are not "
            "found, redacted instead",
        ),
        (
            col("tags", "text[]", "_text", "A"),
            ['{a@b.org,"c@d.org"}', "{x@y.org,NULL}", "{}"],
            spec_of({"transform": "array", "each": "email"}),
            "elements: 3 of 3 sampled values are e-mail addresses",
        ),
        (
            col("tags", "text[]", "_text", "A"),
            ['{"see a@b.org",plain}', "{{x,y},{z,NULL}}"],
            spec_of({"transform": "array", "each": "scrub"}),
            "elements: e-mail addresses inside 1 of 5 sampled values",
        ),
        (
            col("doc", "bytea", "bytea", "U"),
            ["\\x" + b"mail a@b.org".hex(), "\\x" + b"nothing".hex()],
            spec_of("scrub"),
            "bytea holding UTF-8 text with e-mail addresses inside 1 of 2 sampled values",
        ),
        (
            col("doc", "bytea", "bytea", "U"),
            ["\\x" + b"mail a@b.org".hex(), "\\xff00"],
            spec_of("redact"),
            "bytea holding UTF-8 text with e-mail addresses inside 1 of 1 sampled values",
        ),
        (
            col("profile", "jsonb", "jsonb", "U"),
            [
                '{"contact": {"email": "a@b.org", "phone": "+44 20 7946 0007"}, "n": 1}',
                '{"items": [{"email": "c@d.org", "sku": "X1"}, {"email": "e@f.org"}]}',
                '{"note": "ring 020 7946 0018", "plan": "gold"}',
            ],
            spec_of(
                {
                    "transform": "json",
                    "paths": {
                        "contact.email": "email",
                        "contact.phone": "phone",
                        "items.*.email": "email",
                    },
                    "other_strings": "scrub",
                }
            ),
            "paths contact.email, contact.phone, items.*.email; string leaves hold e-mail "
            "addresses inside 3 of 7 sampled values; phone numbers inside 2 of 7 sampled values",
        ),
    ],
)
def test_items_hidden_inside_values_are_found_and_say_why(
    column: Column, values: list[str | None], spec: TransformSpec, reason: str
) -> None:
    finding = detect_column("public.t", column, values)
    assert finding is not None
    assert (finding.spec, finding.reason) == (spec, reason)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (col("status"), CODES * 100),
        (col("label"), [f"product {n}" for n in range(1000)]),
        (col("tags", "text[]", "_text", "A"), ["{red,green}", "{blue}", None]),
        (col("meta", "jsonb", "jsonb", "U"), ['{"plan": "gold", "n": 3}', '{"tags": ["x"]}']),
        (col("blob", "bytea", "bytea", "U"), ["\\x89504e47", "\\x" + b"plain words".hex()]),
    ],
)
def test_enums_codes_and_clean_documents_stay_kept(
    column: Column, values: list[str | None]
) -> None:
    assert detect_column("public.t", column, values) is None


KEYED = SchemaFacts(
    tables={
        "public.payment": Table(
            columns=(
                col("account", "integer", "int4", "N", not_null=True),
                col("card_number", "bigint", "int8", "N", not_null=True),
                col("pan", "numeric", "numeric", "N", not_null=True),
                col("payer_email", not_null=True),
                col("note", not_null=True),
            ),
            unique=(("account", "card_number", "pan"), ("payer_email", "note")),
        )
    }
)


def test_key_columns_never_get_a_rule_that_breaks_the_key() -> None:
    samples = {"public.payment": {"payer_email": ["a@b.org"], "note": ["mail x@y.org"]}}
    text = suggest_rules(KEYED, ["public.payment"], samples, "keys")
    lines = text.splitlines()
    assert (
        "    payer_email: email  # name looks like an e-mail; 1 of 1 sampled values are e-mail "
        "addresses"
    ) in lines
    assert "    note: hash  # e-mail addresses inside 1 of 1 sampled values" in lines
    assert "    card_number: permute  # name looks like a card number" in lines
    pan = next(line for line in lines if line.startswith("    pan:"))
    assert pan.startswith("    pan: keep  # review: name looks like a card number; kept:")
    assert "part of a unique key" in pan
    assert check(load_rules(text, "R"), KEYED, ["public.payment"]) == []


def test_a_composite_column_holding_items_is_scrubbed_and_prose_in_one_is_left_alone() -> None:
    record = col("home", "public.address", "address", "C")
    values = ['("1 Main St",ann@corp.example)', '("2 High St",)', None]
    finding = detect_column("public.person", record, values)
    assert finding is not None and finding.spec == parse_spec("scrub")
    assert finding.reason == "e-mail addresses inside 1 of 2 sampled values"
    prose = ['("' + "a long remark about nothing in particular at all " * 3 + '",1)'] * 5
    assert detect_column("public.person", record, prose) is None


def test_json_documents_whose_keys_hold_items_are_scrubbed() -> None:
    values = ['{"ann@corp.example": "owner", "bob@corp.example": "reader"}', '{"n": 1}']
    finding = detect_column("public.acl", col("owners", "jsonb", "jsonb", "U"), values)
    assert finding is not None
    assert finding.spec == parse_spec({"transform": "json", "paths": {}, "other_strings": "scrub"})
    assert finding.reason == "object keys hold e-mail addresses inside 2 of 3 sampled values"


def test_json_numbers_under_personal_keys_and_items_under_odd_keys_are_found() -> None:
    values = ['{"card": 4111111111111111, "a.b": {"x": "mail q@r.org"}, "n": 3}']
    finding = detect_column("public.t", col("doc", "jsonb", "jsonb", "U"), values)
    assert finding is not None
    assert finding.spec == parse_spec(
        {"transform": "json", "paths": {"card": "hash"}, "other_strings": "scrub"}
    )
    assert finding.reason == (
        "paths card; string leaves hold e-mail addresses inside 1 of 1 sampled values"
    )
