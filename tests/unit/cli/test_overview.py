"""`wukong --help`: the commands by section, as kubectl lays out its own."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from wukong.cli import app
from wukong.console.overview import ALIASES, KUBECTL_WORDS, SECTIONS


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


def test_a_kubectl_word_for_a_command_names_the_one_that_does_it() -> None:
    """`wukong get` said only "no such command 'get'" to a kubectl user."""
    done = CliRunner().invoke(app, ["get", "web-1"], prog_name="wukong")
    assert done.exit_code == 2
    assert done.stderr == (
        "error: no such command 'get'; did you mean 'wukong status'? (see 'wukong --help')\n"
    )
    under_kubectl = CliRunner().invoke(app, ["destroy", "web-1"], prog_name="kubectl wukong")
    assert "did you mean 'kubectl wukong stop --force'?" in under_kubectl.stderr
    # A typo keeps click's own suggestion; a word nobody uses, the plain error.
    assert "Did you mean 'delete'?" in CliRunner().invoke(app, ["delet"]).stderr
    plain = CliRunner().invoke(app, ["frobnicate"], prog_name="wukong").stderr
    assert plain == "error: no such command 'frobnicate' (see 'wukong --help')\n"


def test_every_kubectl_word_names_a_command_there_is() -> None:
    group = typer.main.get_command(app)
    commands = set(group.commands)  # type: ignore[attr-defined]
    for ours in KUBECTL_WORDS.values():
        assert ours.split()[0] in commands
    assert not set(KUBECTL_WORDS) & commands
