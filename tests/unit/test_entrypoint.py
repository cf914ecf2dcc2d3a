"""scripts/docker-entrypoint, run as a plain process (no container): *_FILE variables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.harness.postgres import unprivileged

ENTRYPOINT = Path(__file__).resolve().parents[2] / "scripts" / "docker-entrypoint"
SECRET = "postgresql://dump:s3cr3t pass@db.example.com/app?sslmode=require"
# Prints the environment as JSON, so the test sees exactly what the command would get.
DUMP_ENV = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


def run(
    env: dict[str, str], *command: str, cwd: Path | None = None, as_user: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with `env` (and PATH, LANG); `as_user` drops root first."""
    base = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(ENTRYPOINT), *(command or DUMP_ENV)],
        env={**base, **env},
        cwd=cwd,
        preexec_fn=unprivileged() if as_user else None,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def environment(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    loaded: dict[str, str] = json.loads(result.stdout)
    return loaded


def secret_file(tmp_path: Path, content: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def test_file_becomes_the_variable_and_the_file_variable_goes(tmp_path: Path) -> None:
    path = secret_file(tmp_path, SECRET + "\n")
    env = environment(run({"SOURCE_DATABASE_URL_FILE": str(path)}))
    assert env["SOURCE_DATABASE_URL"] == SECRET
    assert "SOURCE_DATABASE_URL_FILE" not in env


def test_several_files_at_once(tmp_path: Path) -> None:
    key = secret_file(tmp_path, "AKIAEXAMPLE", "key")
    secret = secret_file(tmp_path, "wJalr/EXAMPLE+KEY\n", "secret")
    env = environment(
        run({"AWS_ACCESS_KEY_ID_FILE": str(key), "AWS_SECRET_ACCESS_KEY_FILE": str(secret)})
    )
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    assert env["AWS_SECRET_ACCESS_KEY"] == "wJalr/EXAMPLE+KEY"


def test_spaces_and_inner_newlines_are_kept_trailing_line_ends_dropped(tmp_path: Path) -> None:
    value = "  two words \nsecond line\n\tthird  "
    path = secret_file(tmp_path, value + "\r\n\n")
    env = environment(run({"MULTI_FILE": str(path)}))
    assert env["MULTI"] == value


def test_shell_characters_are_taken_literally(tmp_path: Path) -> None:
    value = "p$(touch x)`id`'\"*?;&|<>\\$HOME"
    path = secret_file(tmp_path, value)
    env = environment(run({"TRICKY_FILE": str(path)}, cwd=tmp_path))
    assert env["TRICKY"] == value
    assert not (tmp_path / "x").exists()


def test_empty_file_gives_an_empty_variable(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "\n")
    env = environment(run({"DEV_DATABASE_URL_FILE": str(path)}))
    assert env["DEV_DATABASE_URL"] == ""


def test_both_set_is_refused_without_running_the_command(tmp_path: Path) -> None:
    path = secret_file(tmp_path, SECRET)
    marker = tmp_path / "ran"
    result = run(
        {"SOURCE_DATABASE_URL": "postgresql://other", "SOURCE_DATABASE_URL_FILE": str(path)},
        "touch",
        str(marker),
    )
    assert result.returncode == 2
    assert not marker.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SOURCE_DATABASE_URL" in lines[0] and "SOURCE_DATABASE_URL_FILE" in lines[0]
    assert SECRET not in result.stderr + result.stdout
    assert "postgresql://other" not in result.stderr + result.stdout


def test_missing_file_is_refused(tmp_path: Path) -> None:
    result = run({"BACKUP_DATABASE_URL_FILE": str(tmp_path / "nope")}, "true")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "BACKUP_DATABASE_URL_FILE" in lines[0]


def test_a_folder_is_refused(tmp_path: Path) -> None:
    result = run({"BACKUP_DATABASE_URL_FILE": str(tmp_path)}, "true")
    assert result.returncode == 2
    assert "BACKUP_DATABASE_URL_FILE" in result.stderr


def test_unreadable_file_is_refused_for_an_unprivileged_user(tmp_path: Path) -> None:
    """As the image runs (not root): a secret file the user may not read is exit 2 naming
    the variable; the same file made readable passes (so the refusal is the permission)."""
    shared = Path(tempfile.mkdtemp(prefix="entrypoint-"))  # tmp_path is root's alone
    try:
        shared.chmod(0o755)
        path = secret_file(shared, SECRET)
        path.chmod(0o600 if os.geteuid() == 0 else 0)  # root owns it: another user cannot read
        refused = run({"SOURCE_DATABASE_URL_FILE": str(path)}, "true", as_user=True)
        assert refused.returncode == 2, refused.stderr
        assert "SOURCE_DATABASE_URL_FILE" in refused.stderr and "s3cr3t" not in refused.stderr
        path.chmod(0o644)
        allowed = run(
            {"SOURCE_DATABASE_URL_FILE": str(path)}, "printenv", "SOURCE_DATABASE_URL", as_user=True
        )
        assert (allowed.returncode, allowed.stdout) == (0, SECRET + "\n"), allowed.stderr
    finally:
        shutil.rmtree(shared)


def test_secret_values_never_reach_stderr(tmp_path: Path) -> None:
    path = secret_file(tmp_path, SECRET)
    ok = run({"SOURCE_DATABASE_URL_FILE": str(path)})
    assert ok.stderr == ""
    refused = run({"SOURCE_DATABASE_URL_FILE": str(path), "SOURCE_DATABASE_URL": SECRET}, "true")
    assert refused.returncode == 2
    assert SECRET not in refused.stderr
    assert "s3cr3t" not in refused.stderr


def test_without_file_variables_everything_passes_through() -> None:
    env = environment(run({"SOURCE_DATABASE_URL": SECRET, "LOG_LEVEL": "DEBUG"}))
    assert env["SOURCE_DATABASE_URL"] == SECRET
    assert env["LOG_LEVEL"] == "DEBUG"


def test_arguments_and_exit_code_pass_through() -> None:
    result = run({}, "sh", "-c", 'printf "%s|" "$@"; exit 7', "sh", "a b", "", "c")
    assert result.returncode == 7
    assert result.stdout == "a b||c|"


def test_empty_file_variable_is_ignored() -> None:
    env = environment(run({"SOURCE_DATABASE_URL_FILE": "", "SOURCE_DATABASE_URL": SECRET}))
    assert env["SOURCE_DATABASE_URL"] == SECRET


@pytest.mark.parametrize(
    "name",
    [
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "ARCHIVE_RECIPIENTS_FILE",
        "ARCHIVE_IDENTITY_FILE",  # the identity stays in its file, out of the environment
    ],
)
def test_variables_that_name_paths_themselves_are_left_alone(tmp_path: Path, name: str) -> None:
    missing = str(tmp_path / "not-there-yet")
    env = environment(run({name: missing}))
    assert env[name] == missing
    assert name.removesuffix("_FILE") not in env


def test_no_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(ENTRYPOINT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip()


def test_notify_urls_file_becomes_notify_urls(tmp_path: Path) -> None:
    urls = "slack://TokenA/TokenB/TokenC\nmailtos://u:pw@smtp.example.com?to=ops@example.com"
    env = environment(run({"NOTIFY_URLS_FILE": str(secret_file(tmp_path, urls + "\n"))}))
    assert env["NOTIFY_URLS"] == urls and "NOTIFY_URLS_FILE" not in env
