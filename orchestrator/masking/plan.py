"""What the filter does to one table's COPY data, resolved from the rules and the schema.

The orchestration writes the TablePlans of the tables one filter masks to a file
(`plans_to_json`) and the filter process reads them back (`plans_from_json`); everything
the filter needs is in it, so it never sees the rules file or the schema facts.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping
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
    `keep` passes it through. `rows` is the number of rows the backup's manifest counted
    (None when unknown): it only weighs the table when masked tables are shared out
    between filters, and is not written to the plan file.
    """

    table: str
    columns: dict[str, ColumnPlan]
    unlisted: str = "fail"
    rows: int | None = field(default=None, compare=False)

    def masked_columns(self) -> list[str]:
        """Give the names of the columns whose values change, in plan order."""
        return [name for name, column in self.columns.items() if column.transform != "keep"]

    def to_json(self) -> str:
        """Give the plan as JSON text (see `from_json`)."""
        return json.dumps(self.document(), indent=2, ensure_ascii=False) + "\n"

    def document(self) -> dict[str, Any]:
        """Give the plan as a JSON-ready mapping (the text of `to_json`)."""
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
        return {
            "format": PLAN_FORMAT,
            "table": self.table,
            "unlisted": self.unlisted,
            "columns": columns,
        }

    @classmethod
    def from_json(cls, text: str) -> TablePlan:
        """Give the plan written by `to_json`; PlanError when the text is not one."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise PlanError(f"not a masking plan ({type(exc).__name__})") from None
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: Any) -> TablePlan:
        """Give the plan of a mapping `document` gave; PlanError when it is not one."""
        try:
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


def plans_to_json(plans: Iterable[TablePlan]) -> str:
    """Give the plans of the tables one filter masks as JSON text (see `plans_from_json`)."""
    document = {"format": PLAN_FORMAT, "plans": [plan.document() for plan in plans]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def plans_from_json(text: str) -> dict[str, TablePlan]:
    """Give the plans, by table, of a text `plans_to_json` wrote (or one plan's `to_json`).

    Raises PlanError when the text is not one, or names a table twice.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"not a masking plan ({type(exc).__name__})") from None
    if not isinstance(document, dict) or "plans" not in document:
        plan = TablePlan.from_document(document)
        return {plan.table: plan}
    if document.get("format") != PLAN_FORMAT or not isinstance(document["plans"], list):
        raise PlanError(f"not a list of masking plans of format {PLAN_FORMAT}")
    plans: dict[str, TablePlan] = {}
    for raw in document["plans"]:
        plan = TablePlan.from_document(raw)
        if plan.table in plans:
            raise PlanError(f"{plan.table} has two plans")
        plans[plan.table] = plan
    return plans


def share_out(weights: Mapping[str, int], count: int) -> list[list[str]]:
    """Share the names of `weights` out into at most `count` groups of about equal total
    weight (heaviest first, each to the lightest group so far; ties by name, so the result
    is the same every time; each name weighs one more than its weight, so tables of no
    known rows still spread); give the non-empty groups, each in name order.

    Raises ValueError when `count` is below 1.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    groups: list[list[str]] = [[] for _ in range(count)]
    totals = [(0, index) for index in range(count)]
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        total, index = heapq.heappop(totals)
        groups[index].append(name)
        heapq.heappush(totals, (total + max(0, weights[name]) + 1, index))
    return [sorted(group) for group in groups if group]
