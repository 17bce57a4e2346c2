"""`wukong` (also `kubectl wukong`): run the operator, print the FSM or CRD, run the demo,
and the commands people use on their Wukongs (`wukong.console`)."""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

import typer
from pydantic import ValidationError
from typer._completion_classes import completion_init

from wukong.api.durations import format_duration
from wukong.console.access import app as access_app
from wukong.console.agent import app as agent_app
from wukong.console.commands import app as console_app
from wukong.console.invocation import invoked_as
from wukong.console.keys import app as credentials_app
from wukong.console.options import TYPER_STYLE, KubectlCommand
from wukong.console.overview import SectionedGroup
from wukong.console.verbs import app as verbs_app
from wukong.settings import DURATIONS, Settings

app = typer.Typer(
    cls=SectionedGroup,
    help="Wukong: virtual machines on KubeVirt from one resource.",
    invoke_without_command=True,
    # Not typer's --install-completion/--show-completion: the first edits ~/.bashrc and
    # writes ~/.bash_completions/ (CLI audit, session 44); `wukong completion SHELL` prints
    # the script, as `kubectl completion` does, and the user decides where it goes.
    add_completion=False,
    **TYPER_STYLE,
)
# What those flags also did: register typer's shells with click, which `wukong <TAB>`
# (the _WUKONG_COMPLETE variable the printed script sets) needs.
completion_init()
app.add_typer(verbs_app)  # no name: start, stop, migrate… are top-level commands
app.add_typer(console_app)  # status, create, delete…
app.add_typer(access_app)  # console, vnc, ssh
app.add_typer(agent_app)  # guestosinfo, userlist, fslist
app.add_typer(credentials_app)  # credentials add-ssh-key|remove-ssh-key


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Bare `wukong` prints its help and exits 0, as bare `kubectl` does."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@app.command("help", cls=KubectlCommand)
def help_(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(help="a command, or a group's", metavar="COMMAND...", show_default=False),
    ] = None,
) -> None:
    """Help about any command (`wukong help stop` is `wukong stop --help`; `wukong help
    credentials add-ssh-key`, as `kubectl help config view`)."""
    root = ctx.find_root()
    found: Any = root.command
    shown = root
    for at, word in enumerate(command or []):
        found = found.get_command(shown, word) if hasattr(found, "get_command") else None
        if found is None:
            typed = " ".join((command or [])[: at + 1])
            typer.echo(
                f"error: unknown command {typed!r} (see '{root.info_name} --help')", err=True
            )
            raise typer.Exit(2)
        shown = found.make_context(word, ["--help"], parent=shown, resilient_parsing=True)
    typer.echo(found.get_help(shown))


# Flags whose names are not `--<field>` and variables that are not `WUKONG_<FIELD>`.
_ENVVARS: Final = {"kubeconfig": "KUBECONFIG"}


def _run_options() -> list[inspect.Parameter]:
    """One typer option per Settings field: the flag, its variable and its help come from the
    model, and every value reaches Settings as text, so pydantic alone validates it."""
    parameters = []
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        envvar = _ENVVARS.get(name, f"WUKONG_{name.upper()}")
        default = field.default
        if field.annotation is bool:
            option = typer.Option(f"{flag}/--no-{flag[2:]}", envvar=envvar, help=field.description)
            annotation: Any = bool
        else:
            shown = "" if default is None else f" [default: {_shown(name, default)}]"
            option = typer.Option(
                flag,
                envvar=envvar,
                help=f"{field.description}{shown}",
                show_default=False,
                metavar=name.split("_")[-1].upper(),
            )
            annotation, default = str | None, None
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[annotation, option],
            )
        )
    return parameters


def _shown(name: str, value: object) -> str:
    """A default as its flag takes it: a duration as one (`15s`), a rate as a number (10.0
    shown as "10s" was refused by --retry-qps: CLI audit, session 44)."""
    if name in DURATIONS and isinstance(value, int | float):
        return format_duration(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_from(given: dict[str, Any]) -> Settings:
    """Settings from `run`'s flags; a bad value is one `error:` line and exit code 2."""
    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as error:
        problem = error.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        where = f"--{field.replace('_', '-')}: " if field else ""
        typer.echo(f"error: {where}{message}", err=True)
        raise typer.Exit(2) from None


def run(**given: Any) -> None:
    """Run the operator until SIGTERM/SIGINT."""
    from wukong.runtime.logs import configure_logging

    settings = settings_from(given)
    configure_logging(settings.log_format, settings.level)
    code = asyncio.run(_run(settings))
    raise typer.Exit(code)


run.__signature__ = inspect.Signature(_run_options(), return_annotation=None)  # type: ignore[attr-defined]
app.command(name="run", cls=KubectlCommand)(run)


async def _run(settings: Settings) -> int:
    from wukong.adapters.client import ConfigError
    from wukong.controller import Operator, api_client
    from wukong.runtime.heap import freeze_heap, small_tls_reads, tune_collector

    small_tls_reads()  # before the first connection: each keeps its buffer (runtime/heap.py)
    try:
        api = await api_client(settings)
    except ConfigError as error:
        # One line, in the chosen log format (JSON in a pod), and no traceback.
        logging.getLogger("wukong.cli").error("%s", error.message)
        return 2
    tune_collector()  # the operator's process: its heap is watch caches (runtime/heap.py)
    async with api:
        operator = Operator(settings, api)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, operator.stop)
        try:
            await operator.run(on_synced=freeze_heap)
        except OSError as error:  # the probe or metrics port is taken, or not ours to bind
            logging.getLogger("wukong.cli").error("cannot listen: %s", error.strerror or error)
            return 2
    return 1 if operator.lost_lease else 0


@app.command(cls=KubectlCommand)
def fsm() -> None:
    """Print the state machine as a Mermaid diagram."""
    from wukong.fsm import mermaid

    typer.echo(mermaid())


@app.command(cls=KubectlCommand)
def crd() -> None:
    """Print the Wukong CustomResourceDefinition (YAML)."""
    from wukong.api.crd import render_crd

    typer.echo(render_crd(), nl=False)


@app.command(cls=KubectlCommand)
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="keep running after the demo until Ctrl-C")
    ] = False,
    kubevirt: Annotated[
        str,
        typer.Option(
            help="real: KubeVirt's own virt-api and virt-controller (built from source, cached); "
            "sim: the pure simulator",
            metavar="real|sim",
        ),
    ] = "real",
) -> None:
    """Local control plane + KubeVirt + operator; apply examples/ and watch."""
    try:
        from wukong.demo import main as demo_main
    except ModuleNotFoundError as error:  # the operator image ships without wukong.testing
        typer.echo(
            f"error: the demo needs {error.name}: pip install 'wukong-operator[testing]'", err=True
        )
        raise typer.Exit(2) from None

    if kubevirt not in ("real", "sim"):
        typer.echo(f"error: --kubevirt must be real or sim, not {kubevirt!r}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(asyncio.run(demo_main(keep=keep, real_kubevirt=kubevirt == "real")))


_GLOBAL_FLAGS: Final = ("-n", "--namespace", "--context", "--kubeconfig")
GROUPS: Final = ("credentials",)  # commands whose commands take the flags
Flags = Mapping[str, bool]
"""A command's options, each with whether it takes a value (`-o`: True, `--wait`: False)."""


def split_short_equals(args: list[str]) -> list[str]:
    """kubectl (pflag) reads `-o=yaml`, `-n=demo` and `-l=app=web` as the flag and its value;
    click would take the value to be "=yaml". Spelled out as `-o yaml` up to `--` (after it,
    the words are another program's: `wukong ssh NAME -- ...`)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if arg[3:].lower() in ("true", "false"):
            out.append(arg)  # a boolean flag's pflag spelling: KubectlCommand reads it
        elif len(arg) > 3 and arg[0] == "-" and arg[1].isalpha() and arg[2] == "=":
            out += [arg[:2], arg[3:]]
        else:
            out.append(arg)
    return out


def hoist_global_flags(
    args: list[str], takes: Callable[[list[str]], Flags | None] | None = None
) -> list[str]:
    """kubectl takes -n, --context and --kubeconfig anywhere on the line (`kubectl -n demo
    get pods`, `kubectl version -n demo`; `kubectl wukong -n demo status` hands the plugin
    `-n demo status`). Those before the command move to just after it, where each command
    reads them. `takes(words)`: the options the command `words` takes (None: no command);
    then, anywhere up to `--`, one the command does not take is dropped (`wukong version -n
    demo`, as kubectl ignores a global flag where it means nothing), `-n` is `--namespace`
    where only that is taken (`run`), and the command's own flag of that name stays as it
    is. Global flags and no command: they go, and `wukong -n demo` prints help, as kubectl."""
    end = args.index("--") if "--" in args else len(args)
    words, beyond = args[:end], args[end:]
    leading, rest = _globals_first(words)
    if not rest or rest[0].startswith("-"):
        return [*rest, *beyond] if leading else list(args)
    path, rest = rest[:1], rest[1:]
    if path[0] in GROUPS:  # a group's command is one word further (`credentials add-ssh-key`)
        more, rest = _globals_first(rest)
        leading += more
        if rest and not rest[0].startswith("-"):
            path, rest = [*path, rest[0]], rest[1:]
    known = takes(path) if takes is not None else None
    if known is None:
        return [*path, *(word for group in leading for word in group), *rest, *beyond]
    kept = [word for group in leading for word in _taken(group, known)]
    return [*path, *kept, *_after_command(rest, known), *beyond]


def _global_span(words: list[str], at: int) -> int:
    """How many words the global flag at `at` spans (`-n demo`: 2; `-ndemo`,
    `--namespace=demo`: 1), or 0: not one, or its value is missing (click says so)."""
    word = words[at]
    flag, equals, _ = word.partition("=")
    if flag in _GLOBAL_FLAGS and equals:
        return 1
    if flag in _GLOBAL_FLAGS:
        return 2 if at + 1 < len(words) else 0
    return 1 if word.startswith("-n") and len(word) > 2 and not word.startswith("--") else 0


def _globals_first(words: list[str]) -> tuple[list[list[str]], list[str]]:
    """The global flags that open `words` (each with its value), and the words after them."""
    leading: list[list[str]] = []
    at = 0
    while at < len(words) and (span := _global_span(words, at)):
        leading.append(words[at : at + span])
        at += span
    return leading, words[at:]


def _after_command(words: list[str], known: Flags) -> list[str]:
    """The words after the command, each global flag as the command takes it; the value of
    one of the command's own options is never read as a flag (`ssh web-1 -l -n`)."""
    out: list[str] = []
    at = 0
    while at < len(words):
        if span := _global_span(words, at):
            out += _taken(words[at : at + span], known)
        else:
            span = 2 if _value_follows(words[at], known) and at + 1 < len(words) else 1
            out += words[at : at + span]
        at += span
    return out


def _value_follows(word: str, known: Flags) -> bool:
    """Whether `word` is an option of the command whose value is the next word: `--tail`,
    `-o`, `-Ao` (as click reads a cluster of short flags), not `--tail=5`, `-oyaml`, `-A`."""
    if word.startswith("--"):
        return "=" not in word and known.get(word, False)
    if not word.startswith("-") or len(word) < 2:
        return False
    for at, letter in enumerate(word[1:], start=2):
        if known.get("-" + letter, False):
            return at == len(word)  # its value is the rest of the word, if any
    return False


def _taken(group: list[str], known: Flags) -> list[str]:
    """One global flag (and its value) as the command takes it: as it is, as `--namespace`,
    or not at all."""
    first = group[0]
    flag = "-n" if first.startswith("-n") and not first.startswith("--") else first
    flag = flag.partition("=")[0]
    if flag in known:
        return group
    if flag == "-n" and "--namespace" in known:
        value = group[1:] if len(group) > 1 else [first.removeprefix("-n").removeprefix("=")]
        return ["--namespace", *value]
    return []


def command_flags(words: list[str]) -> Flags | None:
    """The options the command `words` (`status`, `credentials add-ssh-key`) takes, each with
    whether it takes a value; None for a word that is no command (click then says so)."""
    command: Any = typer.main.get_command(app)
    for word in words:
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            return None
    flags: dict[str, bool] = {}
    for param in command.params:
        if param.param_type_name != "option":
            continue
        value = not (param.is_flag or param.count)
        flags |= dict.fromkeys(param.opts, value) | dict.fromkeys(param.secondary_opts, False)
    return flags


# As kubectl's plugin the program is `kubectl wukong` to the user; its shell completion
# reads this variable (the one `kubectl-wukong completion bash` sets).
PLUGIN_NAME: Final = "kubectl wukong"
PLUGIN_COMPLETE_VAR: Final = "_KUBECTL_WUKONG_COMPLETE"


def kubectl_completions(words: list[str]) -> list[str]:
    """What `kubectl wukong <TAB>` offers: the commands, flags and Wukong names that fit
    `words`, the words after `wukong` (the last one is the word being completed, "" for a
    new one), read as `main` reads a command line."""
    # typer vendors click; its bash class is the concrete one (the others only format).
    from typer._completion_classes import BashComplete

    *given, incomplete = words or [""]
    args = hoist_global_flags(split_short_equals(given))
    command = typer.main.get_command(app)
    complete = BashComplete(command, {}, PLUGIN_NAME, PLUGIN_COMPLETE_VAR)
    return [item.value for item in complete.get_completions(args, incomplete)]


def complete_for_kubectl() -> None:
    """`kubectl_complete-wukong`: kubectl (>= 1.26) runs it for `kubectl wukong <TAB>` with the
    words after `wukong` and reads one candidate a line, then cobra's directive (`:4`: no
    file names), as it does for every plugin that ships such a program."""
    import sys

    for value in kubectl_completions(sys.argv[1:]):
        typer.echo(value)
    typer.echo(":4")


def main() -> None:
    """Console-script entry point. A Ctrl-C before a command has begun (while Python imports)
    ends it as one started would, without a traceback."""
    import sys

    # Called as kubectl's plugin, it names itself as the user typed it (`Usage: kubectl
    # wukong status …`, `see 'kubectl wukong status --help'`), as kubectl plugins do.
    plugin = invoked_as() == "kubectl-wukong"
    named = {"prog_name": PLUGIN_NAME, "complete_var": PLUGIN_COMPLETE_VAR}
    try:
        args = hoist_global_flags(split_short_equals(sys.argv[1:]), command_flags)
        app(args=args, **(named if plugin else {}))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except OSError as error:  # the output cannot be written (a full disk): one line
        if isinstance(error, ConnectionError) or error.errno not in _OUTPUT_ERRNOS:
            raise
        _unwritable_output()
        reason = (error.strerror or str(error)).lower()
        typer.echo(f"error: cannot write the output: {reason}", err=True)
        raise SystemExit(1) from None


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EBADF})


def _unwritable_output() -> None:
    """Send what stdout still buffers to /dev/null: flushed at exit, it would fail again
    with a second traceback (Python's own advice for a closed pipe)."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
