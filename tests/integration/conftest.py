"""Fixtures of the integration tests that drive whole cycles."""

from __future__ import annotations

import pytest

from tests.conftest import Clusters, load_sample, s3_env
from tests.harness.recorder import Recorder
from tests.harness.running import work_tmp
from tests.harness.targets import fresh_target


@pytest.fixture
def sink():
    recorder = Recorder()
    yield recorder
    recorder.stop()


@pytest.fixture
def cycle(clusters: Clusters, s3_server, bucket, orch_factory, sink, tmp_path):
    """A source with the sample, backup and dev targets holding old content, a bucket and an
    orchestrator set to them; its work folders go under the test's own TMPDIR, so the
    processes a cycle starts can be told from those of other tests running at the same time
    (`tests.harness.running.children_of_this_test`)."""
    source = clusters.get(17)
    db = load_sample(source)
    backup_c, dev_c = clusters.get(15), clusters.get(14)
    backup_db, dev_db = fresh_target(backup_c), fresh_target(dev_c)
    env = {
        "SOURCE_DATABASE_URL": source.url(db),
        "BACKUP_DATABASE_URL": backup_c.url(backup_db),
        "DEV_DATABASE_URL": dev_c.url(dev_db),
        "NOTIFY_WEBHOOK_URL": f"{sink.url}/hook",
        "HEALTHCHECK_URL": f"{sink.url}/ping/abc",
        "TMPDIR": str(work_tmp(tmp_path)),
        **s3_env(s3_server, bucket),
    }
    return {
        "source": source,
        "db": db,
        "backup": backup_c,
        "backup_db": backup_db,
        "dev": dev_c,
        "dev_db": dev_db,
        "env": env,
        "orch": orch_factory(**env),
        "bucket": bucket,
        "s3": s3_server,
    }
