"""Free TCP ports on loopback."""

from __future__ import annotations

import random
import socket


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(also_free_offset: int | None = None) -> int:
    """A free port (and, with an offset, `port + offset` free too)."""
    for _ in range(1000):
        port = random.randint(20000, 29999)
        if _free(port) and (also_free_offset is None or _free(port + also_free_offset)):
            return port
    raise RuntimeError("no free port found")
