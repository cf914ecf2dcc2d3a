"""Personal data hidden inside values (free text, nested JSON documents, arrays, bytea),
against real servers: `mask suggest` finds every hiding place and proposes only rules that
keep keys unique; a masked refresh with its rules leaves none of the raw values anywhere
in dev's data directory, keeps the words and JSON around them, and restores every
constraint; `mask check` refuses rules that would break a key, naming the column."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Clusters, Orchestrator, backed_up_with_suggested_rules
from tests.harness import postgres
from tests.harness.postgres import Cluster
from tests.harness.targets import fresh_target, raw_values_in_data_directory

pytestmark = pytest.mark.integration

KEY = "hidden-mask-key-0123456789abcdef"
ROWS = 200

HIDDEN_SQL = f"""
-- free text: one row in four holds an address, a phone number, an IBAN, a card or an IP
CREATE TABLE public.tickets (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO public.tickets
SELECT g, CASE g % 4
    WHEN 0 THEN 'Delivery window question, reach me at hidden' || g || '@leak-mail.example thanks'
    WHEN 1 THEN 'Please call +1 202 555 ' || lpad(g::text, 4, '0') || ' about the refund'
    WHEN 2 THEN 'Refund to IBAN GB82 WEST 1234 5698 7654 32 or card 4111 1111 1111 1111'
    ELSE 'Login from 198.51.100.' || (g % 250) || ' looked odd, ticket closed' END
FROM generate_series(1, {ROWS}) g;

-- a jsonb profile: e-mail and phone two levels down, an array of objects, plain keys
CREATE TABLE public.profiles (id int PRIMARY KEY, doc jsonb NOT NULL);
INSERT INTO public.profiles
SELECT g, jsonb_build_object(
    'contact', jsonb_build_object(
        'email', 'jsonmail' || g || '@leak-mail.example',
        'phone', '+44 20 7946 ' || lpad(g::text, 4, '0')),
    'items', jsonb_build_array(
        jsonb_build_object('email', 'itemmail' || g || '@leak-mail.example', 'sku', 'SKU-1'),
        jsonb_build_object('note', 'gift wrap', 'qty', 2)),
    'plan', 'gold')
FROM generate_series(1, {ROWS}) g;

-- a text[] of e-mail addresses, with a NULL element and an odd one needing quotes
CREATE TABLE public.lists (id int PRIMARY KEY, recipients text[]);
INSERT INTO public.lists
SELECT g, ARRAY['arraymail' || g || '@leak-mail.example', NULL,
                'quoted, "odd" \\ arrayquote' || g || '@leak-mail.example']
FROM generate_series(1, {ROWS}) g;

-- bytea holding UTF-8 text with an address
CREATE TABLE public.blobs (id int PRIMARY KEY, data bytea NOT NULL);
INSERT INTO public.blobs
SELECT g, convert_to('scanned note: write to blobmail' || g || '@leak-mail.example', 'UTF8')
FROM generate_series(1, {ROWS}) g;

-- a composite key with an integer column named like a card number; a unique e-mail
CREATE TABLE public.payments (
    account int NOT NULL,
    card_number bigint NOT NULL,
    amount int NOT NULL,
    PRIMARY KEY (account, card_number)
);
INSERT INTO public.payments SELECT g % 7, 4000000000000000 + g, g FROM generate_series(1, {ROWS}) g;
CREATE TABLE public.members (id int PRIMARY KEY, login_email text UNIQUE);
-- a domain whose CHECK no masked e-mail can pass
CREATE DOMAIN corp_email AS text CHECK (VALUE ~ '@corp\\.example$');
CREATE TABLE public.staff (id int PRIMARY KEY, mail corp_email);
INSERT INTO public.staff SELECT g, 'staff' || g || '@corp.example' FROM generate_series(1, 20) g;
INSERT INTO public.members SELECT g, 'hidden' || (4 * g) || '@leak-mail.example'
FROM generate_series(1, {ROWS // 4}) g;
"""

RAW = [
    "hidden8@leak-mail.example",
    "+1 202 555 0009",
    "GB82 WEST 1234 5698 7654 32",
    "4111 1111 1111 1111",
    "198.51.100.11",
    "jsonmail7@",
    "7946 0007",
    "itemmail7@",
    "arraymail7@",
    "arrayquote7@",
    "blobmail7@",
    "staff7@",
]


@dataclass
class Hidden:
    source: Cluster
    db: str
    dev: Cluster
    dev_db: str
    orch: Orchestrator
    tmp: Path
    suggested: str


@pytest.fixture(scope="module")
def hidden(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hidden]:
    """A source with one table per hiding place, one backup of it, a dev server of its own
    and the rules `mask suggest` wrote for that backup."""
    tmp = tmp_path_factory.mktemp("hidden")
    source = clusters.get(17)
    db = f"hidden_{uuid.uuid4().hex[:8]}"
    source.create_database(db)
    source.psql(HIDDEN_SQL, db)
    dev = postgres.start_cluster(17, clusters.bins[17])
    try:
        dev_db = fresh_target(dev)
        orch, rules = backed_up_with_suggested_rules(
            clusters, tmp, source.url(db), dev.url(dev_db), KEY
        )
        yield Hidden(source, db, dev, dev_db, orch, tmp, rules.read_text())
    finally:
        dev.stop()


def rule_of(text: str, column: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"    {column}:"))


def test_suggest_finds_every_hiding_place_and_keeps_keys_unique(hidden: Hidden):
    text = hidden.suggested
    body = rule_of(text, "body")
    assert body.startswith("    body: scrub  #") and "e-mail addresses inside" in body
    doc = rule_of(text, "doc")
    assert "transform: json" in doc and "other_strings: scrub" in doc
    for path in ("contact.email: email", "contact.phone: phone", "items.*.email: email"):
        assert path in doc.split("#")[0]
    assert "paths contact.email, contact.phone, items.*.email" in doc
    assert rule_of(text, "recipients").startswith(
        "    recipients: {transform: array, each: scrub}  # elements: e-mail addresses inside"
    )
    assert rule_of(text, "data").startswith("    data: scrub  # bytea holding UTF-8 text")
    assert (
        rule_of(text, "card_number") == "    card_number: permute  # name looks like a card number"
    )
    assert rule_of(text, "login_email").startswith("    login_email: email  #")
    assert rule_of(text, "mail").startswith("    mail: set_null  #")  # its domain's CHECK
    assert "leak-mail" not in text  # no sampled value in the file
    assert "the rules fit" in hidden.orch.ok("mask", "check").stdout


def test_a_refresh_with_the_suggested_rules_leaves_no_hidden_value_in_dev(hidden: Hidden):
    h = hidden
    assert raw_values_in_data_directory(h.dev, RAW) == []
    out = h.orch.ok("restore", "--target", "dev").stdout
    assert "masked public.tickets: body (200 rows; body: 250 items scrubbed)" in out
    assert "masked public.blobs: data (200 rows; data: 200 items scrubbed)" in out
    assert "masked public.profiles: doc (200 rows; doc: 0 items scrubbed)" in out
    assert raw_values_in_data_directory(h.dev, RAW) == []

    def dev(sql: str) -> str:
        return h.dev.psql(sql, h.dev_db)

    # the words around the items stay, and each item has its masked form
    assert dev(
        "SELECT count(*) FROM tickets WHERE body LIKE 'Delivery window question, reach "
        "me at %@example.com thanks'"
    ) == str(ROWS // 4)
    assert dev(
        "SELECT count(*) FROM tickets WHERE body LIKE 'Please call +% about the refund' "
        "AND body NOT LIKE '%202 555%'"
    ) == str(ROWS // 4)
    assert dev("SELECT count(*) FROM tickets WHERE body LIKE 'Login from 10.% looked odd%'") == (
        str(ROWS // 4)
    )
    # JSON documents stay valid, with their non-personal keys and values
    assert dev(
        "SELECT count(*) FROM profiles WHERE doc->>'plan' = 'gold' "
        "AND doc->'items'->1->>'note' = 'gift wrap' AND doc->'items'->0->>'sku' = 'SKU-1' "
        "AND doc->'contact'->>'email' LIKE '%@example.com'"
    ) == str(ROWS)
    # arrays keep their shape and NULL elements
    assert dev(
        "SELECT count(*) FROM lists WHERE array_length(recipients, 1) = 3 "
        "AND recipients[2] IS NULL AND recipients[1] LIKE '%@example.com'"
    ) == str(ROWS)
    assert dev(
        "SELECT count(*) FROM blobs WHERE convert_from(data, 'UTF8') LIKE '%@example.com'"
    ) == str(ROWS)
    # an e-mail masks alike in a key column and inside a text, so joins by text still work
    matched = (
        "SELECT count(*) FROM members m JOIN tickets t ON t.body LIKE '%' || m.login_email || ' %'"
    )
    assert dev(matched) == str(ROWS // 4)
    # the integer key is masked too, its digits' shape kept, and its key holds
    cards = "SELECT count(*) FROM payments WHERE card_number BETWEEN 4e15 + 1 AND 4e15 + 200"
    assert dev(cards) == "0"
    assert dev("SELECT count(*) FROM payments WHERE length(card_number::text) = 16") == str(ROWS)
    # every constraint was restored
    constraints = "SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    assert dev(constraints) == h.source.psql(constraints, h.db)
    described = "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
    comment = dev(f"{described} WHERE datname = '{h.dev_db}'")
    assert "public.tickets(body: 250 items scrubbed)" in comment


@pytest.mark.parametrize(
    ("rule", "bad", "location", "message"),
    [
        (
            "    id: keep\n    body: scrub",
            "    id: {transform: value, value: 0}\n    body: scrub",
            "public.tickets.id",
            "gives every row the same value, but the column is part of a unique key",
        ),
        (
            "    login_email: email",
            "    login_email: set_null",
            "public.members.login_email",
            "gives every row NULL, but the column is part of a unique key",
        ),
        (
            "    mail: set_null",
            "    mail: email",
            "public.staff.mail",
            "gives values that the column's CHECK ((VALUE ~ '@corp\\.example$'::text)) refuses",
        ),
        (
            "    card_number: permute",
            "    card_number: {transform: value, value: 0}",
            "public.payments.card_number",
            "gives every row the same value, but the column is part of a unique key",
        ),
    ],
)
def test_mask_check_refuses_rules_that_break_a_key(
    hidden: Hidden, rule: str, bad: str, location: str, message: str
):
    assert rule in hidden.suggested
    rules = hidden.tmp / f"bad-{uuid.uuid4().hex[:6]}.yaml"
    rules.write_text(hidden.suggested.replace(rule, bad, 1))
    result = hidden.orch.run("mask", "check", "--rules", str(rules))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{location}: {message}" in result.stdout.splitlines(), result.stdout
