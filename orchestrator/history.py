"""What the tool has done: one JSON document per cycle, drill and manual restore, kept in the
stores under `_orchestrator/history/` and read back for `status` and the status page.

Keys sort by time within each source database, so that jobs for several databases can
share a store: `_orchestrator/history/<database>/<YYYYMMDDTHHMMSSZ>-<kind>-<run_id>.json`.
The tool keeps each database's newest 500 documents or those of its last 180 days,
whichever keeps more, and prunes the rest itself after each write; backup retention never
looks here (it only ever deletes what a manifest names). Writing history is best effort: a
store that refuses is logged, and the job's own outcome stands. Reading merges every store
that answers, since a store that was down missed what the others kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.catalog import STATUS_PREFIX, safe_name
from orchestrator.errors import Interrupted, OrchestratorError
from orchestrator.logs import get_logger, with_context
from orchestrator.records import CycleDoc, DrillDoc, RestoreDoc
from orchestrator.storage import Storage
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)

PREFIX = f"{STATUS_PREFIX}history/"
KINDS = ("cycle", "drill", "restore")
KEEP_COUNT = 500
KEEP_DAYS = 180
STAMP = "%Y%m%dT%H%M%SZ"
_KEY = re.compile(
    rf"^{re.escape(PREFIX)}(?:[A-Za-z0-9_.-]+/)?"
    rf"(?P<when>\d{{8}}T\d{{6}}Z)-(?P<kind>{'|'.join(KINDS)})-(?P<run>[\w-]+)\.json$"
)


@dataclass(frozen=True)
class Entry:
    """One history document's key, read back."""

    key: str
    when: datetime
    kind: str


def folder_for(database: str | None) -> str:
    """Where the documents of jobs for `database` are kept (all of them: None)."""
    return f"{PREFIX}{safe_name(database)}/" if database else PREFIX


def key_for(kind: str, started_at: datetime, run_id: str, database: str | None = None) -> str:
    """The key of a `kind` document for a run for `database` that started at `started_at`."""
    safe = re.sub(r"[^\w-]", "_", run_id) or "run"
    stamp = started_at.astimezone(UTC).strftime(STAMP)
    return f"{folder_for(database)}{stamp}-{kind}-{safe}.json"


def parse_key(key: str) -> Entry | None:
    """The entry a history key names, or None for any other key."""
    match = _KEY.match(key)
    if not match:
        return None
    when = datetime.strptime(match["when"], STAMP).replace(tzinfo=UTC)
    return Entry(key, when, match["kind"])


def to_delete(
    keys: Sequence[str], now: datetime, keep_count: int = KEEP_COUNT, keep_days: int = KEEP_DAYS
) -> list[str]:
    """The history keys to delete: those neither among the newest `keep_count` nor younger
    than `keep_days` at `now`. Keys that are not history documents are never given. Pure."""
    entries = sorted(
        (e for e in map(parse_key, keys) if e is not None), key=_newest_first, reverse=True
    )
    cutoff = now - timedelta(days=keep_days)
    return sorted(e.key for i, e in enumerate(entries) if i >= keep_count and e.when < cutoff)


def _newest_first(entry: Entry) -> tuple[datetime, str]:
    return entry.when, entry.key


def record(
    stores: Sequence[NamedStore],
    kind: str,
    document: CycleDoc | DrillDoc | RestoreDoc,
    database: str | None,
) -> None:
    """Keep `document` (with `kind` and `database` set) in every store, then prune that
    database's history in each store.

    Best effort: a store that refuses is logged and skipped; never raises but for a stop.
    """
    started = parse_moment(document.get("started_at")) or datetime.now(UTC)
    key = key_for(kind, started, str(document.get("run_id") or "run"), database)
    data = json.dumps({**document, "kind": kind, "database": database}, indent=2).encode()
    for store in stores:
        try:
            store.storage.put_bytes(key, data)
            listed = [o.key for o in store.storage.list(folder_for(database))]
            doomed = to_delete(listed, datetime.now(UTC))
            if doomed:
                store.storage.delete(doomed)
        except Interrupted:
            raise
        except OrchestratorError as exc:
            log.warning("history.save_failed", store=store.label, kind=kind, error=str(exc))


def parse_moment(text: object) -> datetime | None:
    """The aware datetime an ISO-8601 text (`...Z` too) names; naive means UTC; None when
    `text` is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class History:
    """Documents read back, newest first, per kind."""

    cycles: list[CycleDoc] = field(default_factory=list)
    drills: list[DrillDoc] = field(default_factory=list)
    restores: list[RestoreDoc] = field(default_factory=list)


def load(stores: Sequence[NamedStore], database: str | None = None, limit: int = 200) -> History:
    """Read the newest `limit` documents of each kind kept for `database` (every database:
    None), merged from every store that answers (a store that was down missed what the
    others kept); an empty History when none answers."""
    found: dict[str, tuple[Entry, Storage]] = {}
    for store in stores:
        try:
            keys = [o.key for o in store.storage.list(folder_for(database))]
        except Interrupted:
            raise
        except OrchestratorError as exc:
            log.warning("history.unreadable", store=store.label, error=str(exc))
            continue
        for entry in filter(None, map(parse_key, keys)):
            found.setdefault(entry.key.rsplit("/", 1)[-1], (entry, store.storage))
    entries = sorted(found.values(), key=lambda pair: _newest_first(pair[0]), reverse=True)
    chosen = [p for kind in KINDS for p in [x for x in entries if x[0].kind == kind][:limit]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        documents = list(
            pool.map(with_context(_read), [s for _e, s in chosen], [e for e, _s in chosen])
        )
    history = History()
    for (entry, _storage), document in zip(chosen, documents, strict=True):
        if document is not None:
            getattr(history, f"{entry.kind}s").append(document)
    return history


def _read(storage: Storage, entry: Entry) -> dict[str, Any] | None:
    try:
        document = json.loads(storage.get_bytes(entry.key))
    except (OrchestratorError, ValueError) as exc:
        log.warning("history.bad_document", key=entry.key, error=str(exc))
        return None
    return document if isinstance(document, dict) else None
