"""A stop request cancels queries running on a real server, so worker threads return."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from orchestrator import cancel, conninfo
from orchestrator.postgres import queries
from tests.conftest import Clusters

pytestmark = pytest.mark.integration


def test_stop_request_cancels_running_queries(clusters: Clusters):
    cluster = clusters.get(15)
    conn = queries.connect(conninfo.parse(cluster.url("postgres")), "test")
    outcome: list[BaseException] = []

    def long_query() -> None:
        try:
            conn.execute("SELECT pg_sleep(60)")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=long_query)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    try:
        cancel.request_stop()
        worker.join(timeout=10)
    finally:
        cancel.reset()
        conn.close()
    assert not worker.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome[0], psycopg.errors.QueryCanceled)
