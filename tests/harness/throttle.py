"""A TCP proxy that gives each connection a link of its own, as a provider across the internet.

A managed PostgreSQL far away gives each connection limited bandwidth (users report about
1 MB/s per connection to Neon across regions), so N parallel connections get about N times
one. `ThrottleProxy` listens on loopback in front of a server and holds each connection, in
each direction separately (a link's upload and download), to `rate` bytes a second with a
token bucket whose bursts stay small (at most 64 KiB, about 10 ms of the rate), so a 1 MB/s
link gives about 1 MB/s over any stretch of a second or more. The bytes pass untouched: no
protocol is parsed, so PostgreSQL's (plain, sslmode=disable) works through it as it is.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

MAX_BURST = 64 * 1024


def burst_for(rate: float) -> int:
    """The bucket's depth for `rate` bytes/s: about 10 ms of it, at least 4 KiB and at most
    MAX_BURST (also the most read at once, so no single send exceeds it)."""
    return int(min(MAX_BURST, max(4096, rate / 100)))


class TokenBucket:
    """Spends `rate` tokens (bytes) a second, holding at most `burst` unspent.

    `take(n)` spends n tokens at once and, when that leaves the bucket in debt, sleeps until
    the debt is paid: the time between takes refills it, so over T seconds at most
    `burst + rate * T` bytes pass, and a sleep that overshoots is made up by the next take
    (the refill counts the real time) rather than lowering the rate."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        self.tokens = float(burst)
        self.last = clock()

    def take(self, count: int) -> float:
        """Spend `count` tokens; give the seconds slept to stay within the rate (0 when the
        bucket held enough)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= count
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate
        self.sleep(wait)
        return wait


class ThrottleProxy:
    """Forwards 127.0.0.1:`port` to `upstream` (host, port), each accepted connection and
    each of its directions held to `rate` bytes a second by a bucket of its own.

    Counts what passed: `bytes_up` (client to server), `bytes_down` (server to client),
    `opened` (connections accepted) and `most_open` (the most open at once); `reset_counts`
    zeroes them between measured runs."""

    def __init__(self, upstream: tuple[str, int], rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (bytes a second)")
        self.upstream = upstream
        self.rate = rate
        self.burst = burst_for(rate)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.live: set[socket.socket] = set()
        self.open_now = 0
        self.reset_counts()
        self.thread = threading.Thread(target=self._accept, name="throttle-accept", daemon=True)

    def reset_counts(self) -> None:
        """Zero the counters (connections open now still count towards `most_open`)."""
        with self.lock:
            self.bytes_up = 0
            self.bytes_down = 0
            self.opened = 0
            self.most_open = self.open_now

    def start(self) -> ThrottleProxy:
        """Start accepting; give the proxy itself."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and cut every open connection."""
        self.stopping.set()
        self.thread.join()
        self.listener.close()
        with self.lock:
            for sock in list(self.live):
                _cut(sock)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _cut(client)
                continue
            self._serve(client, server)

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        for sock in (client, server):
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.live.update((client, server))
            self.opened += 1
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        done = threading.Barrier(2, action=lambda: self._closed(client, server))
        for source, target, upward in ((client, server, True), (server, client, False)):
            threading.Thread(
                target=self._pump, args=(source, target, upward, done), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, upward: bool, done: threading.Barrier
    ) -> None:
        """Run one direction of a connection; when it fails (a side went away, or a bug),
        cut both sides so that neither client nor server waits for it, then wait for the
        other direction to end."""
        ended = False
        try:
            self._copy(source, target, upward)
            ended = True
        except OSError:
            pass
        finally:
            if not ended:
                _cut(source)
                _cut(target)
            with contextlib.suppress(threading.BrokenBarrierError):
                done.wait()

    def _copy(self, source: socket.socket, target: socket.socket, upward: bool) -> None:
        """Copy `source` to `target` through a bucket of this direction's own until
        `source` ends, then let `target` see the end; raises OSError when a side fails."""
        bucket = TokenBucket(self.rate, self.burst)
        while data := source.recv(self.burst):
            bucket.take(len(data))
            target.sendall(data)
            with self.lock:
                if upward:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
        target.shutdown(socket.SHUT_WR)

    def _closed(self, client: socket.socket, server: socket.socket) -> None:
        with self.lock:
            self.live.difference_update((client, server))
            self.open_now -= 1
        client.close()
        server.close()


def _cut(sock: socket.socket) -> None:
    """Shut both directions of `sock` (its pump then sees the end); ignore a closed one."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def start_throttle(port: int, rate: float, host: str = "127.0.0.1") -> ThrottleProxy:
    """A running proxy in front of `host:port` holding each connection to `rate` bytes/s
    each way; its own port is `.port`."""
    return ThrottleProxy((host, port), rate).start()
