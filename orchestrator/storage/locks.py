"""Locks in the stores: one per store and backup database, so that `prune`, `rekey`, `sync`
and a cycle never change the same backups at once (as restic and borg lock a repository).

A lock is the object `_orchestrator/locks/<database>.json`, created only when absent (a
conditional write on S3, an exclusive create in a folder) and naming its holder: the
command, host, process and when it expires. The holder rewrites it every `REFRESH`
seconds with a new expiry `TTL` seconds ahead and deletes it when done. A lock is stale,
and is broken (logged), when it has expired or when its holder was a process of this host
that no longer runs. Whoever finds a live lock is refused with AlreadyRunning (exit 3)
naming the holder; nothing waits. A store that cannot be written is skipped (logged): its
own work fails on it anyway, and the other stores go on.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import wait
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from orchestrator import tasks
from orchestrator.errors import AlreadyRunning, Interrupted, OrchestratorError
from orchestrator.formats import iso_z
from orchestrator.logs import get_logger
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)

LOCK_PREFIX = "_orchestrator/locks/"
TTL = timedelta(minutes=5)
REFRESH = 60.0  # seconds between rewrites of a held lock
WAIT = 15.0  # seconds to wait for the stores to answer before going on without them


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written in it."""

    command: str
    host: str
    pid: int
    started_at: str
    expires_at: str

    def stale(self, now: datetime) -> bool:
        """True when the lock expired, or its process of this host is gone."""
        if _moment(self.expires_at) < now:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)

    def describe(self) -> str:
        """`rekey (pid 42 on host-a, since 2026-12-05T14:00:00Z)`."""
        return f"{self.command} (pid {self.pid} on {self.host}, since {self.started_at})"


def lock_key(database: str) -> str:
    """The key of the lock of `database`'s backups in a store."""
    return f"{LOCK_PREFIX}{re.sub(r'[^A-Za-z0-9_.-]', '_', database) or 'database'}.json"


def _moment(text: str) -> datetime:
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(command: str, started: datetime) -> Holder:
    now = datetime.now(UTC)
    return Holder(command, socket.gethostname(), os.getpid(), iso_z(started), iso_z(now + TTL))


def _read(store: NamedStore, key: str) -> Holder | None:
    """The holder written in the lock, or None when it is gone or unreadable."""
    try:
        found = json.loads(store.storage.get_bytes(key))
        return Holder(**{k: found[k] for k in Holder.__dataclass_fields__})
    except (OrchestratorError, ValueError, KeyError, TypeError):
        return None


def _take(store: NamedStore, database: str, holder: Holder) -> bool:
    """Take the lock of `database` in `store`; True when taken, False when the store could
    not be written (skipped). Raises AlreadyRunning when a live holder has it."""
    key = lock_key(database)
    data = json.dumps(asdict(holder)).encode()
    try:
        for _attempt in (1, 2):
            if store.storage.put_if_absent(key, data):
                return True
            found = _read(store, key)
            if found is not None and not found.stale(datetime.now(UTC)):
                raise AlreadyRunning(
                    f"{holder.command} refused: {found.describe()} holds the lock of database "
                    f"{database} in {store.label} ({store.setting}) and changes the same "
                    "backups; run it again when that has ended"
                )
            log.warning(
                "lock.broken",
                store=store.label,
                database=database,
                stale=asdict(found) if found else None,
            )
            store.storage.delete([key])
    except (AlreadyRunning, Interrupted):
        raise
    except OrchestratorError as exc:
        log.warning("lock.store_unavailable", store=store.label, error=str(exc))
        return False
    raise AlreadyRunning(
        f"{holder.command} refused: the lock of {database} in {store.label} was taken meanwhile"
    )


class _Taking:
    """The locks being taken at once, one thread per (store, database): what was taken,
    and the first refusal. A lock taken after the job stopped waiting is released at once."""

    def __init__(self, command: str, started: datetime) -> None:
        self.command = command
        self.started = started
        self.taken: list[tuple[NamedStore, str]] = []
        self.refused: AlreadyRunning | None = None
        self.closed = False
        self._lock = threading.Lock()

    def attempt(self, store: NamedStore, database: str) -> None:
        try:
            got = _take(store, database, _holder(self.command, self.started))
        except AlreadyRunning as exc:
            with self._lock:
                self.refused = self.refused or exc
            return
        except Exception as exc:  # a thread must not die silently
            log.warning("lock.store_unavailable", store=store.label, error=str(exc))
            return
        with self._lock:
            if got and not self.closed:
                self.taken.append((store, database))
                return
        if got:
            _release(store, database)

    def close(self) -> list[tuple[NamedStore, str]]:
        """Stop accepting locks; give those taken."""
        with self._lock:
            self.closed = True
            return list(self.taken)


def _release(store: NamedStore, database: str) -> None:
    with contextlib.suppress(OrchestratorError):
        store.storage.delete([lock_key(database)])


@contextlib.contextmanager
def store_locks(pairs: Sequence[tuple[NamedStore, str]], command: str) -> Iterator[None]:
    """Hold the lock of each (store, database) in `pairs` while the body runs.

    The locks are taken at once; a store that has not answered within WAIT seconds, or
    cannot be written, is skipped (logged): its own work fails on it anyway. Raises
    AlreadyRunning, releasing what was taken, when any is held by a live holder. Locks
    are refreshed in a thread and deleted on exit (best effort: a lock left behind
    expires after TTL).
    """
    taking = _Taking(command, datetime.now(UTC))
    attempts = [
        tasks.in_background(functools.partial(taking.attempt, *pair), "lock")
        for pair in sorted(set(pairs), key=lambda p: (p[0].setting, p[1]))
    ]
    _answered, pending = wait(attempts, timeout=WAIT)
    stop = threading.Event()
    try:
        if pending:
            log.warning("lock.store_slow", waited=WAIT)
        if taking.refused is not None:
            raise taking.refused
        tasks.in_background(lambda: _refresh(taking, stop), "lock-refresh")
        yield
    finally:
        stop.set()
        for store, database in taking.close():
            _release(store, database)


def _refresh(taking: _Taking, stop: threading.Event) -> None:
    """Rewrite each held lock with a later expiry every REFRESH seconds until `stop`."""
    while not stop.wait(REFRESH):
        data = json.dumps(asdict(_holder(taking.command, taking.started))).encode()
        for store, database in list(taking.taken):
            try:
                store.storage.put_bytes(lock_key(database), data)
            except OrchestratorError as exc:
                log.warning("lock.refresh_failed", store=store.label, error=str(exc))
