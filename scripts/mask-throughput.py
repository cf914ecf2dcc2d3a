"""Measure the masking filter's throughput on synthetic rows (not a test: a number to report).

    .venv/bin/python scripts/mask-throughput.py [ROWS] [--workers N]

Builds a pg_restore-like script of ROWS rows (default 1,000,000) of a customer table with
three masked text columns (email, full_name, phone) and four kept ones, then times
`filter_script` over it in memory and prints rows per second. Emails are all distinct;
names and phone layouts repeat as they do in real tables.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import time

from orchestrator.masking import workers as pool
from orchestrator.masking.plan import ColumnPlan, TablePlan
from orchestrator.masking.stream import filter_script
from orchestrator.masking.transforms import load_key

HEADER = b"""--
-- PostgreSQL database dump
--
SET statement_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

COPY public.customer (id, email, full_name, phone, created_at, tier, balance) FROM stdin;
"""
FOOTER = b"\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n"
FIRST = ["Anna", "Bob", "Chen", "Dana", "Eve", "Farid", "Gita", "Hugo", "Ines", "Jon"] * 5
LAST = ["Smith", "Ng", "Okafor", "Muller", "Rossi", "Kim", "Silva", "Novak", "Berg", "Ali"] * 5


def synthetic_script(rows: int, seed: int = 7) -> bytes:
    """Give a pg_restore-like script holding `rows` customer rows."""
    rng = random.Random(seed)
    names = [f"{rng.choice(FIRST)}{i % 7 or ''} {rng.choice(LAST)}" for i in range(5000)]
    lines = [HEADER]
    for row in range(1, rows + 1):
        email = f"user{row}.{rng.randrange(10**6)}@mail{row % 50}.example.org"
        phone = f"+{rng.randrange(1, 99)} {rng.randrange(100, 999)} {rng.randrange(10**6):06d}"
        lines.append(
            b"%d\t%s\t%s\t%s\t2024-05-%02d 10:%02d:00+00\t%s\t%d.%02d\n"
            % (
                row,
                email.encode(),
                names[rng.randrange(len(names))].encode(),
                phone.encode() if row % 10 else b"\\N",
                row % 28 + 1,
                row % 60,
                (b"gold", b"silver", b"standard")[row % 3],
                rng.randrange(10**5),
                row % 100,
            )
        )
    lines.append(FOOTER)
    return b"".join(lines)


def plan() -> TablePlan:
    """Give the plan of the synthetic table."""
    masked = {
        "email": ColumnPlan("email", {"domain": "example.com"}, "text"),
        "full_name": ColumnPlan("full_name", {}, "varchar", 100),
        "phone": ColumnPlan("phone", {}, "text"),
    }
    kept = {name: ColumnPlan("keep") for name in ("id", "created_at", "tier", "balance")}
    return TablePlan("public.customer", masked | kept, "fail")


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    script = synthetic_script(args.rows)
    key = load_key("throughput-measurement-key")
    run_blocks = pool.runner(args.workers)
    started, cpu_started = time.perf_counter(), time.process_time()
    stats = filter_script(io.BytesIO(script), _Discard(), plan(), key, run_blocks)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = (
        f", workers {children.ru_utime + children.ru_stime:.2f} s" if args.workers > 1 else ""
    )
    print(
        f"{stats.rows} rows, {len(script) / 2**20:.0f} MiB, workers={args.workers}: "
        f"{seconds:.2f} s wall, {stats.rows / seconds:,.0f} rows/s; "
        f"CPU: this process {cpu:.2f} s{workers_cpu}"
    )


if __name__ == "__main__":
    main()
