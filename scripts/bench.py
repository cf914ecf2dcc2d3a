"""scripts/bench: the floor, the old way and the pipeline, timed in one run on local servers.

(a) floor: bare pg_dump -Fc to a file, then two bare pg_restore -j into the two targets at once
(b) old way: dump + restore into the backup target, then dump + restore into the dev target
(c) orchestrator pipeline, archive on a local SeaweedFS S3 server
(c') the same with PG_DUMP_COMPRESS=gzip, the floor's compression: the orchestration's own cost
(e) the pipeline with two age recipients and two stores (a second SeaweedFS server)
(u) a dev refresh (`restore --target dev --dump`) of a database whose table of a million
    customers has e-mail, name and phone columns, without masking rules
(m) the same refresh with rules that mask those three columns
(v) a dev refresh of a database whose table of a million notes (free text, one row in ten
    holding an e-mail address) has no masking rules
(s) the same refresh with the notes scrubbed (`body: scrub`)
(h) (s) run by the code of another checkout, the folder BENCH_BASELINE names: before and
    after alternate in the same rounds
(n) a dev refresh of a schema of 200 tables of mixed sizes (up to 50,000 rows), 41 of them
    holding personal data in three or four columns each, one of those with a million rows,
    without masking rules
(x) the same refresh with the rules `mask suggest` writes for that backup
(o) (x) run by the code of another checkout, the folder BENCH_BASELINE names (e.g. main's
    before a change): before and after alternate in the same rounds
(f) a masked dev refresh of a three-level chain (users, their orders, the orders' items;
    BENCH_CHAIN_USERS users, default 100,000, five orders each, three items per order)
(t) the same refresh with a 5 % subset (`percent: 5` on users): t/f, and each dev
    database's size
(d) bare `pg_dump -Fc` of a small database (pgbench scale 2, about 37 MB) to a file
(k) `orchestrator backup` of the same database to a folder store, gzip like (d): what a
    command costs over the bare command it wraps (interpreter, imports, settings, checks,
    manifest); printed as the median of the rounds' k - d differences, in seconds
(w) `orchestrator backup` of a database of 3 million rows of random text (about 390 MB, a
    160 MB dump) with two age recipients to two stores: its time, peak RSS and the peak
    space its WORK_DIR held, in dumps (1.00: no second, encrypted copy on disk)
(p) remote line: bare `pg_dump -Fc` to a file from a source behind a link that holds each
    connection, each way, to BENCH_LINK_MBPS megabytes (10^6 bytes) a second (default 8.4,
    the issue's measurement; tests/harness/throttle.py, a proxy in this process), as a
    managed provider across the internet does: N connections get N times one. The database:
    8 tables of random hex text (it compresses about 2:1) of comparable size,
    BENCH_REMOTE_MB MiB in all (default 344: a 351 MB database)
(q) bare `pg_dump -Fd -j 4` through the same link to a folder
(r) `orchestrator backup` with DUMP_JOBS=4 through the same link to a folder store (an S3
    bucket with BENCH_REMOTE_STORE=s3); a WORK_DIR watched.
    Before DUMP_JOBS exists the setting is ignored: one connection, r/p about 1.0
(y) scale line, the floor: bare `pg_dump -Fd -j 2` of pgbench at BENCH_SCALE_Z (default
    300, about 4.5 GB; one big table) plus the sample schema (scripts/sample-data.sql),
    then two bare `pg_restore -j 2` at once into the two targets
(z) `orchestrator pipeline` of it with DUMP_JOBS=2 and RESTORE_JOBS=2,
    encrypted to one age recipient, to two stores (two SeaweedFS servers), a WORK_DIR
    watched; two untimed cycles come first, as for the other pipeline lines
p, q, r, y and z all compress alike, BENCH_DUMP_COMPRESS (default zstd, the orchestrator's
default for pg_dump 16+; the bare commands get --compress): with gzip, bare -Fd -j 4 at
4 x 8.4 MB/s is held by this 2-core VM's CPU (measured: 102 MB of COPY text took 6.3 s
through the link, 6.8 s without it, 3.3 s through it with zstd; one pg_dump -Fc, 12.3 s)
Each is run ROUNDS times (default 5, alternating, so drift hits them all alike); prints the
medians: c/a, c'/a, b/c, e/c, m/u, s/v, x/n, t/f, r/q, r/p, z/y, k - d and the peak RSS
of the orchestrator process and of the masking filter's processes; for (r) and (z) their own
peak RSS and the most WORK_DIR held, in dumps (the bare -Fd folder of q or y: the compressed
dump), and for (p, q, r) the most connections each held at once through the link. LINES
(default "abcge"; "um" for the masked line, "vs" for the scrub line ("vsh" beside
BENCH_BASELINE's code), "nx" for many masked tables, "ft" for the subset line, "dk" for
the fixed cost of a command, "w" for the encrypted backup of a larger dump, "pqr" for the
remote line, "yz" for the scale line) picks which ways run. The package is byte-compiled
first, as an installed wheel is, so that no run compiles it.

When a pipeline line (a, b, c, c', e) runs, two untimed pipeline cycles come first (their
times are printed, not counted): after them each target holds a current and a previous
copy, as production's targets do from the third cycle on. The first two cycles differ from
all later ones (there is no previous copy to drop while restoring), and on the VM of the
README that moved their pg_restores by up to 2 s. The fixed-cost line (d, k) has one
untimed run of each first. The remote line has none: the link, not the disk or a cold
cache, sets its times (its tables were just written, vacuumed, and fit in memory). The
pgbench database of the other lines is built at SCALE all the same: give 1 for these lines,
e.g. `scripts/bench 1 1 pqr`, `BENCH_SCALE_Z=20 scripts/bench 1 3 yz`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import postgres, s3  # noqa: E402
from tests.harness.throttle import ThrottleProxy, start_throttle  # noqa: E402

JOBS = 4


def timed(label: str, fn) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    fn()
    seconds = time.monotonic() - started
    print(f"  {label:<44} {seconds:7.2f} s", flush=True)
    return seconds


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=env)


def settle(clusters: tuple[postgres.Cluster, ...]) -> None:
    """Start each timed run from the same state: checkpoints done, dirty pages on disk.

    Without the sync, the kernel's write-back of the gigabytes earlier runs wrote lands in
    whichever run comes next (measured: it made the pipeline's pg_restore 0.7 s slower
    than the floor's, restoring the same file into the same servers).
    """
    for cluster in clusters:
        cluster.psql("CHECKPOINT")
    os.sync()


def fresh(cluster: postgres.Cluster, name: str) -> str:
    cluster.create_database(name)
    return cluster.url(name)


def floor(bins: Path, source: str, targets: list[postgres.Cluster], work: Path) -> None:
    dump = work / "floor.dump"
    run([str(bins / "pg_dump"), "-Fc", f"--file={dump}", f"--dbname={source}"])
    restore_both(bins, dump, targets, JOBS, "floor")


def restore_both(
    bins: Path, dump: Path, targets: list[postgres.Cluster], jobs: int, name: str
) -> None:
    """Two bare `pg_restore -j JOBS` of `dump` (a file or a -Fd folder) at once, each into a
    fresh database `name` of its target."""
    threads = [
        threading.Thread(
            target=run,
            args=(
                [
                    str(bins / "pg_restore"),
                    f"-j{jobs}",
                    "--no-owner",
                    "--no-acl",
                    "-d",
                    fresh(t, name),
                    str(dump),
                ],
            ),
        )
        for t in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def old_way(bins: Path, source: str, targets: list[postgres.Cluster], work: Path) -> None:
    for index, target in enumerate(targets):
        dump = work / f"old{index}.dump"
        run([str(bins / "pg_dump"), "-Fc", f"--file={dump}", f"--dbname={source}"])
        run(
            [
                str(bins / "pg_restore"),
                f"-j{JOBS}",
                "--no-owner",
                "--no-acl",
                "-d",
                fresh(target, "oldway"),
                str(dump),
            ]
        )


FILTER_PEAKS: list[int] = []
# run name -> (the most bytes its WORK_DIR held, the largest file in it then)
WORK_HELD: dict[str, tuple[int, int]] = {}


def _peak_of(pid: int) -> int:
    """VmHWM of a process in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _filters() -> list[int]:
    """Pids of running masking filter processes."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"orchestrator.masking\0filter" in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def _held(folder: Path) -> tuple[int, int]:
    """(bytes of every file under `folder`, bytes of the largest one)."""
    sizes = [0]
    for path in folder.rglob("*"):
        try:
            sizes.append(path.stat().st_size if path.is_file() else 0)
        except OSError:
            continue
    return sum(sizes), max(sizes)


def work_held(prefix: str) -> list[tuple[int, int]]:
    """WORK_HELD of the counted runs whose names start with `prefix` (warm-ups left out)."""
    return [
        peak for name, peak in WORK_HELD.items() if name.startswith(prefix) and "warmup" not in name
    ]


def orchestrate(env: dict[str, str], args: list[str], name: str, code: Path | None = None) -> int:
    """Run `orchestrator ARGS` (the code of checkout `code`, default this one); give its
    peak RSS in bytes (VmHWM, sampled to the end); the masking filters' peaks go to
    FILTER_PEAKS, and when `env` names a WORK_DIR, the most it held (and its largest file)
    to WORK_HELD[name]. Its JSON log is kept in .demo/bench-<name>.log."""
    if code is not None:  # its children (the filter) inherit the folder and PYTHONPATH
        env = {**env, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=code,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak, held, largest = 0, 0, 1
    while proc.poll() is None:
        peak = max(peak, _peak_of(proc.pid))
        FILTER_PEAKS.extend(_peak_of(pid) for pid in _filters())
        if "WORK_DIR" in env:
            total, biggest = _held(Path(env["WORK_DIR"]))
            held, largest = max(held, total), max(largest, biggest)
        time.sleep(0.05)
    if "WORK_DIR" in env:
        WORK_HELD[name] = (held, largest)
    out, err = proc.communicate()
    log = REPO / ".demo" / f"bench-{name}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(err)
    if proc.returncode != 0:
        sys.stderr.write(out + err[-4000:])
        raise SystemExit(f"orchestrator {args[0]} failed")
    return peak


def pipeline(env: dict[str, str], name: str) -> int:
    """Run `orchestrator pipeline`; give its peak RSS (log: .demo/bench-pipeline-NAME.log)."""
    return orchestrate(env, ["pipeline"], f"pipeline-{name}")


CUSTOMERS = 1_000_000
CUSTOMERS_SQL = f"""
CREATE TABLE customers (
    id bigint PRIMARY KEY, email text NOT NULL UNIQUE, full_name text NOT NULL, phone text,
    city text NOT NULL, plan text NOT NULL, created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT g, 'customer' || g || '@mail.example.org', 'Name' || (g % 9973) || ' Surname' || (g % 7919),
       '+1 555 ' || lpad((g % 10000000)::text, 7, '0'), 'city ' || (g % 1000),
       CASE WHEN g % 3 = 0 THEN 'gold' ELSE 'basic' END,
       timestamptz '2020-01-01' + g * interval '1 minute'
FROM generate_series(1, {CUSTOMERS}) g;
"""
MASK_RULES = """\
tables:
  public.customers:
    id: keep
    email: email
    full_name: full_name
    phone: phone
    city: keep
    plan: keep
    created_at: keep
"""


NOTES = 1_000_000
NOTES_SQL = f"""
CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO notes
SELECT g, 'Thanks for order ' || g || ', delivery on Tuesday as agreed with the warehouse team'
          || CASE WHEN g % 10 = 0 THEN ', reach me at writer' || g || '@mail.example.org' ELSE ''
             END
FROM generate_series(1, {NOTES}) g;
"""
SCRUB_RULES = """\
tables:
  public.notes:
    id: keep
    body: scrub
"""

# the many-tables line's shape, as issue 21 gives it: 200 tables, 40 small-to-medium ones
# with personal data, one of a million rows with it too, the others without
PERSONAL_TABLES = tuple(  # (name, rows, with a birth date)
    (f"contacts_{n:02}", (500, 2_000, 5_000, 10_000, 20_000, 40_000)[n % 6], n % 4 != 0)
    for n in range(40)
)
PLAIN_ROWS = (0, 50, 200, 1_000, 3_000, 10_000, 25_000, 50_000)
PLAIN_TABLES = 159
BIG_PERSONAL_ROWS = 1_000_000


def _personal_table(name: str, rows: int, birth: bool) -> str:
    extra = ", birth_date date" if birth else ""
    birth_value = ", date '1950-01-01' + (g % 20000)" if birth else ""
    return f"""
CREATE TABLE app.{name} (
    id bigint PRIMARY KEY, email text NOT NULL, full_name text NOT NULL, phone text{extra},
    status text NOT NULL, amount numeric(12, 2) NOT NULL, created_at timestamptz NOT NULL
);
INSERT INTO app.{name}
SELECT g, 'person' || g || '@{name}.example.org', 'Given' || (g % 997) || ' Family' || (g % 7919),
       '+1 555 ' || lpad((g % 10000000)::text, 7, '0'){birth_value},
       (ARRAY['new', 'active', 'closed'])[1 + g % 3], (g % 100000) / 100.0,
       timestamptz '2020-01-01' + g * interval '1 minute'
FROM generate_series(1, {rows}) g;"""


def _plain_table(index: int) -> str:
    rows = PLAIN_ROWS[index % len(PLAIN_ROWS)]
    return f"""
CREATE TABLE ops.t_{index:02} (
    id bigint PRIMARY KEY, code text NOT NULL, quantity int NOT NULL,
    amount numeric(12, 2) NOT NULL, state text NOT NULL, updated_at timestamptz NOT NULL
);
INSERT INTO ops.t_{index:02}
SELECT g, 'SKU-' || (g % 5000), g % 90, (g % 100000) / 100.0,
       (ARRAY['open', 'shipped', 'billed'])[1 + g % 3],
       timestamptz '2021-01-01' + g * interval '1 minute'
FROM generate_series(1, {rows}) g;"""


def many_tables_sql() -> str:
    """200 tables: 159 without personal data (0 to 50,000 rows), 40 small-to-medium ones
    with e-mail, name, phone and mostly a birth date, and one of a million customers."""
    parts = ["CREATE SCHEMA app; CREATE SCHEMA ops;"]
    parts += [_personal_table(*table) for table in PERSONAL_TABLES]
    parts.append(_personal_table("customers", BIG_PERSONAL_ROWS, False))
    parts += [_plain_table(index) for index in range(PLAIN_TABLES)]
    return "\n".join(parts)


def masked_refresh_setup(
    source: postgres.Cluster,
    dev: postgres.Cluster,
    env: dict[str, str],
    work: Path,
    table: tuple[str, str, str | None] = ("customers", CUSTOMERS_SQL, MASK_RULES),
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A database (`table`: its name, SQL and masking rules, None for the rules `mask
    suggest` writes; default a million customers), one backup of it and its local dump;
    give the environments of the refresh without and with masking rules, and its arguments."""
    name, sql, mask_rules = table
    source.create_database(name)
    source.psql(sql, name)
    source.psql("VACUUM ANALYZE", name)
    dev.create_database(name)
    base = {
        **env,
        "SOURCE_DATABASE_URL": source.url(name),
        "DEV_DATABASE_URL": dev.url(name),
    }
    rules = work / f"mask-{name}.yaml"
    masked = {**base, "DEV_MASK_RULES": str(rules), "MASK_KEY": "bench-mask-key-0123456789abcdef"}
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "backup"],
        env=base,
        capture_output=True,
        text=True,
        check=True,
    )
    backup_id = result.stdout.strip()
    if mask_rules is not None:
        rules.write_text(mask_rules)
    else:
        suggest = ["mask", "suggest", "--from", backup_id, "-o", str(rules)]
        subprocess.run(
            [sys.executable, "-m", "orchestrator", *suggest],
            env=base,
            capture_output=True,
            check=True,
        )
        masked_columns = sum(
            ": keep" not in line
            for line in rules.read_text().splitlines()
            if line.startswith("    ") and ":" in line
        )
        print(f"  mask suggest: about {masked_columns} column rules that are not keep")
    dump = work / f"{name}.dump"
    subprocess.run(
        [sys.executable, "-m", "orchestrator", "fetch", backup_id, "-o", str(dump)],
        env=base,
        capture_output=True,
        check=True,
    )
    args = ["restore", "--target", "dev", "--from", backup_id, "--dump", str(dump)]
    return base, masked, args


CHAIN_USERS = int(os.environ.get("BENCH_CHAIN_USERS", "100000"))
CHAIN_SQL = f"""
CREATE TABLE public.users (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text,
    created_at date NOT NULL);
INSERT INTO public.users SELECT g, 'user' || g || '@mail.example', 'Name ' || g,
    date '2020-01-01' + g % 2000 FROM generate_series(1, {CHAIN_USERS}) g;
CREATE TABLE public.orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES public.users,
    total numeric(10, 2), note text);
INSERT INTO public.orders SELECT g, 1 + g % {CHAIN_USERS}, g % 1000, 'order note ' || g
    FROM generate_series(1, {CHAIN_USERS * 5}) g;
CREATE TABLE public.items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES public.orders,
    sku text, qty int, pad text);
INSERT INTO public.items SELECT g, 1 + g % {CHAIN_USERS * 5}, 'SKU-' || g % 5000, g % 7,
    repeat(md5(g::text), 3) FROM generate_series(1, {CHAIN_USERS * 15}) g;
"""
CHAIN_RULES = """\
unlisted_columns: keep
tables:
  public.users: {email: email, name: full_name}
"""
SUBSET_RULES = (
    CHAIN_RULES
    + """\
subset:
  tables:
    public.users: {percent: 5}
"""
)
DEV_SIZES: dict[str, list[int]] = {"f": [], "t": []}
A = "(a) floor: dump, then 2 restores at once"
B = "(b) old way: dump+restore, dump+restore"
C = "(c) orchestrator pipeline (+ S3 archive)"
G = "(c') the same, gzip like the floor"
E = "(e) pipeline, 2 recipients, 2 stores"
U = "(u) dev refresh, 1M customers, no rules"
M = "(m) the same, e-mail, name, phone masked"
V = "(v) dev refresh, 1M notes, no rules"
S = "(s) the same, notes scrubbed"
D = "(d) bare pg_dump -Fc, small database"
K = "(k) orchestrator backup, folder store"
N = "(n) dev refresh, 200 tables, no rules"
X = "(x) the same, 41 tables masked (suggested)"
BASE_X = "(o) (x) by the code of BENCH_BASELINE"
BASE_S = "(h) (s) by the code of BENCH_BASELINE"
F = "(f) dev refresh of a chain, masked"
T = "(t) the same, a 5 % subset"
W = "(w) backup, 160 MB dump, 2 recipients, 2 stores"
NOISE_ROWS = 3_000_000
NOISE_SQL = (
    "CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS a,"
    f" md5(random()::text) AS b FROM generate_series(1, {NOISE_ROWS}) AS g"
)
P = "(p) bare pg_dump -Fc through the link"
Q = "(q) bare pg_dump -Fd -j 4 through the link"
R = "(r) backup, DUMP_JOBS=4, through the link"
Y = "(y) floor: pg_dump -Fd -j 2, 2 restores -j 2"
Z = "(z) pipeline, DUMP_JOBS=2, 1 recipient, 2 stores"
LINK_MBPS = float(os.environ.get("BENCH_LINK_MBPS", "8.4"))  # per connection and direction
REMOTE_MB = int(os.environ.get("BENCH_REMOTE_MB", "344"))  # its tables, in all (351 MB)
REMOTE_TABLES = 8
REMOTE_JOBS = 4
ROW_BYTES = 135  # a row of (bigint, 64 and 32 hex characters) on disk (measured)
SCALE_Z = int(os.environ.get("BENCH_SCALE_Z", "300"))  # pgbench scale of (y) and (z)
SCALE_JOBS = 2
# the compression of p, q, r, y and z alike: zstd, the orchestrator's default, leaves the link
# the limit; with gzip, bare -Fd -j 4 at 4 x 8.4 MB/s needs more than this VM's two cores
DUMP_COMPRESS = os.environ.get("BENCH_DUMP_COMPRESS", "zstd")
DUMP_SIZES: dict[str, int] = {}  # (q), (y): the bare -Fd folder's size, the compressed dump
LINKS: dict[str, list[int]] = {"p": [], "q": [], "r": []}  # the most connections at once
LINE_RSS: dict[str, list[int]] = {"r": [], "z": []}
SMALL_SCALE = 2  # pgbench scale of the small database of (d) and (k): about 37 MB
PIPELINE_LINES = set("abcge")


def chain_refresh(
    env: dict[str, str], args: list[str], name: str, key: str, dev: postgres.Cluster
) -> int:
    """A dev refresh of the chain database; keeps the dev database's size, gives the RSS."""
    peak = orchestrate(env, args, name)
    DEV_SIZES[key].append(int(dev.psql("SELECT pg_database_size('chain')", "chain")))
    return peak


def small_backup_setup(
    source: postgres.Cluster, bins: Path, env: dict[str, str], work: Path
) -> tuple[str, dict[str, str]]:
    """The small database of (d) and (k), and an initialised folder store; give the
    database's URL and the environment of `orchestrator backup` (gzip, like bare pg_dump)."""
    source.create_database("small")
    url = source.url("small")
    run([str(bins / "pgbench"), "-i", "-q", "-s", str(SMALL_SCALE), "--no-vacuum", url])
    source.psql("VACUUM ANALYZE", "small")
    size = source.psql("SELECT pg_size_pretty(pg_database_size('small'))", "small")
    print(f"fixed-cost line: a small database of {size}, a folder store")
    kept = {k: v for k, v in env.items() if not k.startswith(("AWS_", "S3_", "STORAGE_URL"))}
    small_env = {
        **kept,
        "SOURCE_DATABASE_URL": url,
        "STORAGE_URL": (work / "store").as_uri(),
        "PG_DUMP_COMPRESS": "gzip",
    }
    backup(small_env, "init")
    return url, small_env


def sealed_backup_setup(
    source: postgres.Cluster, sealed_env: dict[str, str], fresh_buckets: dict[str, str], work: Path
) -> dict[str, str]:
    """The database of (w), random text that compresses about 2:1; give the environment of
    its encrypted backup to two stores (buckets of their own) with a WORK_DIR to watch."""
    source.create_database("noise")
    source.psql(NOISE_SQL, "noise")
    size = source.psql("SELECT pg_size_pretty(pg_database_size('noise'))", "noise")
    print(f"encrypted backup line: a database of {size}, 2 recipients, 2 stores")
    (work / "w").mkdir()
    return {
        **sealed_env,
        **fresh_buckets,
        "SOURCE_DATABASE_URL": source.url("noise"),
        "WORK_DIR": str(work / "w"),
    }


def libpq_env() -> dict[str, str]:
    """The environment of a bare client: the password in PGPASSWORD, not in its argv."""
    return {**os.environ, "PGPASSWORD": postgres.PASSWORD, "PGSSLMODE": "disable"}


def remote_tables_sql() -> list[str]:
    """REMOTE_TABLES statements, each creating a table of random hex text (it compresses
    about 2:1) of about REMOTE_MB / REMOTE_TABLES MiB."""
    rows = REMOTE_MB * 2**20 // (REMOTE_TABLES * ROW_BYTES)
    return [
        f"CREATE TABLE remote_{index} AS SELECT g AS id,"
        " md5(random()::text) || md5(random()::text) AS a, md5(random()::text) AS b"
        f" FROM generate_series(1, {rows}) AS g"
        for index in range(REMOTE_TABLES)
    ]


def remote_setup(
    source: postgres.Cluster, env: dict[str, str], store: s3.S3Server, work: Path
) -> tuple[ThrottleProxy, str, dict[str, str]]:
    """The database of (p), (q) and (r) behind a proxy holding each connection to
    BENCH_LINK_MBPS; give the proxy, the database's URL through it (no password: bare
    commands get PGPASSWORD) and the environment of (r)'s backup (the bare commands'
    compression, DUMP_JOBS=4, a WORK_DIR to watch, a folder store or, with
    BENCH_REMOTE_STORE=s3, a bucket of its own)."""
    source.create_database("remote")
    with ThreadPoolExecutor(2) as pool:  # two cores: two tables at a time
        list(pool.map(lambda sql: source.psql(sql, "remote"), remote_tables_sql()))
    source.psql("VACUUM ANALYZE", "remote")
    size = source.psql("SELECT pg_size_pretty(pg_database_size('remote'))", "remote")
    proxy = start_throttle(source.port, LINK_MBPS * 1e6)
    through = dataclasses.replace(source, port=proxy.port)
    in_s3 = os.environ.get("BENCH_REMOTE_STORE", "folder") == "s3"
    print(
        f"remote line: {REMOTE_TABLES} tables, {size}, behind a link of {LINK_MBPS} MB/s per"
        f" connection; (r) to {'an S3' if in_s3 else 'a folder'} store"
    )
    kept = {k: v for k, v in env.items() if not k.startswith(("AWS_", "S3_", "STORAGE_URL"))}
    where = store.env(store.new_bucket(), "remote") if in_s3 else {}
    remote_env = {
        **kept,
        "STORAGE_URL": (work / "remote-store").as_uri(),
        **where,
        "SOURCE_DATABASE_URL": through.url("remote"),
        "PG_DUMP_COMPRESS": DUMP_COMPRESS,
        "DUMP_JOBS": str(REMOTE_JOBS),
        "WORK_DIR": str(work / "r"),
    }
    (work / "r").mkdir()
    backup(remote_env, "init")
    return proxy, through.url("remote", password=None), remote_env


def remote_dump(bins: Path, url: str, work: Path, proxy: ThrottleProxy, key: str) -> None:
    """(p) or (q): bare pg_dump through the link into `work` (-Fc to remote.dump, or for q
    -Fd -j 4 to remote.d, whose size is kept as the dump's); notes how many connections it
    held at once."""
    folder = key == "q"
    target = work / ("remote.d" if folder else "remote.dump")
    shape = ["-Fd", f"-j{REMOTE_JOBS}"] if folder else ["-Fc"]
    dump = [str(bins / "pg_dump"), *shape, f"--compress={DUMP_COMPRESS}", f"--file={target}"]
    run([*dump, f"--dbname={url}"], libpq_env())
    LINKS[key].append(proxy.most_open)
    if folder:
        DUMP_SIZES["q"] = _held(target)[0]


def before_run(proxy: ThrottleProxy | None, folder: Path | None) -> None:
    """Untimed, before a run: the link's counts zeroed, the last run's dump folder gone
    (pg_dump -Fd refuses a folder that is not empty)."""
    if proxy is not None:
        proxy.reset_counts()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def remote_backup(env: dict[str, str], name: str, proxy: ThrottleProxy) -> int:
    """(r): `orchestrator backup` through the link; give its peak RSS."""
    peak = orchestrate(env, ["backup"], f"remote-{name}")
    LINKS["r"].append(proxy.most_open)
    LINE_RSS["r"].append(peak)
    return peak


def scale_setup(
    source: postgres.Cluster,
    bins: Path,
    targets: list[postgres.Cluster],
    sealed_env: dict[str, str],
    work: Path,
) -> tuple[str, dict[str, str]]:
    """The database of (y) and (z): pgbench at BENCH_SCALE_Z plus the sample schema; give
    its URL (no password) and the environment of (z)'s pipeline: one age recipient, two
    stores (buckets of their own), the floor's compression, DUMP_JOBS=2, RESTORE_JOBS=2."""
    source.create_database("scale")
    url = source.url("scale", password=None)
    pgbench = [str(bins / "pgbench"), "-i", "-q", "-s", str(SCALE_Z), "--no-vacuum", url]
    run(pgbench, libpq_env())
    source.psql((REPO / "scripts" / "sample-data.sql").read_text(), "scale")
    source.psql("VACUUM ANALYZE", "scale")
    size = source.psql("SELECT pg_size_pretty(pg_database_size('scale'))", "scale")
    print(f"scale line: pgbench scale {SCALE_Z} and the sample schema, {size}")
    (work / "z").mkdir()
    return url, {
        **sealed_env,
        "ARCHIVE_RECIPIENTS": age_recipients(1),
        "SOURCE_DATABASE_URL": source.url("scale"),
        "BACKUP_DATABASE_URL": targets[0].url("scale"),
        "DEV_DATABASE_URL": targets[1].url("scale"),
        "PG_DUMP_COMPRESS": DUMP_COMPRESS,
        "DUMP_JOBS": str(SCALE_JOBS),
        "RESTORE_JOBS": str(SCALE_JOBS),
        "WORK_DIR": str(work / "z"),
    }


def scale_floor(bins: Path, url: str, targets: list[postgres.Cluster], folder: Path) -> None:
    """(y): bare `pg_dump -Fd -j 2` into `folder` (its size kept as the dump's), then two
    bare `pg_restore -j 2` at once."""
    dump = [str(bins / "pg_dump"), "-Fd", f"-j{SCALE_JOBS}", f"--compress={DUMP_COMPRESS}"]
    run([*dump, f"--file={folder}", f"--dbname={url}"], libpq_env())
    DUMP_SIZES["y"] = _held(folder)[0]
    restore_both(bins, folder, targets, SCALE_JOBS, "yfloor")


def scale_pipeline(env: dict[str, str], name: str) -> int:
    """(z): `orchestrator pipeline` of the scale database; give its peak RSS."""
    peak = orchestrate(env, ["pipeline"], f"scale-{name}")
    LINE_RSS["z"].append(peak)
    return peak


def backup(env: dict[str, str], command: str = "backup") -> None:
    """Run `orchestrator COMMAND` (default backup) to its end, as `run` runs pg_dump."""
    argv = [sys.executable, "-m", "orchestrator", command]
    subprocess.run(argv, env=env, capture_output=True, check=True)


def bare_dump(bins: Path, url: str, work: Path) -> None:
    run([str(bins / "pg_dump"), "-Fc", f"--file={work / 'small.dump'}", f"--dbname={url}"])


def age_recipients(count: int) -> str:
    """Public keys of `count` fresh age identities (thrown away: the bench never decrypts)."""
    import pyrage

    return ",".join(str(pyrage.x25519.Identity.generate().to_public()) for _ in range(count))


def main() -> None:
    # a SIGTERM (a killed run) unwinds like Ctrl-C, so the throwaway servers are stopped
    signal.signal(signal.SIGTERM, lambda _n, _f: sys.exit(128 + signal.SIGTERM))
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    lines = sys.argv[3] if len(sys.argv) > 3 else "abcge"
    run([sys.executable, "-m", "compileall", "-q", str(REPO / "orchestrator")])
    compared = set("oh") & set(lines)
    if compared and not os.environ.get("BENCH_BASELINE"):
        raise SystemExit("LINES o, h: set BENCH_BASELINE to the folder of the code to compare")
    baseline = Path(os.environ["BENCH_BASELINE"]).resolve() if compared else None
    if baseline is not None:
        run([sys.executable, "-m", "compileall", "-q", str(baseline / "orchestrator")])
    bins = postgres.installs()
    major = 17 if 17 in bins else max(bins)
    print(f"starting PostgreSQL {major} source and two targets, SeaweedFS; pgbench scale {scale}")
    # autovacuum off: each run leaves freshly loaded databases behind, and their autovacuum
    # would land in the next run's timing; the same for all three ways
    quiet = "-c autovacuum=off"
    source_c = postgres.start_cluster(major, bins[major], quiet)
    targets = [postgres.start_cluster(major, bins[major], quiet) for _ in range(2)]
    store = s3.start_s3()
    second = s3.start_s3() if set("ewyz") & set(lines) else None
    proxy: ThrottleProxy | None = None
    try:
        source_c.create_database("bench")
        run(
            [
                str(bins[major] / "pgbench"),
                "-i",
                "-q",
                "-s",
                str(scale),
                "--no-vacuum",
                source_c.url("bench"),
            ]
        )
        source_c.psql("VACUUM ANALYZE", "bench")
        size = source_c.psql("SELECT pg_size_pretty(pg_database_size('bench'))", "bench")
        print(f"source database: {size}; pg_restore -j{JOBS}; {os.cpu_count()} cores\n")
        bucket = store.new_bucket()
        env = {
            **os.environ,
            "SOURCE_DATABASE_URL": source_c.url("bench"),
            "BACKUP_DATABASE_URL": targets[0].url("bench"),
            "DEV_DATABASE_URL": targets[1].url("bench"),
            **store.env(bucket, "bench"),
            "PG_BIN_DIRS": str(bins[major]),
            "RESTORE_JOBS": str(JOBS),
            "LOG_FORMAT": "json",
        }
        url = source_c.url("bench")
        gzip_env = {**env, "PG_DUMP_COMPRESS": "gzip"}
        sealed_env = dict(env)
        if second is not None:
            # buckets of its own: the pipeline's sync step would copy (c)'s backups otherwise
            second_bucket = second.new_bucket()
            sealed_env.update(
                {
                    **store.env(store.new_bucket(), "bench"),
                    "ARCHIVE_RECIPIENTS": age_recipients(2),
                    "STORAGE_URL_2": f"s3://{second_bucket}/bench",
                    "S3_ENDPOINT_URL_2": second.endpoint,
                    "AWS_ACCESS_KEY_ID_2": s3.ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY_2": s3.SECRET_KEY,
                }
            )
        ways = {
            "u": (U, lambda n: rss.append(orchestrate(plain_env, refresh, f"refresh-{n}"))),
            "m": (M, lambda n: rss.append(orchestrate(masked_env, refresh, f"masked-{n}"))),
            "v": (V, lambda n: rss.append(orchestrate(notes_env, notes, f"notes-{n}"))),
            "s": (S, lambda n: rss.append(orchestrate(scrub_env, notes, f"scrubbed-{n}"))),
            "h": (BASE_S, lambda n: orchestrate(scrub_env, notes, f"scrubbed-base-{n}", baseline)),
            "a": (A, lambda n: floor(bins[major], url, targets, work)),
            "b": (B, lambda n: old_way(bins[major], url, targets, work)),
            "c": (C, lambda n: rss.append(pipeline(env, n))),
            "g": (G, lambda n: rss.append(pipeline(gzip_env, f"{n}-gzip"))),
            "e": (E, lambda n: rss.append(pipeline(sealed_env, f"{n}-sealed"))),
            "n": (N, lambda n: rss.append(orchestrate(wide_env, wide, f"wide-{n}"))),
            "x": (X, lambda n: rss.append(orchestrate(wide_masked_env, wide, f"wide-masked-{n}"))),
            "o": (BASE_X, lambda n: orchestrate(wide_masked_env, wide, f"wide-base-{n}", baseline)),
            "f": (
                F,
                lambda n: rss.append(
                    chain_refresh(chain_env, chain, f"chain-{n}", "f", targets[1])
                ),
            ),
            "t": (
                T,
                lambda n: rss.append(
                    chain_refresh(subset_env, chain, f"subset-{n}", "t", targets[1])
                ),
            ),
            "d": (D, lambda n: bare_dump(bins[major], small_url, work)),
            "k": (K, lambda n: backup(small_env)),
            "w": (W, lambda n: rss.append(orchestrate(noise_env, ["backup"], f"sealed-{n}"))),
            "p": (P, lambda n: remote_dump(bins[major], link_url, work, proxy, "p")),
            "q": (Q, lambda n: remote_dump(bins[major], link_url, work, proxy, "q")),
            "r": (R, lambda n: rss.append(remote_backup(remote_env, n, proxy))),
            "y": (Y, lambda n: scale_floor(bins[major], scale_url, targets, work / "scale.d")),
            "z": (Z, lambda n: rss.append(scale_pipeline(scale_env, n))),
        }
        prepare = {  # untimed, before a run
            "p": lambda: before_run(proxy, None),
            "q": lambda: before_run(proxy, work / "remote.d"),
            "r": lambda: before_run(proxy, None),
            "y": lambda: before_run(None, work / "scale.d"),
        }
        runs: dict[str, list[float]] = {key: [] for key in lines}
        rss: list[int] = []
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            clusters = (source_c, *targets)
            if "u" in lines or "m" in lines:
                print(f"masked line: a database of {CUSTOMERS:,} customers, backed up once")
                plain_env, masked_env, refresh = masked_refresh_setup(
                    source_c, targets[1], env, work
                )
                for name, chosen in (("warmup-plain", plain_env), ("warmup-masked", masked_env)):
                    settle(clusters)
                    timed(
                        f"(u/m) {name} (not counted)",
                        lambda n=name, e=chosen: rss.append(orchestrate(e, refresh, n)),
                    )
            if set("vsh") & set(lines):
                print(f"scrub line: a database of {NOTES:,} notes, backed up once")
                notes_env, scrub_env, notes = masked_refresh_setup(
                    source_c, targets[1], env, work, ("notes", NOTES_SQL, SCRUB_RULES)
                )
                for name, chosen in (("warmup-notes", notes_env), ("warmup-scrub", scrub_env)):
                    settle(clusters)
                    timed(
                        f"(v/s) {name} (not counted)",
                        lambda n=name, e=chosen: rss.append(orchestrate(e, notes, n)),
                    )
            if set("nxo") & set(lines):
                print("many-tables line: 200 tables, 41 with personal data, backed up once")
                wide_env, wide_masked_env, wide = masked_refresh_setup(
                    source_c, targets[1], env, work, ("many", many_tables_sql(), None)
                )
                for name, chosen in (("warmup-wide", wide_env), ("warmup-x", wide_masked_env)):
                    settle(clusters)
                    timed(
                        f"(n/x) {name} (not counted)",
                        lambda n=name, e=chosen: rss.append(orchestrate(e, wide, n)),
                    )
            if "f" in lines or "t" in lines:
                print(f"subset line: a chain of {CHAIN_USERS:,} users, backed up once")
                _plain, chain_env, chain = masked_refresh_setup(
                    source_c, targets[1], env, work, ("chain", CHAIN_SQL, CHAIN_RULES)
                )
                subset_rules = work / "subset-chain.yaml"
                subset_rules.write_text(SUBSET_RULES)
                subset_env = {**chain_env, "DEV_MASK_RULES": str(subset_rules)}
                size = source_c.psql("SELECT pg_size_pretty(pg_database_size('chain'))", "chain")
                print(f"  chain database: {size}")
            if "w" in lines:
                buckets = {
                    **store.env(store.new_bucket(), "noise"),
                    "STORAGE_URL_2": f"s3://{second.new_bucket()}/noise",  # type: ignore[union-attr]
                }
                noise_env = sealed_backup_setup(source_c, sealed_env, buckets, work)
                settle(clusters)
                timed(f"{W} (not counted)", lambda: ways["w"][1]("warmup"))
            if set("pqr") & set(lines):
                proxy, link_url, remote_env = remote_setup(source_c, env, store, work)
            if "y" in lines or "z" in lines:
                buckets = {
                    **store.env(store.new_bucket(), "scale"),
                    "STORAGE_URL_2": f"s3://{second.new_bucket()}/scale",  # type: ignore[union-attr]
                }
                scale_url, scale_env = scale_setup(
                    source_c, bins[major], targets, {**sealed_env, **buckets}, work
                )
            if "z" in lines:
                for cycle in ("warmup-1", "warmup-2"):
                    settle(clusters)
                    timed(f"{Z} (not counted)", lambda n=cycle: ways["z"][1](n))
            if "d" in lines or "k" in lines:
                small_url, small_env = small_backup_setup(source_c, bins[major], env, work)
                for key in "dk":
                    settle(clusters)
                    timed(f"{ways[key][0]} (not counted)", lambda w=ways[key][1]: w("warmup"))
            if PIPELINE_LINES & set(lines):
                print("warm-up: two cycles give each target a current and a previous copy")
                for cycle in ("warmup-1", "warmup-2"):
                    settle(clusters)
                    timed(
                        f"(c) {cycle} (not counted)", lambda n=cycle: rss.append(pipeline(env, n))
                    )
            for round_no in range(1, rounds + 1):
                print(f"round {round_no} of {rounds}")
                for key in lines:
                    label, way = ways[key]
                    prepare.get(key, lambda: None)()
                    settle(clusters)
                    runs[key].append(timed(label, lambda w=way, n=str(round_no): w(n)))
        report(runs, rss, rounds)
    finally:
        if proxy is not None:
            proxy.stop()
        for cluster in (source_c, *targets):
            cluster.stop()
        store.stop()
        if second is not None:
            second.stop()


def report(runs: dict[str, list[float]], rss: list[int], rounds: int) -> None:
    """Print the medians and the ratios of the ways that ran."""
    m = {key: statistics.median(times) for key, times in runs.items()}
    names = {"a": "a", "b": "b", "c": "c", "g": "c'", "e": "e", "u": "u", "m": "m", "v": "v"}
    names.update(s="s", d="d", k="k", n="n", x="x", o="o", f="f", t="t", w="w")
    names.update(h="h", p="p", q="q", r="r", y="y", z="z")
    shown = ", ".join(f"{names[k]} {v:.2f} s" for k, v in m.items())
    print(f"\nmedians of {rounds} round(s): {shown}")
    ratios = [
        ("c", "a", "c/a", "(target <= 1.15)"),
        ("g", "a", "c'/a", "(same compression as the floor)"),
        ("b", "c", "b/c", "(higher is better)"),
        ("e", "c", "e/c", "(encryption and a second store; target <= 1.10)"),
        ("m", "u", "m/u", "(masked dev refresh; target <= 1.5)"),
        ("s", "v", "s/v", "(scrubbed dev refresh; target <= 1.5)"),
        ("h", "v", "h/v", "(the same by the baseline's code)"),
        ("x", "n", "x/n", "(41 of 200 tables masked; target <= 1.3)"),
        ("o", "n", "o/n", "(the same by the baseline's code)"),
        ("t", "f", "t/f", "(a 5 % subset against the whole masked copy; target <= 0.15)"),
        ("r", "q", "r/q", "(backup through the link against bare -Fd -j 4; target <= 1.10)"),
        ("r", "p", "r/p", "(the same against one connection, bare -Fc; target <= 0.3)"),
        ("z", "y", "z/y", "(encrypted pipeline to 2 stores against its floor; target <= 1.0)"),
    ]
    for top, bottom, name, note in ratios:
        if top in m and bottom in m:
            print(f"  {name} = {m[top] / m[bottom]:.2f}   {note}")
    if "d" in runs and "k" in runs:
        over = statistics.median(k - d for k, d in zip(runs["k"], runs["d"], strict=True))
        print(f"  k - d = {over:.2f} s   (a backup's cost over bare pg_dump; target <= 0.5 s)")
    if DEV_SIZES["f"] and DEV_SIZES["t"]:
        whole, subset = max(DEV_SIZES["f"]), max(DEV_SIZES["t"])
        print(
            f"  dev size: whole {whole / 2**20:.0f} MiB, subset {subset / 2**20:.0f} MiB, "
            f"{subset / whole:.2f} (target <= 0.1)"
        )
    if rss:
        print(f"  orchestrator peak RSS = {max(rss) / 2**20:.0f} MiB   (target < 150 MiB)")
    sealed = [held / largest for held, largest in work_held("sealed-")]
    if sealed:
        print(f"  WORK_DIR peak = {max(sealed):.2f} dumps   (w; target <= 1.05)")
    report_big_lines()
    if FILTER_PEAKS:
        print(f"  masking filter peak RSS = {max(FILTER_PEAKS) / 2**20:.0f} MiB (per process)")


def report_big_lines() -> None:
    """The remote and scale lines' peaks: the connections each way held at once through
    the link, the orchestrator's RSS, and WORK_DIR's in dumps (the bare -Fd folder's size)."""
    if any(LINKS.values()):
        held = ", ".join(f"{key} {max(most)}" for key, most in LINKS.items() if most)
        print(f"  most connections at once through the link: {held}")
    for key, dump in (("r", "q"), ("z", "y")):
        if LINE_RSS[key]:
            print(f"  ({key}) orchestrator peak RSS = {max(LINE_RSS[key]) / 2**20:.0f} MiB")
        peaks = work_held("remote-" if key == "r" else "scale-")
        if peaks:
            most = max(held for held, _largest in peaks)
            size = DUMP_SIZES.get(dump)
            ratio = f" = {most / size:.2f} dumps of {size / 2**20:.0f} MiB" if size else ""
            print(f"  ({key}) WORK_DIR peak {most / 2**20:.0f} MiB{ratio} (target <= 1.05)")


if __name__ == "__main__":
    main()
