"""`orchestrator init`: make every configured store ready, as `restic init` does.

A folder store is created and gets the marker `_orchestrator/store.json`; without it
every write to the folder is refused (see `orchestrator.storage.local`). An S3 store is
checked (bucket, credentials) and gets the marker too, written and read back, which
proves it reachable and writable. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.job import Job
from orchestrator.storage.multi import NamedStore, fan_out


@dataclass(frozen=True)
class InitResult:
    """One store's outcome: `initialised` (marker written now), `ready` (it was there), or
    the error."""

    store: NamedStore
    outcome: str
    error: str | None = None


def init(job: Job) -> list[InitResult]:
    """Initialise every store at once; give each store's outcome in store order. Raises
    ConfigError only when a store's URL is malformed (nothing touched)."""
    stores = job.stores()
    results = []
    for done in fan_out(stores, lambda store: store.storage.initialise()):
        if done.error is not None:
            results.append(InitResult(done.store, "failed", str(done.error)))
        else:
            results.append(InitResult(done.store, "initialised" if done.value else "ready"))
    return results
