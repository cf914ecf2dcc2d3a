"""Names written into the rules files that `mask suggest` writes."""

from __future__ import annotations

import json
import re

import yaml

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.$ -]*[A-Za-z0-9_$]|[A-Za-z_]")
# libyaml's safe loader where PyYAML was built with it (the same nodes, marks and errors as
# the Python one, several times faster): rules files and the keys `mask suggest` writes
SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


def yaml_key(text: str) -> str:
    """Give `text` as a YAML key or flow-sequence item: plain when it reads back as the same
    text, else double-quoted (a JSON string is a YAML double-quoted scalar)."""
    if _PLAIN_KEY.fullmatch(text) and _reads_back(text):
        return text
    return json.dumps(text).replace("\x7f", "\\x7f")


def _reads_back(text: str) -> bool:
    """Whether `text: 0` loads as the mapping of `text` to 0 (not a number, a date, null)."""
    return bool(yaml.load(f"{text}: 0", Loader=SAFE_LOADER) == {text: 0})  # noqa: S506 (safe)
