"""Files a setting names (recipients, identities, masking rules), read as text."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import ConfigError


def setting_file_text(path: Path, setting: str) -> str:
    """The UTF-8 text of the file `setting` names; ConfigError naming `setting` and why
    (never the content) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{setting}: cannot read {path}: {reason}") from None
