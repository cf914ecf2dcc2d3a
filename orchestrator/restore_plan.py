"""Pure restore policy: which strategy, which database names, whether a target is the source,
and which pg_restore errors are harmless. Values in, values out; no servers, no files."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["swap", "transaction"]
StrategySetting = Literal["auto", "swap", "transaction"]
MAX_NAME = 63  # PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes

LOCAL_ALIASES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
# the session settings pg_dump and pg_restore give their own connections, which ours take
# too: a server's or a role's statement_timeout (production often has one) must not cancel
# the exact row counts, ANALYZE or CREATE DATABASE of a large database, nor a masked load
UNLIMITED_SESSION = (
    "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0"
)


@dataclass(frozen=True)
class Capabilities:
    """What the restore role may do on the target server."""

    superuser: bool
    create_db: bool
    owns_target: bool  # True also when the target database does not exist yet
    server_major: int


def choose_strategy(setting: StrategySetting, caps: Capabilities) -> tuple[Strategy, str]:
    """Give the strategy and why: `swap` when the role may create and rename databases.

    An explicit `swap` the role cannot perform is still returned; the action fails on it
    with the server's own error rather than silently doing something else.
    """
    if setting != "auto":
        return setting, f"set to {setting}"
    if caps.superuser or (caps.create_db and caps.owns_target):
        return "swap", "the role may create and rename databases"
    return "transaction", "the role may not create or rename databases"


def staging_name(target: str, run_id: str) -> str:
    """A scratch database name for restoring `target`, unique per run, within 63 bytes."""
    suffix = f"__restore_{run_id}"
    return _fit(target, suffix)


_STAGING_RUN = re.compile(r"__restore_([0-9a-f]{8})\Z")


def is_staging_of(target: str, name: str) -> bool:
    """True when `name` is a staging database that some run restoring `target` named
    (staging_name with a run id of 8 hex digits), shortened names included."""
    run = _STAGING_RUN.search(name)
    return run is not None and staging_name(target, run.group(1)) == name


def previous_names(target: str, keep: int) -> list[str]:
    """Names of the kept previous copies, newest first: `<t>_previous`, `<t>_previous_2`, ..."""
    return [_fit(target, "_previous" if n == 1 else f"_previous_{n}") for n in range(1, keep + 1)]


def _fit(base: str, suffix: str) -> str:
    """`base + suffix` within 63 bytes; a shortened base gets a hash of the whole name, so
    two long names sharing a prefix never share a staging or previous-copy name."""
    room = MAX_NAME - len(suffix.encode())
    if len(base.encode()) <= room:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    trimmed = base.encode()[: room - len(digest) - 1].decode(errors="ignore")
    return f"{trimmed}_{digest}{suffix}"


@dataclass(frozen=True)
class Endpoint:
    """A database as the guard compares it: where it is and, when known, which cluster."""

    host: str
    port: int
    database: str
    system_identifier: str | None = None


def _host_key(host: str) -> str:
    host = host.lower().rstrip(".")
    return "local" if host in LOCAL_ALIASES or host.startswith("/") else host


def same_server(a: Endpoint, b: Endpoint) -> bool:
    """True when `a` and `b` are on one server: the same host (aliases of this host count
    as one) and port, or the same cluster by system identifier."""
    if _host_key(a.host) == _host_key(b.host) and a.port == b.port:
        return True
    return bool(a.system_identifier) and a.system_identifier == b.system_identifier


def same_database(a: Endpoint, b: Endpoint) -> str | None:
    """Give why `a` and `b` are the same database, or None when nothing says they are.

    Two URLs can name one database (host aliases, IPs, URL forms), so equal system
    identifiers with equal database names count as the same database too.
    """
    if a.database != b.database:
        return None
    if _host_key(a.host) == _host_key(b.host) and a.port == b.port:
        return f"same host, port and database ({a.host}:{a.port}/{a.database})"
    if a.system_identifier and a.system_identifier == b.system_identifier:
        return f"same server (system identifier {a.system_identifier}) and database {a.database}"
    return None


# pg_restore errors that do not mean the data is wrong. Each entry: a pattern and why.
HARMLESS_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r'unrecognized configuration parameter "transaction_timeout"'),
        "pg_restore 17+ sets transaction_timeout, which servers before 17 do not know",
    ),
    (
        re.compile(r"must be owner of extension \w+"),
        "COMMENT ON EXTENSION for an extension the provider owns (plpgsql and the like)",
    ),
    (
        re.compile(r'schema "public" already exists'),
        "dumps from pg_dump before 15 create the public schema the new database already has",
    ),
)
_QUERY_PREFIX = "could not execute query: "


# what a server says of SQL it does not know (a newer server's syntax, settings, functions)
_UNKNOWN_TO_SERVER = re.compile(
    r"syntax error|unrecognized|does not exist|not supported|unknown|invalid value for parameter"
)


def older_server_note(message: str, source_version: str, target_major: int) -> str | None:
    """Give a note for a failed restore's `message` when the server refused what the
    archive holds as unknown to it (pg_restore's or psql's errors) and the backup is of a
    newer major (`source_version`, as the manifest records it) than the target's server;
    else None."""
    major = source_version.split(".")[0]
    if not major.isdigit() or int(major) <= target_major:
        return None
    if not message.startswith(("pg_restore reported", "psql exited", "pg_restore failed")):
        return None
    if not _UNKNOWN_TO_SERVER.search(message):
        return None
    return (
        f"the backup is of PostgreSQL {source_version} and this target runs {target_major}, "
        "which may lack what the error names"
    )


def error_message(line: str) -> str | None:
    """Give the message of a pg_restore error line, or None for other lines.

    Parallel workers share one stderr and write a line in pieces, so lines can arrive
    interleaved ("pg_restore:pg_restore: error: ..."); anything after the first "error: "
    counts. A line can also lose its "pg_restore: error: " to another worker's line
    ("could not execute query: ERROR:  syntax error ..." alone): the server's own
    "ERROR:" still marks it.
    """
    _head, marker, message = line.partition("error: ")
    if not marker:
        _head, marker, rest = line.partition("ERROR:")
        if not marker:
            return None
        message = marker + rest
    return message.removeprefix(_QUERY_PREFIX).strip()


def _harmless(message: str) -> bool:
    """Whether every server error in `message` is a known harmless one (an interleaved
    line may hold a harmless error and a real one)."""
    parts = [part for part in re.split(r"(?=ERROR:)", message) if part.startswith("ERROR:")]
    return all(any(p.search(part) for p, _why in HARMLESS_ERRORS) for part in parts or [message])


def real_errors(stderr_lines: Iterable[str]) -> list[str]:
    """Give the pg_restore error messages not in HARMLESS_ERRORS, in order."""
    found = []
    for line in stderr_lines:
        message = error_message(line)
        if message is not None and not _harmless(message):
            found.append(message)
    return found


def count_differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Give one line per table whose restored row count differs from the manifest's."""
    problems = []
    for table in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(table), actual.get(table)
        if want != got:
            shown = "missing" if got is None else str(got)
            problems.append(f"{table}: expected {want} rows, found {shown}")
    return problems


@dataclass(frozen=True)
class SwapPlan:
    """Renames to apply in one transaction, databases to drop afterwards, the previous copy."""

    renames: list[tuple[str, str]]
    drop_after: list[str]
    previous: str | None


def ages_out(
    target: str, keep: int, target_exists: bool, existing_previous: list[str]
) -> str | None:
    """The previous copy a successful swap into `target` would drop: the oldest of the
    `keep` kept copies (`_previous_<keep>`) when it and the target exist; else None.

    `existing_previous` are the names of previous_names(target, keep) that exist now.
    """
    names = previous_names(target, keep)
    if target_exists and names and names[-1] in existing_previous:
        return names[-1]
    return None


def swap_renames(
    target: str,
    staging: str,
    target_exists: bool,
    existing_previous: list[str],
    keep: int,
    run_id: str,
) -> SwapPlan:
    """Plan the swap of `staging` into `target`, keeping `keep` previous copies.

    `existing_previous` are the previous-copy names (of previous_names(target, keep)) that
    exist now. A copy that ages out (usually dropped already while the new copy was
    restored, see ages_out) or the target itself when `keep` is 0 is renamed to a trash name
    in the same transaction and dropped only after it commits, so a failed swap loses nothing.
    """
    names = previous_names(target, keep)
    renames: list[tuple[str, str]] = []
    drop_after: list[str] = []
    trash = _fit(target, f"__old_{run_id}")
    if target_exists:
        if keep == 0:
            renames.append((target, trash))
            drop_after.append(trash)
        else:
            oldest = ages_out(target, keep, target_exists, existing_previous)
            if oldest:
                renames.append((oldest, trash))
                drop_after.append(trash)
            for older, newer in reversed(list(itertools.pairwise(names))):
                if older in existing_previous:
                    renames.append((older, newer))
            renames.append((target, names[0]))
    renames.append((staging, target))
    previous = names[0] if target_exists and keep > 0 else None
    return SwapPlan(renames, drop_after, previous)
