"""The first pass's flags as the filter reads them: which rows of each table's COPY the load
keeps, and which keys it sets to NULL. Stored as one `.npy` file of booleans per table (and
per key set to NULL) beside an index: row numbers only, never a value of a row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.errors import ConfigError
from orchestrator.masking.predicate import Mask

INDEX = "index.json"


@dataclass
class RowFlags:
    """One table's flags: `kept` per row in archive order; `nulled` per key (its columns)
    per row, set to NULL because the row it pointed to was dropped."""

    kept: Mask
    nulled: dict[tuple[str, ...], Mask] = field(default_factory=dict)


def save(folder: Path, tables: dict[str, RowFlags]) -> Path:
    """Write `tables`' flags into `folder` (created); give the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, object]] = {}
    for number, (table, flags) in enumerate(sorted(tables.items())):
        np.save(folder / f"kept-{number}.npy", flags.kept)
        nulled = []
        for second, (columns, rows) in enumerate(sorted(flags.nulled.items())):
            np.save(folder / f"null-{number}-{second}.npy", rows)
            nulled.append({"columns": list(columns), "file": f"null-{number}-{second}.npy"})
        index[table] = {"kept": f"kept-{number}.npy", "nulled": nulled}
    (folder / INDEX).write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
    return folder


def load(folder: Path) -> dict[str, RowFlags]:
    """The flags `save` wrote into `folder`. Raises ConfigError when they cannot be read."""
    try:
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        return {
            table: RowFlags(
                np.load(folder / entry["kept"]),
                {tuple(n["columns"]): np.load(folder / n["file"]) for n in entry["nulled"]},
            )
            for table, entry in index.items()
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--subset: cannot read the flags in {folder}: {exc}") from None
