"""The exceptions the tool raises on purpose, each mapped to an exit code by the CLI.

Anything else escaping an action is a bug and is shown with a traceback.
"""


class OrchestratorError(Exception):
    """Base of every expected failure; `str()` is the one line shown to the user."""

    exit_code = 1


class ConfigError(OrchestratorError):
    """A setting or an argument is missing or wrong: exit code 2, nothing was done."""

    exit_code = 2


class JobError(OrchestratorError):
    """The job ran and failed: exit code 1."""

    exit_code = 1


class CommandFailed(JobError):
    """A child process exited non-zero, was killed, or timed out.

    The message carries the program name and the first error lines from its stderr,
    never its environment (where passwords live).
    """

    def __init__(self, program: str, reason: str, stderr_lines: list[str]) -> None:
        self.program = program
        self.reason = reason
        self.stderr_lines = stderr_lines
        detail = f": {stderr_lines[0]}" if stderr_lines else ""
        super().__init__(f"{program} {reason}{detail}")


class StorageError(JobError):
    """The archive store failed an operation (network, permissions at run time, ...)."""


class StoreNotInitialised(StorageError):
    """A folder store without the marker of `orchestrator init` (perhaps an unmounted
    path): that store is refused, exit code 1."""


class LocalDiskFull(JobError):
    """This host could not write a file it downloads (no space left, over quota, read-only):
    no store is to blame, so no other store is tried and no copy is called damaged."""


class IntegrityError(JobError):
    """Stored bytes do not match the manifest (checksum or size)."""


class NotFound(ConfigError):
    """A backup id or object named by the user does not exist."""


class AlreadyRunning(OrchestratorError):
    """Another cycle holds the lock: exit code 3, nothing was done."""

    exit_code = 3


class Interrupted(JobError):
    """The process received SIGTERM or SIGINT; children were stopped first (exit 128+N)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)
