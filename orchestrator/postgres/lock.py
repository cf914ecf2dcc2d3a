"""One cycle at a time, across hosts: a session-level advisory lock on the source. And the
staging databases of restores and drills: each run holds a lock on its own, so the next run
can tell one left by a run that died (no lock held) from one still in use. And one restore
into a target database at a time: each holds a lock on the target's name on its server.

A second `pipeline` (a manual run during the scheduled one, or a second container) finds
the lock taken and stops with AlreadyRunning before doing anything. The lock dies with
its connection, so a crashed run never leaves it behind. Needs a direct (not
transaction-pooled) connection, which is what SOURCE_DATABASE_URL should be anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator

import psycopg

from orchestrator.conninfo import ConnInfo
from orchestrator.errors import AlreadyRunning
from orchestrator.logs import get_logger, mask
from orchestrator.postgres import queries

LOCK_NAMESPACE = "orchestrator-pipeline:"
STAGING_NAMESPACE = "orchestrator-staging:"
TARGET_NAMESPACE = "orchestrator-target:"

log = get_logger(__name__)


def lock_key(database: str, namespace: str = LOCK_NAMESPACE) -> int:
    """A stable signed 64-bit advisory-lock key for cycles of `database` (or, in another
    `namespace`, for another use of the name)."""
    digest = hashlib.sha256((namespace + database).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def claim_staging(conn: queries.Conn, database: str) -> None:
    """Mark the staging `database` as this run's, before creating it: a session lock that
    lasts until `conn` closes, however the run ends (a killed process included)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(database, STAGING_NAMESPACE),))


def claim_target(conn: queries.Conn, database: str, target: str) -> None:
    """Hold the claim on restoring into `database` (of target `target`) until `conn`
    closes. Raises AlreadyRunning when another run holds it: two restores swapping into
    one name at once would rename over each other's copies."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s)", (lock_key(database, TARGET_NAMESPACE),)
    ).fetchone()
    if not row or not row[0]:
        raise AlreadyRunning(
            f"restore into {target} refused: another restore into {database} on this server "
            "is running (it holds the advisory lock on the name); the target is left to it"
        )


def sweep_staging(
    conn: queries.Conn, left_by: Callable[[str], bool], server_major: int
) -> list[str]:
    """Drop every database `left_by` accepts whose run has ended (no session holds its
    claim): what a restore or drill killed before it could clean up left behind, which
    would otherwise hold its disk space for good. A claimed one is left alone; one that
    cannot be dropped is logged. Give the names dropped."""
    dropped = []
    for name in filter(left_by, queries.database_names(conn)):
        key = lock_key(name, STAGING_NAMESPACE)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not row or not row[0]:
            continue
        try:
            queries.drop_database(conn, name, server_major)
            dropped.append(name)
            log.info("staging.swept", database=name)
        except psycopg.Error as exc:
            log.warning("staging.left", database=name, error=mask(str(exc)))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return dropped


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
