"""Client binaries that misbehave on purpose: a bin folder where one tool runs a bash body
(after `REAL` is set to the real tool) and the other tools are the real ones."""

from __future__ import annotations

import stat
from pathlib import Path

TOOLS = ("pg_dump", "pg_restore", "psql")


def wrap_tool(folder: Path, real_bin: Path, tool: str, body: str) -> Path:
    """Make `folder` a bin folder whose `tool` runs `body`; give the folder.

    `--version` and `--list` calls go to the real tool, so client discovery and TOC reads
    still work; every other call runs `body` with `$REAL` naming the real binary.
    """
    folder.mkdir()
    script = folder / tool
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'REAL="{real_bin}/{tool}"\n'
        'case "$*" in *--version*|*--list*) exec "$REAL" "$@";; esac\n' + body
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    for other in TOOLS:
        if other != tool:
            (folder / other).symlink_to(real_bin / other)
    return folder
