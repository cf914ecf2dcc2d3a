"""Find PostgreSQL client binaries of every installed major version and choose one.

`choose()` is pure policy: same major as needed, else the nearest newer one, never an
older one (pg_dump refuses newer servers; pg_restore cannot read newer archives).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from orchestrator import execute
from orchestrator.errors import CommandFailed, ConfigError
from orchestrator.logs import get_logger, with_context

log = get_logger(__name__)

SYSTEM_ROOT = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(?P<version>(?P<major>\d+)(?:\.\d+)*)")


@dataclass(frozen=True)
class ClientSet:
    """One folder of client binaries of one version."""

    bin_dir: Path
    version: str
    major: int

    def tool(self, name: str) -> str:
        """The path of `name` (pg_dump, pg_restore, psql) in this folder."""
        return str(self.bin_dir / name)


def parse_version(text: str) -> tuple[str, int] | None:
    """Give (version, major) from `pg_dump --version` output, or None."""
    match = _VERSION.search(text)
    return (match["version"], int(match["major"])) if match else None


def candidate_dirs(pg_bin_dirs: Iterable[str], path_env: str | None = None) -> list[Path]:
    """Folders to look in, in order: PG_BIN_DIRS, /usr/lib/postgresql/*/bin, then PATH.

    Each folder comes once, under its first spelling, however it is reached (/bin and
    /usr/bin are one folder where /usr is merged)."""
    system = sorted(map(str, SYSTEM_ROOT.glob("*/bin")), reverse=True)
    path = (path_env if path_env is not None else os.environ.get("PATH", "")).split(os.pathsep)
    seen: dict[Path, Path] = {}
    for folder in [*pg_bin_dirs, *system, *path]:
        if folder:
            spelled = Path(folder).expanduser()
            seen.setdefault(_resolved(spelled), spelled)
    return list(seen.values())


def _resolved(path: Path) -> Path:
    """`path` with symlinks resolved; as given when that fails (a symlink loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def discover(pg_bin_dirs: Iterable[str], tool: str = "pg_dump") -> list[ClientSet]:
    """Give one ClientSet per folder that holds a runnable `tool`, in search order.

    Folders are probed once per process and search path (a `--version` run each, in
    parallel), whichever tools and threads ask: the tools of one folder share a version.
    """
    with _discover_lock:
        found = _discover(tuple(pg_bin_dirs), os.environ.get("PATH", ""))
    return [client for client in found if _runnable(client.bin_dir / tool)]


_discover_lock = threading.Lock()
PROBED_TOOLS = ("pg_dump", "pg_restore")


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _probed(path: Path) -> bool:
    """A runnable client that is not Debian's pg_wrapper (/usr/bin/pg_dump there). The
    wrapper picks a version on each call, and the binaries it runs are found under
    /usr/lib/postgresql anyway; probing it only costs a Perl start-up."""
    return _runnable(path) and _resolved(path).name != "pg_wrapper"


def _probe_target(folder: Path) -> Path | None:
    """The first of PROBED_TOOLS in `folder` worth a `--version` run, if any."""
    return next((folder / t for t in PROBED_TOOLS if _probed(folder / t)), None)


@functools.lru_cache(maxsize=32)
def _discover(pg_bin_dirs: tuple[str, ...], path_env: str) -> tuple[ClientSet, ...]:
    found = (_probe_target(folder) for folder in candidate_dirs(pg_bin_dirs, path_env))
    binaries = [binary for binary in found if binary is not None]
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(with_context(_version_of), binaries))
    return tuple(
        ClientSet(binary.parent, parsed[0], parsed[1])
        for binary, parsed in zip(binaries, versions, strict=True)
        if parsed
    )


def _version_of(binary: Path) -> tuple[str, int] | None:
    try:
        return parse_version(execute.run([str(binary), "--version"], timeout=30).stdout)
    except CommandFailed as exc:
        log.warning("clients.unusable", path=str(binary), error=str(exc))
        return None


def choose(available: Iterable[ClientSet], needed_major: int, tool: str, why: str) -> ClientSet:
    """Pick the client of `needed_major`, else the nearest newer major (first found wins a tie).

    Raises ConfigError naming the versions found and the one needed when only older
    clients (or none) are available.
    """
    candidates = list(available)
    usable = [c for c in candidates if c.major >= needed_major]
    if usable:
        best = min(c.major for c in usable)
        return next(c for c in usable if c.major == best)
    found = ", ".join(sorted({c.version for c in candidates})) or "none"
    raise ConfigError(
        f"PG_BIN_DIRS: {tool} {needed_major} or newer is needed ({why}); found: {found}. "
        "Install the matching PostgreSQL client or add its bin folder to PG_BIN_DIRS"
    )
