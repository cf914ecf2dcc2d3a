"""The check every restore makes: count the rows of each table of the restored database
(after ANALYZE when the copy will be used) and compare them with the manifest's.

The work is shared out over several connections, largest relations first: ANALYZE costs
a few milliseconds per table, so on a schema of hundreds of small tables one connection
spent longer analyzing than pg_restore spent loading, with the server's other cores idle.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from orchestrator import cancel, restore_plan
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import JobError
from orchestrator.logs import with_context
from orchestrator.postgres import queries
from orchestrator.postgres.queries import Conn, Relation
from orchestrator.table_names import table_key


@dataclass(frozen=True)
class Verified:
    """What a restored database holds against its manifest: the differences found (none
    when it matches), and the tables and rows counted."""

    problems: list[str]
    tables: int
    rows: int


@dataclass(frozen=True)
class _Task:
    """One statement of the check: ANALYZE or count(*) one relation."""

    analyze: bool
    relation: Relation


def verify_restored(
    database: ConnInfo,
    manifest: Manifest,
    setting: str,
    *,
    analyze: bool = False,
    expected: dict[str, int] | None = None,
    jobs: int = 1,
) -> Verified:
    """Count the rows of the manifest's tables in the restored `database` (and ANALYZE
    every relation when `analyze`, for a database that will be used) over up to `jobs`
    connections, and give every difference from the manifest (or from `expected`, the
    rows a subset kept). This is the check every restore path makes: restores into a
    target (which raise on a difference) and drills (which report them). Raises
    ConfigError/JobError naming `setting` when the database cannot be reached or a
    statement fails, JobError when a stop was requested."""
    first = queries.connect(database, setting)
    try:
        tasks = _tasks(queries.relations(first), manifest, analyze)
        counts = _work_through(tasks, first, lambda: queries.connect(database, setting), jobs)
    finally:
        first.close()
    problems = restore_plan.count_differences(expected or manifest.row_counts, counts)
    return Verified(problems, len(counts), sum(counts.values()))


def _tasks(found: list[Relation], manifest: Manifest, analyze: bool) -> list[_Task]:
    """A count of each manifest table the database holds and, when `analyze`, an ANALYZE
    of every relation; the largest relations first, so that the big ones start at once."""
    wanted = set(manifest.tables)
    tasks: list[_Task] = []
    for relation in found:
        if relation.user_table and (relation.schema, relation.name) in wanted:
            tasks.append(_Task(False, relation))
        if analyze:
            tasks.append(_Task(True, relation))
    return tasks


def _work_through(
    tasks: list[_Task], first: Conn, connect: Callable[[], Conn], jobs: int
) -> dict[str, int]:
    """Run `tasks` on `first` and up to `jobs` - 1 more connections from `connect`, each
    taking the next task when it is done with one; give the counts. The first failure
    stops every connection after its current statement and is raised."""
    pending: queue.SimpleQueue[_Task] = queue.SimpleQueue()
    for task in tasks:
        pending.put(task)
    failed = threading.Event()

    def work(conn: Conn) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            with contextlib.suppress(Exception):  # only a hint: ANALYZE commits need no flush
                conn.execute("SET synchronous_commit = off")
            while not failed.is_set():
                if cancel.stop_requested():
                    raise JobError("stopped while the restored copy was being checked")
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    break
                _run(conn, task, counts)
        except BaseException:
            failed.set()
            raise
        return counts

    def work_own() -> dict[str, int]:
        with contextlib.closing(connect()) as conn:
            return work(conn)

    helpers = max(0, min(jobs, len(tasks)) - 1)
    with ThreadPoolExecutor(max_workers=max(1, helpers)) as pool:
        others = [pool.submit(with_context(work_own)) for _ in range(helpers)]
        counts = work(first)
        for other in others:
            counts.update(other.result())
    return counts


def _run(conn: Conn, task: _Task, counts: dict[str, int]) -> None:
    """Run one task on `conn`, keeping a count in `counts`."""
    relation = task.relation
    if task.analyze:
        queries.analyze_table(conn, relation.schema, relation.name)
    else:
        key = table_key(relation.schema, relation.name)
        counts[key] = queries.count_table(conn, relation.schema, relation.name)
