"""Throwaway PostgreSQL clusters of several major versions, run as the `postgres` user.

initdb/pg_ctl refuse to run as root, so when the tests run as root every server command
drops to the `postgres` user; the data folder lives in a temp folder that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.harness.cleanup import remove_later
from tests.harness.ports import free_port

PG_CACHE = Path(os.environ.get("ORCH_PG_CACHE", "/var/cache/orchestrator/pg"))
SUPERUSER = "postgres"
PASSWORD = "Tr1cky:p@ss/w%rd-7c41"  # URL-hostile on purpose; grep-able in leak tests


def installs() -> dict[int, Path]:
    """Major version -> bin folder holding initdb, pg_ctl, pg_dump, pg_restore."""
    found: dict[int, Path] = {}
    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin")) + sorted(
        glob.glob(str(PG_CACHE / "*" / "bin"))
    ):
        path = Path(bin_dir)
        if (path / "initdb").exists() and (path / "pg_dump").exists():
            found.setdefault(int(path.parent.name), path)
    return found


def unprivileged() -> Callable[[], None] | None:
    """A preexec_fn that runs a child as the `postgres` user when we are root (None
    otherwise: we are unprivileged already)."""
    return _demote if os.geteuid() == 0 else None


def _demote() -> None:
    entry = pwd.getpwnam("postgres")
    os.setgid(entry.pw_gid)
    os.setgroups([])
    os.setuid(entry.pw_uid)


def _as_server_user(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    preexec = unprivileged()
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        argv, preexec_fn=preexec, check=True, capture_output=True, text=True, **kwargs
    )


@dataclass
class Cluster:
    """A running server on 127.0.0.1:`port`, password authentication over TCP."""

    major: int
    bin_dir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(
        self,
        database: str = "postgres",
        password: str | None = PASSWORD,
        host: str = "127.0.0.1",
        user: str = SUPERUSER,
    ) -> str:
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}" if password else user
        return f"postgresql://{auth}@{host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres", check: bool = True) -> str:
        """Run SQL through psql over the unix socket (trusted); give stdout."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout.strip()

    def create_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}"')
        self.psql(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            preexec_fn=unprivileged(),
            capture_output=True,
            check=False,
        )
        remove_later(self.root)


def start_cluster(major: int, bin_dir: Path, extra_options: str = "") -> Cluster:
    """initdb + pg_ctl start a fresh cluster of `major` on a free port (`extra_options`
    are more `-c name=value` server settings)."""
    root = Path(tempfile.mkdtemp(prefix=f"orch-pg{major}-", dir="/tmp"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    pwfile.chmod(0o644)
    port = free_port()
    cluster = Cluster(major, bin_dir, root, port)
    _as_server_user(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
        ]
    )
    pwfile.unlink()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        f"-c full_page_writes=off -c synchronous_commit=off {extra_options}"
    )
    _as_server_user(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(cluster.data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ]
    )
    return cluster
