"""Driving `orchestrator run` and its HTTP endpoints, and waiting on what they show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


def s3_keys(c) -> list[str]:
    listing = c["s3"].client().list_objects_v2(Bucket=c["bucket"])
    return [o["Key"] for o in listing.get("Contents", [])]


def start_run(c, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **c["orch"].env, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run"],
        cwd=c["orch"].cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def work_tmp(tmp_path: Path) -> Path:
    """The TMPDIR of a test's orchestrator (made here): its work folders, and the paths its
    pg_dump and pg_restore are given, lie under it."""
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    return folder


def children_of_this_test(tmp_path: Path) -> list[str]:
    """The pg_dump and pg_restore processes still running on a work folder of this test's
    orchestrator (`ps` lines): none of another test, worker or checkout on the machine.
    `-ww`: without it `ps` cuts each line to the screen's width, often before the path."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,pgid,args"], capture_output=True, text=True)
    work = re.escape(f"{work_tmp(tmp_path)}/orchestrator-")
    return [
        line
        for line in out.stdout.splitlines()[1:]
        if re.search(r"\bpg_(dump|restore)\b", line) and re.search(work, line)
    ]
