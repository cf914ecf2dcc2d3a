"""The masking filter program, run between pg_restore and psql (and a subset's first pass,
`scan`, reading pg_restore's script of the filtered tables):

    pg_restore -f - -L LIST archive.dump \\
      | python -m orchestrator.masking filter --plan PLAN.json [--stats STATS.json] [--workers N] \\
          [--subset FLAGS | --decide SUBSET.json] | psql ...

LIST names the data of one or more tables; PLAN.json holds the plan of each (one filter
serves every table of its list, so its start-up is paid once, not once per table), and
each COPY of the script is masked with the plan of the table its header names.

`check --subset SUBSET.json` parses and type-checks a subset's conditions (only parses
them when the file holds no schema facts), printing one line per problem, exit 2.

The key comes from the environment (MASK_KEY), never from the command line. An error is
one line on stderr, `orchestrator-mask: error: ...`, holding no data value; the exit code
is 1, or 2 when the plan file or MASK_KEY is wrong (nothing was read then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.masking import subset_flags, workers
from orchestrator.masking.plan import plans_from_json
from orchestrator.masking.stream import filter_tables, flag_droppers
from orchestrator.masking.transforms import KEY_SETTING, load_key

if TYPE_CHECKING:  # pydantic and duckdb stay out of the filter's start-up
    from orchestrator.masking.subset import SubsetRules
    from orchestrator.masking.subset_scan import Scanner
    from orchestrator.schema_facts import SchemaFacts

PROGRAM = "orchestrator-mask"
MAX_WORKERS = 64


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.masking",
        description="Mask the COPY data of tables in a pg_restore script (stdin to stdout).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("filter", help="mask tables' rows between pg_restore and psql")
    run.add_argument("--plan", required=True, type=Path, help="the tables' plans (JSON)")
    run.add_argument(
        "--stats", type=Path, help="write rows and masked columns of each table here (JSON)"
    )
    run.add_argument("--workers", type=int, default=1, help="processes that mask (default 1)")
    chosen = run.add_mutually_exclusive_group()
    chosen.add_argument(
        "--subset", type=Path, help="the rows to keep of filtered tables (a first pass's flags)"
    )
    chosen.add_argument(
        "--decide",
        type=Path,
        help="a subset and schema (JSON): decide the rows to keep as they stream (one pass)",
    )
    scan = commands.add_parser("scan", help="decide which rows a subset keeps (first pass)")
    scan.add_argument("--subset", required=True, type=Path, help="the subset and schema (JSON)")
    scan.add_argument("--out", required=True, type=Path, help="write the flags here (a folder)")
    check = commands.add_parser("check", help="parse and type-check a subset's conditions")
    check.add_argument("--subset", required=True, type=Path, help="the subset and schema (JSON)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the program; give its exit code (0 ok, 1 failed, 2 bad plan or key, or for
    `check`, a condition that does not parse or fit)."""
    args = _parser().parse_args(argv)
    source, sink = stdin or sys.stdin.buffer, stdout or sys.stdout.buffer
    err = stderr or sys.stderr
    try:
        if args.command == "check":
            return _check(args.subset, sink)
        if args.command == "scan":
            _scan(args, environ, source)
        else:
            _filter(args, environ, source, sink)
    except OrchestratorError as exc:
        return _fail(err, str(exc), exc.exit_code, environ)
    except BrokenPipeError:
        _silence_stdout(sink)
        return _fail(err, "the reader of the output (psql) stopped early", 1, environ)
    except Exception as exc:  # a bug: say where, but never the message (it may hold data)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        return _fail(err, f"internal error ({type(exc).__name__} at {where})", 1, environ)
    return 0


def _filter(
    args: argparse.Namespace, environ: Mapping[str, str], source: BinaryIO, sink: BinaryIO
) -> None:
    if not 1 <= args.workers <= MAX_WORKERS:
        raise ConfigError(f"--workers: must be from 1 to {MAX_WORKERS}")
    key = load_key(environ.get(KEY_SETTING), register=False)
    try:
        plans = plans_from_json(args.plan.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--plan: cannot read {args.plan}: {exc.strerror}") from None
    except ConfigError as exc:
        raise ConfigError(f"--plan: {args.plan}: {exc}") from None
    runner = workers.runner(args.workers)
    if args.decide is not None:
        scanner = _scanner(args.decide, environ)
        if not scanner.one_pass:
            raise ConfigError(f"--decide: {args.decide}: keys set to NULL need the first pass")
        if scanner.needs_engine:  # never fork while an engine is open (see predicate.engine)
            runner = None
        with _engine(scanner) as scanner.con:
            stats = filter_tables(source, sink, plans, key, runner, droppers=scanner.dropper)
    else:
        flags = subset_flags.load(args.subset) if args.subset is not None else None
        droppers = flag_droppers(flags) if flags is not None else None
        stats = filter_tables(source, sink, plans, key, runner, droppers=droppers)
    sink.flush()
    if args.stats is not None:
        tables = {table: found.as_dict() for table, found in stats.items()}
        try:
            args.stats.write_text(json.dumps({"tables": tables}, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise ConfigError(f"--stats: cannot write {args.stats}: {exc.strerror}") from None


def _scan(args: argparse.Namespace, environ: Mapping[str, str], source: BinaryIO) -> None:
    """Read pg_restore's script of the filtered tables; write which rows the subset keeps
    (subset_flags) and `summary.json` (rows kept of rows read, per table) into --out."""
    from orchestrator.masking.subset_scan import summary

    found = _scanner(args.subset, environ).consume(source)
    flags = {t: subset_flags.RowFlags(k.kept, k.nulled) for t, k in found.items()}
    subset_flags.save(args.out, flags)
    (args.out / "summary.json").write_text(json.dumps(summary(found)), encoding="utf-8")


def _check(given_file: Path, sink: BinaryIO) -> int:
    """Print each problem of the `where:` conditions in `given_file` (one line each, the
    table first) on `sink`; give 2 when there is one, else 0. Raises ConfigError when the
    file cannot be read."""
    from orchestrator.masking.predicate import parse_problems
    from orchestrator.masking.rules import subset_problems

    rules, facts = _given(given_file)
    if facts is None:  # no backup yet (a cycle's preflight): each condition parsed alone
        lines = parse_problems({key: c.where for key, c in rules.tables.items() if c.where})
    else:
        lines = [f"{p.location}: {p.message}" for p in sorted(subset_problems(rules, facts))]
    sink.write("".join(f"{line}\n" for line in lines).encode())
    return 2 if lines else 0


def _scanner(given_file: Path, environ: Mapping[str, str]) -> Scanner:
    """The Scanner of the subset and schema facts in `given_file` (operations.subset
    writes it), seeded by MASK_KEY. Raises ConfigError when either cannot be read."""
    from orchestrator.masking import subset
    from orchestrator.masking.subset_scan import Scanner

    key = environ.get(KEY_SETTING)
    if not key:
        raise ConfigError(f"{KEY_SETTING} is not set")
    rules, facts = _given(given_file)
    if facts is None:
        raise ConfigError(f"{given_file}: holds no schema facts")
    return Scanner(subset.plan(rules, facts), facts, key.encode())


def _given(given_file: Path) -> tuple[SubsetRules, SchemaFacts | None]:
    """The subset and schema facts (None for `check` before a backup exists) in
    `given_file` (operations.subset writes it). Raises ConfigError when they cannot be
    read."""
    from orchestrator.masking import subset
    from orchestrator.schema_facts import SchemaFacts

    try:
        given = json.loads(given_file.read_text(encoding="utf-8"))
        facts = given["facts"]
        rules = subset.rules_from_json(given["subset"])
        return rules, None if facts is None else SchemaFacts.model_validate(facts)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{given_file}: cannot read the subset: {exc}") from None


def _engine(scanner: Scanner) -> contextlib.AbstractContextManager[Any]:
    """The embedded engine when a condition needs it, else nothing (None)."""
    from orchestrator.masking.predicate import engine

    return engine() if scanner.needs_engine else contextlib.nullcontext()


def _fail(err: TextIO, message: str, code: int, environ: Mapping[str, str]) -> int:
    """Print the one error line, MASK_KEY and passwords masked; give `code`."""
    from orchestrator import logs  # only when failing: structlog slows every start by 0.1 s

    logs.register_secret(environ.get(KEY_SETTING))
    print(f"{PROGRAM}: error: {logs.mask(message)}", file=err)
    return code


def _silence_stdout(sink: BinaryIO) -> None:
    """After a broken pipe, point stdout at /dev/null so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sink.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
