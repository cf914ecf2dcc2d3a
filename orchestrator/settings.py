"""Every setting the tool reads, from the environment and an optional `.env` file.

This is the only module that reads settings; everything else receives values.
Legacy variable names of the cron jobs this tool replaces are accepted as aliases.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator import conninfo, crypto, retention
from orchestrator.channels import parse_channels
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError
from orchestrator.formats import parse_size
from orchestrator.job import (
    EMPTY_POLICY,
    TARGET_NAMES,
    AlertConfig,
    DumpConfig,
    Job,
    KeyConfig,
    RestoreConfig,
    ScheduleConfig,
    StoreConfig,
    TargetSettings,
)
from orchestrator.logs import register_secret
from orchestrator.restore_plan import StrategySetting
from orchestrator.schedule_spec import Schedule, check_zone, parse_schedule
from orchestrator.storage.base import S3Options

CsvList = Annotated[list[str], NoDecode]
CLIENT_PREFIXES = ("AWS_", "PG")
STORE_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def _env(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


ChecksumMode = Literal["when_supported", "when_required"]
# The variables of one store; a second store uses them with _2 appended, a third with _3...
STORE_VARIABLES = {
    "STORAGE_URL": "url",
    "S3_ENDPOINT_URL": "endpoint_url",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
    "S3_REGION": "region",
    "S3_CHECKSUM_ALGORITHM": "checksum_algorithm",
    "S3_REQUEST_CHECKSUM_CALCULATION": "checksum_calculation",
    "S3_RESPONSE_CHECKSUM_VALIDATION": "checksum_validation",
    "S3_MAX_CONCURRENCY": "max_concurrency",
}
_NUMBERED = re.compile(rf"^(?P<base>{'|'.join(STORE_VARIABLES)})_(?P<n>[0-9]+)$")
MAX_STORES = 9
MAX_DUMP_JOBS = 32


class StoreSettings(BaseModel):
    """One archive store: its URL and S3 client options. Store 1 is STORAGE_URL and its
    credentials come from boto3's chain; store N uses the same variables ending in _N."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    url: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    region: str | None = None
    checksum_algorithm: Literal["CRC32", "SHA256"] = "CRC32"
    checksum_calculation: ChecksumMode = "when_supported"
    checksum_validation: ChecksumMode = "when_supported"
    max_concurrency: int = Field(default=4, ge=1, le=64)

    @property
    def suffix(self) -> str:
        """What the store's variable names end with: "" for store 1, "_2" for store 2."""
        return "" if self.number == 1 else f"_{self.number}"

    @property
    def setting(self) -> str:
        """The variable that names this store (STORAGE_URL, STORAGE_URL_2, ...)."""
        return f"STORAGE_URL{self.suffix}"

    _check_url = field_validator("url")(lambda value: _not_blank(value))
    _check_endpoint = field_validator("endpoint_url")(lambda value: _endpoint(value))

    def s3_options(self) -> S3Options:
        """The S3 client options of this store (credentials only when set for it)."""
        return S3Options(
            endpoint_url=self.endpoint_url,
            region=self.region,
            checksum_algorithm=self.checksum_algorithm,
            checksum_calculation=self.checksum_calculation,
            checksum_validation=self.checksum_validation,
            max_concurrency=self.max_concurrency,
            access_key_id=self.access_key_id,
            secret_access_key=_reveal(self.secret_access_key),
            session_token=_reveal(self.session_token),
            suffix=self.suffix,
        )


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value.strip()


def _endpoint(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class Settings(BaseSettings):
    """The tool's configuration. Build it with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # VAR= in .env or the environment means "use the default"
        extra="ignore",
        populate_by_name=False,
    )

    source_database_url: ConnInfo | None = _env(
        "SOURCE_DATABASE_URL", "NEON_PRODUCTION_DATABASE_URL"
    )
    backup_database_url: ConnInfo | None = _env("BACKUP_DATABASE_URL", "RAILWAY_BACKUP_DB_URL")
    dev_database_url: ConnInfo | None = _env("DEV_DATABASE_URL", "NEON_DEV_DATABASE_URL")

    storage_url: str = Field(default="./backups", validation_alias="STORAGE_URL")
    s3_endpoint_url: str | None = Field(default=None, validation_alias="S3_ENDPOINT_URL")
    s3_region: str | None = _env("S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    s3_checksum_calculation: ChecksumMode = Field(
        default="when_supported", validation_alias="S3_REQUEST_CHECKSUM_CALCULATION"
    )
    s3_checksum_validation: ChecksumMode = Field(
        default="when_supported", validation_alias="S3_RESPONSE_CHECKSUM_VALIDATION"
    )
    s3_max_concurrency: int = Field(default=4, ge=1, le=64, validation_alias="S3_MAX_CONCURRENCY")
    s3_checksum_algorithm: Literal["CRC32", "SHA256"] = Field(
        default="CRC32", validation_alias="S3_CHECKSUM_ALGORITHM"
    )

    archive_recipients: Annotated[str | None, NoDecode] = Field(
        default=None, validation_alias="ARCHIVE_RECIPIENTS"
    )
    archive_recipients_file: Path | None = Field(
        default=None, validation_alias="ARCHIVE_RECIPIENTS_FILE"
    )
    archive_identity_file: Path | None = Field(
        default=None, validation_alias="ARCHIVE_IDENTITY_FILE"
    )

    pg_bin_dirs: CsvList = Field(default_factory=list, validation_alias="PG_BIN_DIRS")
    pg_dump_compress: str | None = Field(default=None, validation_alias="PG_DUMP_COMPRESS")
    pg_dump_exclude_tables: CsvList = Field(
        default_factory=list, validation_alias="PG_DUMP_EXCLUDE_TABLES"
    )
    pg_dump_exclude_table_data: CsvList = Field(
        default_factory=list, validation_alias="PG_DUMP_EXCLUDE_TABLE_DATA"
    )
    pg_dump_extra_args: str = Field(default="", validation_alias="PG_DUMP_EXTRA_ARGS")
    pg_dump_timeout: int = Field(default=6 * 3600, gt=0, validation_alias="PG_DUMP_TIMEOUT")
    dump_jobs: str = Field(default="auto", validation_alias="DUMP_JOBS")
    dump_parallel_from: str = Field(default="1GiB", validation_alias="DUMP_PARALLEL_FROM")
    work_dir: Path | None = Field(default=None, validation_alias="WORK_DIR")

    backup_restore_strategy: StrategySetting = Field(
        default="auto", validation_alias="BACKUP_RESTORE_STRATEGY"
    )
    dev_restore_strategy: StrategySetting = Field(
        default="auto", validation_alias="DEV_RESTORE_STRATEGY"
    )
    backup_restore_owners: bool = Field(default=False, validation_alias="BACKUP_RESTORE_OWNERS")
    dev_restore_owners: bool = Field(default=False, validation_alias="DEV_RESTORE_OWNERS")
    backup_restore_acl: bool = Field(default=False, validation_alias="BACKUP_RESTORE_ACL")
    dev_restore_acl: bool = Field(default=False, validation_alias="DEV_RESTORE_ACL")
    backup_keep_previous: int = Field(
        default=1, ge=0, le=10, validation_alias="BACKUP_KEEP_PREVIOUS"
    )
    dev_keep_previous: int = Field(default=1, ge=0, le=10, validation_alias="DEV_KEEP_PREVIOUS")
    dev_post_restore_sql: CsvList = Field(
        default_factory=list, validation_alias="DEV_POST_RESTORE_SQL"
    )
    dev_mask_rules: Path | None = Field(default=None, validation_alias="DEV_MASK_RULES")
    mask_key: SecretStr | None = Field(default=None, validation_alias="MASK_KEY")
    mask_workers: int = Field(default=2, ge=1, le=16, validation_alias="MASK_WORKERS")
    restore_jobs: int = Field(default=4, ge=1, le=64, validation_alias="RESTORE_JOBS")
    restore_timeout: int = Field(default=6 * 3600, gt=0, validation_alias="RESTORE_TIMEOUT")
    restore_session_wait: int = Field(
        default=30, ge=0, le=600, validation_alias="RESTORE_SESSION_WAIT"
    )
    maintenance_database: str = Field(default="postgres", validation_alias="MAINTENANCE_DATABASE")

    schedule: str = Field(default="06:00,18:00", validation_alias="SCHEDULE")
    drill_schedule: str | None = Field(default=None, validation_alias="DRILL_SCHEDULE")
    schedule_tz: str = Field(default="UTC", validation_alias="SCHEDULE_TZ")
    drill_healthcheck_url: str | None = Field(
        default=None, validation_alias="DRILL_HEALTHCHECK_URL"
    )
    run_on_start: bool = Field(default=False, validation_alias="RUN_ON_START")
    prune_after_backup: bool = Field(default=True, validation_alias="PRUNE_AFTER_BACKUP")
    prune_orphans_after: str | None = Field(default="1d", validation_alias="PRUNE_ORPHANS_AFTER")
    notify_webhook_url: str | None = Field(default=None, validation_alias="NOTIFY_WEBHOOK_URL")
    notify_on_success: bool = Field(default=False, validation_alias="NOTIFY_ON_SUCCESS")
    notify_urls: Annotated[str | None, NoDecode] = Field(
        default=None, validation_alias="NOTIFY_URLS"
    )
    status_page_url: str | None = Field(default=None, validation_alias="STATUS_PAGE_URL")
    healthcheck_url: str | None = Field(default=None, validation_alias="HEALTHCHECK_URL")
    health_port: int | None = Field(default=None, ge=0, le=65535, validation_alias="HEALTH_PORT")
    health_max_age: int = Field(default=26 * 3600, gt=0, validation_alias="HEALTH_MAX_AGE")

    keep_last: int = Field(default=4, ge=0, validation_alias="KEEP_LAST")
    keep_hourly: int = Field(default=0, ge=0, validation_alias="KEEP_HOURLY")
    keep_daily: int = Field(default=14, ge=0, validation_alias="KEEP_DAILY")
    keep_weekly: int = Field(default=8, ge=0, validation_alias="KEEP_WEEKLY")
    keep_monthly: int = Field(default=12, ge=0, validation_alias="KEEP_MONTHLY")
    keep_yearly: int = Field(default=0, ge=0, validation_alias="KEEP_YEARLY")
    keep_within: str | None = Field(default=None, validation_alias="KEEP_WITHIN")
    retention_timezone: str | None = Field(default=None, validation_alias="RETENTION_TIMEZONE")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LOG_LEVEL"
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias="LOG_FORMAT"
    )

    _more_stores: tuple[StoreSettings, ...] = PrivateAttr(default=())
    # AWS_* and PG* lines of the env file that the environment does not override: given to
    # store 1's S3 session and to libpq explicitly, never written into os.environ
    _client_variables: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator(
        "source_database_url", "backup_database_url", "dev_database_url", mode="before"
    )
    @classmethod
    def _parse_url(cls, value: object) -> ConnInfo | None:
        if value is None or value == "":
            return None
        if isinstance(value, ConnInfo):
            return value
        parsed = conninfo.parse(str(value))
        register_secret(parsed.password)
        return parsed

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        parse_schedule(value)  # raises ValueError with the accepted forms
        return value

    @field_validator("mask_key", mode="after")
    @classmethod
    def _register_mask_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            register_secret(value.get_secret_value())
        return value

    @field_validator("dev_mask_rules", mode="before")
    @classmethod
    def _blank_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("drill_schedule")
    @classmethod
    def _check_drill_schedule(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_schedule(value)
        return value.strip()

    @field_validator("schedule_tz")
    @classmethod
    def _check_schedule_tz(cls, value: str) -> str:
        check_zone(value.strip())
        return value.strip()

    _check_endpoint = field_validator("s3_endpoint_url")(lambda value: _endpoint(value))

    @field_validator("notify_webhook_url", "healthcheck_url", "drill_healthcheck_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        register_secret(value)  # such URLs carry their token in the path
        return value

    @field_validator("notify_urls")
    @classmethod
    def _check_channels(cls, value: str | None) -> str | None:
        parse_channels(value)  # registers every URL's secrets; ValueError naming the entry
        # (whether Apprise knows each service is checked by the jobs that notify)
        return value

    @field_validator("status_page_url")
    @classmethod
    def _check_page_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("pg_bin_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> list[str]:
        if isinstance(value, str):
            return [part for part in value.split(":") if part.strip()]
        return list(value)  # type: ignore[call-overload,no-any-return]

    @field_validator(
        "pg_dump_exclude_tables",
        "pg_dump_exclude_table_data",
        "dev_post_restore_sql",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> list[str]:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return list(value)  # type: ignore[call-overload,no-any-return]

    @field_validator("pg_dump_extra_args")
    @classmethod
    def _check_extra_args(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments ({exc})") from None
        return value

    @field_validator("dump_jobs")
    @classmethod
    def _check_dump_jobs(cls, value: str) -> str:
        value = value.strip().lower() or "auto"
        if value != "auto" and not (value.isdigit() and 1 <= int(value) <= MAX_DUMP_JOBS):
            raise ValueError(f"must be auto or a number of connections from 1 to {MAX_DUMP_JOBS}")
        return value

    @field_validator("dump_parallel_from")
    @classmethod
    def _check_size(cls, value: str) -> str:
        parse_size(value)  # raises ValueError with the accepted forms
        return value

    @field_validator("archive_recipients")
    @classmethod
    def _check_recipients(cls, value: str | None) -> str | None:
        if value is not None:
            crypto.check_recipients(crypto.recipient_lines(value))
        return value

    _check_storage_url = field_validator("storage_url")(lambda value: _not_blank(value))

    @field_validator("keep_within", "retention_timezone", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("prune_orphans_after")
    @classmethod
    def _check_orphans_after(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value:
            retention.parse_duration(value)  # raises ValueError with the accepted forms
        return value or None

    @field_validator("keep_within")
    @classmethod
    def _check_within(cls, value: str | None) -> str | None:
        return None if value is None else str(retention.parse_duration(value))

    @field_validator("retention_timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name like Europe/Berlin") from None
        return value

    def retention_policy(self) -> retention.Policy:
        """Give the KEEP_* rules as a retention Policy in RETENTION_TIMEZONE (default UTC).

        Raises ConfigError when every rule is 0 and KEEP_WITHIN is unset: such a policy
        would keep nothing, so it is refused rather than read as "delete everything".
        """
        policy = self._policy()
        if policy.is_empty:
            raise ConfigError(EMPTY_POLICY)
        return policy

    def _policy(self) -> retention.Policy:
        return retention.Policy(
            last=self.keep_last,
            hourly=self.keep_hourly,
            daily=self.keep_daily,
            weekly=self.keep_weekly,
            monthly=self.keep_monthly,
            yearly=self.keep_yearly,
            within=retention.parse_duration(self.keep_within) if self.keep_within else None,
            tz=ZoneInfo(self.retention_timezone) if self.retention_timezone else UTC,
        )

    def cycle_schedule(self) -> Schedule:
        """SCHEDULE read in SCHEDULE_TZ (both were checked when the settings were read)."""
        return parse_schedule(self.schedule, self.schedule_tz)

    def drill_plan(self) -> Schedule | None:
        """DRILL_SCHEDULE read in SCHEDULE_TZ; None when unset (no scheduled drills)."""
        if not self.drill_schedule:
            return None
        return parse_schedule(self.drill_schedule, self.schedule_tz)

    def stores(self) -> list[StoreSettings]:
        """Every configured store, in order: STORAGE_URL first, then STORAGE_URL_2, ..."""
        first = StoreSettings(
            number=1,
            url=self.storage_url,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            checksum_algorithm=self.s3_checksum_algorithm,
            checksum_calculation=self.s3_checksum_calculation,
            checksum_validation=self.s3_checksum_validation,
            max_concurrency=self.s3_max_concurrency,
        )
        return [first, *self._more_stores]

    def with_stores(
        self, more: tuple[StoreSettings, ...], client_variables: Mapping[str, str] | None = None
    ) -> Settings:
        """A copy of these settings with `more` stores after STORAGE_URL's, and the env
        file's `client_variables` (AWS_* and PG*) for store 1 and libpq."""
        copy = self.model_copy()
        copy._more_stores = more
        copy._client_variables = dict(client_variables or self._client_variables)
        return copy

    def job(self) -> Job:
        """The job context of one command or cycle: every value resolved from these settings
        (see `orchestrator.job`). Raises ConfigError only for what is wrong in any job."""
        pg = {k: v for k, v in self._client_variables.items() if k.startswith("PG")}
        source = self.source_database_url
        if source is not None:  # PGPASSWORD is the source's password (README), no one else's
            password = os.environ.get("PGPASSWORD") or pg.get("PGPASSWORD")
            source = conninfo.with_variables(source, pg, password)
        policy = self._policy()
        return Job(
            source=source,
            targets={
                name: _target_with(self._target(name), pg)
                for name in TARGET_NAMES
                if getattr(self, f"{name}_database_url") is not None
            },
            stores_config=tuple(self._store_configs()),
            schedule=ScheduleConfig(
                cycles=self.cycle_schedule(),
                drills=self.drill_plan(),
                run_on_start=self.run_on_start,
                health_port=self.health_port,
                health_max_age=self.health_max_age,
            ),
            dump=DumpConfig(
                compress=self.pg_dump_compress,
                exclude_tables=tuple(self.pg_dump_exclude_tables),
                exclude_table_data=tuple(self.pg_dump_exclude_table_data),
                extra_args=tuple(self.pg_dump_extra_argv),
                timeout=float(self.pg_dump_timeout),
                jobs=None if self.dump_jobs == "auto" else int(self.dump_jobs),
                parallel_from=parse_size(self.dump_parallel_from),
            ),
            restore=self._restore_config(),
            alerts=self._alert_config(),
            keys=KeyConfig(
                self.archive_recipients, self.archive_recipients_file, self.archive_identity_file
            ),
            retention_policy=None if policy.is_empty else policy,
            prune_after_backup=self.prune_after_backup,
            orphans_after=(
                retention.parse_duration(self.prune_orphans_after)
                if self.prune_orphans_after
                else None
            ),
            adhoc_keep_previous=self.backup_keep_previous,
            dev_mask_rules=self.dev_mask_rules,
            pg_bin_dirs=tuple(self.pg_bin_dirs),
            work_dir=self.work_dir,
            libpq_variables={k: v for k, v in pg.items() if k != "PGPASSWORD"},
        )

    def _restore_config(self) -> RestoreConfig:
        return RestoreConfig(
            jobs=self.restore_jobs,
            timeout=float(self.restore_timeout),
            session_wait=self.restore_session_wait,
            maintenance_database=self.maintenance_database,
            mask_key=self.mask_key.get_secret_value() if self.mask_key is not None else None,
            mask_workers=self.mask_workers,
        )

    def _alert_config(self) -> AlertConfig:
        return AlertConfig(
            webhook_url=self.notify_webhook_url,
            healthcheck_url=self.healthcheck_url,
            drill_healthcheck_url=self.drill_healthcheck_url,
            on_success=self.notify_on_success,
            notify_urls=tuple(parse_channels(self.notify_urls)),
            status_page_url=self.status_page_url,
        )

    def _store_configs(self) -> list[StoreConfig]:
        aws = {k: v for k, v in self._client_variables.items() if k.startswith("AWS_")}
        configs = []
        for store in self.stores():
            options = store.s3_options()
            if store.number == 1 and aws:
                options = dataclasses.replace(
                    options,
                    access_key_id=aws.get("AWS_ACCESS_KEY_ID"),
                    secret_access_key=aws.get("AWS_SECRET_ACCESS_KEY"),
                    session_token=aws.get("AWS_SESSION_TOKEN"),
                    session_variables=tuple(
                        (k, v) for k, v in aws.items() if k not in STORE_CREDENTIALS
                    ),
                )
            configs.append(StoreConfig(store.number, store.url, options))
        return configs

    def _target(self, name: str) -> TargetSettings:
        return TargetSettings(
            name=name,
            url=getattr(self, f"{name}_database_url"),
            strategy=getattr(self, f"{name}_restore_strategy"),
            no_owner=not getattr(self, f"{name}_restore_owners"),
            no_acl=not getattr(self, f"{name}_restore_acl"),
            keep_previous=getattr(self, f"{name}_keep_previous"),
            post_restore_sql=tuple(Path(p) for p in getattr(self, f"{name}_post_restore_sql", [])),
            mask_rules=self.dev_mask_rules if name == "dev" else None,
        )

    @property
    def pg_dump_extra_argv(self) -> list[str]:
        """PG_DUMP_EXTRA_ARGS split like a shell would."""
        return shlex.split(self.pg_dump_extra_args)


def _variable_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias or field.upper())


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first bad variable and what is wrong with it (never its value)."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "settings"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{_variable_name(field)}: {message}"


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read the settings from the environment (and `env_file` when it exists); nothing is
    written into the environment.

    Raises ConfigError with one line naming the variable when a value is malformed.
    """
    try:
        settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
        variables = _all_variables(env_file)
        client = _client_variables(env_file)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"--env-file: cannot read {env_file}: {exc}") from None
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD"):
        register_secret(variables.get(name))
    return settings.with_stores(numbered_stores(variables), client)


def _all_variables(env_file: str | Path | None) -> dict[str, str]:
    """The env file's variables overlaid with the environment's (names upper-cased)."""
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        found = {k.upper(): v for k, v in dotenv_values(env_file).items() if v}
    found.update({k.upper(): v for k, v in os.environ.items() if v})
    return found


def numbered_stores(variables: Mapping[str, str]) -> tuple[StoreSettings, ...]:
    """The stores named by STORAGE_URL_2 ... STORAGE_URL_9 and their _N variables.

    Raises ConfigError naming the variable when a value is malformed, when a store's
    variables are set without its STORAGE_URL_N, or when N is outside 2-9.
    """
    by_number: dict[int, dict[str, str]] = {}
    for name, value in variables.items():
        match = _NUMBERED.match(name)
        if match and value.strip():
            number = int(match["n"])
            if not 2 <= number <= MAX_STORES:
                raise ConfigError(f"{name}: stores are numbered 2 to {MAX_STORES}")
            by_number.setdefault(number, {})[STORE_VARIABLES[match["base"]]] = value.strip()
    stores = []
    for number, fields in sorted(by_number.items()):
        if "url" not in fields:
            named = next(iter(sorted(fields)))
            variable = next(k for k, v in STORE_VARIABLES.items() if v == named)
            raise ConfigError(f"{variable}_{number} is set but STORAGE_URL_{number} is not")
        try:
            store = StoreSettings(number=number, **fields)  # type: ignore[arg-type]
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "url"
            variable = next((k for k, v in STORE_VARIABLES.items() if v == field), "STORAGE_URL")
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{variable}_{number}: {message}") from None
        for secret in (store.secret_access_key, store.session_token):
            register_secret(_reveal(secret))
        stores.append(store)
    return tuple(stores)


def _client_variables(env_file: str | Path | None) -> dict[str, str]:
    """The AWS_* and PG* lines of the env file that the environment does not set (the
    environment wins); other stores' numbered keys go to their own store instead."""
    if env_file is None or not Path(env_file).is_file():
        return {}
    return {
        name: value
        for name, value in dotenv_values(env_file).items()
        if name.startswith(CLIENT_PREFIXES)
        and value
        and name not in os.environ
        and not _NUMBERED.match(name.upper())
    }


def _target_with(target: TargetSettings, variables: Mapping[str, str]) -> TargetSettings:
    """A target whose URL carries the env file's libpq variables (never PGPASSWORD, which
    is the source's)."""
    return dataclasses.replace(target, url=conninfo.with_variables(target.url, variables))
