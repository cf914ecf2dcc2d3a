"""Questions asked of a live server over a libpq connection: version, tables, row counts.

Connections get the password as a separate parameter (never inside a logged string),
a connect timeout, and an application name that shows up in pg_stat_activity.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from orchestrator import cancel
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, JobError
from orchestrator.formats import utc
from orchestrator.logs import get_logger, mask
from orchestrator.restore_plan import UNLIMITED_SESSION
from orchestrator.schema_facts import Column, ForeignKey, SchemaFacts, Table
from orchestrator.table_names import table_key

log = get_logger(__name__)
CONNECT_TIMEOUT = 10
_AUTH_HINTS = ("password authentication failed", "no password supplied", 'role "')
_MISSING_DB_HINT = "does not exist"

TableName = tuple[str, str]
Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class ServerInfo:
    """The server's version as text ("17.2") and as a number (170002)."""

    version: str
    version_num: int

    @property
    def major(self) -> int:
        """The major version (17 for 170002; 9 for 90624 is not supported anyway)."""
        return self.version_num // 10000


def classify_connect_error(setting: str, message: str) -> Exception:
    """Map a libpq connection error to ConfigError (auth, missing database) or JobError."""
    first = mask(message.strip().splitlines()[0] if message.strip() else "connection failed")
    if any(hint in message for hint in _AUTH_HINTS) or (
        _MISSING_DB_HINT in message and "database" in message
    ):
        return ConfigError(f"{setting}: {first}")
    return JobError(f"cannot connect to {setting}: {first}")


_open: weakref.WeakSet[Conn] = weakref.WeakSet()


def _cancel_open_queries() -> None:
    """On a stop request, cancel what every open connection is running (ANALYZE, counts,
    CREATE DATABASE...) so worker threads return within seconds."""
    for conn in list(_open):
        if not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=3.0)


cancel.on_stop(_cancel_open_queries)


def connect(info: ConnInfo, setting: str, *, autocommit: bool = True) -> Conn:
    """Open a connection to `info` with no time limits (UNLIMITED_SESSION); raise
    ConfigError/JobError naming `setting` on failure."""
    try:
        conn = psycopg.connect(
            info.url,
            # "" rather than None: libpq must not take PGPASSWORD (the source's) from this
            # process's environment for another database; a passfile still applies
            password=info.password if info.password is not None else "",
            connect_timeout=CONNECT_TIMEOUT,
            application_name="orchestrator",
            # the server sends text as UTF-8 whatever its encoding: on a SQL_ASCII server
            # psycopg would otherwise give bytes (a snapshot id of "b'0000...'")
            client_encoding="UTF8",
            autocommit=autocommit,
        )
    except psycopg.OperationalError as exc:
        raise classify_connect_error(setting, str(exc)) from None
    _open.add(conn)
    conn.execute(UNLIMITED_SESSION)
    if not autocommit:
        conn.commit()  # the settings stay; the caller's first transaction starts afresh
    return conn


FALLBACK_MAINTENANCE = "template1"


def connect_maintenance(server: ConnInfo, database: str, setting: str) -> Conn:
    """Connect to `database` on `server` to create, rename and drop other databases;
    fall back to template1 (which every cluster has) when `database` does not exist."""
    try:
        return connect(server.with_database(database), setting)
    except ConfigError as exc:
        if "does not exist" not in str(exc) or database == FALLBACK_MAINTENANCE:
            raise
    return connect(server.with_database(FALLBACK_MAINTENANCE), setting)


def server_info(conn: Conn) -> ServerInfo:
    """Give the server's version."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    return ServerInfo(str(row[0]).split()[0], int(row[1]))


def transaction_time(conn: Conn) -> datetime:
    """Give the server's clock at the start of the connection's transaction (`now()`), in
    UTC: in a snapshot's transaction, the moment the snapshot's data is from."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return utc(row[0])


def database_size(conn: Conn) -> int:
    """Give the connected database's size on disk in bytes (tables, indexes, TOAST)."""
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


_USER_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
"""
_OUTSIDE_EXTENSIONS = """
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
"""


def user_tables(conn: Conn, *, outside_extensions: bool = False) -> list[TableName]:
    """Give (schema, table) of every table (partitioned parents too) outside system schemas;
    with `outside_extensions`, not those that belong to an extension (pg_dump dumps their
    data only when the extension marks them as configuration tables)."""
    query = _USER_TABLES + (_OUTSIDE_EXTENSIONS if outside_extensions else "") + "ORDER BY 1, 2"
    rows = conn.execute(query).fetchall()
    return [(str(s), str(t)) for s, t in rows]


def tables_with_rows(conn: Conn) -> int:
    """Give how many tables hold rows of their own (not partitioned parents), outside
    system schemas and extensions: the data files a full dump writes."""
    query = "SELECT count(*) FROM (" + _USER_TABLES + _OUTSIDE_EXTENSIONS + ") AS t"
    query = query.replace("c.relkind IN ('r', 'p')", "c.relkind = 'r'")
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def count_rows(conn: Conn, tables: Iterable[TableName]) -> dict[str, int]:
    """Give exact row counts as {"schema.table": n}, counting each table without its children."""
    return {table_key(schema, table): count_table(conn, schema, table) for schema, table in tables}


def count_table(conn: Conn, schema: str, table: str) -> int:
    """Give the exact row count of `schema`.`table`, without its children."""
    query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, table))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def count_rows_while(
    conn: Conn, tables: Iterable[TableName], keep_going: Callable[[], bool]
) -> dict[str, int]:
    """Count what can be counted, each table under a savepoint: a table whose count fails
    (say, no privilege) is left out and the transaction stays usable. Stops between tables
    once `keep_going()` is false or a stop was requested. Gives {"schema.table": n}.

    The counts run beside pg_dump, so the rest of `conn`'s transaction counts without
    parallel workers: one core finishes them long before the dump, and parallel counts
    made pg_dump 0.1 to 0.2 s slower (pgbench scale 50, zstd), taking CPU from its COPY."""
    with contextlib.suppress(psycopg.Error), conn.transaction():  # a savepoint: only a hint
        conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    counts: dict[str, int] = {}
    for schema, table in tables:
        if not keep_going() or cancel.stop_requested():
            break
        try:
            with conn.transaction():
                counts[table_key(schema, table)] = count_table(conn, schema, table)
        except psycopg.Error:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                break  # the savepoint itself failed: nothing more can be asked safely
    return counts


@dataclass
class Snapshot:
    """An open repeatable-read transaction whose snapshot other sessions may import."""

    conn: Conn
    snapshot_id: str


@contextmanager
def exported_snapshot(info: ConnInfo, setting: str) -> Iterator[Snapshot]:
    """Hold a read-only repeatable-read transaction open and give its exported snapshot.

    pg_dump --snapshot=<id> then sees exactly what queries on `conn` see.
    """
    conn = connect(info, setting, autocommit=False)
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # the session idles in its transaction while pg_dump runs: a server-side
        # idle_in_transaction_session_timeout must not end it (and the snapshot) early
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield Snapshot(conn, str(row[0]))
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def system_identifier(conn: Conn) -> str | None:
    """Give the cluster's system identifier, or None where the provider hides it.

    Asks for the privilege first: a failing query would abort the caller's transaction
    (the dump's snapshot transaction among them).
    """
    allowed = conn.execute(
        "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')"
    ).fetchone()
    if not allowed or not allowed[0]:
        return None
    row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    return str(row[0]) if row and row[0] else None


def role_capabilities(conn: Conn, database: str) -> tuple[bool, bool, bool]:
    """Give (superuser, may create databases, owns `database` or it does not exist)."""
    row = conn.execute(
        """
        SELECT r.rolsuper, r.rolcreatedb,
               coalesce((SELECT pg_has_role(current_user, d.datdba, 'MEMBER')
                         FROM pg_database d WHERE d.datname = %s), true)
        FROM pg_roles r WHERE r.rolname = current_user
        """,
        (database,),
    ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1]), bool(row[2])


def database_names(conn: Conn) -> list[str]:
    """The names of the server's databases, sorted."""
    return [str(row[0]) for row in conn.execute("SELECT datname FROM pg_database ORDER BY 1")]


def database_exists(conn: Conn, database: str) -> bool:
    """True when `database` exists on the server."""
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


@dataclass(frozen=True)
class DatabaseLocale:
    """A database's encoding, libc locale and, where the server has them (15+), its locale
    provider ('c' libc, 'i' ICU, 'b' builtin), that provider's locale and ICU rules."""

    encoding: str
    collate: str
    ctype: str
    provider: str | None = None
    locale: str | None = None
    icu_rules: str | None = None


def database_locale(conn: Conn, database: str) -> DatabaseLocale | None:
    """Give the encoding and locale of `database`, None when it does not exist (the
    provider's columns are read from the row as JSON: they differ between versions)."""
    row = conn.execute(
        """
        SELECT pg_encoding_to_char(encoding), datcollate, datctype,
               to_jsonb(d) ->> 'datlocprovider',
               coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),
               to_jsonb(d) ->> 'daticurules'
        FROM pg_database d WHERE datname = %s
        """,
        (database,),
    ).fetchone()
    if row is None:
        return None
    encoding, collate, ctype, provider, locale, rules = row
    return DatabaseLocale(encoding, collate, ctype, provider, locale, rules)


def create_database(conn: Conn, database: str, like: DatabaseLocale | None = None) -> None:
    """CREATE DATABASE from template0 (so provider extensions in template1 cannot clash),
    with the encoding and locale of `like` when given (the server's defaults otherwise)."""
    conn.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE template0{}").format(
            sql.Identifier(database), _locale_clause(like) if like else sql.SQL("")
        )
    )


def _locale_clause(like: DatabaseLocale) -> sql.Composed:
    """The ENCODING and locale options of CREATE DATABASE that give `like`."""
    parts: list[sql.Composable] = [
        sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(like.encoding), sql.Literal(like.collate), sql.Literal(like.ctype)
        )
    ]
    if like.provider == "c":
        parts.append(sql.SQL(" LOCALE_PROVIDER libc"))
    elif like.provider == "i":
        parts.append(sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(like.locale)))
        if like.icu_rules:
            parts.append(sql.SQL(" ICU_RULES {}").format(sql.Literal(like.icu_rules)))
    elif like.provider == "b":
        parts.append(
            sql.SQL(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(sql.Literal(like.locale))
        )
    return sql.Composed(parts)


# the settings whose value is a list of names, each quoted on its own (as pg_dump does)
LIST_SETTINGS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "shared_preload_libraries",
        "local_preload_libraries",
        "unix_socket_directories",
    }
)


def database_settings(conn: Conn, database: str) -> list[tuple[str | None, str]]:
    """The settings given to `database` (ALTER DATABASE ... SET: role None; ALTER ROLE ...
    IN DATABASE ... SET: that role), as (role, 'name=value') in the catalog's form."""
    rows = conn.execute(
        """
        SELECT r.rolname, unnest(s.setconfig) FROM pg_db_role_setting s
        JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
        WHERE d.datname = %s ORDER BY 1 NULLS FIRST
        """,
        (database,),
    ).fetchall()
    return [(None if role is None else str(role), str(entry)) for role, entry in rows]


def give_settings(conn: Conn, database: str, settings: list[tuple[str | None, str]]) -> None:
    """Give `database` the `settings` (as database_settings gives them)."""
    for role, entry in settings:
        conn.execute(setting_statement(database, role, entry))


def setting_statement(database: str, role: str | None, entry: str) -> sql.Composed:
    """The ALTER DATABASE (or ALTER ROLE ... IN DATABASE) that gives `database` the setting
    `entry` ('name=value', as pg_db_role_setting holds it): a list setting's names each
    quoted on its own, any other value as one literal."""
    name, _, value = entry.partition("=")
    where = sql.SQL("ALTER DATABASE {}").format(sql.Identifier(database))
    if role is not None:
        where = sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
            sql.Identifier(role), sql.Identifier(database)
        )
    values = (_list_items(value) if name.lower() in LIST_SETTINGS else []) or [value]
    return sql.SQL("{} SET {} = {}").format(
        where,
        sql.SQL(".").join(map(sql.Identifier, name.split("."))),
        sql.SQL(", ").join(map(sql.Literal, values)),
    )


def _list_items(value: str) -> list[str]:
    """The names of a list setting's value (app, "$user", "a ""b"" c"), quotes undone."""
    items, pos = [], 0
    while pos < len(value):
        while value[pos : pos + 1] in (" ", ","):
            pos += 1
        if pos >= len(value):
            break
        if value[pos] == '"':
            name, pos = "", pos + 1
            while (end := value.find('"', pos)) >= 0 and value[end + 1 : end + 2] == '"':
                name, pos = name + value[pos:end] + '"', end + 2
            end = len(value) if end < 0 else end
            items.append(name + value[pos:end])
            pos = end + 1
        else:
            end = value.find(",", pos)
            end = len(value) if end < 0 else end
            items.append(value[pos:end].strip())
            pos = end
    return items


def drop_database(conn: Conn, database: str, server_major: int) -> None:
    """DROP DATABASE IF EXISTS, ending its sessions first (FORCE on 13+)."""
    force = sql.SQL(" WITH (FORCE)") if server_major >= 13 else sql.SQL("")
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(database), force))


def terminate_sessions(conn: Conn, database: str) -> int:
    """End the other client sessions on `database` that this role may end; give how many.

    Sessions it may not end (other roles', superusers') are skipped: the rename then keeps
    failing with "being accessed by other users" and the caller's bounded wait decides.
    """
    pids = conn.execute(
        """
        SELECT pid FROM pg_stat_activity
        WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        """,
        (database,),
    ).fetchall()
    ended = 0
    for (pid,) in pids:
        try:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            continue
        ended += bool(row and row[0])
    return ended


def comment_on_database(conn: Conn, database: str, comment: str) -> None:
    """COMMENT ON DATABASE `database` IS `comment` (the role must own it)."""
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(database), sql.Literal(comment)
        )
    )


def rename_databases(conn: Conn, renames: list[tuple[str, str]]) -> None:
    """Apply ALTER DATABASE ... RENAME TO ... for each pair, all in one transaction."""
    with conn.transaction():
        for old, new in renames:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(old), sql.Identifier(new)
                )
            )


def cluster_identity(conn: Conn) -> str | None:
    """Give what identifies the cluster: its system identifier, plus Neon's timeline id
    where present (Neon branches share a system identifier but not a timeline)."""
    ident = system_identifier(conn)
    row = conn.execute("SELECT current_setting('neon.timeline_id', true)").fetchone()
    timeline = row[0] if row and row[0] else None
    if ident and timeline:
        return f"{ident}/{timeline}"
    return ident


def analyze_table(conn: Conn, schema: str, table: str) -> None:
    """ANALYZE one relation (a table, a partitioned parent, a materialized view)."""
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table)))


@dataclass(frozen=True)
class Relation:
    """A relation a database-wide ANALYZE visits: its name, and whether it is a user table
    (`user_tables` lists it)."""

    schema: str
    name: str
    user_table: bool


_RELATIONS = """
    SELECT n.nspname, c.relname,
           c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relisshared AND c.relpersistence <> 't'
    ORDER BY pg_relation_size(c.oid) DESC, 1, 2
"""


def relations(conn: Conn) -> list[Relation]:
    """Give the relations a database-wide ANALYZE visits (tables, partitioned parents and
    materialized views, system catalogs included; shared catalogs and temporary tables
    not), the largest first."""
    rows = conn.execute(_RELATIONS).fetchall()
    return [Relation(str(s), str(n), bool(u)) for s, n, u in rows]


_COLUMNS = """
    SELECT n.nspname, c.relname, c.relkind, c.oid::int8, a.attname,
           format_type(a.atttypid, a.atttypmod), bt.typname, t.typcategory,
           CASE WHEN bt.typname IN ('varchar', 'bpchar', '_varchar', '_bpchar')
                 AND (CASE WHEN t.typbasetype <> 0 THEN t.typtypmod ELSE a.atttypmod END) > 4
                THEN (CASE WHEN t.typbasetype <> 0 THEN t.typtypmod ELSE a.atttypmod END) - 4
           END,
           a.attnotnull OR t.typnotnull, a.attgenerated <> '',
           CASE WHEN bt.typtype = 'e' THEN array(SELECT e.enumlabel::text FROM pg_enum e
                WHERE e.enumtypid = bt.oid ORDER BY e.enumsortorder) END,
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
            FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
            WHERE co.oid = a.attcollation AND NOT co.collisdeterministic)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type bt
           ON bt.oid = CASE WHEN t.typbasetype <> 0 THEN t.typbasetype ELSE t.oid END
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY n.nspname, c.relname, a.attnum
"""
_CHECKS = """
    SELECT n.nspname, c.relname, a.attname, pg_get_constraintdef(k.oid)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
    JOIN pg_constraint k ON k.contype = 'c'
     AND (k.contypid IN (t.oid, t.typbasetype)
          OR (k.conrelid = c.oid AND k.conkey = ARRAY[a.attnum]::int2[]))
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 1, 2, 3, 4
"""
_PARENTS = """
    SELECT cn.nspname, c.relname, pn.nspname, p.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
    JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
    WHERE c.relispartition
"""
_UNIQUE = """
    SELECT n.nspname, c.relname,
           array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num ORDER BY k.ord)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE i.indisunique AND 0 <> ALL (i.indkey::int2[]) AND i.indexprs IS NULL
      AND c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY 1, 2, 3
"""
# the columns each unique index with an expression (lower(name)) reads, as pg_depend records
_EXPRESSION_UNIQUE = """
    SELECT n.nspname, c.relname, array_agg(DISTINCT a.attname::text ORDER BY a.attname::text)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
     AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.refobjsubid > 0
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
    WHERE i.indisunique AND i.indexprs IS NOT NULL
      AND c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'
    GROUP BY 1, 2
"""
_FOREIGN_KEYS = """
    SELECT n.nspname, c.relname, rn.nspname, rc.relname,
           array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY x(num, ord)
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.num
                 ORDER BY x.ord),
           array(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY x(num, ord)
                 JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.num
                 ORDER BY x.ord)
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class rc ON rc.oid = k.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
    WHERE k.contype = 'f' AND k.conparentid = 0
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 1, 2, k.conname
"""


def schema_facts(conn: Conn) -> SchemaFacts | None:
    """Give every user table's columns (types, lengths, NOT NULL), partition parent, unique
    keys and foreign keys, as the catalogs show them in `conn`'s transaction; None when the
    catalogs cannot be read (logged: only masked restores need them, and they then refuse).

    Runs in a savepoint, so a failure leaves the caller's transaction usable."""
    try:
        with conn.transaction():
            return _schema_facts(conn)
    except psycopg.Error as exc:
        log.warning("inspect.schema_facts_failed", error=mask(str(exc).strip()))
        return None


def _expression_keys(conn: Conn) -> dict[str, tuple[str, ...]]:
    """The columns each table's unique indexes on expressions read, by table key."""
    return {
        table_key(schema, table): tuple(names)
        for schema, table, names in conn.execute(_EXPRESSION_UNIQUE).fetchall()
    }


def _collation_kind(conn: Conn, kinds: dict[str, str], collation: str | None) -> str:
    """Give how the nondeterministic `collation` (a qualified, quoted name; None for a
    deterministic one) tells values apart, as schema_facts.Column.collation says, asking
    the server once per collation (remembered in `kinds`)."""
    if collation is None:
        return ""
    if collation not in kinds:
        probe = sql.SQL(
            "SELECT 'A' = 'a' COLLATE {c}, 'e' = 'é' COLLATE {c} OR 'ab' = 'a-b' COLLATE {c}"
        ).format(c=sql.SQL(collation))
        try:  # in a savepoint: 'é' has no place in some encodings (then: "other")
            with conn.transaction():
                row = conn.execute(probe).fetchone()
        except psycopg.Error:
            row = None
        ignores_case, ignores_more = (bool(v) for v in row) if row else (False, True)
        kinds[collation] = "other" if ignores_more or not ignores_case else "case"
    return kinds[collation]


def _schema_facts(conn: Conn) -> SchemaFacts:
    columns: dict[str, list[Column]] = {}
    partitioned: set[str] = set()
    checks: dict[tuple[str, str], list[str]] = {}
    for schema, table, name, definition in conn.execute(_CHECKS).fetchall():
        checks.setdefault((table_key(schema, table), name), []).append(str(definition))
    oids: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for schema, table, kind, oid, *column in conn.execute(_COLUMNS).fetchall():
        key = table_key(str(schema), str(table))
        oids[key] = int(oid)
        if kind == "p":
            partitioned.add(key)
        name, shown, base, category, length, not_null, generated, labels, collation = column
        if name is None:  # a table without columns (or whose every column was dropped)
            columns.setdefault(key, [])
            continue
        columns.setdefault(key, []).append(
            Column(
                name=str(name),
                type=str(shown),
                base_type=str(base),
                category=str(category),
                max_length=int(length) if length is not None else None,
                not_null=bool(not_null),
                generated=bool(generated),
                checks=tuple(checks.get((key, str(name)), ())),
                labels=tuple(labels or ()),
                collation=_collation_kind(conn, kinds, collation),
            )
        )
    parents = {
        table_key(cs, ct): table_key(ps, pt) for cs, ct, ps, pt in conn.execute(_PARENTS).fetchall()
    }
    unique: dict[str, list[tuple[str, ...]]] = {}
    for schema, table, names in conn.execute(_UNIQUE).fetchall():
        unique.setdefault(table_key(schema, table), []).append(tuple(names))
    keys: dict[str, list[ForeignKey]] = {}
    for schema, table, rschema, rtable, own, referenced in conn.execute(_FOREIGN_KEYS).fetchall():
        keys.setdefault(table_key(schema, table), []).append(
            ForeignKey(
                columns=tuple(own),
                references=table_key(rschema, rtable),
                referenced_columns=tuple(referenced),
            )
        )
    expression_keys = _expression_keys(conn)
    row = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    tables = {
        key: Table(
            columns=tuple(cols),
            partitioned=key in partitioned,
            parent=parents.get(key),
            unique=tuple(unique.get(key, ())),
            unique_through=expression_keys.get(key, ()),
            foreign_keys=tuple(keys.get(key, ())),
            oid=oids[key],
        )
        for key, cols in columns.items()
    }
    return SchemaFacts(tables=tables, large_objects=int(row[0]) if row else 0)
