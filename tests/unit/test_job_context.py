"""The job context: settings resolved once into one immutable value, without touching the
process environment, with each database's credentials attached to that database alone."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from orchestrator import conninfo
from orchestrator.errors import ConfigError
from orchestrator.job import Job, KeyConfig, ScheduleConfig
from orchestrator.schedule_spec import Schedule
from orchestrator.settings import load_settings

VARIABLES = (
    "SOURCE_DATABASE_URL",
    "NEON_PRODUCTION_DATABASE_URL",
    "BACKUP_DATABASE_URL",
    "RAILWAY_BACKUP_DB_URL",
    "DEV_DATABASE_URL",
    "NEON_DEV_DATABASE_URL",
    "STORAGE_URL",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGAPPNAME",
    "PGUSER",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _env_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.env"
    path.write_text(text)
    return path


def test_reading_an_env_file_never_writes_the_process_environment(env, tmp_path):
    before = dict(os.environ)
    path = _env_file(
        tmp_path,
        "SOURCE_DATABASE_URL=postgresql://app@prod.example/app\n"
        "PGPASSWORD=prod-secret\nPGSSLMODE=require\nAWS_ACCESS_KEY_ID=AKIA1\n"
        "AWS_SECRET_ACCESS_KEY=store-secret\nAWS_CA_BUNDLE=/etc/ca.pem\n",
    )
    load_settings(path).job()
    assert dict(os.environ) == before


def test_env_file_store_variables_go_to_store_one_only(env, tmp_path):
    path = _env_file(
        tmp_path,
        "STORAGE_URL=s3://one/p\nSTORAGE_URL_2=s3://two/p\nAWS_ACCESS_KEY_ID=AKIA1\n"
        "AWS_SECRET_ACCESS_KEY=store-secret\nAWS_CA_BUNDLE=/etc/ca.pem\n",
    )
    first, second = load_settings(path).job().stores_config
    assert (first.options.access_key_id, first.options.secret_access_key) == (
        "AKIA1",
        "store-secret",
    )
    assert first.options.session_variables == (("AWS_CA_BUNDLE", "/etc/ca.pem"),)
    assert (second.options.access_key_id, second.options.session_variables) == (None, ())


def test_the_environment_wins_over_the_env_file_for_store_credentials(env, tmp_path):
    env.setenv("AWS_ACCESS_KEY_ID", "from-environment")
    path = _env_file(tmp_path, "AWS_ACCESS_KEY_ID=from-file\n")
    (store,) = load_settings(path).job().stores_config
    assert store.options.access_key_id is None  # boto3's own chain reads the environment


@pytest.mark.parametrize(
    ("where", "expected_source_password"),
    [("environment", "pw-env"), ("file", "pw-file"), ("url", "in-url")],
)
def test_pgpassword_is_the_source_password_and_no_one_elses(
    env, tmp_path, where, expected_source_password
):
    in_url = ":in-url" if where == "url" else ""
    text = (
        f"SOURCE_DATABASE_URL=postgresql://app{in_url}@prod.example/app\n"
        "BACKUP_DATABASE_URL=postgresql://u@backup.example/app\n"
        "DEV_DATABASE_URL=postgresql://u@dev.example/app\n"
    )
    if where == "file":
        text += "PGPASSWORD=pw-file\n"
    else:
        env.setenv("PGPASSWORD", "pw-env")
    job = load_settings(_env_file(tmp_path, text)).job()
    assert job.require_source().password == expected_source_password
    assert [t.url.password for t in job.targets.values()] == [None, None]
    assert job.adhoc_target(conninfo.parse("postgresql://u@other/x")).url.password is None
    assert "PGPASSWORD" not in job.libpq_variables


@pytest.mark.parametrize(
    ("url", "variables", "options", "user"),
    [
        ("postgresql://u@h/db", {"PGSSLMODE": "require"}, (("sslmode", "require"),), "u"),
        (  # what the URL says wins, as in libpq
            "postgresql://u@h/db?sslmode=disable",
            {"PGSSLMODE": "require"},
            (("sslmode", "disable"),),
            "u",
        ),
        ("postgresql://h/db", {"PGUSER": "me"}, (), "me"),
        ("postgresql://u@h/db", {"PGHOST": "elsewhere", "PGDATABASE": "other"}, (), "u"),
        (
            "postgresql://u@h/db",
            {"PGAPPNAME": "nightly", "PGCONNECT_TIMEOUT": "5"},
            (("application_name", "nightly"), ("connect_timeout", "5")),
            "u",
        ),
    ],
)
def test_libpq_variables_complete_a_url_without_overriding_it(url, variables, options, user):
    info = conninfo.with_variables(conninfo.parse(url), variables)
    assert (info.options, info.user, info.host, info.database) == (options, user, "h", "db")


def test_env_file_libpq_variables_reach_every_configured_and_given_url(env, tmp_path):
    path = _env_file(
        tmp_path,
        "SOURCE_DATABASE_URL=postgresql://app@prod.example/app\n"
        "DEV_DATABASE_URL=postgresql://u@dev.example/app\nPGSSLMODE=verify-full\n",
    )
    job = load_settings(path).job()
    given = job.adhoc_target(conninfo.parse("postgresql://u@other/x")).url
    for info in (job.require_source(), job.target("dev").url, given):
        assert ("sslmode", "verify-full") in info.options


def test_unset_targets_and_an_empty_policy_are_refused_only_when_asked(env, monkeypatch):
    for name in ("LAST", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        monkeypatch.setenv(f"KEEP_{name}", "0")
    job = load_settings(None).job()  # building the job does not fail
    with pytest.raises(ConfigError, match=r"^DEV_DATABASE_URL is not set"):
        job.target("dev")
    with pytest.raises(ConfigError, match="retention policy that keeps nothing"):
        job.policy()


def _job(tmp_path: Path, recipients_file: Path | None = None) -> Job:
    return Job(
        source=None,
        targets={},
        stores_config=(),
        schedule=ScheduleConfig(cycles=Schedule(every_seconds=60)),
        keys=KeyConfig(recipients_file=recipients_file),
    )


def test_key_files_are_read_once_per_job_even_from_several_threads(tmp_path, monkeypatch):
    from orchestrator import job as job_module

    recipients = tmp_path / "recipients.txt"
    recipients.write_text("age1" + "q" * 58 + "\n")
    reads: list[Path] = []
    monkeypatch.setattr(
        job_module, "setting_file_text", lambda path, _setting: reads.append(path) or "x"
    )
    monkeypatch.setattr(job_module.crypto, "check_recipients", lambda entries: entries)
    job = _job(tmp_path, recipients)
    threads = [threading.Thread(target=job.recipients) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert job.recipients() == ["x"]
    assert reads == [recipients]
    assert _job(tmp_path, recipients).recipients() == ["x"] and len(reads) == 2  # a new job reads


def test_a_missing_identity_file_names_the_setting_and_why(tmp_path):
    with pytest.raises(ConfigError, match=r"^ARCHIVE_IDENTITY_FILE is not set: fetch needs it"):
        _job(tmp_path).identities("fetch needs it")
