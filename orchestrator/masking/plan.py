"""What the filter does to one table's COPY data, resolved from the rules and the schema.

The orchestration writes a TablePlan to a file (`to_json`) and the filter process reads it
back (`from_json`); everything the filter needs is in it, so it never sees the rules file
or the schema facts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.masking.transforms import SpecError, TransformSpec, parse_spec
from orchestrator.table_names import table_key

PLAN_FORMAT = 1
UNLISTED_POLICIES = ("fail", "keep")


def location(table: str, column: str) -> str:
    """Give "schema.table.column", the column quoted like a table key part when it must be."""
    return table + table_key("", column)


class PlanError(ConfigError):
    """A plan file is not a masking plan this version can read."""


@dataclass(frozen=True)
class ColumnPlan:
    """One column's transform with the column facts it needs to stay valid.

    `max_length` is the column's varchar(n)/char(n) limit, lowered to the smallest of its
    foreign-key group so that linked values stay identical; `via` names the masked key
    ("public.customers.email") a foreign-key column took its transform from.
    """

    transform: str
    params: dict[str, Any] = field(default_factory=dict)
    base_type: str = "text"
    max_length: int | None = None
    via: str | None = None

    @property
    def spec(self) -> TransformSpec:
        """Give the transform spec."""
        return TransformSpec(self.transform, self.params)


@dataclass(frozen=True)
class TablePlan:
    """The plan of one table whose data the archive holds.

    `columns` covers every column the schema knows (kept ones with `keep`); `unlisted`
    says what happens to a COPY column the plan does not name: `fail` stops the filter,
    `keep` passes it through.
    """

    table: str
    columns: dict[str, ColumnPlan]
    unlisted: str = "fail"

    def masked_columns(self) -> list[str]:
        """Give the names of the columns whose values change, in plan order."""
        return [name for name, column in self.columns.items() if column.transform != "keep"]

    def to_json(self) -> str:
        """Give the plan as JSON text (see `from_json`)."""
        columns = {
            name: {
                "transform": column.transform,
                "params": column.params,
                "base_type": column.base_type,
                "max_length": column.max_length,
                "via": column.via,
            }
            for name, column in self.columns.items()
        }
        document = {
            "format": PLAN_FORMAT,
            "table": self.table,
            "unlisted": self.unlisted,
            "columns": columns,
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TablePlan:
        """Give the plan written by `to_json`; PlanError when the text is not one."""
        try:
            document = json.loads(text)
            if document.get("format") != PLAN_FORMAT:
                raise PlanError(f"not a masking plan of format {PLAN_FORMAT}")
            unlisted = document["unlisted"]
            if unlisted not in UNLISTED_POLICIES or not isinstance(document["table"], str):
                raise PlanError("bad table or unlisted policy")
            columns = {name: _column(raw) for name, raw in document["columns"].items()}
        except PlanError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PlanError(f"not a masking plan ({type(exc).__name__})") from None
        return cls(document["table"], columns, unlisted)


def _column(raw: dict[str, Any]) -> ColumnPlan:
    try:
        spec = parse_spec({"transform": raw["transform"], **raw["params"]})
    except SpecError as exc:
        raise PlanError(f"bad transform: {exc}") from None
    max_length = raw["max_length"]
    if max_length is not None and (type(max_length) is not int or max_length < 1):
        raise PlanError("bad max_length")
    if not isinstance(raw["base_type"], str) or not isinstance(raw["via"], str | None):
        raise PlanError("bad column facts")
    return ColumnPlan(spec.name, dict(spec.params), raw["base_type"], max_length, raw["via"])
