"""The demo behind scripts/demo: throwaway servers, sample data, the main job, then cleanup.

Shows masking rules suggested from a first backup, then one pipeline cycle (dump once,
encrypt to a public key, archive in two stores, restore backup, and dev masked on the way
in), then backup, status, drill, list, verify, fetch, decrypting an archive with the plain
`age` tool, and the status page written to a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import postgres, s3  # noqa: E402

SAMPLE = REPO / "scripts" / "sample-data.sql"


# Where real applications hide personal data: inside free text, JSON documents and arrays.
HIDDEN = """
CREATE SCHEMA support;
CREATE TABLE support.tickets (
    id int PRIMARY KEY,
    customer_id bigint REFERENCES public.customers (id),
    note text NOT NULL,
    profile jsonb NOT NULL,
    cc text[]
);
INSERT INTO support.tickets
SELECT g, g,
       CASE g % 3 WHEN 0 THEN 'Parcel late, please write to buyer' || g || '@mail.example today'
                  WHEN 1 THEN 'Asked for a call back on +44 20 7946 ' || lpad(g::text, 4, '0')
                  ELSE 'Refund to DE89 3704 0044 0532 0130 00 once approved' END,
       jsonb_build_object('contact', jsonb_build_object('email', 'json' || g || '@mail.example'),
                          'plan', 'gold'),
       ARRAY['copy' || g || '@mail.example']
FROM generate_series(1, 300) AS g;
"""


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m" if sys.stdout.isatty() else f"\n== {title}", flush=True)


def orchestrator(env: dict[str, str], *args: str) -> str:
    print(f"$ orchestrator {shlex.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=REPO / ".demo",
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"demo failed: orchestrator {args[0]} exited {result.returncode}")
    return result.stdout


def make_key(path: Path) -> tuple[Path, str]:
    """An age key pair made with age-keygen, as a user would: (identity file, public key)."""
    path.unlink(missing_ok=True)
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return path, public


def show_plain_age(
    env: dict[str, str], second: Path, backup_id: str, identity: Path, fetched: Path
) -> None:
    """Decrypt the second store's copy with `age -d` and compare it with the manifest."""
    (manifest_path,) = second.rglob(f"{backup_id}.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    sealed = second / manifest["dump_key"]
    plain = REPO / ".demo" / "by-hand.dump"
    print(f"$ age -d -i {identity.name} {sealed.name} > {plain.name}")
    subprocess.run(["age", "-d", "-i", str(identity), "-o", str(plain), str(sealed)], check=True)
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    print(
        f"sha256 {digest[:16]}... equals the manifest's plain_sha256: "
        f"{digest == manifest['plain_sha256']}; starts with PGDMP: "
        f"{plain.read_bytes()[:5] == b'PGDMP'}; the stored bytes do not: "
        f"{sealed.read_bytes()[:5] != b'PGDMP'}"
    )
    print(f"same bytes as `orchestrator fetch` wrote: {plain.read_bytes() == fetched.read_bytes()}")


def main() -> None:
    keep = "--keep" in sys.argv[1:]
    (REPO / ".demo").mkdir(exist_ok=True)
    bins = postgres.installs()
    newest = max(bins)
    step(f"Starting throwaway servers (PostgreSQL {newest} source, backup and dev; SeaweedFS S3)")
    source = postgres.start_cluster(newest, bins[newest])
    targets = [postgres.start_cluster(15, bins[15]) for _ in ("backup", "dev")]
    store = s3.start_s3()
    servers = [source, *targets]
    try:
        bucket = store.new_bucket()
        source.create_database("shop")
        source.psql(SAMPLE.read_text() + HIDDEN, "shop")
        print(
            f"source: {source.url('shop', password=None)}  (sample data: schemas public, sales; "
            "support tickets with personal data inside notes, JSON and arrays)"
        )
        print(f"S3:     {store.endpoint}  bucket {bucket}")
        demo = REPO / ".demo"
        identity, recipient = make_key(demo / "ops-key.txt")
        second = demo / "second-store"
        shutil.rmtree(second, ignore_errors=True)
        print(f"age key:  {identity} (public key {recipient[:16]}...)")
        print(f"store 2:  {second} (a mounted folder stands in for another provider)")
        env = {
            **os.environ,
            "SOURCE_DATABASE_URL": source.url("shop"),
            "BACKUP_DATABASE_URL": targets[0].url("shop"),
            "DEV_DATABASE_URL": targets[1].url("shop"),
            **store.env(bucket, "demo"),
            "STORAGE_URL_2": f"file://{second}",
            "ARCHIVE_RECIPIENTS": recipient,
            "PG_BIN_DIRS": ":".join(str(p) for _, p in sorted(bins.items(), reverse=True)),
            "LOG_FORMAT": "console",
        }
        keyed = {**env, "ARCHIVE_IDENTITY_FILE": str(identity)}
        for target in targets:  # what the old cron jobs left there
            target.create_database("shop")
            target.psql(
                "CREATE TABLE yesterday (v text); INSERT INTO yesterday VALUES ('old')", "shop"
            )
        step("init: mark the folder store and check the S3 store (as restic init / borg init)")
        orchestrator(env, "init")
        step("backup: a first archive, so masking rules can be suggested from it")
        orchestrator(env, "backup")
        step("mask suggest: rules found in the archive (names and sampled values); review them")
        rules = demo / "mask.yaml"
        rules.unlink(missing_ok=True)
        orchestrator(keyed, "mask", "suggest", "-o", str(rules))
        suggested = rules.read_text().splitlines()
        print("\n".join(suggested[:22]) + "\n  ...")
        start = suggested.index("  support.tickets:")
        block = [suggested[start]]
        block += [line for line in suggested[start + 1 :] if line.startswith("    ")][:5]
        print("\n".join(block))
        step("mask check: the rules cover every column of the backup")
        orchestrator(env, "mask", "check", "--rules", str(rules))
        env.update({"DEV_MASK_RULES": str(rules), "MASK_KEY": "demo-mask-key-" + "0" * 16})
        step(
            "pipeline: dump once -> encrypt -> archive in both stores + restore backup, and dev "
            "masked on the way in -> prune"
        )
        orchestrator(env, "pipeline")
        row = "SELECT email, full_name, phone FROM customers ORDER BY id LIMIT 1"
        print("backup holds:", targets[0].psql(row, "shop"))
        print("dev holds:   ", targets[1].psql(row, "shop"))
        ticket = "SELECT note, profile->'contact'->>'email', cc[1] FROM support.tickets WHERE id=3"
        print("backup's ticket:", targets[0].psql(ticket, "shop"))
        print("dev's ticket:   ", targets[1].psql(ticket, "shop"))
        comment = "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
        said = targets[1].psql(f"{comment} WHERE datname = 'shop'")
        print("dev says:    ", said[:110] + "...")
        print(
            "backup's previous copy kept as shop_previous:",
            targets[0].psql("SELECT v FROM yesterday", "shop_previous"),
        )
        step(
            "subset: the same rules plus a subset section -> dev gets the customers of 2025's "
            "first three weeks and only their orders and tickets, masked, every key intact"
        )
        subset_rules = demo / "mask-subset.yaml"
        subset_rules.write_text(
            rules.read_text()
            + "subset:\n  tables:\n"
            + "    public.customers: {where: \"created_at < timestamptz '2025-01-22'\"}\n"
        )
        orchestrator(env, "mask", "check", "--rules", str(subset_rules))
        unsealing = {**env, "ARCHIVE_IDENTITY_FILE": str(identity)}  # the archive is encrypted
        orchestrator(unsealing, "restore", "--target", "dev", "--mask-rules", str(subset_rules))
        counts = (
            "SELECT (SELECT count(*) FROM customers) || ' customers, ' || "
            "(SELECT count(*) FROM sales.orders) || ' orders, ' || "
            "(SELECT count(*) FROM support.tickets) || ' tickets'"
        )
        print("backup holds:", targets[0].psql(counts, "shop"))
        print("dev holds:   ", targets[1].psql(counts, "shop"))
        step("backup: a second archive, on its own")
        backup_id = orchestrator(env, "backup").strip()
        step("backup with DUMP_JOBS=2: pg_dump -Fd over two connections, each file encrypted")
        print("and stored in both stores as pg_dump closes it (auto does this from 1 GiB on)")
        orchestrator({**env, "DUMP_JOBS": "2"}, "backup")
        step("status")
        orchestrator(env, "status")
        step("drill of that parallel backup: each file fetched, checked and decrypted")
        orchestrator(keyed, "drill")
        step("list: every backup encrypted (ENC age), in both stores; DUMP dir/2: the parallel one")
        orchestrator(env, "list")
        step("verify: every file of each store's copy against the manifest (no key needed)")
        orchestrator(env, "verify", "latest")
        step("verify with the identity: decrypt, then pg_restore --list")
        orchestrator(keyed, "verify", "latest")
        step("fetch: download, check, decrypt, write atomically")
        out = demo / f"{backup_id}.dump"
        orchestrator(keyed, "fetch", backup_id, "-o", str(out))
        step("Without this tool: the stored object opens with the standard age CLI")
        show_plain_age(env, second, backup_id, identity, out)
        step("report: the status page as one file (run serves it at / on HEALTH_PORT)")
        page = demo / "status.html"
        orchestrator(env, "report", "--html", str(page))
        print(f"open {page} in a browser: health, targets, charts, cycles, drills, backups")
        step("Where things are")
        objects = store.client().list_objects_v2(Bucket=bucket)["Contents"]  # type: ignore[attr-defined]
        for obj in objects:
            print(f"s3://{bucket}/{obj['Key']}  ({obj['Size']} bytes)")
        for path in sorted(p for p in second.rglob("*") if p.is_file()):
            print(f"{path}  ({path.stat().st_size} bytes)")
        print(f"local copy: {out}\nrestore it anywhere with plain pg_restore:")
        print(f"  pg_restore --no-owner --no-acl -d postgresql://USER@HOST/DB {out}")
        if keep:
            step("Servers left running (--keep); stop them with: kill " + str(store.process.pid))
            for name, cluster in zip(("source", "backup", "dev"), servers, strict=True):
                print(f"{name}: {cluster.url(password=None)} (password {postgres.PASSWORD!r})")
            print(f"S3: {store.endpoint} key {s3.ACCESS_KEY} secret {s3.SECRET_KEY}")
            print("Press Ctrl-C to stop everything.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        step("Stopping the throwaway servers")
        for cluster in servers:
            cluster.stop()
        store.stop()
    print("demo finished")


if __name__ == "__main__":
    main()
