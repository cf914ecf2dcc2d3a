"""One cycle at a time, across hosts: a session-level advisory lock on the source.

A second `pipeline` (a manual run during the scheduled one, or a second container) finds
the lock taken and stops with AlreadyRunning before doing anything. The lock dies with
its connection, so a crashed run never leaves it behind. Needs a direct (not
transaction-pooled) connection, which is what SOURCE_DATABASE_URL should be anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from orchestrator.conninfo import ConnInfo
from orchestrator.errors import AlreadyRunning
from orchestrator.postgres import queries

LOCK_NAMESPACE = "orchestrator-pipeline:"


def lock_key(database: str) -> int:
    """A stable signed 64-bit advisory-lock key for cycles of `database`."""
    digest = hashlib.sha256((LOCK_NAMESPACE + database).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _keep_idle_session(conn: queries.Conn) -> None:
    """Stop idle_session_timeout (PostgreSQL 14+) from ending the idle lock session, which
    would release the lock in the middle of a cycle."""
    conn.execute(
        "SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'idle_session_timeout'"
    )


@contextlib.contextmanager
def cycle_lock(source: ConnInfo, setting: str) -> Iterator[None]:
    """Hold the cycle lock for `source`'s database; raise AlreadyRunning when it is taken."""
    with contextlib.closing(queries.connect(source, setting)) as conn:
        key = lock_key(source.database)
        _keep_idle_session(conn)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not row or not row[0]:
            raise AlreadyRunning(
                f"another cycle or drill for database {source.database} is already running "
                "(it holds the advisory lock on the source); not starting a second one"
            )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
