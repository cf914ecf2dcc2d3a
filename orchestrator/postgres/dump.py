"""pg_dump: the argv builder (pure) and the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import execute
from orchestrator.conninfo import ConnInfo
from orchestrator.formats import human_size
from orchestrator.postgres.clients import ClientSet


@dataclass(frozen=True)
class DumpOptions:
    """What the user may tune about a dump (from settings)."""

    compress: str | None = None
    exclude_tables: tuple[str, ...] = ()
    exclude_table_data: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = field(default=())
    timeout: float | None = None
    jobs: int = 1  # more than one: --format=directory with that many connections

    @property
    def dumps_every_table(self) -> bool:
        """True when nothing narrows what is dumped (no exclusions, no extra arguments)."""
        return not (self.exclude_tables or self.exclude_table_data or self.extra_args)


AUTO_JOBS = 4  # connections of DUMP_JOBS=auto for a large database (see choose_jobs)


def choose_jobs(setting: int | None, parallel_from: int, database_size: int) -> tuple[int, str]:
    """Give how many connections pg_dump uses and why, for DUMP_JOBS (`setting`, None for
    auto) and a database of `database_size` bytes.

    auto dumps over AUTO_JOBS connections from DUMP_PARALLEL_FROM on, one below it: a
    managed server across the internet limits each connection's bandwidth, so a large
    database is dumped several times faster in parallel, while a small one is done in
    seconds either way and keeps the single-file custom format (one object to store)."""
    size = human_size(database_size)
    if setting is not None:
        return setting, f"DUMP_JOBS={setting} (the database holds {size})"
    if database_size >= parallel_from:
        return AUTO_JOBS, (
            f"DUMP_JOBS=auto: the database holds {size}, "
            f"from DUMP_PARALLEL_FROM={human_size(parallel_from)} on"
        )
    return 1, f"DUMP_JOBS=auto: the database holds {size}, under DUMP_PARALLEL_FROM"


ZSTD_SINCE = 16  # the first pg_dump that writes zstd into a custom-format archive


def compression_for(setting: str | None, pg_dump_major: int) -> str | None:
    """Give the --compress value for a pg_dump of `pg_dump_major`: PG_DUMP_COMPRESS when set;
    else zstd where pg_dump has it (16+), else None (pg_dump's own default, gzip).

    zstd gives an archive no bigger than gzip's for a fraction of pg_dump's CPU, and
    pg_restore reads it faster; the archive needs a pg_restore of the dump's major or
    newer either way."""
    if setting is not None:
        return setting
    return "zstd" if pg_dump_major >= ZSTD_SINCE else None


def dump_argv(
    client: ClientSet, source: ConnInfo, out: Path, snapshot: str | None, options: DumpOptions
) -> list[str]:
    """Give the pg_dump argv for a dump of `source` into `out` (no password): the custom
    format into the file `out`, or with several jobs the directory format into the folder
    `out`."""
    form = ["--format=custom"]
    if options.jobs > 1:
        form = ["--format=directory", f"--jobs={options.jobs}"]
    argv = [
        client.tool("pg_dump"),
        *form,
        "--no-password",
        f"--file={out}",
        f"--dbname={source.url}",
    ]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    if options.compress is not None:
        argv.append(f"--compress={options.compress}")
    argv += [f"--exclude-table={pattern}" for pattern in options.exclude_tables]
    argv += [f"--exclude-table-data={pattern}" for pattern in options.exclude_table_data]
    return argv + list(options.extra_args)


def libpq_env(info: ConnInfo, purpose: str) -> dict[str, str]:
    """Environment for a libpq client: the password, a connect timeout, an application name."""
    return {
        **info.password_env(),
        "PGCONNECT_TIMEOUT": "10",
        "PGAPPNAME": f"orchestrator-{purpose}",
    }


def run_dump(
    client: ClientSet, source: ConnInfo, out: Path, snapshot: str | None, options: DumpOptions
) -> execute.Result:
    """Run pg_dump; raises CommandFailed (with pg_dump's first error) when it fails."""
    argv = dump_argv(client, source, out, snapshot, options)
    return execute.run(argv, env=libpq_env(source, "dump"), timeout=options.timeout)
