"""`wukong --help` laid out as kubectl's: commands in sections by what they are for (kubectl's
"Basic Commands", "Troubleshooting and Debugging Commands"…), virtctl's names beside the
commands they alias, then usage. One flat list of 40 names, the operator's own first, hid
what a person looks for. `wukong credentials --help` has the same layout, with one section."""

from __future__ import annotations

from typing import Any, Final

import typer
from typer.core import TyperGroup

SECTIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("Basic commands", ("create", "status", "describe", "delete")),
    (
        "Lifecycle",
        ("start", "stop", "restart", "suspend", "resume", "soft-reboot"),
    ),
    ("Placement", ("migrate", "migrate-cancel")),
    ("Size and disks", ("resize", "attach", "detach", "snapshot", "restore")),
    (
        "Into the VM",
        (
            "console",
            "vnc",
            "screenshot",
            "ssh",
            "scp",
            "port-forward",
            "logs",
            "expose",
            "credentials",
        ),
    ),
    ("What the guest agent reports", ("guestosinfo", "userlist", "fslist")),
    ("Running the operator", ("run", "demo", "fsm", "crd")),
    ("Other", ("version", "completion", "help")),
)
ALIASES: Final = {  # virtctl's name → ours, shown beside ours
    "pause": "suspend",
    "unpause": "resume",
    "addvolume": "attach",
    "removevolume": "detach",
}


class KubectlGroup(TyperGroup):
    """A command of commands (`credentials`): what it is, its commands, options, then usage,
    as kubectl lays out `kubectl config --help`; click's layout put `Usage: … [OPTIONS]
    COMMAND [ARGS]...` first (CLI audit, session 44, F12)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_help_text(ctx, formatter)
        self.format_commands(ctx, formatter)
        self.format_options(ctx, formatter)  # typer's: its own, then the commands (ours)
        path = ctx.command_path or "wukong"  # `wukong`, `kubectl wukong credentials`
        formatter.write_paragraph()
        formatter.write(f"Usage:\n  {path} COMMAND [options]\n")
        formatter.write_paragraph()
        formatter.write(f'Use "{path} <command> --help" for more about a command.\n')

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The group's own options only: its commands have their sections already."""
        records = [
            record
            for param in self.get_params(ctx)
            if (record := param.get_help_record(ctx)) is not None
        ]
        if records:
            with formatter.section("Options"):
                formatter.write_dl(records)


# What a kubectl or virsh user types first, and the command that does it here.
KUBECTL_WORDS: Final = {
    "get": "status",
    "list": "status",
    "ls": "status",
    "show": "describe",
    "info": "describe",
    "inspect": "describe",
    "rm": "delete",
    "remove": "delete",
    "destroy": "stop --force",
    "shutdown": "stop",
    "poweroff": "stop",
    "reboot": "restart",
    "exec": "ssh",
    "shell": "ssh",
}


def command_hint(name: str, program: str = "wukong") -> str:
    """The command a kubectl (or virsh) word means here ("" for any other word: click
    already suggests the names close to a typo, "Did you mean 'status'?"). `program`: as
    the user typed it (`kubectl wukong` under kubectl)."""
    ours = KUBECTL_WORDS.get(name)
    return f"did you mean '{program} {ours}'?" if ours is not None else ""


class SectionedGroup(KubectlGroup):
    """The top-level command: its commands by section, each with its aliases."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """A command that does not exist names the one meant, if it can tell: `wukong get`
        said only "no such command 'get'" to a kubectl user."""
        try:
            return super().resolve_command(ctx, args)
        except _USAGE_ERROR as error:
            name = args[0] if args else ""
            hint = command_hint(name, ctx.command_path or "wukong")
            if hint and self.get_command(ctx, name) is None:
                error.message = f"No such command {name!r}; {hint}"
            raise

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        aliases: dict[str, list[str]] = {}
        for alias, name in ALIASES.items():
            aliases.setdefault(name, []).append(alias)
        sections = []
        for title, names in SECTIONS:
            found = [(name, self.get_command(ctx, name)) for name in names]
            shown = [
                (", ".join([name, *aliases.get(name, [])]), command)
                for name, command in found
                if command is not None and not command.hidden
            ]
            sections.append((title, shown))
        # One first column for every section, so that the descriptions line up down the page.
        width = max(len(shown) for _, rows in sections for shown, _ in rows)
        for title, rows in sections:
            if rows:
                with formatter.section(title):
                    limit = formatter.width - width - 6
                    formatter.write_dl(
                        [(n.ljust(width), c.get_short_help_str(limit=limit)) for n, c in rows]
                    )


# typer >= 0.20 carries its own copy of click: the class its parser raises.
_USAGE_ERROR: Final[Any] = typer.BadParameter.__mro__[1]
