"""Every `--help` shows its bracketed text: Rich markup used to swallow `[sam]` ("pip install 'seglab'") and
`[default: ...]`. Walks every command of the app, so a new help string with brackets is checked too."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from seglab.cli import _register
from seglab.cli.app import app


def _commands(command, path: list[str]):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, [*path, name])


def test_bracketed_help_text_survives_rich_markup() -> None:
    _register()
    runner = CliRunner()
    checked, lost = 0, []
    for path, command in _commands(typer.main.get_command(app), []):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        # what the help string means to show: its bracketed words, with the markup escape removed
        words = " ".join(" ".join(texts).split())
        tokens = {t.replace("\\[", "[") for t in re.findall(r"\S*\[[^\]]*\]\S*", words)}
        if not tokens:
            continue
        shown = " ".join(runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"}).output.split())
        lost += [(" ".join(path), t) for t in tokens if t not in shown]
        checked += 1
    assert checked >= 4  # sam, predict, evaluate, data convert ... have bracketed help
    assert not lost, f"help text lost to Rich markup (escape '[' as '\\\\['): {lost}"
    assert "pip install 'seglab[sam]'" in runner.invoke(app, ["sam", "--help"], env={"COLUMNS": "300"}).output
