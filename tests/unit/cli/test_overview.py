"""`wukong --help`: the commands by section, as kubectl lays out its own."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from wukong.cli import app
from wukong.console.overview import ALIASES, SECTIONS


def test_every_command_has_one_place_in_the_overview() -> None:
    """A new command must be given a section, or `wukong --help` would not show it."""
    group = typer.main.get_command(app)
    commands = set(group.commands)  # type: ignore[attr-defined]
    placed = [name for _, names in SECTIONS for name in names]
    assert len(placed) == len(set(placed)), "a command in two sections"
    assert set(placed) | set(ALIASES) == commands
    assert set(ALIASES.values()) <= set(placed)


def test_the_overview_shows_sections_aliases_and_how_to_learn_more() -> None:
    done = CliRunner().invoke(app, ["--help"], prog_name="wukong")
    assert done.exit_code == 0
    text = done.stdout
    titles = [title for title, _ in SECTIONS]
    assert [text.index(f"\n{title}:\n") for title in titles] == sorted(
        text.index(f"\n{title}:\n") for title in titles
    )
    assert "\n  suspend, pause " in text and "\n  detach, removevolume " in text
    assert text.index("Basic commands:") < text.index("Options:") < text.index("Usage:")
    assert text.endswith('Use "wukong <command> --help" for more about a command.\n')
    assert (
        CliRunner().invoke(app, ["help"], prog_name="wukong").stdout == text
    )  # `wukong help` is the same page
