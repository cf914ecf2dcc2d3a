"""What the tool has done: one JSON document per cycle, drill and manual restore, kept in the
stores under `_orchestrator/history/` and read back for `status` and the status page.

Keys sort by time: `_orchestrator/history/<YYYYMMDDTHHMMSSZ>-<kind>-<run_id>.json`. The
tool keeps the newest 500 documents or those of the last 180 days, whichever keeps more,
and prunes the rest itself after each write; backup retention never looks here (it only
ever deletes what a manifest names). Writing history is best effort: a store that refuses
is logged, and the job's own outcome stands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.catalog import STATUS_PREFIX
from orchestrator.errors import Interrupted, OrchestratorError
from orchestrator.logs import get_logger, with_context
from orchestrator.storage import Storage
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)

PREFIX = f"{STATUS_PREFIX}history/"
KINDS = ("cycle", "drill", "restore")
KEEP_COUNT = 500
KEEP_DAYS = 180
STAMP = "%Y%m%dT%H%M%SZ"
_KEY = re.compile(
    rf"^{re.escape(PREFIX)}(?P<when>\d{{8}}T\d{{6}}Z)-(?P<kind>{'|'.join(KINDS)})-(?P<run>[\w-]+)\.json$"
)


@dataclass(frozen=True)
class Entry:
    """One history document's key, read back."""

    key: str
    when: datetime
    kind: str


def key_for(kind: str, started_at: datetime, run_id: str) -> str:
    """The key of a `kind` document for a run that started at `started_at`."""
    safe = re.sub(r"[^\w-]", "_", run_id) or "run"
    return f"{PREFIX}{started_at.astimezone(UTC).strftime(STAMP)}-{kind}-{safe}.json"


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
        (e for e in map(parse_key, keys) if e is not None), key=lambda e: e.key, reverse=True
    )
    cutoff = now - timedelta(days=keep_days)
    return sorted(e.key for i, e in enumerate(entries) if i >= keep_count and e.when < cutoff)


def record(stores: Sequence[NamedStore], kind: str, document: dict[str, Any]) -> None:
    """Keep `document` (with `kind` set) in every store, then prune each store's history.

    Best effort: a store that refuses is logged and skipped; never raises but for a stop.
    """
    started = _when(document.get("started_at")) or datetime.now(UTC)
    key = key_for(kind, started, str(document.get("run_id") or "run"))
    data = json.dumps({**document, "kind": kind}, indent=2).encode()
    for store in stores:
        try:
            store.storage.put_bytes(key, data)
            doomed = to_delete([o.key for o in store.storage.list(PREFIX)], datetime.now(UTC))
            if doomed:
                store.storage.delete(doomed)
        except Interrupted:
            raise
        except OrchestratorError as exc:
            log.warning("history.save_failed", store=store.label, kind=kind, error=str(exc))


def _when(text: object) -> datetime | None:
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

    cycles: list[dict[str, Any]] = field(default_factory=list)
    drills: list[dict[str, Any]] = field(default_factory=list)
    restores: list[dict[str, Any]] = field(default_factory=list)


def load(stores: Sequence[NamedStore], limit: int = 200) -> History:
    """Read the newest `limit` documents of each kind from the first store that can be
    listed (stores hold the same history); an empty History when none can."""
    for store in stores:
        try:
            return _load(store.storage, limit)
        except Interrupted:
            raise
        except OrchestratorError as exc:
            log.warning("history.unreadable", store=store.label, error=str(exc))
    return History()


def _load(storage: Storage, limit: int) -> History:
    entries = sorted(
        (e for e in (parse_key(o.key) for o in storage.list(PREFIX)) if e is not None),
        key=lambda e: e.key,
        reverse=True,
    )
    chosen = [e for kind in KINDS for e in [x for x in entries if x.kind == kind][:limit]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        documents = list(pool.map(with_context(_read), [storage] * len(chosen), chosen))
    history = History()
    for entry, document in zip(chosen, documents, strict=True):
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
