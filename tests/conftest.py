"""Shared fixtures: real PostgreSQL clusters of several majors, a real S3 server, a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from orchestrator.errors import ConfigError
from orchestrator.storage import Storage, open_storage
from tests.harness import postgres, s3
from tests.harness.postgres import Cluster

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SQL = REPO / "scripts" / "sample-data.sql"
REQUIRED_MAJORS = (14, 15, 17)
StorageT = TypeVar("StorageT", bound=Storage)


def initialised(storage: StorageT) -> StorageT:
    """`storage`, made ready as `orchestrator init` does (a folder gets its marker)."""
    storage.initialise()
    return storage


class Clusters:
    """Starts at most one cluster per major version, on first use; stops them all."""

    def __init__(self) -> None:
        self.bins = postgres.installs()
        self.running: dict[int, Cluster] = {}

    def get(self, major: int) -> Cluster:
        if major not in self.bins:
            pytest.fail(f"PostgreSQL {major} is not installed: run scripts/test, which installs it")
        if major not in self.running:
            self.running[major] = postgres.start_cluster(major, self.bins[major])
        return self.running[major]

    def stop(self) -> None:
        for cluster in self.running.values():
            cluster.stop()


@pytest.fixture(scope="session")
def clusters() -> Iterator[Clusters]:
    started = Clusters()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3.S3Server]:
    server = s3.start_s3()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: s3.S3Server) -> str:
    return s3_server.new_bucket()


def load_sample(cluster: Cluster, database: str | None = None) -> str:
    """Create a fresh database on `cluster` holding the sample data; give its name."""
    name = database or f"src_{uuid.uuid4().hex[:8]}"
    cluster.create_database(name)
    cluster.psql(SAMPLE_SQL.read_text(), database=name)
    return name


@dataclass
class Orchestrator:
    """Runs `python -m orchestrator` in a clean environment, as a user would."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, extra_env: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.cwd),
            "LANG": "C.UTF-8",
            **self.env,
            **(extra_env or {}),
        }

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run the command in this process (`cli.main`) with exactly the environment, the
        working folder and the streams a separate process would have; give what it gave.

        Commands that serve or wait for signals (`run`) go through `start`; the CLI
        contract itself (the console script, exit on signals) through `run_process`."""
        return run_in_process(list(args), self.cwd, self.environment(extra_env))

    def run_process(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m orchestrator` as a separate process, as a user would."""
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=self.cwd,
            env=self.environment(extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the command without waiting (to signal it); stdout and stderr are piped."""
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=self.cwd,
            env=self.environment(extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return _succeeded(self.run(*args, **kwargs))  # type: ignore[arg-type]

    def ok_process(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return _succeeded(self.run_process(*args, **kwargs))  # type: ignore[arg-type]


def _succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


def run_in_process(
    args: list[str], cwd: Path, environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`orchestrator ARGS` through `cli.main` in this process: the environment is replaced
    by `environment` and the working folder by `cwd` for the call, stdout and stderr are
    captured, and the process-wide state a command sets (signal handlers, the stop flag,
    logging) is put back afterwards. Saves the interpreter start and imports of a process
    (about half a second a call here). `tempfile`'s cached folder is forgotten for the call,
    so a TMPDIR in `environment` is where the command's work folders go, as in a process."""
    from orchestrator import cancel, cli, logs

    saved_env, saved_cwd, saved_tempdir = dict(os.environ), Path.cwd(), tempfile.tempdir
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    tempfile.tempdir = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(args)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        tempfile.tempdir = saved_tempdir
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        cancel.reset()
        logs.configure()
    return subprocess.CompletedProcess(
        [sys.executable, "-m", "orchestrator", *args], code, out.getvalue(), err.getvalue()
    )


def stop_with_sigterm(proc: subprocess.Popen[str]) -> str:
    """SIGTERM `proc`, check it exits with 128+15 within the 30 s stop budget; give stderr."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    return err


def all_bin_dirs(clusters: Clusters) -> str:
    return ":".join(str(path) for _major, path in sorted(clusters.bins.items(), reverse=True))


def backed_up_with_suggested_rules(
    clusters: Clusters, tmp: Path, source_url: str, dev_url: str, key: str
) -> tuple[Orchestrator, Path]:
    """An orchestrator for `source_url` and `dev_url` with a folder store under `tmp`,
    initialised, one backup taken and the rules `mask suggest` wrote for it (its
    DEV_MASK_RULES, `tmp/suggested.yaml`); give it and the rules' path."""
    rules = tmp / "suggested.yaml"
    work = tmp / "cwd"
    work.mkdir()
    orch = Orchestrator(
        work,
        {
            "PG_BIN_DIRS": all_bin_dirs(clusters),
            "STORAGE_URL": f"file://{tmp}/store",
            "SOURCE_DATABASE_URL": source_url,
            "DEV_DATABASE_URL": dev_url,
            "DEV_MASK_RULES": str(rules),
            "MASK_KEY": key,
        },
    )
    orch.ok("init")
    orch.ok("backup")
    orch.ok("mask", "suggest", "-o", str(rules))
    return orch, rules


@pytest.fixture
def orch_factory(tmp_path: Path, clusters: Clusters) -> Callable[..., Orchestrator]:
    def make(*, uninitialised: bool = False, **env: str) -> Orchestrator:
        """An orchestrator with these settings; its folder stores are initialised (as
        `orchestrator init` would) unless `uninitialised`."""
        work = tmp_path / f"cwd-{uuid.uuid4().hex[:6]}"
        work.mkdir()
        base = {"PG_BIN_DIRS": all_bin_dirs(clusters), "STORAGE_URL": f"file://{tmp_path}/store"}
        full = {**base, **env}
        if not uninitialised:
            for name, value in full.items():
                if re.fullmatch(r"STORAGE_URL(_[0-9])?", name) and value.startswith(("file:", "/")):
                    with contextlib.suppress(ConfigError):  # a malformed URL under test
                        open_storage(value).initialise()
        return Orchestrator(work, full)

    return make


def s3_env(server: s3.S3Server, bucket: str, prefix: str = "prod") -> dict[str, str]:
    return server.env(bucket, prefix)
