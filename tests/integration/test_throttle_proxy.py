"""The bandwidth-limiting proxy of the remote benchmark line, against a real PostgreSQL.

Each connection through the proxy gets a link of its own: one COPY of a few MB takes at
least size/rate, two at once each get about the rate, and psql and pg_dump see the server
exactly as they see it directly. The token bucket's arithmetic is checked on a fake clock.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_SQL, Clusters
from tests.harness.postgres import PASSWORD, SUPERUSER, Cluster
from tests.harness.throttle import MAX_BURST, ThrottleProxy, TokenBucket, burst_for, start_throttle

RATE = 4_000_000  # bytes a second, each connection and direction
ROWS = 24_000  # of about 135 bytes in COPY text: about 3.2 MB, 0.8 s at RATE
SLACK = 1.5  # a link slower than RATE / SLACK fails; the machine is shared


@dataclass
class FakeClock:
    """A clock that only moves when slept on; each sleep overshoots by `late` seconds."""

    now: float = 0.0
    late: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late


@pytest.mark.parametrize(
    ("rate", "burst", "late", "idle", "takes", "sleeps"),
    [
        pytest.param(1000, 100, 0.0, 0.0, [100], [0.0], id="a-full-bucket-passes-a-burst"),
        pytest.param(1000, 100, 0.0, 0.0, [100, 100], [0.0, 0.1], id="then-waits-for-the-rate"),
        pytest.param(1000, 100, 0.0, 10.0, [100, 100], [0.0, 0.1], id="idle-time-banks-one-burst"),
        pytest.param(1000, 100, 0.0, 0.0, [100] * 4, [0.0, 0.1, 0.1, 0.1], id="steady-rate"),
        pytest.param(1000, 100, 0.0, 0.0, [50, 100], [0.0, 0.05], id="debt-is-the-shortfall"),
        pytest.param(1000, 100, 0.02, 0.0, [100] * 3, [0.0, 0.1, 0.08], id="oversleep-made-up"),
    ],
)
def test_token_bucket_sleeps_just_long_enough_to_hold_the_rate(
    rate: int, burst: int, late: float, idle: float, takes: list[int], sleeps: list[float]
) -> None:
    clock = FakeClock(late=late)
    bucket = TokenBucket(rate, burst, clock=lambda: clock.now, sleep=clock.sleep)
    clock.now += idle
    assert [bucket.take(count) for count in takes] == pytest.approx(sleeps)


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(100, 4096), (1_000_000, 10_000), (8_400_000, MAX_BURST), (10**9, MAX_BURST)],
)
def test_bursts_are_about_ten_milliseconds_within_4_to_64_kib(rate: int, burst: int) -> None:
    assert burst_for(rate) == burst


@pytest.mark.parametrize("rate", [0, -1.0])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate, 100)
    with pytest.raises(ValueError, match="rate"):
        ThrottleProxy(("127.0.0.1", 1), rate)


@pytest.fixture(scope="module")
def source(clusters: Clusters) -> Cluster:
    cluster = clusters.get(17)
    cluster.create_database("throttled")
    cluster.psql(SAMPLE_SQL.read_text(), "throttled")
    cluster.psql(
        "CREATE TABLE wide AS SELECT g, repeat(md5(g::text), 4) AS t "
        f"FROM generate_series(1, {ROWS}) g; CREATE TABLE sink (LIKE wide)",
        "throttled",
    )
    return cluster


@pytest.fixture
def proxy(source: Cluster) -> Iterator[ThrottleProxy]:
    started = start_throttle(source.port, RATE)
    yield started
    started.stop()


def client(cluster: Cluster, tool: str, port: int, *args: str, **kwargs: object) -> bytes:
    """Run `tool` (psql, pg_dump) against 127.0.0.1:`port` as the superuser, the password
    in the environment; give its stdout (a client stuck on a garbled stream fails in 30 s)."""
    env = {**os.environ, "PGPASSWORD": PASSWORD, "PGSSLMODE": "disable"}
    argv = [str(cluster.bin_dir / tool), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER]
    result = subprocess.run(  # type: ignore[call-overload]
        [*argv, *args], env=env, capture_output=True, check=True, timeout=30, **kwargs
    )
    return result.stdout  # type: ignore[no-any-return]


def copy_out(cluster: Cluster, port: int) -> float:
    """Seconds one psql takes to COPY the wide table to its stdout through `port`."""
    started = time.monotonic()
    client(cluster, "psql", port, "-X", "-d", "throttled", "-c", "COPY wide TO STDOUT")
    return time.monotonic() - started


def test_one_connection_gets_the_rate_and_no_more(source: Cluster, proxy: ThrottleProxy) -> None:
    seconds = copy_out(source, proxy.port)
    least = (proxy.bytes_down - proxy.burst) / RATE
    assert proxy.bytes_down > 3_000_000
    assert least <= seconds <= least * SLACK, (seconds, least)


def test_two_connections_at_once_each_get_the_rate(source: Cluster, proxy: ThrottleProxy) -> None:
    times: list[float] = []
    copies = [
        threading.Thread(target=lambda: times.append(copy_out(source, proxy.port)))
        for _ in range(2)
    ]
    started = time.monotonic()
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join()
    elapsed = time.monotonic() - started
    each = (proxy.bytes_down / 2 - proxy.burst) / RATE
    assert proxy.most_open == 2
    assert all(each <= seconds <= each * SLACK for seconds in times), (times, each)
    assert proxy.bytes_down / elapsed > 2 * RATE / SLACK  # the aggregate: about twice


def test_the_upload_direction_is_held_to_the_rate_too(
    source: Cluster, proxy: ThrottleProxy, tmp_path: Path
) -> None:
    copy = ("-X", "-d", "throttled", "-c")
    rows = client(source, "psql", source.port, *copy, "COPY wide TO STDOUT")
    started = time.monotonic()
    client(source, "psql", proxy.port, *copy, "COPY sink FROM STDIN", input=rows)
    seconds = time.monotonic() - started
    least = (proxy.bytes_up - proxy.burst) / RATE
    assert proxy.bytes_up > len(rows)
    assert least <= seconds <= least * SLACK, (seconds, least)
    count = source.psql("SELECT count(*) FROM sink", "throttled")
    assert count == str(ROWS)


def test_psql_and_pg_dump_see_the_server_as_they_do_directly(
    source: Cluster, proxy: ThrottleProxy
) -> None:
    plain = ("pg_dump", "--format=plain", "--restrict-key=same", "--exclude-table=wide|sink")
    direct = client(source, *plain[:1], source.port, *plain[1:], "throttled")
    through = client(source, *plain[:1], proxy.port, *plain[1:], "throttled")
    assert through == direct
    assert b"Mixed Case table" in through
    query = ("-X", "-A", "-t", "-d", "throttled", "-c", "SELECT count(*) FROM sales.events")
    assert client(source, "psql", proxy.port, *query).strip() == b"3000"
    assert proxy.opened == 2
    assert proxy.bytes_down >= len(direct)


def test_stopping_the_proxy_cuts_the_connections_it_holds(source: Cluster) -> None:
    proxy = start_throttle(source.port, RATE)
    env = {**os.environ, "PGPASSWORD": PASSWORD, "PGSSLMODE": "disable"}
    argv = [str(source.bin_dir / "psql"), "-X", "-h", "127.0.0.1", "-p", str(proxy.port)]
    waiting = subprocess.Popen(
        [*argv, "-U", SUPERUSER, "-d", "throttled", "-c", "SELECT pg_sleep(20)"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    while proxy.opened == 0:
        time.sleep(0.01)
    started = time.monotonic()
    proxy.stop()
    _out, err = waiting.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert waiting.returncode != 0, err
    with pytest.raises(subprocess.CalledProcessError):  # nothing listens any more
        client(source, "psql", proxy.port, "-X", "-d", "throttled", "-c", "SELECT 1")
