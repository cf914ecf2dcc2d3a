"""URL parsing, settings aliases and one-line validation errors."""

from __future__ import annotations

import re

import pytest

from orchestrator import conninfo
from orchestrator.errors import ConfigError
from orchestrator.settings import Settings, load_settings


@pytest.mark.parametrize(
    ("url", "host", "port", "database", "user", "password"),
    [
        ("postgresql://u:p@h/db", "h", 5432, "db", "u", "p"),
        ("postgres://u@h:6543/db?sslmode=require", "h", 6543, "db", "u", None),
        ("postgresql://u:p%40ss%2Fw@h/my%20db", "h", 5432, "my db", "u", "p@ss/w"),
        ("postgresql://[::1]:5433/db", "::1", 5433, "db", None, None),
        (
            "postgresql:///db?host=/var/run/postgresql",
            "/var/run/postgresql",
            5432,
            "db",
            None,
            None,
        ),
    ],
)
def test_parse(url, host, port, database, user, password):
    info = conninfo.parse(url)
    assert (info.host, info.port, info.database, info.user, info.password) == (
        host,
        port,
        database,
        user,
        password,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secretpw@h/db", "must be a postgresql:// URL"),
        ("postgresql://u:secretpw@h:notaport/db", "invalid port"),
        ("postgresql://u:secretpw@h", "names no database"),
        ("postgresql://u:secretpw@/db", "names no host"),
        ("postgresql://u:secretpw@h/dummy?dbname=prod", "?dbname="),
        ("postgresql://u@h/db?password=secretpw", "?password="),
        ("postgresql://u@h/db?hostaddr=10.0.0.1", "?hostaddr="),
        ("postgresql://u@h/db?service=prod", "?service="),
        ("postgresql://u:secretpw@h/db?port=5433", "put it after the host"),
        ("postgresql://u:secretpw@h/db?host=/tmp", "names its host twice"),
        ("postgresql:///db?host=/tmp&port=x", "invalid port"),
    ],
)
def test_parse_errors_never_show_the_password(url, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        conninfo.parse(url)
    assert "secretpw" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "rebuilt"),
    [
        (
            "postgresql://app@:5433/app_backup?host=/var/run/postgresql",
            "postgresql://app@/app_backup?host=%2Fvar%2Frun%2Fpostgresql&port=5433",
        ),
        ("postgresql:///db?host=/tmp", "postgresql:///db?host=%2Ftmp&port=5432"),
        ("postgres://u:pw@H.example.com/db", "postgresql://u@h.example.com:5432/db"),
    ],
)
def test_url_keeps_what_libpq_needs(url, rebuilt):
    assert conninfo.parse(url).url == rebuilt
    assert conninfo.parse(rebuilt) == conninfo.parse(url)


def test_url_drops_the_password_and_keeps_parameters():
    info = conninfo.parse("postgresql://app:s3cret@db.example.com:5433/prod?sslmode=require")
    assert info.url == "postgresql://app@db.example.com:5433/prod?sslmode=require"
    assert "s3cret" not in repr(info) and "s3cret" not in str(info)
    assert info.password_env() == {"PGPASSWORD": "s3cret"}
    assert conninfo.parse("postgresql://app@h/db").password_env() == {}
    assert info.with_database("other").url.endswith("/other?sslmode=require")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (
        "SOURCE_DATABASE_URL",
        "NEON_PRODUCTION_DATABASE_URL",
        "BACKUP_DATABASE_URL",
        "RAILWAY_BACKUP_DB_URL",
        "DEV_DATABASE_URL",
        "NEON_DEV_DATABASE_URL",
        "DATABASE_URL",
        "STORAGE_URL",
        "PG_BIN_DIRS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("SOURCE_DATABASE_URL", "source_database_url"),
        ("NEON_PRODUCTION_DATABASE_URL", "source_database_url"),
        ("BACKUP_DATABASE_URL", "backup_database_url"),
        ("RAILWAY_BACKUP_DB_URL", "backup_database_url"),
        ("DEV_DATABASE_URL", "dev_database_url"),
        ("NEON_DEV_DATABASE_URL", "dev_database_url"),
    ],
)
def test_legacy_names_are_accepted(clean_env, variable, field):
    clean_env.setenv(variable, "postgresql://u:pw@h/db")
    assert getattr(load_settings(None), field).database == "db"


def test_plain_database_url_is_never_read(clean_env):
    clean_env.setenv("DATABASE_URL", "postgresql://u:pw@prod/db")
    settings = load_settings(None)
    assert settings.source_database_url is None
    with pytest.raises(ConfigError, match="SOURCE_DATABASE_URL is not set"):
        settings.job().require_source()


def test_defaults(clean_env):
    settings = load_settings(None)
    assert settings.storage_url == "./backups"
    assert settings.pg_bin_dirs == []
    assert settings.s3_checksum_calculation == "when_supported"


def test_lists_and_args_are_split(clean_env):
    clean_env.setenv("PG_BIN_DIRS", "/a/bin::/b/bin")
    clean_env.setenv("PG_DUMP_EXCLUDE_TABLES", "audit.*, tmp_* ,")
    clean_env.setenv("PG_DUMP_EXTRA_ARGS", "--no-comments --lock-wait-timeout='5 s'")
    settings = load_settings(None)
    assert settings.pg_bin_dirs == ["/a/bin", "/b/bin"]
    assert settings.pg_dump_exclude_tables == ["audit.*", "tmp_*"]
    assert settings.pg_dump_extra_argv == ["--no-comments", "--lock-wait-timeout=5 s"]


def test_env_file_is_read(clean_env, tmp_path):
    (tmp_path / "custom.env").write_text("SOURCE_DATABASE_URL=postgresql://u@h/fromfile\n")
    assert load_settings(tmp_path / "custom.env").job().require_source().database == "fromfile"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PG_DUMP_EXTRA_ARGS", "--x='unclosed", "PG_DUMP_EXTRA_ARGS: cannot be split"),
        ("PG_DUMP_TIMEOUT", "0", "PG_DUMP_TIMEOUT: Input should be greater than 0"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: Input should be"),
        ("NEON_DEV_DATABASE_URL", "http://x/y", "DEV_DATABASE_URL: must be a postgresql:// URL"),
    ],
)
def test_errors_name_the_variable(clean_env, variable, value, expected):
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_settings_is_the_only_reader():
    assert "source_database_url" in Settings.model_fields
