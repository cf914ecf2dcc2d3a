"""Small pieces every action shares: opening the stores, choosing clients, hashing files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator import channels
from orchestrator.errors import ConfigError
from orchestrator.logs import get_logger
from orchestrator.notify import Notifier
from orchestrator.postgres import clients
from orchestrator.settings import Settings, StoreSettings
from orchestrator.storage import open_storage
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)
NOTIFY_TIMEOUT = 5.0
HASH_CHUNK = 4 * 1024 * 1024


def stores_from(settings: Settings) -> list[NamedStore]:
    """Open every configured store (STORAGE_URL, STORAGE_URL_2, ...), named for people.

    Raises ConfigError naming the store's variable when its URL is malformed.
    """
    configured = settings.stores()
    opened = [open_storage(s.url, s.s3_options()) for s in configured]
    labels = store_labels(configured, [storage.describe() for storage in opened])
    return [
        NamedStore(label, s.setting, storage)
        for label, s, storage in zip(labels, configured, opened, strict=True)
    ]


def store_labels(configured: list[StoreSettings], described: list[str]) -> list[str]:
    """Each store's label: where it is (s3://bucket/prefix or a folder); the endpoint's host
    is added when two stores would otherwise look alike, then the store's number."""
    hosted = [
        f"{label}@{urlsplit(store.endpoint_url).netloc}"
        if described.count(label) > 1 and store.endpoint_url
        else label
        for label, store in zip(described, configured, strict=True)
    ]
    return [
        f"{label}#{store.number}" if hosted.count(label) > 1 else label
        for label, store in zip(hosted, configured, strict=True)
    ]


def stores_or_none(settings: Settings) -> list[NamedStore]:
    """The stores, for best-effort writes such as the history: none (logged) when they
    cannot even be opened."""
    try:
        return stores_from(settings)
    except ConfigError as exc:
        log.warning("stores.unusable", error=str(exc))
        return []


def notifier_for(settings: Settings, healthcheck_url: str | None) -> Notifier:
    """The webhook and Apprise channels of settings and the given healthcheck URL
    (HEALTHCHECK_URL for cycles, DRILL_HEALTHCHECK_URL for drills); does nothing when no
    URL is set."""
    # 5 s per request keeps a hung alert endpoint inside the 30 s stop budget of `run`
    source = settings.source_database_url
    return Notifier(
        settings.notify_webhook_url,
        healthcheck_url,
        settings.notify_on_success,
        timeout=NOTIFY_TIMEOUT,
        channel_urls=checked_channels(settings),
        subject=source.database if source else None,
        page_url=settings.status_page_url,
    )


def checked_channels(settings: Settings) -> list[str]:
    """NOTIFY_URLS, each checked to be a service Apprise can send to; ConfigError naming
    the setting and the entry otherwise."""
    urls = settings.channel_urls()
    try:
        channels.check_services(urls)
    except ValueError as exc:
        raise ConfigError(f"NOTIFY_URLS: {exc}") from None
    return urls


def client_for(settings: Settings, tool: str, needed_major: int, why: str) -> clients.ClientSet:
    """Find the `tool` binary of `needed_major` or the nearest newer one; ConfigError if none."""
    found = clients.discover(settings.pg_bin_dirs, tool)
    return clients.choose(found, needed_major, tool, why)


def sha256_of(path: Path) -> str:
    """Give the hex SHA-256 of the file at `path`, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
