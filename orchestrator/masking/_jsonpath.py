"""JSON documents with some leaves rewritten, everything else kept as it was.

Objects keep their key order and duplicate keys (a `json` column may hold them) and numbers
keep their exact text (`1.10` stays `1.10`, no float rounding). A path is dot-separated
object keys; `*` matches every key of an object or every element of an array, and a
number matches that position of an array. When a path ends on an object or array, every
leaf beneath it is rewritten. A path that finds nothing changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeAlias

JsonNode: TypeAlias = Any  # None | bool | Number | str | list[JsonNode] | JsonObject


class Number(str):
    """A JSON number, held as its text."""


class JsonObject(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in order, duplicates kept."""


class InvalidJson(ValueError):
    """The text is not JSON (the message holds no part of it)."""


def _no_constants(_name: str) -> None:
    raise InvalidJson("not valid JSON (NaN and Infinity are not JSON)")


def parse(text: str) -> JsonNode:
    """Give the document in `text`; InvalidJson when it is not JSON."""
    try:
        return json.loads(
            text,
            object_pairs_hook=JsonObject,
            parse_float=Number,
            parse_int=Number,
            parse_constant=_no_constants,
        )
    except (ValueError, RecursionError):
        raise InvalidJson("not valid JSON") from None


def dump(node: JsonNode) -> str:
    """Give `node` as JSON text, spaced like PostgreSQL prints jsonb."""
    if node is None:
        return "null"
    if node is True:
        return "true"
    if node is False:
        return "false"
    if isinstance(node, Number):
        return str.__str__(node)
    if isinstance(node, str):
        return json.dumps(node, ensure_ascii=False)
    if isinstance(node, JsonObject):
        items = (f"{json.dumps(key, ensure_ascii=False)}: {dump(value)}" for key, value in node)
        return "{" + ", ".join(items) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(dump(item) for item in node) + "]"
    return json.dumps(node, ensure_ascii=False)  # a plain int or float from a rules file


def rewrite(
    node: JsonNode, path: tuple[str, ...], leaf: Callable[[JsonNode], JsonNode]
) -> JsonNode:
    """Give `node` with `leaf` applied to every leaf that `path` reaches."""
    if not path:
        return _every_leaf(node, leaf)
    head, rest = path[0], path[1:]
    if isinstance(node, JsonObject):
        return JsonObject(
            (key, rewrite(value, rest, leaf) if head in ("*", key) else value)
            for key, value in node
        )
    if isinstance(node, list):
        position = int(head) if head.isascii() and head.isdigit() else -1
        return [
            rewrite(item, rest, leaf) if head == "*" or index == position else item
            for index, item in enumerate(node)
        ]
    return node


def _every_leaf(node: JsonNode, leaf: Callable[[JsonNode], JsonNode]) -> JsonNode:
    if isinstance(node, JsonObject):
        return JsonObject((key, _every_leaf(value, leaf)) for key, value in node)
    if isinstance(node, list):
        return [_every_leaf(item, leaf) for item in node]
    return leaf(node)


Leaf = Callable[[JsonNode], JsonNode]


def rewrite_all(
    node: JsonNode, paths: list[tuple[tuple[str, ...], Leaf]], other: Leaf | None = None
) -> JsonNode:
    """Give `node` with each path's `leaf` applied to every leaf it reaches (paths in
    order, as `rewrite` one after the other would) and `other` applied to every string
    leaf no path reaches and to every object key (paths match the keys as they were)."""
    if not paths and other is None:
        return node
    if isinstance(node, JsonObject):
        return JsonObject(
            (
                key if other is None else other(key),
                rewrite_all(value, _step(paths, key, False), other),
            )
            for key, value in node
        )
    if isinstance(node, list):
        return [
            rewrite_all(item, _step(paths, str(index), True), other)
            for index, item in enumerate(node)
        ]
    reached = [leaf for segments, leaf in paths if not segments]
    for leaf in reached:
        node = leaf(node)
    if not reached and other is not None and isinstance(node, str) and type(node) is str:
        node = other(node)
    return node


def _step(
    paths: list[tuple[tuple[str, ...], Leaf]], key: str, in_array: bool
) -> list[tuple[tuple[str, ...], Leaf]]:
    """The paths that go on below `key` (of an object) or position `key` (of an array)."""
    kept = []
    for segments, leaf in paths:
        if not segments:
            kept.append((segments, leaf))
            continue
        head = segments[0]
        if in_array:
            hit = head == "*" or (head.isascii() and head.isdigit() and int(head) == int(key))
        else:
            hit = head in ("*", key)
        if hit:
            kept.append((segments[1:], leaf))
    return kept
