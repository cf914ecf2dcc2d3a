"""NOTIFY_URLS: messages to chat and mail services through Apprise (Slack, Discord, Teams,
Telegram, e-mail, ntfy, Matrix, PagerDuty... one URL per channel, as Apprise writes them).

`parse_channels` reads the setting (URLs separated by commas or spaces, as Apprise reads
them) and checks each URL names a service Apprise knows; `label` is what may be shown of
a URL (its scheme, and its host when that is a server name: tokens often sit where the
host would be); `send` delivers one message to every channel and gives the channels that
failed with their reasons, masked. Apprise is imported only when a channel is used.

Every URL, and each token-like part of it, is registered as a secret, so no log line or
error of the tool can carry it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from orchestrator.logs import mask, register_secret

__all__ = ["Failure", "check_services", "label", "parse_channels", "send"]

_SEPARATORS = re.compile(r"[\s,]+")
_SECRET_MIN = 4  # shorter URL parts (ports, "yes") are not masked
# query parameters that carry credentials (`?token=`, `?apikey=`, `?pass=`...); the others
# (`mode=insecure`, `to=...`) are options, left readable
_SECRET_KEY = re.compile(r"token|key|secret|pass|pw|auth|sig|code|cred", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """A channel that did not take the message: its label and why (masked)."""

    channel: str
    reason: str


def parse_channels(text: str | None) -> list[str]:
    """The Apprise URLs in `text` (commas or whitespace between them; empty: none).

    Registers each URL and its token-like parts as secrets. Raises ValueError naming the
    entry by position when it is not a URL. Whether Apprise knows the service is checked
    by `check_services`, which loads Apprise (about a second), so only jobs that notify
    pay for it.
    """
    urls = [part for part in _SEPARATORS.split(text or "") if part]
    for position, url in enumerate(urls, start=1):
        _register(url)
        if "://" not in url:
            raise ValueError(f"entry {position} is not a URL like slack://... or mailto://...")
    return urls


def check_services(urls: list[str]) -> None:
    """Raise ValueError naming the first entry (by position and label) that is not a
    service Apprise can send to."""
    if not urls:
        return
    import apprise  # heavy: only when channels are configured

    for position, url in enumerate(urls, start=1):
        if apprise.Apprise.instantiate(url) is None:
            raise ValueError(
                f"entry {position} ({label(url)}) is not a URL Apprise can send to "
                "(see https://github.com/caronc/apprise/wiki)"
            )


def _register(url: str) -> None:
    """Register `url` and every part of it that could be a token, password or key."""
    register_secret(url)
    try:
        parts = urlsplit(url)
        pieces = [parts.netloc, parts.username, parts.password, parts.hostname]
    except ValueError:
        return
    pieces += [unquote(p) for p in re.split(r"[/@:]", parts.netloc + parts.path)]
    pieces += [value for key, value in parse_qsl(parts.query) if _SECRET_KEY.search(key)]
    for piece in pieces:
        if piece and len(piece) >= _SECRET_MIN and not _is_server(piece):
            register_secret(piece)


def _is_server(host: str) -> bool:
    """True for a host that names a server (a dotted name, localhost, an IP address)."""
    if host == "localhost" or ("." in host and not host.startswith(".")):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def label(url: str) -> str:
    """What may be shown of a channel: `mailto://smtp.example.com`, `slack://` (the host
    of a Slack, Discord or Telegram URL is a token, so it is left out). Never a path,
    query, user or password."""
    scheme, _sep, rest = url.partition("://")
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    if rest and host and _is_server(host):
        return f"{scheme}://{host}"
    return f"{scheme}://"


def send(urls: list[str], title: str, body: str, timeout: float) -> list[Failure]:
    """Send `title` and `body` (plain text) to every channel in `urls`; give the failures.

    Each channel is tried once with connect and read timeouts of `timeout` seconds;
    Apprise's own log lines are captured (never printed) and the first one of a failure
    becomes its masked reason. Never raises for a channel that fails.
    """
    import apprise

    failures = []
    for url in urls:
        service = apprise.Apprise()
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            added = service.add(_with_timeouts(url, timeout))
            sent = added and service.notify(
                title=title, body=body, body_format=apprise.NotifyFormat.TEXT
            )
            text = captured.getvalue()
        if not sent:
            reason = next((ln.strip() for ln in text.splitlines() if ln.strip()), "not sent")
            failures.append(Failure(label(url), mask(reason)[:300]))
    return failures


def _with_timeouts(url: str, timeout: float) -> str:
    """`url` with Apprise's connect (`cto`) and read (`rto`) timeouts, unless it sets them."""
    query = urlsplit(url).query
    keys = {key for key, _value in parse_qsl(query)}
    extra = [f"{key}={timeout:g}" for key in ("cto", "rto") if key not in keys]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)
