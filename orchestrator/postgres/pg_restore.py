"""pg_restore and psql into a target: argv builders, runs, and reading an archive's TOC."""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator import execute
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, JobError
from orchestrator.logs import get_logger
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.dump import libpq_env
from orchestrator.restore_plan import UNLIMITED_SESSION, error_message, real_errors

MAX_RESTORE_ERRORS = 200
log = get_logger(__name__)

TableName = tuple[str, str]


NO_DECOMPRESSION = "this installation does not support compression"


def list_toc(client: ClientSet, archive: Path) -> str:
    """Give `pg_restore --list` of `archive`. Raises CommandFailed when it cannot be read,
    and ConfigError when this pg_restore cannot decompress its data (a build without zstd
    lists a zstd archive with only a warning, then fails to restore it).

    A cycle lists one dump several times (the dump step, then each target's restore, side
    by side): a listing is kept for the file as it is (device, inode, size, modification
    time of the archive, or of a directory archive's toc.dat) and the pg_restore used."""
    key = _toc_key(client, archive)
    with _LISTED_LOCK:
        listed = _LISTED.get(key) if key is not None else None
    if listed is not None:
        return listed
    result = execute.run([client.tool("pg_restore"), "--list", str(archive)], timeout=600)
    if any(NO_DECOMPRESSION in line for line in result.stderr_lines):
        raise ConfigError(
            f"PG_BIN_DIRS: pg_restore {client.version} ({client.bin_dir}) was built without "
            f"the compression of {archive.name}; use a build that has it (PGDG, Debian, Docker)"
        )
    if key is not None:
        with _LISTED_LOCK:
            while len(_LISTED) >= LISTINGS_KEPT:
                _LISTED.pop(next(iter(_LISTED)))
            _LISTED[key] = result.stdout
    return result.stdout


LISTINGS_KEPT = 8
_LISTED: dict[tuple[object, ...], str] = {}
_LISTED_LOCK = threading.Lock()


def _toc_key(client: ClientSet, archive: Path) -> tuple[object, ...] | None:
    """What a listing of `archive` by `client` is kept under; None when it cannot be
    read (pg_restore then says why)."""
    try:
        found = (archive / "toc.dat" if archive.is_dir() else archive).stat()
    except OSError:
        return None
    identity = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    return (client.tool("pg_restore"), str(archive.resolve()), *identity)


_LONGER_KINDS = {  # kinds whose name starts with another kind's name
    "TABLE": ("DATA ", "ATTACH "),
    "SEQUENCE": ("SET ", "OWNED BY "),
    "MATERIALIZED VIEW": ("DATA ",),
}
_TOC_LINE = re.compile(r"^\d+;\s+\d+\s+(?P<oid>\d+)\s+(?P<rest>.*)$")


def toc_entries(toc: str, kind: str) -> list[str]:
    """Give "<schema> <name> <owner>" of each TOC entry of `kind` ("TABLE DATA", "TABLE", ...)."""
    return [rest for _oid, rest in _entries_with_oids(toc, kind)]


def printed(name: str) -> str:
    """`name` as `pg_restore --list` prints it: each newline or carriage return a space."""
    return name.replace("\r", " ").replace("\n", " ")


def _match(rest: str, candidates: list[TableName]) -> TableName | None:
    for schema, table in candidates:
        names = f"{printed(schema)} {printed(table)}"
        if rest.startswith(f"{names} ") or rest == names:
            return schema, table
    return None


def _longest_first(known: Iterable[TableName]) -> list[TableName]:
    """`known`, longest names first: the order `_match` must try them in."""
    return sorted(known, key=lambda t: len(t[0]) + len(t[1]), reverse=True)


def _exact(oid: int, rest: str, by_oid: Mapping[int, TableName] | None) -> TableName | None:
    """The table `by_oid` (the tables by their oid in the dumped snapshot) gives for an
    entry's printed `oid`, when the entry's printed names (`rest`) fit it; else None."""
    table = by_oid.get(oid) if by_oid else None
    return table if table is not None and _match(rest, [table]) else None


def toc_tables(
    toc: str,
    known: Iterable[TableName],
    kind: str = "TABLE DATA",
    by_oid: Mapping[int, TableName] | None = None,
) -> tuple[list[TableName], list[str]]:
    """Match the archive's `kind` entries against the known (schema, table) pairs.

    TOC lines print names unquoted ("public my table owner"), so names are matched against
    known pairs, longest first, rather than split on spaces; with `by_oid` (the tables by
    their oid in the dumped snapshot) an entry's printed oid picks its table exactly
    (`s."a b"` and `"s a".b` print alike). Gives (matched tables, sorted; the text of
    entries that matched nothing, owner dropped).
    """
    candidates = _longest_first(known)
    found: list[TableName] = []
    unmatched: list[str] = []
    for oid, rest in _entries_with_oids(toc, kind):
        table = _exact(oid, rest, by_oid) or _match(rest, candidates)
        if table:
            found.append(table)
        else:
            unmatched.append(rest.rsplit(" ", 1)[0])
    return sorted(found), unmatched


def _entries_with_oids(toc: str, kind: str) -> list[tuple[int, str]]:
    """(printed oid, "<schema> <name> <owner>") of each TOC entry of `kind`."""
    found = []
    for line in toc.splitlines():
        match = _TOC_LINE.match(line)
        if match and match["rest"].startswith(f"{kind} "):
            rest = match["rest"][len(kind) + 1 :]
            if not rest.startswith(_LONGER_KINDS.get(kind, ())):
                found.append((int(match["oid"]), rest))
    return found


def table_data_tables(
    toc: str, known: Iterable[TableName], by_oid: Mapping[int, TableName] | None = None
) -> list[TableName]:
    """Give the tables of `known` whose data the archive holds (exactly, with `by_oid`)."""
    return toc_tables(toc, known, by_oid=by_oid)[0]


@dataclass(frozen=True)
class RestoreOptions:
    """How pg_restore runs (from settings and the chosen strategy). `section` and
    `use_list` restore one section (pre-data, data, post-data) of the entries a list names."""

    jobs: int = 2
    no_owner: bool = True
    no_acl: bool = True
    single_transaction: bool = False
    timeout: float | None = None
    section: str | None = None
    use_list: Path | None = None
    work_dir: Path | None = None  # for the lists of a restore in two runs (None: the system's)


@dataclass(frozen=True)
class TocEntry:
    """One entry of `pg_restore --list`: its line as printed, its kind, and what follows
    the kind ("<schema> <name> <owner>")."""

    line: str
    kind: str
    rest: str
    oid: int = 0  # the catalog oid printed before the kind (a TABLE DATA entry's: its table's)


# kinds that matter to a masked restore, longest first (BLOBS before BLOB)
TOC_KINDS = (
    "MATERIALIZED VIEW DATA",
    "STATISTICS DATA",
    "BLOB METADATA",
    "SEQUENCE SET",
    "TABLE DATA",
    "BLOBS",
    "BLOB",
)


def toc_list(toc: str) -> list[TocEntry]:
    """Every entry of a `pg_restore --list` output, in order (comment lines dropped); kinds
    other than TOC_KINDS are "other"."""
    entries = []
    for line in toc.splitlines():
        match = _TOC_LINE.match(line)
        if match:
            text = match["rest"]
            kind = next((k for k in TOC_KINDS if text.startswith(f"{k} ")), "other")
            rest = text[len(kind) + 1 :] if kind != "other" else text
            entries.append(TocEntry(line, kind, rest, int(match["oid"])))
    return entries


def entry_table(
    entry: TocEntry, known: Iterable[TableName], by_oid: Mapping[int, TableName] | None = None
) -> TableName | None:
    """The (schema, table) of `known` that a TABLE DATA entry loads, or None: by the
    entry's oid when `by_oid` has it and the printed names fit, else the longest name."""
    return _exact(entry.oid, entry.rest, by_oid) or _match(entry.rest, _longest_first(known))


def entry_tables(
    entry: TocEntry, known: Collection[TableName], by_oid: Mapping[int, TableName] | None = None
) -> list[TableName]:
    """Every (schema, table) of `known` that a TABLE DATA entry may load. TOC lines print
    names unquoted, so `public users x y` is table `users` of owner `x y` or table
    `users x` of owner `y`: callers that must not guess (masking) look at all of them.
    With `by_oid` (the tables by their oid in the dumped snapshot), the entry's own oid
    picks the one it loads, when its printed names fit that table (then without a look at
    the others: a schema of a thousand tables would cost a million name matches)."""
    exact = _exact(entry.oid, entry.rest, by_oid)
    if exact is not None and exact in known:
        return [exact]
    return [table for table in known if _match(entry.rest, [table])]


def write_list(entries: Iterable[TocEntry], path: Path) -> Path:
    """Write a list file for `pg_restore --use-list` naming `entries`; give its path."""
    path.write_text("".join(f"{entry.line}\n" for entry in entries), encoding="utf-8")
    return path


def restore_argv(
    client: ClientSet, target: ConnInfo, archive: Path, options: RestoreOptions
) -> list[str]:
    """Give the pg_restore argv restoring `archive` into `target` (no password in it).

    A single transaction restores with --clean --if-exists in one connection; otherwise
    the restore runs in parallel into an empty database.
    """
    argv = [client.tool("pg_restore"), "--no-password", f"--dbname={target.url}"]
    if options.single_transaction:
        argv += ["--single-transaction", "--clean", "--if-exists", "--exit-on-error"]
    else:
        argv.append(f"--jobs={max(1, options.jobs)}")
    if options.no_owner:
        argv.append("--no-owner")
    if options.no_acl:
        argv.append("--no-acl")
    if options.section:
        argv.append(f"--section={options.section}")
    if options.use_list:
        argv.append(f"--use-list={options.use_list}")
    return [*argv, str(archive)]


def copy_stages(
    client: ClientSet, target: ConnInfo, archive: Path, entry_list: Path, middle: execute.Stage
) -> list[execute.Stage]:
    """The pipeline that loads one TABLE DATA entry through `middle`: pg_restore prints the
    entry's COPY script (no server involved), `middle` rewrites it, psql runs it into
    `target` in one transaction, stopping at the first error."""
    script = [client.tool("pg_restore"), f"--use-list={entry_list}", "--file=-", str(archive)]
    load = psql_argv(client, target, "-")
    return [
        execute.Stage(script),
        middle,
        execute.Stage(load, libpq_env(target, "masked-copy")),
    ]


@dataclass(frozen=True)
class Phase:
    """One pg_restore of a restore in parts: its list file's name, its entries, its jobs
    (None: the restore's)."""

    name: str
    entries: list[TocEntry]
    jobs: int | None = None


def foreign_keys_last(entries: list[TocEntry]) -> list[Phase] | None:
    """The parts of a parallel restore whose `entries` hold both foreign keys and partition
    index attachments, else None (one pg_restore does): the entries before the first key
    but the attachments; the attachments, one at a time; then the first key and every entry
    after it. pg_dump writes its entries in an order where each follows what it depends on,
    attachments before keys, so no part depends on a later one (a comment on a key comes
    right after the key).

    `pg_restore --jobs` does not know what an index attachment locks: it may add a key to a
    partitioned table (which recurses into its partitions) while a partition's index is
    being attached, and the two deadlock; or add a key referencing a table of several
    partition levels before a lower level's index is attached, and the key finds no unique
    index ("there is no unique constraint matching given keys"). Attachments made at once
    can also each miss the other's: the parent index of a two-level tree then stays
    invalid for good (seen on PostgreSQL 14 after the keys had been moved last), so they
    run one at a time, each seeing the ones before it."""
    first = next((i for i, e in enumerate(entries) if e.rest.startswith("FK CONSTRAINT ")), None)
    if first is None:
        return None
    attach = [e for e in entries[:first] if e.rest.startswith("INDEX ATTACH ")]
    if not attach:
        return None
    before = [e for e in entries[:first] if not e.rest.startswith("INDEX ATTACH ")]
    return [
        Phase("before-keys", before),
        Phase("attachments", attach, jobs=1),
        Phase("keys-on", entries[first:]),
    ]


def run_restore(
    client: ClientSet, target: ConnInfo, archive: Path, options: RestoreOptions
) -> list[str]:
    """Run pg_restore; give the harmless errors it ignored (see restore_plan.HARMLESS_ERRORS).
    A parallel restore of partitioned tables with foreign keys runs in three parts:
    everything before the keys but the partition index attachments, the attachments one at
    a time, then the keys and what follows them (`foreign_keys_last`).

    Raises JobError with the first real errors when pg_restore reported any, and
    CommandFailed when it failed outright (killed, timed out, exit code above 1).
    """
    if options.single_transaction or options.jobs <= 1 or options.section in ("pre-data", "data"):
        return _run_restore(client, target, archive, options)
    listed = options.use_list.read_text(encoding="utf-8") if options.use_list else None
    phases = foreign_keys_last(toc_list(list_toc(client, archive) if listed is None else listed))
    if phases is None:
        return _run_restore(client, target, archive, options)
    ignored: list[str] = []
    if options.work_dir is not None:
        options.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orchestrator-restore-", dir=options.work_dir) as tmp:
        for part in phases:
            listed_part = write_list(part.entries, Path(tmp) / part.name)
            jobs = options.jobs if part.jobs is None else part.jobs
            phase = dataclasses.replace(options, use_list=listed_part, jobs=jobs)
            ignored += _run_restore(client, target, archive, phase)
    return sorted(set(ignored))


def _run_restore(
    client: ClientSet, target: ConnInfo, archive: Path, options: RestoreOptions
) -> list[str]:
    """One pg_restore; gives and raises as `run_restore` does."""
    argv = restore_argv(client, target, archive, options)
    result = execute.run(
        argv,
        env=libpq_env(target, "restore"),
        timeout=options.timeout,
        ok_codes=(0, 1),
        max_errors=MAX_RESTORE_ERRORS,
    )
    if options.single_transaction and (result.returncode != 0 or result.errors_seen):
        # --single-transaction stops at the first error and rolls everything back: no error
        # is harmless then, the target simply kept its old content
        first = next((m for line in result.stderr_lines if (m := error_message(line))), "")
        raise JobError(f"pg_restore failed and its transaction was rolled back: {first}")
    errors = real_errors(result.stderr_lines)
    if errors:
        shown = "; ".join(errors[:3])
        raise JobError(f"pg_restore reported {len(errors)} error(s): {shown}")
    if result.errors_seen > MAX_RESTORE_ERRORS:
        raise JobError(f"pg_restore reported {result.errors_seen} errors, too many to check")
    ignored = sorted({m for line in result.stderr_lines if (m := error_message(line))})
    if result.returncode != 0 and not ignored:
        raise JobError("pg_restore exited with code 1 without an error message")
    if ignored:
        log.warning("restore.harmless_errors", errors=ignored, note="known harmless, ignored")
    return ignored


TIMEOUT_SETTING = b"\nSET transaction_timeout = 0;\n"
HEADER_BYTES = 64 * 1024


def neutralise_transaction_timeout(script: Path) -> bool:
    """Turn the script's `SET transaction_timeout = 0;` (sent by pg_restore 17+, unknown to
    servers before 17) into a comment of the same length, in place; give whether it was there.

    Only the header, before any COPY data, is looked at: a data row never changes.
    """
    with script.open("r+b") as handle:
        head = b"\n" + handle.read(HEADER_BYTES)  # offsets below are one past the file's
        first_copy = head.find(b"\nCOPY ")
        where = head.find(TIMEOUT_SETTING)
        if where < 0 or (0 <= first_copy < where):
            return False
        handle.seek(where)
        handle.write(b"--" + TIMEOUT_SETTING[3:-1])
    return True


def restore_via_script(
    client: ClientSet, target: ConnInfo, archive: Path, options: RestoreOptions, folder: Path
) -> None:
    """Restore in one transaction through a SQL script run by psql, for a pg_restore newer
    than a server older than 17: pg_restore writes the script (--clean --if-exists), its
    transaction_timeout line is neutralised, psql runs it with --single-transaction and
    ON_ERROR_STOP, so any error rolls everything back. Needs disk for the script (about the
    size of the uncompressed data). Raises CommandFailed with the first error.
    """
    script = folder / "restore.sql"
    argv = [client.tool("pg_restore"), "--clean", "--if-exists", f"--file={script}"]
    argv += ["--no-owner"] if options.no_owner else []
    argv += ["--no-acl"] if options.no_acl else []
    execute.run([*argv, str(archive)], timeout=options.timeout)
    try:
        neutralise_transaction_timeout(script)
        run_sql_file(client, target, script, options.timeout)
    finally:
        script.unlink(missing_ok=True)


def run_sql_file(client: ClientSet, target: ConnInfo, path: Path, timeout: float | None) -> None:
    """Run a SQL file with psql in one transaction, stopping at the first error.

    Raises CommandFailed naming the file's first error.
    """
    argv = psql_argv(client, target, str(path))
    execute.run(argv, env=libpq_env(target, "post-restore-sql"), timeout=timeout)


def psql_argv(client: ClientSet, target: ConnInfo, script: str) -> list[str]:
    """psql running `script` (a path, or - for stdin) into `target` in one transaction,
    stopping at the first error (no password in it), with no time limits from the target's
    settings (UNLIMITED_SESSION, set first thing in its transaction: the script's own SETs
    come only with its first lines, and a masked load's psql waits for them, idle in its
    transaction, while the filter starts and decides)."""
    return [
        client.tool("psql"),
        "--no-password",
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={target.url}",
        f"--command={UNLIMITED_SESSION}",
        f"--file={script}",
    ]
