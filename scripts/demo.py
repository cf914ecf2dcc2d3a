"""The demo behind scripts/demo: throwaway servers, sample data, the main job, then cleanup.

Shows one pipeline cycle (dump once, archive, restore backup and dev with a scrub script),
then backup, status, drill, list, verify and fetch.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import postgres, s3  # noqa: E402

SAMPLE = REPO / "scripts" / "sample-data.sql"


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
        source.psql(SAMPLE.read_text(), "shop")
        print(f"source: {source.url('shop', password=None)}  (sample data: schemas public, sales)")
        print(f"S3:     {store.endpoint}  bucket {bucket}")
        env = {
            **os.environ,
            "SOURCE_DATABASE_URL": source.url("shop"),
            "BACKUP_DATABASE_URL": targets[0].url("shop"),
            "DEV_DATABASE_URL": targets[1].url("shop"),
            **store.env(bucket, "demo"),
            "PG_BIN_DIRS": ":".join(str(p) for _, p in sorted(bins.items(), reverse=True)),
            "LOG_FORMAT": "console",
        }
        scrub = REPO / ".demo" / "scrub.sql"
        scrub.write_text(
            "UPDATE public.customers SET email = 'user' || id || '@example.invalid',\n"
            "    full_name = 'Customer ' || id, phone = NULL;\n"
        )
        env["DEV_POST_RESTORE_SQL"] = str(scrub)
        for target in targets:  # what the old cron jobs left there
            target.create_database("shop")
            target.psql(
                "CREATE TABLE yesterday (v text); INSERT INTO yesterday VALUES ('old')", "shop"
            )
        step("pipeline: dump once -> archive + restore backup and dev (dev scrubbed) -> prune")
        orchestrator(env, "pipeline")
        print(
            "dev now holds:", targets[1].psql("SELECT email, phone FROM customers LIMIT 1", "shop")
        )
        print(
            "backup's previous copy kept as shop_previous:",
            targets[0].psql("SELECT v FROM yesterday", "shop_previous"),
        )
        step("backup: a second archive, on its own")
        backup_id = orchestrator(env, "backup").strip()
        step("status")
        orchestrator(env, "status")
        step("drill: restore into a scratch database on the backup server, check, time it")
        orchestrator(env, "drill")
        step("list")
        orchestrator(env, "list")
        step("verify: sha256 against the manifest, pg_restore --list")
        orchestrator(env, "verify", "latest")
        step("fetch: download, check, write atomically")
        out = REPO / ".demo" / f"{backup_id}.dump"
        orchestrator(env, "fetch", backup_id, "-o", str(out))
        step("Where things are")
        objects = store.client().list_objects_v2(Bucket=bucket)["Contents"]  # type: ignore[attr-defined]
        for obj in objects:
            print(f"s3://{bucket}/{obj['Key']}  ({obj['Size']} bytes)")
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
