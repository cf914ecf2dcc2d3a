"""Removing a stopped server's folder without waiting for it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def remove_later(folder: Path) -> None:
    """Delete `folder` in a detached `rm -rf`: a cluster's data folder holds a gigabyte of
    small files by the end of the suite, and nothing waits for them to go."""
    subprocess.Popen(
        ["rm", "-rf", "--", str(folder)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
