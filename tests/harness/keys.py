"""age key pairs made as a user makes them, with Debian's age-keygen."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class KeyPair:
    identity_file: Path
    recipient: str

    @property
    def secret(self) -> str:
        return next(
            line for line in self.identity_file.read_text().splitlines() if line.startswith("AGE-")
        )


def make_key(folder: Path, name: str) -> KeyPair:
    """A key pair made by Debian's age-keygen, as a user would make it."""
    path = folder / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return KeyPair(path, public)
