"""Databases that are not UTF8 (LATIN1, SQL_ASCII, EUC_JP), end to end through the CLI
against real servers: backups, plain restores and masked restores keep every character and
mask what the rules say, whatever the source's and the target's encodings."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from orchestrator.masking.stream import CODECS
from tests.conftest import Clusters, Orchestrator, all_bin_dirs
from tests.harness.postgres import Cluster
from tests.harness.targets import raw_values_in_data_directory

pytestmark = pytest.mark.integration

KEY = "encodings-mask-key-0123456789abcdef"


def create_database(cluster: Cluster, encoding: str) -> str:
    """A new database in `encoding` (C locale, so any encoding is allowed); give its name."""
    name = f"{encoding.lower()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(
        f"CREATE DATABASE {name} ENCODING '{encoding}' TEMPLATE template0 "
        "LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    return name


def run_sql(cluster: Cluster, sql: str, database: str, client_encoding: str = "UTF8") -> str:
    """Run `sql` (written in `client_encoding`) on `database`; give psql's output."""
    saved = os.environ.get("PGCLIENTENCODING")
    os.environ["PGCLIENTENCODING"] = client_encoding
    try:
        return cluster.psql(sql, database)
    finally:
        if saved is None:
            os.environ.pop("PGCLIENTENCODING")
        else:
            os.environ["PGCLIENTENCODING"] = saved


def orchestrator(clusters: Clusters, tmp: Path, **env: str) -> Orchestrator:
    work = tmp / f"cwd-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    store = f"file://{tmp}/store"
    orch = Orchestrator(
        work,
        {"PG_BIN_DIRS": all_bin_dirs(clusters), "STORAGE_URL": store, "MASK_KEY": KEY, **env},
    )
    orch.ok("init")
    return orch


def test_a_sql_ascii_database_is_backed_up_and_restored(clusters: Clusters, tmp_path: Path):
    source = clusters.get(17)
    db, target = create_database(source, "SQL_ASCII"), create_database(source, "SQL_ASCII")
    run_sql(
        source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'Müßig')", db
    )
    orch = orchestrator(
        clusters,
        tmp_path,
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=source.url(target),
    )
    orch.ok("backup")
    orch.ok("restore", "--target", "backup")
    assert run_sql(source, "SELECT v FROM t", target) == "Müßig"


LOCALE = "SELECT pg_encoding_to_char(encoding), datcollate, to_jsonb(d) ->> 'datlocprovider', "
LOCALE += "coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') "
LOCALE += "FROM pg_database d WHERE datname = "


def test_a_restore_keeps_the_encoding_and_locale_of_the_database_it_replaces(
    clusters: Clusters, tmp_path: Path
):
    source = clusters.get(17)
    db, target = create_database(source, "SQL_ASCII"), create_database(source, "SQL_ASCII")
    # bytes that are no UTF-8: a SQL_ASCII database holds whatever its clients sent
    run_sql(source, "CREATE TABLE t (v text); INSERT INTO t VALUES (E'Ren\\351e')", db, "SQL_ASCII")
    old, icu = clusters.get(14), clusters.get(15)
    latin1 = create_database(old, "LATIN1")
    icu.psql(
        "CREATE DATABASE icu_target TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' "
        "LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'"
    )
    orch = orchestrator(
        clusters,
        tmp_path,
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=source.url(target),
        DEV_DATABASE_URL=old.url(latin1),
    )
    orch.ok("backup")
    orch.ok("restore", "--target", "backup")
    assert source.psql(f"{LOCALE}'{target}'") == "SQL_ASCII|C|c|"
    assert run_sql(source, "SELECT encode(v::bytea, 'hex') FROM t", target) == "52656ee965"
    orch.ok("restore", "--target", "dev")
    assert old.psql(f"{LOCALE}'{latin1}'") == "LATIN1|C||"
    orch.ok("restore", "--target", icu.url("icu_target"))
    assert icu.psql(f"{LOCALE}'icu_target'") == "UTF8|C|i|de-DE"
    source.psql(  # PostgreSQL 17's own provider
        "CREATE DATABASE builtin_target TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' "
        "LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'"
    )
    orch.ok("restore", "--target", source.url("builtin_target"))
    assert source.psql(f"{LOCALE}'builtin_target'") == "UTF8|C|b|C.UTF-8"


# Each encoding's people: names, e-mails, phones and addresses in its own letters; the
# where: condition keeps the customers outside the first city (a non-ASCII literal).
PEOPLE = {
    "LATIN1": [
        ("Renée Müßig", "renee.muessig", "+49 171 5551234", "Köln", "für Renée"),
        ("José Ñúñez", "jose.nunez", "+34 600 123 456", "Málaga", "señor"),
        ("Zoë Ærø", "zoe.aero", "+45 20 12 34 56", "Århus", "øl"),
    ],
    "EUC_JP": [
        ("山田 太郎", "taro.yamada", "+81 90 1234 5678", "東京", "やまだ様"),
        # where PostgreSQL's EUC_JP differs from JIS: a wave dash, NEC's and IBM's letters
        ("佐藤 花子", "hanako.sato", "+81 80 2345 6789", "大阪", "さとう様\uff5e①㈱"),
        ("鈴木 一郎", "ichiro.suzuki", "+81 70 3456 7890", "京都", "髙﨑様\uff0d∥"),
    ],
}
PEOPLE["SQL_ASCII"] = PEOPLE["LATIN1"][:2] + PEOPLE["EUC_JP"][:1]
SOURCE_MAJOR, DEV_MAJOR = 18, 14  # the newest and the oldest the harness has


def people_sql(encoding: str) -> str:
    rows = ", ".join(
        f"({n}, '{name}', '{mail}@raw-mail.example', '{phone}', '{city}', "
        f"'Adresse {city}, mail {mail}@raw-mail.example, Tel. {phone}', "
        f"'ß {n}@r.example', 'tok-{mail}')"
        for n, (name, mail, phone, city, _note) in enumerate(PEOPLE[encoding], 1)
    )
    orders = ", ".join(
        f"({n}, {n}, '{note}')" for n, (*_rest, note) in enumerate(PEOPLE[encoding], 1)
    )
    return f"""
    CREATE TABLE customers (id int PRIMARY KEY, full_name varchar(16) NOT NULL,
        email text UNIQUE, phone text, city varchar(8), notes text, short_note varchar(14),
        token text);
    INSERT INTO customers VALUES {rows};
    CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, note text);
    INSERT INTO orders VALUES {orders};
    """


def rules(encoding: str, subset: str) -> str:
    return f"""
unlisted_columns: fail
tables:
  public.customers:
    id: keep
    full_name: full_name
    email: email
    phone: phone
    city: redact
    notes: scrub
    short_note: scrub
    token: hash
  public.orders:
    id: keep
    customer_id: keep
    note: keep
subset:
  tables:
    public.customers: {subset}
"""


@pytest.fixture(scope="module", params=sorted(PEOPLE))
def encoded(request, clusters: Clusters, tmp_path_factory) -> dict:
    """A source database in the encoding (on the newest server), backed up, the rules mask
    suggest wrote for it, and dev databases on the oldest server in that encoding and UTF8."""
    encoding = request.param
    tmp = tmp_path_factory.mktemp(f"enc-{encoding.lower()}")
    source, dev = clusters.get(SOURCE_MAJOR), clusters.get(DEV_MAJOR)
    db = create_database(source, encoding)
    run_sql(source, people_sql(encoding), db)
    same, utf8 = create_database(dev, encoding), create_database(dev, "UTF8")
    orch = orchestrator(
        clusters, tmp, SOURCE_DATABASE_URL=source.url(db), DEV_DATABASE_URL=dev.url(same)
    )
    orch.ok("backup")
    suggested = tmp / "suggested.yaml"
    orch.ok("mask", "suggest", "-o", str(suggested))
    return {
        "encoding": encoding,
        "orch": orch,
        "dev": dev,
        "same": same,
        "utf8": utf8,
        "suggested": suggested.read_text(),
        "tmp": tmp,
    }


def test_mask_suggest_reads_a_database_in_any_encoding(encoded):
    suggested = encoded["suggested"]
    for column, transform in [("email", "email"), ("phone", "phone"), ("notes", "scrub")]:
        assert f"    {column}: {transform}" in suggested, suggested


@pytest.mark.parametrize("dev_encoding", ["same", "utf8"])
def test_a_masked_subset_of_a_database_in_any_encoding_loads_into_dev(encoded, dev_encoding):
    encoding, orch, dev = encoded["encoding"], encoded["orch"], encoded["dev"]
    people = PEOPLE[encoding]
    path = encoded["tmp"] / f"rules-{dev_encoding}.yaml"
    path.write_text(rules(encoding, f"{{where: \"city <> '{people[0][3]}'\"}}"), encoding="utf-8")
    orch.ok("mask", "check", "--rules", str(path))
    target = dev.url(encoded[dev_encoding])
    orch.ok("restore", "--target", target, "--mask-rules", str(path))
    database = encoded[dev_encoding]
    # the first city's customer and their order are left out; the others' notes stay as
    # they were, in their own letters
    kept = run_sql(dev, "SELECT id, note FROM orders ORDER BY id", database)
    assert kept.splitlines() == [f"{n}|{p[4]}" for n, p in enumerate(people, 1)][1:]
    loaded = run_sql(
        dev, "SELECT full_name, email, phone, notes, short_note, token FROM customers", database
    )
    for name, mail, phone, _city, _note in people:
        for raw in (name, mail, phone):
            assert raw not in loaded
    assert run_sql(dev, "SELECT DISTINCT city FROM customers", database) == "REDACTED"
    for _name, _mail, _phone, city, _note in people[1:]:  # scrub keeps the text around items
        assert f"Adresse {city}, mail " in loaded
    assert not raw_values_in_data_directory(dev, [p[1] for p in people] + ["raw-mail"])


def test_euc_jp_is_read_as_postgresql_reads_it(clusters: Clusters):
    """Every EUC_JP code, read by the filter's codec and by a live server's convert_from:
    the same character, or no character for both."""
    from orchestrator.masking import _euc_jp

    read = run_sql(
        clusters.get(SOURCE_MAJOR),
        "CREATE FUNCTION pg_temp.read_euc_jp(h text) RETURNS text LANGUAGE plpgsql AS $$ "
        "BEGIN RETURN convert_from(decode(h, 'hex'), 'EUC_JP'); "
        "EXCEPTION WHEN others THEN RETURN '-'; END $$; "
        "SELECT h, pg_temp.read_euc_jp(h) FROM ("
        "SELECT '8e' || to_hex(b) FROM generate_series(161, 223) b UNION ALL "
        "SELECT to_hex(a) || to_hex(b) FROM generate_series(161, 254) a, "
        "generate_series(161, 254) b UNION ALL "
        "SELECT '8f' || to_hex(a) || to_hex(b) FROM generate_series(161, 254) a, "
        "generate_series(161, 254) b) c(h)",
        "postgres",
    )
    server = dict(line.split("|", 1) for line in read.splitlines())

    def ours(code: str) -> str:
        try:
            return bytes.fromhex(code).decode(_euc_jp.NAME)
        except UnicodeDecodeError:
            return "-"

    assert len(server) == 63 + 2 * 94 * 94
    stored = {code: found for code, found in server.items() if found != "-"}
    assert len(stored) > 13000  # codes the server refuses never reach an archive
    assert {code: found for code, found in stored.items() if ours(code) != found} == {}


@pytest.mark.parametrize("encoding", sorted(set(CODECS) - {"EUC_JP"}))
def test_every_encoding_masking_reads_is_read_as_postgresql_reads_it(
    clusters: Clusters, encoding: str
):
    """Each byte (of a single-byte encoding) or two-byte code, read by the filter's codec
    and by a live server's convert_from: the same character, or no character for Python
    (the filter then stops): never another character."""
    single = encoding.startswith(("LATIN", "ISO_8859", "WIN", "KOI8"))
    codes = (
        "SELECT lpad(to_hex(b), 2, '0') FROM generate_series(128, 255) b"
        if single
        else "SELECT to_hex(a) || lpad(to_hex(b), 2, '0') "
        "FROM generate_series(129, 254) a, generate_series(64, 254) b"
    )
    read = run_sql(
        clusters.get(SOURCE_MAJOR),
        "CREATE FUNCTION pg_temp.read(h text, e name) RETURNS text LANGUAGE plpgsql AS $$ "
        "BEGIN RETURN '=' || convert_from(decode(h, 'hex'), e); "
        "EXCEPTION WHEN others THEN RETURN '-'; END $$; "
        f"SELECT h || pg_temp.read(h, '{encoding}') || '|' FROM ({codes}) c(h)",  # | ends it
        "postgres",
    )
    other = {}
    for line in read.split("\n"):
        code, found = line[: 2 if single else 4], line[2 if single else 4 : -1]
        if not found.startswith("="):
            continue
        try:
            ours = bytes.fromhex(code).decode(CODECS[encoding])
        except UnicodeDecodeError:
            continue
        if ours != found[1:]:
            other[code] = (found[1:], ours)
    assert other == {}
