"""A command loads only what it uses: `orchestrator backup` to a folder store pays for no
scheduler, status page, Prometheus, Apprise or boto3 (issue 17, the fixed cost of a command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.storage import open_storage

# Prints the top-level and orchestrator modules loaded when the process ends, then runs
# `python -m orchestrator ARGS` as the console script does.
WRAPPER = (
    "import atexit, json, runpy, sys\n"
    "atexit.register(lambda: print(json.dumps(sorted(sys.modules))))\n"
    "runpy.run_module('orchestrator', run_name='__main__', alter_sys=True)\n"
)
NOT_FOR_BACKUP = (
    "orchestrator.scheduler",
    "orchestrator.dashboard",
    "orchestrator.health",
    "orchestrator.commands.status",
    "orchestrator.commands.pipeline",
    "orchestrator.commands.drill",
    "orchestrator.storage.s3",
    "prometheus_client",
    "apprise",
    "boto3",
    "botocore",
    "numpy",
)


def loaded_by(args: list[str], storage_url: str, tmp_path: Path) -> tuple[set[str], str]:
    """The modules an `orchestrator ARGS` process had loaded when it ended, and its stderr.
    Its source database refuses connections (port 1): a command runs up to its first
    connection and fails there with a one-line error."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SOURCE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/shop",
        "STORAGE_URL": storage_url,
        "NOTIFY_URLS": "json://127.0.0.1:1/hook",
    }
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    return set(json.loads(done.stdout.splitlines()[-1])), done.stderr


def _unwanted(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_FOR_BACKUP)
    )


def test_backup_to_a_folder_store_never_loads_scheduler_page_apprise_or_boto3(tmp_path):
    store = tmp_path / "store"
    open_storage(store.as_uri()).initialise()  # as `orchestrator init` leaves it
    modules, stderr = loaded_by(["backup"], store.as_uri(), tmp_path)
    assert "cannot connect to SOURCE_DATABASE_URL" in stderr  # it ran up to the dump
    assert "orchestrator.commands.backup" in modules
    assert _unwanted(modules) == []


def test_backup_to_an_s3_store_loads_the_s3_backend(tmp_path):
    """The control: the check above sees boto3 when a command does load it."""
    modules, _stderr = loaded_by(["backup"], "s3://bucket/prefix", tmp_path)
    assert {"boto3", "orchestrator.storage.s3"} <= modules
