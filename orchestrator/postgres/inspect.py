"""Questions asked of a live server over a libpq connection: version, tables, row counts.

Connections get the password as a separate parameter (never inside a logged string),
a connect timeout, and an application name that shows up in pg_stat_activity.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, JobError
from orchestrator.logs import mask

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


def connect(info: ConnInfo, setting: str, *, autocommit: bool = True) -> Conn:
    """Open a connection to `info`; raise ConfigError/JobError naming `setting` on failure."""
    try:
        return psycopg.connect(
            info.url,
            password=info.password,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="orchestrator",
            autocommit=autocommit,
        )
    except psycopg.OperationalError as exc:
        raise classify_connect_error(setting, str(exc)) from None


def server_info(conn: Conn) -> ServerInfo:
    """Give the server's version."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    return ServerInfo(str(row[0]).split()[0], int(row[1]))


def user_tables(conn: Conn) -> list[TableName]:
    """Give (schema, table) of every table that holds rows, outside the system schemas."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
        ORDER BY 1, 2
        """
    ).fetchall()
    return [(str(s), str(t)) for s, t in rows]


def count_rows(conn: Conn, tables: Iterable[TableName]) -> dict[str, int]:
    """Give exact row counts as {"schema.table": n}, counting each table without its children."""
    counts: dict[str, int] = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, table))
        row = conn.execute(query).fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
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
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield Snapshot(conn, str(row[0]))
    finally:
        conn.rollback()
        conn.close()
