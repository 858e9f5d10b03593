"""The documentation follows the code: these tests fail when they drift.

- every platform hook has a ``## learnsail_<name>`` section in docs/hooks.md,
  and every such section is a real hook;
- every platform hook is exercised by some test under tests/;
- every setting the core declares is in docs/configuration.md, on one line
  with its environment variable and its default;
- every ``learnsail`` command (and ``learnsail db`` subcommand) is mentioned
  in README.md or docs/;
- relative links in README.md and docs/*.md point at files and headings
  that exist.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from learnsail import core_plugin, hookspecs
from learnsail.cli import build_parser
from learnsail.settings import CORE_SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS_MD = DOCS / "hooks.md"
CONFIGURATION_MD = DOCS / "configuration.md"
THIS_FILE = Path(__file__).resolve()


def hookspec_names() -> set[str]:
    """The platform hooks: functions of learnsail.hookspecs marked as specs."""
    return {name for name, value in vars(hookspecs).items()
            if name.startswith("learnsail_") and callable(value) and hasattr(value, "learnsail_spec")}


def test_there_are_hookspecs_to_check():
    # guards the checks below against a marker rename that would empty the set
    assert len(hookspec_names()) >= 10


# --- (a) docs/hooks.md has one section per hook, and only real hooks ------------

def test_every_hookspec_has_a_section_in_hooks_md():
    headings = set(re.findall(r"^## (learnsail_\w+)\s*$", HOOKS_MD.read_text(), re.MULTILINE))
    missing = sorted(hookspec_names() - headings)
    unknown = sorted(headings - hookspec_names())
    assert not missing, f"docs/hooks.md has no '## <name>' section for: {', '.join(missing)}"
    assert not unknown, f"docs/hooks.md documents hooks that learnsail.hookspecs lacks: {', '.join(unknown)}"


def test_hooks_md_states_each_signature():
    """Each section shows the hook's exact ``def`` line (argument names and order)."""
    import inspect

    text = HOOKS_MD.read_text()
    wrong = []
    for name in sorted(hookspec_names()):
        signature = f"def {name}{inspect.signature(getattr(hookspecs, name))}"
        section = re.search(rf"^## {name}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
        if section is None or signature not in section.group(1):
            wrong.append(signature)
    assert not wrong, "docs/hooks.md does not show these signatures in their sections:\n  " + "\n  ".join(wrong)


# --- (b) every hook is exercised by a test ---------------------------------------

def _test_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted((ROOT / "tests").rglob("*.py"))
            if path.resolve() != THIS_FILE}


def _used(name: str, text: str) -> bool:
    """``name`` used as a hook: ``pm.hook.<name>``, ``"<name>"``,
    ``<name>=...`` or ``def <name>(``.  A bare word does not count, so the
    ``learnsail_settings`` *fixture* passed as a test argument is not taken
    for the ``learnsail_settings`` hook."""
    pattern = rf"""(?:[."']|\bdef\s+){name}\b|\b{name}\s*=(?!=)"""
    return re.search(pattern, text) is not None


def test_every_hookspec_is_named_in_a_test():
    sources = _test_sources()
    untested = sorted(name for name in hookspec_names()
                      if not any(_used(name, text) for text in sources.values()))
    assert not untested, ("no test under tests/ calls or implements these hooks: "
                          + ", ".join(untested))


# --- (c) docs/configuration.md documents every core setting ---------------------

def core_declared_settings() -> list[Setting]:
    """CORE_SETTINGS, plus what else the core declares through its own
    ``learnsail_settings`` implementation (the OAuth providers')."""
    declared = list(core_plugin.learnsail_settings())
    names = {s.name for s in declared}
    assert {s.name for s in CORE_SETTINGS} <= names
    return declared


def default_text(setting: Setting) -> str:
    """How the table writes a default: booleans lower-case, empty as ``""``."""
    value = setting.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


@pytest.mark.parametrize("setting", core_declared_settings(), ids=lambda s: s.name)
def test_setting_is_documented_with_env_var_and_default(setting):
    lines = [line for line in CONFIGURATION_MD.read_text().splitlines() if f"`{setting.name}`" in line]
    assert lines, f"docs/configuration.md never names `{setting.name}` (in backticks)"
    rows = [line for line in lines if f"`{setting.env_var}`" in line]
    assert rows, f"docs/configuration.md has no line with both `{setting.name}` and `{setting.env_var}`"
    default = f"`{default_text(setting)}`"
    assert any(default in row for row in rows), (
        f"the docs/configuration.md row of `{setting.name}` does not give its default {default}")


# --- (d) every CLI command is mentioned ------------------------------------------

def cli_commands() -> list[str]:
    """``learnsail <command>`` and ``learnsail <command> <subcommand>`` for
    every (sub)parser of the real command line."""
    found: list[str] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:  # argparse has no public walk
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    command = f"{prefix} {name}"
                    found.append(command)
                    walk(sub, command)

    walk(build_parser(), "learnsail")
    return found


def _written_docs() -> str:
    # docs/examples/ is an example project, not the reference: the commands
    # must be explained in README.md or docs/*.md themselves
    paths = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "examples" not in p.parts)]
    return "\n".join(p.read_text() for p in paths if p.exists())


def test_cli_walk_finds_nested_commands():
    commands = cli_commands()
    assert "learnsail db" in commands and "learnsail db upgrade" in commands


def test_every_cli_command_is_mentioned():
    text = _written_docs()
    missing = [command for command in cli_commands() if command not in text]
    assert not missing, f"README.md and docs/ never mention: {', '.join(missing)}"


# --- links ---------------------------------------------------------------------------

def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of ``path``: lower case, spaces as
    hyphens, punctuation other than ``-`` and ``_`` dropped."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+?)\s*$", path.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
        anchors.add(slug.replace(" ", "-"))
    return anchors


def test_relative_links_and_anchors_resolve():
    broken = []
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue  # an external link
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part) if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)} -> {target} (no such heading)")
    assert not broken, "broken links:\n  " + "\n  ".join(broken)
