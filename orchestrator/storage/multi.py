"""Several stores: each stays a plain Storage; this layer names them, runs one piece of
work on all of them at once, and falls back from one to the next on reads.

A store that fails never takes the others with it: `fan_out` gives each store's own
outcome, and `first_success` moves on to the next store, logging why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from orchestrator.errors import ConfigError, Interrupted, JobError, LocalDiskFull, OrchestratorError
from orchestrator.logs import get_logger, with_context
from orchestrator.storage.base import Storage

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class NamedStore:
    """A store as people know it: `label` (its URL, without credentials) and `setting`
    (STORAGE_URL, STORAGE_URL_2, ...) for messages."""

    label: str
    setting: str
    storage: Storage


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One store's result of a fanned-out piece of work: a value or the error it raised."""

    store: NamedStore
    value: T | None = None
    error: OrchestratorError | None = None

    @property
    def ok(self) -> bool:
        """True when the work succeeded on this store."""
        return self.error is None


def fan_out(stores: Sequence[NamedStore], work: Callable[[NamedStore], T]) -> list[Outcome[T]]:
    """Run `work` on every store at once; give each store's outcome, in store order.

    Expected failures (OrchestratorError) are caught per store; a stop (Interrupted) and
    anything else (a bug) propagate once every store has finished.
    """
    if len(stores) <= 1:
        return [_attempt(work, store) for store in stores]
    with ThreadPoolExecutor(max_workers=len(stores), thread_name_prefix="store") as pool:
        futures = [pool.submit(with_context(_attempt), work, store) for store in stores]
        return [future.result() for future in futures]


def _attempt(work: Callable[[NamedStore], T], store: NamedStore) -> Outcome[T]:
    try:
        return Outcome(store, value=work(store))
    except (Interrupted, LocalDiskFull):  # not the store's fault: no other is tried
        raise
    except OrchestratorError as exc:
        return Outcome(store, error=exc)


def first_success(stores: Sequence[NamedStore], work: Callable[[NamedStore], T], what: str) -> T:
    """Give `work`'s result on the first store where it succeeds, trying them in order.

    Each failure (unreachable store, missing or damaged object) is logged as
    `store.fallback` with its reason before the next store is tried. When every store
    fails, raises the one error if there was one store, else an error listing every
    store's reason (ConfigError when every reason was a configuration problem).
    """
    errors: list[tuple[NamedStore, OrchestratorError]] = []
    for index, store in enumerate(stores):
        try:
            return work(store)
        except (Interrupted, LocalDiskFull):  # not the store's fault: no other is tried
            raise
        except OrchestratorError as exc:
            errors.append((store, exc))
            if index + 1 < len(stores):
                log.warning("store.fallback", store=store.label, doing=what, error=str(exc))
    raise combined(errors, what)


def combined(
    errors: Sequence[tuple[NamedStore, OrchestratorError]], what: str
) -> OrchestratorError:
    """One error for failures on several stores: the error itself when there is one."""
    if not errors:
        return JobError(f"no store to {what}")
    if len(errors) == 1:
        return errors[0][1]
    text = "; ".join(f"{store.label}: {exc}" for store, exc in errors)
    kind = ConfigError if all(isinstance(e, ConfigError) for _s, e in errors) else JobError
    return kind(f"could not {what} from any store ({text})")
