"""The docs say what the code reads: every command option of the argument parser is in the
README's usage block (and nothing else is), every setting of the Settings model and every
store variable is in .env.example (aliases at least named), and nothing there is unknown."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pydantic import AliasChoices

from orchestrator.cli import build_parser
from orchestrator.settings import STORE_VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
OPTION = re.compile(r"(?<![\w-])(--?[a-z][a-z-]*)")


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], list[list[str]]]:
    """Each command path ("restore",), ("mask", "suggest") with its options, each option as
    its option strings (-o and --output are one option)."""
    found: dict[tuple[str, ...], list[list[str]]] = {}
    options = [
        list(a.option_strings) for a in parser._actions if a.option_strings and a.dest != "help"
    ]
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return {path: options}
    if path:
        found[path] = options
    for action in subparsers:
        for name, child in action.choices.items():
            found |= commands(child, (*path, name))
    return found


def usage_block() -> str:
    """The ```sh block of README's "Using it" section."""
    section = README.split("\n## Using it\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def readme_usage(known: set[tuple[str, ...]]) -> dict[tuple[str, ...], set[str]]:
    """Each `orchestrator ...` line's command path (the longest `known` one it starts with,
    else its first word) and the options it shows."""
    shown: dict[tuple[str, ...], set[str]] = {}
    for line in usage_block().splitlines():
        if not line.startswith("orchestrator"):
            continue
        usage = line.split("  #", 1)[0]
        words = tuple(usage.split()[1:])
        paths = [path for path in known if words[: len(path)] == path]
        path = max(paths, key=len) if paths else words[:1]
        if path and path[0].startswith("-"):
            path = ()  # `orchestrator --version`: a global option
        shown.setdefault(path, set()).update(OPTION.findall(usage))
    return shown


def test_every_command_option_is_in_the_readme_usage_block_and_no_other() -> None:
    parsed = commands(build_parser())
    shown = readme_usage(set(parsed))
    missing = {
        " ".join(path): [
            strings for strings in options if not set(strings) & shown.get(path, set())
        ]
        for path, options in parsed.items()
    }
    assert {path: options for path, options in missing.items() if options} == {}
    assert set(shown) - {()} - set(parsed) == set(), "README shows commands the parser lacks"
    for path, options in shown.items():
        known = {s for strings in parsed.get(path, []) for s in strings}
        if path == ():  # global options: `orchestrator --version`
            known = {s for strings in commands_global() for s in strings}
        assert options - known == set(), f"README shows options {path} does not take"


def commands_global() -> list[list[str]]:
    parser = build_parser()
    return [
        list(a.option_strings) for a in parser._actions if a.option_strings and a.dest != "help"
    ]


def test_every_global_option_is_documented_in_the_readme() -> None:
    for strings in commands_global():
        assert any(s in README for s in strings), strings


def setting_names() -> tuple[set[str], set[str]]:
    """(the names a setting is read by first, the other names it is also read by)."""
    primary, aliases = set(STORE_VARIABLES), set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names = list(alias.choices) if isinstance(alias, AliasChoices) else [alias]
        assert all(isinstance(name, str) for name in names), field
        primary.add(str(names[0]))
        aliases.update(str(name) for name in names[1:])
    return primary, aliases


def test_every_setting_is_in_env_example_and_every_line_there_is_read() -> None:
    primary, aliases = setting_names()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE))
    named = set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", ENV_EXAMPLE))
    assert primary - assigned == set(), "settings without a NAME= line in .env.example"
    assert aliases - named == set(), "alias names .env.example does not mention"
    assert assigned - primary == set(), ".env.example sets names the code does not read"
