"""Names written into the rules files that `mask suggest` writes."""

from __future__ import annotations

import json
import re

import yaml

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.$ -]*[A-Za-z0-9_$]|[A-Za-z_]")
# libyaml's loader where PyYAML has it: a suggestion for a thousand tables asks for
# thousands of keys, 0.5 ms each with the Python loader
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_key(text: str) -> str:
    """Give `text` as a YAML key or flow-sequence item: plain when it reads back as the same
    text, else double-quoted (a JSON string is a YAML double-quoted scalar)."""
    if _PLAIN_KEY.fullmatch(text) and _reads_back(text):
        return text
    return json.dumps(text).replace("\x7f", "\\x7f")


def _reads_back(text: str) -> bool:
    """Whether `text: 0` loads as the mapping of `text` to 0 (not a number, a date, null)."""
    return bool(yaml.load(f"{text}: 0", Loader=_LOADER) == {text: 0})  # noqa: S506 (safe)
