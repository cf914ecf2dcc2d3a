"""An HTTP proxy in front of the S3 server that fails chosen requests: real faults, real server.

Headers (Host included) pass through unchanged, so SigV4 signatures still verify upstream.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Rule = Callable[[str, str], bool]
"""Called with (method, path-with-query); True fails that request."""

ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code>'
    b"<Message>injected fault</Message></Error>"
)


class FaultyProxy:
    """Forwards to `upstream`; requests matching `rule` get an InvalidRequest error (status
    `status`, 400 unless set; a 5xx is one a client retries) instead,
    requests matching `slow` are held for `delay` seconds before being forwarded, and
    requests matching `corrupt` are forwarded with one byte of their body flipped (headers,
    checksums and signatures as the client sent them), the server's answer recorded in
    `corrupted`; requests matching `hold` wait (listed in `held`)
    until `released` is set."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rule: Rule = lambda _m, _p: False
        self.status = 400
        self.slow: Rule = lambda _m, _p: False
        self.delay = 0.0
        self.corrupt: Rule = lambda _m, _p: False
        self.hold: Rule = lambda _m, _p: False
        self.held: list[str] = []
        self.released = threading.Event()
        self.failed: list[str] = []
        self.corrupted: list[tuple[str, int, bytes]] = []  # (request, status, answer)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.rule(self.command, self.path):
                    proxy.failed.append(f"{self.command} {self.path}")
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(ERROR_BODY)))
                    self.end_headers()
                    self.wfile.write(ERROR_BODY)
                    return
                if proxy.slow(self.command, self.path):
                    time.sleep(proxy.delay)
                flipped = bool(body) and proxy.corrupt(self.command, self.path)
                if flipped:
                    body = body[:1] + bytes([body[1] ^ 0xFF]) + body[2:]
                if proxy.hold(self.command, self.path):
                    proxy.held.append(f"{self.command} {self.path}")
                    proxy.released.wait(120)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body)
                answer = conn.getresponse()
                data = answer.read()
                if flipped:
                    proxy.corrupted.append((f"{self.command} {self.path}", answer.status, data))
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))  # HEAD: the object's
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
