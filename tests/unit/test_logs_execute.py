"""Redaction of secrets in logs, and the process runner's failure reporting."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import execute, logs
from orchestrator.errors import CommandFailed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@h/db", "postgresql://app:***@h/db"),
        ("s3://key:secret@bucket", "s3://key:***@bucket"),
        ("host=h password=hunter2 dbname=x", "host=h password=*** dbname=x"),
        ("password='with space' user=u", "password=*** user=u"),
        ("postgresql://app@h/db", "postgresql://app@h/db"),
        ("postgres://u:p@ss@db/x now", "postgres://u:***@db/x now"),  # an unencoded @
        ("postgres://u:p@ss:w@db:5432", "postgres://u:***@db:5432"),
        ("env PGPASSWORD=pw1 psql", "env PGPASSWORD=*** psql"),
        ("AWS_SECRET_ACCESS_KEY=abc123 x", "AWS_SECRET_ACCESS_KEY=*** x"),
        ("https://hc.example/ping?token=abc&x=1", "https://hc.example/ping?token=***&x=1"),
        (
            "MASK_KEY: must hold at least 16 characters",
            "MASK_KEY: must hold at least 16 characters",
        ),
        ("AWS_SECRET_ACCESS_KEY_2: access denied", "AWS_SECRET_ACCESS_KEY_2: access denied"),
        ("user@example.com wrote: a@b", "user@example.com wrote: a@b"),
    ],
)
def test_mask(text, expected):
    assert logs.mask(text) == expected


def test_registered_secret_is_masked_in_every_field():
    logs.register_secret("p@ss-registered-42")
    out = io.StringIO()
    logs.configure(stream=out, json=True)
    logs.get_logger("t").info(
        "event",
        nested={"k": ["x p@ss-registered-42 y"]},
        error=RuntimeError("failed p@ss-registered-42"),
    )
    line = json.loads(out.getvalue())
    assert "p@ss-registered-42" not in out.getvalue()
    assert line["nested"] == {"k": ["x *** y"]}


def test_console_format_on_request():
    out = io.StringIO()
    logs.configure(stream=out, json=False)
    logs.get_logger("t").info("hello", a=1)
    assert "hello" in out.getvalue() and not out.getvalue().startswith("{")


def test_run_captures_stdout_and_reports_first_error():
    assert execute.run(["sh", "-c", "echo out"]).stdout == "out\n"
    with pytest.raises(CommandFailed) as caught:
        execute.run(["sh", "-c", "echo noise >&2; echo 'pg_dump: error: boom' >&2; exit 3"])
    assert str(caught.value) == "sh exited with code 3: pg_dump: error: boom"
    assert caught.value.stderr_lines[0] == "pg_dump: error: boom"


def test_run_passes_env_without_putting_it_in_argv():
    result = execute.run(["sh", "-c", 'echo "$PGPASSWORD"'], env={"PGPASSWORD": "abc"})
    assert result.stdout == "abc\n"


def test_run_reports_signals_and_missing_programs():
    with pytest.raises(CommandFailed, match="was killed by signal SIGKILL"):
        execute.run(["sh", "-c", "kill -KILL $$"])
    with pytest.raises(CommandFailed, match="was not found"):
        execute.run(["/no/such/program"])


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out after 1s"):
        execute.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=1)
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    # gone, or a zombie waiting for a reaper (PID 1 in containers may not reap)
    assert wait_until(lambda: not running(child))


def test_large_stdout_is_not_truncated():
    result = execute.run(["sh", "-c", "seq 1 200000"])
    assert result.stdout.splitlines()[-1] == "200000"


def test_pipeline_feeds_each_stage_into_the_next(tmp_path):
    out = tmp_path / "out"
    results = execute.run_pipeline(
        [
            execute.Stage(["printf", "apple\\nbanana\\n"]),
            execute.Stage(["tr", "a", "x"]),
            execute.Stage(
                ["sh", "-c", f'cat > "{out}"; echo "$SECRET" >> "{out}"'], {"SECRET": "s3"}
            ),
        ]
    )
    assert out.read_text() == "xpple\nbxnxnx\ns3\n"
    assert [r.returncode for r in results] == [0, 0, 0]


def test_a_stage_writes_a_whole_block_without_waiting_for_the_next_to_read(tmp_path):
    """The pipes between stages hold a masking block (Linux allows 1 MiB to any user):
    the first stage's write of 1 MiB returns while the next stage has not read a byte."""
    written, out = tmp_path / "written", tmp_path / "out"
    write = (
        "import os, sys, pathlib; os.write(1, b'x' * (1 << 20)); "
        f"pathlib.Path({str(written)!r}).touch()"
    )
    wait_then_read = (  # says whether the write had returned before it read anything
        "import pathlib, sys, time\n"
        f"done = pathlib.Path({str(written)!r})\n"
        "for _ in range(100):\n"
        "    if done.exists(): break\n"
        "    time.sleep(0.05)\n"
        "before = done.exists()\n"
        "size = len(sys.stdin.buffer.read())\n"
        f"pathlib.Path({str(out)!r}).write_text(f'{{before}} {{size}}')\n"
    )
    execute.run_pipeline(
        [
            execute.Stage([sys.executable, "-c", write]),
            execute.Stage([sys.executable, "-c", wait_then_read]),
        ],
        timeout=30,
    )
    assert out.read_text() == f"True {1 << 20}"


def test_pipeline_names_the_stage_that_caused_the_failure():
    """The middle stage fails; the first then dies of a broken pipe, which is not the cause."""
    with pytest.raises(CommandFailed) as caught:
        execute.run_pipeline(
            [
                execute.Stage(["yes"]),
                execute.Stage(
                    ["sh", "-c", "head -c 100 >/dev/null; echo 'mask: error: boom' >&2; exit 1"]
                ),
                execute.Stage(["cat"]),
            ]
        )
    assert caught.value.program == "sh" and "boom" in str(caught.value)


@pytest.mark.parametrize("failing", [0, 2])
def test_every_stage_exit_code_counts(failing):
    stages = [execute.Stage(["true"]), execute.Stage(["cat"]), execute.Stage(["cat"])]
    stages[failing] = execute.Stage(["sh", "-c", "echo 'error: nope' >&2; exit 3"])
    with pytest.raises(CommandFailed, match="exited with code 3: error: nope"):
        execute.run_pipeline(stages)


def running(pid: int) -> bool:
    """True while `pid` is a live process (a zombie has ended: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll `check` until it holds or `seconds` pass; give its last answer."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_pipeline_timeout_kills_every_stage_and_their_children(tmp_path):
    """Each stage is a shell with a child of its own (its process group); a timeout must end
    all of them, not only give up waiting."""
    pids = tmp_path / "pids"
    stage = f"sleep 30 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    started = time.monotonic()
    try:
        with pytest.raises(CommandFailed, match="timed out"):
            execute.run_pipeline(
                [execute.Stage(["sh", "-c", stage]), execute.Stage(["sh", "-c", stage])],
                timeout=1.5,
            )
        assert time.monotonic() - started < 10
        found = [int(line) for line in pids.read_text().split()]
        assert len(found) == 4  # both shells and both of their children had started
        assert wait_until(lambda: not any(running(pid) for pid in found)), [
            pid for pid in found if running(pid)
        ]
    finally:
        for pid in [int(line) for line in pids.read_text().split()] if pids.exists() else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _gated(tmp_path: Path) -> tuple[list[execute.Stage], Path, Path]:
    """A pipeline whose middle stage starts before the gate: it notes that it started,
    then copies its input; the first and last stages note when they start."""
    notes, out = tmp_path / "notes", tmp_path / "out"
    note = f'echo "$0" >> "{notes}"'
    return (
        [
            execute.Stage(["sh", "-c", f'{note}; printf "row\\n"', "first"]),
            execute.Stage(["sh", "-c", f"{note}; tr a-z A-Z", "middle"], early=True),
            execute.Stage(["sh", "-c", f'{note}; cat > "{out}"', "last"]),
        ],
        notes,
        out,
    )


def test_a_gated_pipeline_starts_its_early_stage_first_and_the_rest_when_opened(tmp_path):
    stages, notes, out = _gated(tmp_path)
    gate = execute.Gate()
    seen_before: list[str] = []

    def open_later() -> None:
        assert wait_until(notes.exists)
        time.sleep(0.3)  # the others would have started by now, were they not held
        seen_before.extend(notes.read_text().split())
        gate.open()

    opener = threading.Thread(target=open_later)
    opener.start()
    results = execute.run_pipeline(stages, timeout=30, gate=gate)
    opener.join()
    assert seen_before == ["middle"]
    assert sorted(notes.read_text().split()) == ["first", "last", "middle"]
    assert out.read_text() == "ROW\n" and [r.returncode for r in results] == [0, 0, 0]


def test_an_abandoned_gate_ends_the_early_stage_and_starts_nothing(tmp_path):
    stages, notes, _out = _gated(tmp_path)
    gate = execute.Gate()
    threading.Timer(0.3, gate.abandon).start()
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="was not started"):
        execute.run_pipeline(stages, timeout=30, gate=gate)
    assert time.monotonic() - started < 10
    assert notes.read_text().split() == ["middle"]
    assert not execute._live  # nothing left running or tracked


def test_an_early_stage_failing_before_the_gate_opens_is_named(tmp_path):
    stages = [
        execute.Stage(["printf", "row"]),
        execute.Stage(["sh", "-c", "echo 'error: no plan' >&2; exit 3"], early=True),
        execute.Stage(["cat"]),
    ]
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="exited with code 3") as failed:
        execute.run_pipeline(stages, timeout=30, gate=execute.Gate())  # never opened
    assert time.monotonic() - started < 10
    assert failed.value.program == "sh" and "error: no plan" in str(failed.value)


def test_read_stream_stops_the_program_when_the_reader_has_enough():
    started = time.monotonic()
    first = execute.read_stream(["yes", "row"], lambda out: out.readline())
    assert first == b"row\n" and time.monotonic() - started < 10


def test_read_stream_reports_a_program_that_fails_on_its_own():
    with pytest.raises(CommandFailed, match="exited with code 2: error: no archive"):
        execute.read_stream(
            ["sh", "-c", "echo 'error: no archive' >&2; exit 2"], lambda o: o.read()
        )
    assert execute.read_stream(["printf", "a\\nb\\n"], lambda o: o.read()) == b"a\nb\n"


# What the tool's own settings put in its environment: production's URL and password, the
# other targets, the stores' keys, MASK_KEY, alert URLs with tokens. No child gets any.
SETTINGS_ENVIRONMENT = {
    "SOURCE_DATABASE_URL": "postgresql://app:prod-pw-1@prod.example/neondb",
    "NEON_PRODUCTION_DATABASE_URL": "postgresql://app:prod-pw-2@prod.example/neondb",
    "DEV_DATABASE_URL": "postgresql://dev:dev-pw-3@dev.example/dev",
    "RAILWAY_BACKUP_DB_URL": "postgresql://u:backup-pw-10@backup.example/db",
    "DATABASE_URL": "postgresql://app:prod-pw-4@prod.example/neondb",
    "AWS_SECRET_ACCESS_KEY": "store-secret-5",
    "AWS_SECRET_ACCESS_KEY_2": "store-secret-6",
    "AWS_SESSION_TOKEN": "store-token-7",
    "MASK_KEY": "mask-key-not-for-children-8",
    "NOTIFY_WEBHOOK_URL": "https://hooks.example/T0/secret-9",
}


def _env_of_run() -> str:
    return execute.run(["env"]).stdout


def _env_of_pipeline(tmp_path) -> str:
    out = tmp_path / "env.txt"
    execute.run_pipeline([execute.Stage(["env"]), execute.Stage(["sh", "-c", f"cat > {out}"])])
    return out.read_text()


def _env_of_stream() -> str:
    return execute.read_stream(["env"], lambda o: o.read()).decode()


@pytest.mark.parametrize("starter", ["run", "run_pipeline", "read_stream"])
def test_children_get_only_what_every_program_needs(monkeypatch, tmp_path, starter):
    for name, value in SETTINGS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    monkeypatch.setenv("PGPASSWORD", "the-source-password-11")  # reaches pg_dump through `env`
    seen = {
        "run": _env_of_run,
        "run_pipeline": lambda: _env_of_pipeline(tmp_path),
        "read_stream": _env_of_stream,
    }[starter]()
    names = {line.split("=", 1)[0] for line in seen.splitlines() if "=" in line}
    assert not names & set(SETTINGS_ENVIRONMENT), seen
    for value in SETTINGS_ENVIRONMENT.values():
        assert value not in seen
    assert "PGSSLMODE=verify-full" in seen and "PGPASSWORD" not in seen
    assert f"PATH={os.environ['PATH']}" in seen


def test_a_child_gets_the_secrets_given_to_it():
    assert "MASK_KEY=given" in execute.run(["env"], env={"MASK_KEY": "given"}).stdout
