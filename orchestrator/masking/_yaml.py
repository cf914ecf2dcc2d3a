"""Names written into the rules files that `mask suggest` writes."""

from __future__ import annotations

import json
import re

import yaml

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.$ -]*[A-Za-z0-9_$]|[A-Za-z_]")


def yaml_key(text: str) -> str:
    """Give `text` as a YAML key or flow-sequence item: plain when it reads back as the same
    text, else double-quoted (a JSON string is a YAML double-quoted scalar)."""
    if _PLAIN_KEY.fullmatch(text) and yaml.safe_load(f"{text}: 0") == {text: 0}:
        return text
    return json.dumps(text).replace("\x7f", "\\x7f")
