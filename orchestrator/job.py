"""One job's configuration, resolved once: what every operation and command works from.

The CLI and the scheduler read `Settings` (the only reader of the environment) and turn
it into one `Job` per command or cycle (`Settings.job()`). Operations take the job and
plain values; none reads settings. Plain values are resolved when the job is built; what
costs I/O or may fail for reasons a command does not care about (opening the stores,
reading the recipients or identity file, the alert channels) is resolved the first time a
command asks and then kept for the rest of the job, so a cycle opens its stores and reads
its key files once, and `mask check` never fails on a store it does not use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from orchestrator import channels, conninfo, crypto, retention
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError
from orchestrator.restore_plan import StrategySetting
from orchestrator.schedule_spec import Schedule
from orchestrator.setting_files import setting_file_text
from orchestrator.storage import open_storage
from orchestrator.storage.base import S3Options
from orchestrator.storage.multi import NamedStore

TARGET_NAMES = ("backup", "dev")  # the restore targets a cycle feeds, in this order
EMPTY_POLICY = (
    "a retention policy that keeps nothing is refused; set KEEP_LAST, KEEP_HOURLY, KEEP_DAILY, "
    "KEEP_WEEKLY, KEEP_MONTHLY, KEEP_YEARLY (above 0) or KEEP_WITHIN"
)
T = TypeVar("T")


@dataclass(frozen=True)
class TargetSettings:
    """How to restore into one target database."""

    name: str
    url: ConnInfo
    strategy: StrategySetting
    no_owner: bool
    no_acl: bool
    keep_previous: int
    post_restore_sql: tuple[Path, ...]
    mask_rules: Path | None = None
    mask_setting: str = "DEV_MASK_RULES"


@dataclass(frozen=True)
class StoreConfig:
    """One configured store: `number` 1 is STORAGE_URL's, N is STORAGE_URL_N's."""

    number: int
    url: str
    options: S3Options

    @property
    def setting(self) -> str:
        """The variable that names this store (STORAGE_URL, STORAGE_URL_2, ...)."""
        return "STORAGE_URL" if self.number == 1 else f"STORAGE_URL_{self.number}"


ORPHANS_AFTER = retention.Duration(days=1)


@dataclass(frozen=True)
class DumpConfig:
    """How pg_dump runs (PG_DUMP_*)."""

    compress: str | None = None
    exclude_tables: tuple[str, ...] = ()
    exclude_table_data: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    timeout: float = 6 * 3600.0
    jobs: int | None = None  # DUMP_JOBS; None: auto, by the database's size
    parallel_from: int = 1024**3  # DUMP_PARALLEL_FROM: auto dumps in parallel from this size


@dataclass(frozen=True)
class RestoreConfig:
    """How restores run (RESTORE_*, MAINTENANCE_DATABASE, MASK_*)."""

    jobs: int = 4
    timeout: float = 6 * 3600.0
    session_wait: int = 30
    maintenance_database: str = "postgres"
    mask_key: str | None = field(default=None, repr=False)
    mask_workers: int = 2


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go: the webhook, the pings, the Apprise channels, the page linked."""

    webhook_url: str | None = None
    healthcheck_url: str | None = None
    drill_healthcheck_url: str | None = None
    on_success: bool = False
    notify_urls: tuple[str, ...] = ()
    status_page_url: str | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    """When `run` works and what its health endpoint promises."""

    cycles: Schedule
    drills: Schedule | None = None
    run_on_start: bool = False
    health_port: int | None = None
    health_max_age: int = 26 * 3600


@dataclass(frozen=True)
class KeyConfig:
    """Where the age keys come from: ARCHIVE_RECIPIENTS(_FILE) and ARCHIVE_IDENTITY_FILE."""

    recipients_text: str | None = None
    recipients_file: Path | None = None
    identity_file: Path | None = None


class _Once:
    """Values computed at most once per job, whichever thread asks first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, object] = {}

    def get(self, name: str, compute: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._values:
                self._values[name] = compute()
            return self._values[name]  # type: ignore[return-value]


@dataclass(frozen=True)
class Job:
    """Everything one command or cycle needs, resolved from the settings once.

    `targets` holds the configured targets (`backup`, `dev`) by name. Methods that read
    files or open stores do so once per job and raise ConfigError naming the setting.
    """

    source: ConnInfo | None
    targets: Mapping[str, TargetSettings]
    stores_config: tuple[StoreConfig, ...]
    schedule: ScheduleConfig
    dump: DumpConfig = DumpConfig()
    restore: RestoreConfig = RestoreConfig()
    alerts: AlertConfig = AlertConfig()
    keys: KeyConfig = KeyConfig()
    retention_policy: retention.Policy | None = None  # None: the KEEP_* rules keep nothing
    prune_after_backup: bool = True
    orphans_after: retention.Duration | None = ORPHANS_AFTER  # PRUNE_ORPHANS_AFTER; None: never
    adhoc_keep_previous: int = 1
    dev_mask_rules: Path | None = None
    pg_bin_dirs: tuple[str, ...] = ()
    work_dir: Path | None = None
    libpq_variables: Mapping[str, str] = field(default_factory=dict)  # the env file's PG*
    _once: _Once = field(default_factory=_Once, repr=False, compare=False)

    def require_source(self) -> ConnInfo:
        """Give the source database, or raise ConfigError when it is not set."""
        if self.source is None:
            raise ConfigError(
                "SOURCE_DATABASE_URL is not set (also accepted: NEON_PRODUCTION_DATABASE_URL)"
            )
        return self.source

    @property
    def source_database(self) -> str | None:
        """The source database's name, when the source is configured."""
        return self.source.database if self.source is not None else None

    def target(self, name: str) -> TargetSettings:
        """Give the configured target `backup` or `dev`; ConfigError when it is unset."""
        if name not in self.targets:
            variable = "BACKUP_DATABASE_URL" if name == "backup" else "DEV_DATABASE_URL"
            raise ConfigError(f"{variable} is not set")
        return self.targets[name]

    def url_of(self, name: str) -> ConnInfo | None:
        """The URL of the configured target `name` (`backup` or `dev`), None when unset."""
        target = self.targets.get(name)
        return target.url if target is not None else None

    def adhoc_target(self, url: ConnInfo, mask_rules: Path | None = None) -> TargetSettings:
        """Restore settings for a target given on the command line (defaults of `backup`),
        masked by the rules file `mask_rules` when given (--mask-rules)."""
        return TargetSettings(
            name=url.database,
            url=self.connection(url),
            strategy="auto",
            no_owner=True,
            no_acl=True,
            keep_previous=self.adhoc_keep_previous,
            post_restore_sql=(),
            mask_rules=mask_rules,
            mask_setting="--mask-rules",
        )

    def connection(self, url: ConnInfo) -> ConnInfo:
        """A URL given on the command line, completed by the env file's libpq variables as
        the configured URLs are (never by the source's password)."""
        return conninfo.with_variables(url, self.libpq_variables)

    def policy(self) -> retention.Policy:
        """The retention policy; ConfigError when its rules would keep nothing (such a
        policy is refused rather than read as "delete everything")."""
        if self.retention_policy is None:
            raise ConfigError(EMPTY_POLICY)
        return self.retention_policy

    def stores(self) -> list[NamedStore]:
        """Every configured store, opened once per job, named for people.

        Raises ConfigError naming the store's variable when its URL is malformed.
        """
        return list(self._once.get("stores", lambda: open_stores(self.stores_config)))

    def recipients(self) -> list[str]:
        """The age recipients (ARCHIVE_RECIPIENTS and ARCHIVE_RECIPIENTS_FILE together), read
        once per job; an empty list means archives are stored unencrypted.

        Raises ConfigError naming the setting when the file cannot be read or an entry is
        not a public key.
        """
        return list(self._once.get("recipients", lambda: read_recipients(self.keys)))

    def identities(self, why: str) -> list[crypto.Identity]:
        """The age identities of ARCHIVE_IDENTITY_FILE (read once per job), needed because
        of `why`. Raises ConfigError naming ARCHIVE_IDENTITY_FILE when it is unset or
        unreadable."""
        path = self.keys.identity_file
        if path is None:
            raise ConfigError(
                f"ARCHIVE_IDENTITY_FILE is not set: {why} (point it at the age identity file, "
                "the private key made by age-keygen)"
            )
        read = functools.partial(crypto.read_identity_file, path, "ARCHIVE_IDENTITY_FILE")
        return list(self._once.get("identities", read))

    def channel_urls(self) -> list[str]:
        """NOTIFY_URLS, each checked once per job to be a service Apprise can send to;
        ConfigError naming the setting and the entry otherwise."""
        return list(self._once.get("channels", lambda: checked_channels(self.alerts)))

    def remember(self, name: str, compute: Callable[[], T]) -> T:
        """`compute()` the first time `name` is asked for in this job, the same value after
        (for facts an operation learns once, such as the source's cluster identity)."""
        return self._once.get(name, compute)


def open_stores(configured: tuple[StoreConfig, ...]) -> list[NamedStore]:
    """Open every store in `configured`, named for people.

    Raises ConfigError naming the store's variable when its URL is malformed.
    """
    opened = [open_storage(s.url, s.options) for s in configured]
    labels = store_labels(configured, [storage.describe() for storage in opened])
    return [
        NamedStore(label, s.setting, storage)
        for label, s, storage in zip(labels, configured, opened, strict=True)
    ]


def store_labels(configured: tuple[StoreConfig, ...], described: list[str]) -> list[str]:
    """Each store's label: where it is (s3://bucket/prefix or a folder); the endpoint's host
    is added when two stores would otherwise look alike, then the store's number."""
    hosted = [
        f"{label}@{urlsplit(store.options.endpoint_url).netloc}"
        if described.count(label) > 1 and store.options.endpoint_url
        else label
        for label, store in zip(described, configured, strict=True)
    ]
    return [
        f"{label}#{store.number}" if hosted.count(label) > 1 else label
        for label, store in zip(hosted, configured, strict=True)
    ]


def read_recipients(keys: KeyConfig) -> list[str]:
    """The recipients of ARCHIVE_RECIPIENTS and ARCHIVE_RECIPIENTS_FILE, without repeats.

    Raises ConfigError naming ARCHIVE_RECIPIENTS_FILE when it cannot be read, holds no
    recipient or holds an entry that is not a public key.
    """
    found = crypto.recipient_lines(keys.recipients_text or "")
    path = keys.recipients_file
    if path is not None:
        listed = crypto.recipient_lines(setting_file_text(path, "ARCHIVE_RECIPIENTS_FILE"))
        if not listed:
            raise ConfigError(f"ARCHIVE_RECIPIENTS_FILE: {path} holds no recipient")
        try:
            found += crypto.check_recipients(listed)
        except ValueError as exc:
            raise ConfigError(f"ARCHIVE_RECIPIENTS_FILE: {exc}") from None
    return list(dict.fromkeys(found))


def checked_channels(alerts: AlertConfig) -> list[str]:
    """NOTIFY_URLS, each checked to be a service Apprise can send to; ConfigError naming
    the setting and the entry otherwise."""
    urls = list(alerts.notify_urls)
    try:
        channels.check_services(urls)
    except ValueError as exc:
        raise ConfigError(f"NOTIFY_URLS: {exc}") from None
    return urls
