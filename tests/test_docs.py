"""Docs tested against the code: CLI options, examples and the README's commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import assay
from assay.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def parser_options() -> dict[str, set[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    out = {}
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        out[name] = {o for a in command._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    return out


def test_every_cli_option_is_documented_and_every_documented_option_exists():
    text = (ROOT / "docs" / "cli.md").read_text()
    options = parser_options()
    for command, opts in options.items():
        section = text.split(f"## `assay {command}")[1].split("\n## ")[0]
        for opt in opts:
            assert f"`{opt}" in section, f"assay {command} {opt} is not documented in docs/cli.md"
        documented = set(re.findall(r"^\| `(--[a-z-]+)", section, flags=re.M))
        assert documented <= opts, f"docs/cli.md documents options assay {command} lacks: {documented - opts}"


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start")[1].split("\n## ")[0]
    commands = re.findall(r"^    (make \S+)$", quick, flags=re.M)
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")) + [ROOT / "src/assay/packs/demo.yaml"])
def test_example_scenario_files_are_valid(path):
    assert assay.load_scenarios(path).scenarios


def test_yaml_blocks_in_docs_are_valid_scenario_files():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S):
            if "scenarios:" in block:
                assert assay.parse_scenarios(block).scenarios, doc


def test_every_module_is_in_the_readme_layout():
    """The README's Layout table names every module (a package by its folder)."""
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    named = set(re.findall(r"`([a-z_]+(?:\.py|/))`", layout))
    source = ROOT / "src" / "assay"
    modules = {p.name for p in source.glob("*.py") if p.name != "__init__.py"}
    packages = {f"{p.name}/" for p in source.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules | packages <= named, sorted((modules | packages) - named)
