"""Two runs at once on the same backups: one goes on, the other refuses (exit 3) naming it,
and no backup is lost, half-visible or claimed by both."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Clusters, load_sample, s3_env
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration


def test_two_backups_at_once_never_share_an_id_the_second_is_refused(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    source = clusters.get(15)
    db = load_sample(source)
    slow = wrap_tool(tmp_path / "bin", source.bin_dir, "pg_dump", 'sleep 2\nexec "$REAL" "$@"\n')
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        DUMP_JOBS="2",  # a directory backup: its id is taken before its two-second dump
        PG_BIN_DIRS=str(slow),
        **s3_env(s3_server, bucket),
    )
    time.sleep(1.4 - time.time() % 1)  # both name their backup in the same second
    runs = [orch.start("backup") for _ in range(2)]
    done = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert sorted(code for code, _out, _err in done) == [0, 3], [d[2][-1500:] for d in done]
    (kept,) = [out.strip() for code, out, _err in done if code == 0]
    (refused,) = [err.strip().splitlines()[-1] for code, _out, err in done if code == 3]
    assert "holds the lock of database" in refused and "backup (pid" in refused
    assert [b["id"] for b in json.loads(orch.ok("list", "--json").stdout)] == [kept]
    assert orch.run("verify", kept).returncode == 0
