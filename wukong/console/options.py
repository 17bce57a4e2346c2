"""Shared flags, output and exit handling of the people's commands."""

from __future__ import annotations

import asyncio
import inspect
import re
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer
from typer.core import TyperCommand

from wukong.api._base import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from wukong.api.durations import format_duration, parse_duration
from wukong.api.names import MAX_LABEL_VALUE, MAX_WUKONG_NAME
from wukong.api.spec import MAX_GRACE_PERIOD_SECONDS
from wukong.console.errors import CliError, usage
from wukong.console.invocation import Ask, Cluster, Console, invoked_as
from wukong.console.output import DryRun, Output
from wukong.console.selector import BadSelector, check_selector
from wukong.console.values import completing, one_of

if TYPE_CHECKING:
    from wukong.console.flows import Writing

# Help as kubectl prints it: plain text, no boxes, -h and --help; a bug's traceback is plain
# too (bad input never reaches one: it is an `error:` line).
TYPER_STYLE: Final[dict[str, Any]] = {
    "rich_markup_mode": None,
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100},
}


class KubectlCommand(TyperCommand):
    """Help laid out as kubectl's: what it does, examples, options, then usage."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """A parse error names this command's help, not the program's."""
        try:
            return list(super().parse_args(ctx, self._pflag_values(ctx, args)))
        except _UsageError as error:
            if error.ctx is None:
                error.ctx = ctx
            raise

    def _pflag_values(self, ctx: Any, args: list[str]) -> list[str]:
        """kubectl and virtctl (pflag) take `--force=true`, `--wait=false` and `-A=false` for
        a boolean flag; click refused them, and `-A=false` (split as `-A false`) named a
        Wukong "false" (CLI audit, session 41). `=true` is the flag, `=false` leaves it
        out; `-X=true` of an option that takes a value is `-X true` (split_short_equals
        leaves those two words to this, which knows the command's flags). Up to `--`."""
        flags: dict[str, Any] = {
            opt: param
            for param in self.get_params(ctx)
            if param.param_type_name == "option" and getattr(param, "is_flag", False)
            for opt in param.opts
        }
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                return out + args[i:]
            name, equals, value = arg.partition("=")
            said = value.lower()
            if not (equals and name.startswith("-") and said in ("true", "false")):
                out.append(arg)
            elif name in flags:
                secondary = flags[name].secondary_opts
                if said == "true":
                    out.append(name)
                elif secondary:
                    out.append(secondary[0])
            elif len(name) == 2 and name[1].isalpha():
                out += [name, value]
            else:
                out.append(arg)
        return out

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Description, Examples (the epilog), Options, Usage. An example names the program
        as the user typed it (`kubectl wukong start web-1` under kubectl)."""
        self.format_help_text(ctx, formatter)
        if self.epilog:
            formatter.write_paragraph()
            formatter.write("Examples:\n")
            program = ctx.find_root().info_name or "wukong"
            for line in inspect.cleandoc(self.epilog).splitlines():
                if line.startswith("wukong "):
                    line = program + line.removeprefix("wukong")
                line = line.replace("ProxyCommand=wukong ", f"ProxyCommand={program} ")
                formatter.write(f"  {line}\n" if line else "\n")
        records = [
            record
            for param in self.get_params(ctx)
            if param.param_type_name == "option"
            and (record := param.get_help_record(ctx)) is not None
        ]
        if records:
            formatter.write_paragraph()
            formatter.write("Options:\n")
            with formatter.indentation():
                formatter.write_dl(records)
        words = [ctx.command_path]
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or str(param.name).upper()
                words.append(name if param.required else f"[{name}]")
        formatter.write_paragraph()
        formatter.write(f"Usage:\n  {' '.join(words)} [options]\n")


# typer >= 0.20 carries its own copy of click: patch the class its parser raises.
_UsageError: Final[Any] = typer.BadParameter.__mro__[1]


def _one_line(self: Any, file: IO[Any] | None = None) -> None:
    """A wrong command line in one line, as kubectl prints one (`error: ...`, then where to
    look), in click's words: `error: no such option: --x (see 'wukong stop --help')`."""
    command = self.ctx.command_path if self.ctx is not None else "wukong"
    message = self.format_message().replace("Value error, ", "").rstrip(".")
    message = message[:1].lower() + message[1:]
    typer.echo(f"error: {message} (see '{command} --help')", err=True, file=file)


_UsageError.show = _one_line


def _dns_name(text: str, pattern: str, limit: int, what: str, characters: str) -> str:
    if len(text) > limit or not re.fullmatch(pattern, text):
        raise typer.BadParameter(
            f"{text!r} is not a {what} name: {characters}, at most {limit} characters"
        )
    return text


def wukong_name(text: str) -> str:
    """NAME: only what the API server could hold as a Wukong (a DNS-1123 subdomain of up to
    63 characters), so an unset `$NAME` or a path never becomes part of a URL."""
    if not text:
        raise typer.BadParameter("the name is empty")
    if (hint := _spelled_otherwise(text)) is not None:
        raise typer.BadParameter(hint)
    rule = "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    return _dns_name(text, DNS_SUBDOMAIN_PATTERN, MAX_WUKONG_NAME, "Wukong", rule)


def _spelled_otherwise(text: str) -> str | None:
    """What to type instead of a target as virtctl, kubectl or OpenSSH users spell it
    (`vm/web-1`, `vm/web-1/demo`, `fedora@web-1`), or None. A refusal that only said "is
    not a Wukong name" left them guessing (CLI audit, session 44)."""
    user, at, name = text.rpartition("@")
    if at and re.fullmatch(r"[\w.-]+", user) and _a_name(name):
        return (
            f"{text!r}: the guest user goes only to ssh and scp ({text}, {text}:PATH); "
            f"here, the Wukong's NAME: {name}"
        )
    kind, slash, rest = text.partition("/")
    name, _, namespace = rest.partition("/")
    if not (slash and re.fullmatch(r"[a-z][a-z.]*", kind) and _a_name(name)):
        return None  # not a spelling: a path, say, said as any bad name is
    if namespace and not re.fullmatch(DNS_LABEL_PATTERN, namespace):
        return None
    if namespace:
        typed = f"{name} -n {namespace}"
    elif "." in name:  # virtctl's NAME.NAMESPACE, or a Wukong named with a dot
        base, _, suffix = name.rpartition(".")
        typed = f"{name}, or {base} -n {suffix} if {suffix} is its namespace"
    else:
        typed = name
    return f"{text!r}: wukong takes the Wukong's NAME, not TYPE/NAME: {typed}"


def _a_name(text: str) -> bool:
    return len(text) <= MAX_WUKONG_NAME and bool(re.fullmatch(DNS_SUBDOMAIN_PATTERN, text))


def ssh_target(text: str) -> str:
    """`[USER@]NAME`, as ssh and `scp`'s remote end take it: checked, returned whole."""
    user, at, name = text.rpartition("@")
    if at and not user:
        raise typer.BadParameter(f"{text!r}: the user before '@' is empty")
    wukong_name(name)
    return text


def namespace_name(text: str) -> str:
    """-n: a DNS-1123 label, as every namespace is."""
    rule = "lowercase letters, digits and '-'"
    return _dns_name(text, DNS_LABEL_PATTERN, MAX_LABEL_VALUE, "namespace", rule)


def label_selector(text: str) -> str:
    """-l: never empty. kubectl reads an empty selector as "everything", so a script's unset
    `-l "$SEL"` would stop or delete every Wukong in the namespace. And checked as the API
    server parses it, so a typo is a usage error (exit 2), not a refusal after connecting."""
    if not text.strip():
        raise typer.BadParameter("the selector is empty: select with e.g. -l tier=web")
    try:
        check_selector(text)
    except BadSelector as error:
        raise typer.BadParameter(f"{text!r} is not a label selector: {error}") from None
    return text


def snapshot_name(text: str) -> str:
    """--snapshot-name: a DNS-1123 label, as the CRD's `lifecycleAction.snapshotName` is,
    so a name the API server would refuse is a usage error before any request."""
    rule = "lowercase letters, digits and '-', starting and ending with a letter or digit"
    return _dns_name(text, DNS_LABEL_PATTERN, MAX_LABEL_VALUE, "snapshot", rule)


# How long a completion waits for the cluster before it offers no names.
COMPLETION_SECONDS: Final = 3.0


def complete_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """NAME completion (`wukong stop <TAB>`, `kubectl wukong stop <TAB>`): the Wukongs of the
    namespace the words so far name (-n, --context, --kubeconfig), as kubectl completes
    resource names. A name already on the line is not offered again. Nothing, and no
    message, when the cluster does not answer within COMPLETION_SECONDS: a completion
    must never print into the user's command line."""
    from wukong.console.flows import names  # the I/O, loaded only when completing

    params = ctx.params
    cluster = Cluster(params.get("kubeconfig"), params.get("context"), params.get("namespace"))
    given = params.get("name")
    taken = set(given) if isinstance(given, (list, tuple)) else set()
    return [name for name in _completing(names(cluster, incomplete)) if name not in taken]


def complete_namespaces(ctx: typer.Context, incomplete: str) -> list[str]:
    """-n completion: the cluster's namespaces, as kubectl's (none when the user may not list
    them, as kubectl offers none then)."""
    from wukong.console.flows import namespaces

    params = ctx.params
    cluster = Cluster(params.get("kubeconfig"), params.get("context"), None)
    return _completing(namespaces(cluster, incomplete))


def _completing(work: Coroutine[Any, Any, list[str]]) -> list[str]:
    """A completion's answer from the cluster: nothing on any failure or after
    COMPLETION_SECONDS, never a message in the user's line."""
    try:
        return asyncio.run(asyncio.wait_for(work, COMPLETION_SECONDS))
    except Exception:  # any failure: what the shell shows must stay the user's line
        return []


NameArg = Annotated[
    str,
    typer.Argument(
        help="name of the Wukong",
        show_default=False,
        metavar="NAME",
        parser=wukong_name,
        autocompletion=complete_names,
    ),
]
SshTarget = Annotated[
    str,
    typer.Argument(
        help="the Wukong, with the guest user as OpenSSH and scp take it (or -l)",
        show_default=False,
        metavar="[USER@]NAME",
        parser=ssh_target,
        autocompletion=complete_names,
    ),
]
DiskArg = Annotated[
    str, typer.Argument(help="name of the disk", show_default=False, metavar="DISK")
]
Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file(s)", metavar="PATH"),
]
Context = Annotated[
    str | None, typer.Option("--context", help="kubeconfig context", metavar="NAME")
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="namespace (default: the context's, else default)",
        metavar="NAME",
        parser=namespace_name,
        autocompletion=complete_namespaces,
    ),
]
OptionalNames = Annotated[
    list[str] | None,
    typer.Argument(
        help="names of the Wukongs (or -l)",
        show_default=False,
        metavar="NAME...",
        parser=wukong_name,
        autocompletion=complete_names,
    ),
]
Selector = Annotated[
    str | None,
    typer.Option(
        "--selector",
        "-l",
        help="label selector, e.g. tier=web,env!=prod",
        metavar="SELECTOR",
        show_default=False,
        parser=label_selector,
    ),
]
DryRunOpt = Annotated[
    DryRun,
    typer.Option(
        "--dry-run",
        help="client: print what would be sent; server: send with dryRun=All, store nothing",
        metavar="none|client|server",
        show_default=False,
    ),
]


def output_option(*formats: Output, help_text: str) -> Any:
    """-o of one command, taking only the formats it prints: one message names them
    (`'wide' is not one of 'json', 'yaml'`), where every command listed status's four and
    then refused some in other words (CLI audit, session 44, F16)."""
    return typer.Option(
        "--output",
        "-o",
        help=help_text,
        metavar="FORMAT",
        show_default=False,
        parser=one_of(*formats),
        autocompletion=completing(*formats),
    )


OutputOpt = Annotated[
    Output | None,
    output_option(
        Output.JSON, Output.YAML, help_text="with --dry-run=client: json or yaml (default: yaml)"
    ),
]
Wait = Annotated[bool, typer.Option("--wait", help="follow progress until done or failed")]


def duration(text: str | float) -> float:
    """A kubectl-style duration flag (`30`, `30s`, `5m`, `1h30m`)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def timeout_duration(text: str | float) -> float:
    """--timeout: a duration of at least one second."""
    seconds = duration(text)
    if seconds < 1:
        raise typer.BadParameter(f"{text!r} is under 1s")
    return seconds


def grace_duration(text: str) -> int:
    """--grace-period: whole seconds, 0 to MAX_GRACE_PERIOD_SECONDS."""
    seconds = duration(text)
    if seconds != int(seconds) or seconds > MAX_GRACE_PERIOD_SECONDS:
        raise typer.BadParameter(
            f"{text!r}: whole seconds from 0 to {format_duration(MAX_GRACE_PERIOD_SECONDS)}"
        )
    return int(seconds)


def _timeout(default: str) -> object:
    return typer.Option(
        "--timeout",
        parser=timeout_duration,
        metavar="DURATION",
        show_default=False,
        help=f"how long --wait may take (30s, 5m, 1h)  [default: {default}]",
    )


Timeout = Annotated[float | None, _timeout("5m")]
DetachTimeout = Annotated[float | None, _timeout("10m")]  # DETACH_WAIT
Force = Annotated[bool, typer.Option("--force", help="power off at once, no graceful shutdown")]
SnapshotName = Annotated[
    str | None,
    typer.Option(
        "--snapshot-name",
        metavar="NAME",
        parser=snapshot_name,
        help="snapshot: name the VirtualMachineSnapshot (default <wukong>-snapshot-<id>); "
        "restore: the one to restore",
    ),
]
GracePeriod = Annotated[
    int | None,
    typer.Option(
        "--grace-period",
        parser=grace_duration,
        metavar="DURATION",
        help="graceful shutdown before power-off (30s, 2m)",
    ),
]


DEFAULT_WAIT: Final = 300.0  # seconds: --wait without --timeout
# A detach of a disk the guest reports unmounted waits for a report made after it was asked:
# KubeVirt refreshes it every 5 minutes (the operator's --guest-report-interval).
DETACH_WAIT: Final = 600.0


def waiting(wait: bool, timeout: float | None, default: float = DEFAULT_WAIT) -> float | None:
    """How long --wait may follow (None: no wait). --timeout alone would be silently
    unused: it is refused, as `status --timeout` without -w is."""
    if timeout is not None and not wait:
        fail(usage("--timeout only bounds --wait"))
    if not wait:
        return None
    return default if timeout is None else timeout


def writing(
    dry_run: DryRun, output: Output | None, *, prints_result: bool = False, names: bool = False
) -> Writing:
    """How a writing verb writes, checked: -o says how a client dry run prints, and for a
    verb that `prints_result` (create, as `kubectl create -o yaml|json|name`) how the
    object the API server answered is printed; a verb that prints `names` (delete, as
    `kubectl delete -o name`) takes `-o name` however it writes."""
    from wukong.console.flows import Writing

    # Which formats: each command's -o takes only its own (output_option).
    if output is not None and dry_run is not DryRun.CLIENT and not prints_result:
        if not (names and output is Output.NAME):
            also = " (-o name goes without)" if names else ""
            fail(usage(f"-o/--output goes with --dry-run=client on this command{also}"))
    return Writing(dry_run, output)


def completion_script(shell: str) -> str:
    """The completion script typer generates, for the program as it was called."""
    from typer import _completion_shared as shared  # typer's only generator of scripts

    prog = invoked_as()
    variable = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
    if shell not in ("bash", "zsh", "fish", "powershell", "pwsh"):
        fail(usage(f"no completion for shell {shell!r}: use bash, zsh, fish or powershell"))
    return str(shared.get_completion_script(prog_name=prog, complete_var=variable, shell=shell))


def cluster_from(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """The cluster as the flags name it."""
    return Cluster(kubeconfig, context, namespace)


def console() -> Console:
    """Results to stdout, narration to stderr."""
    return Console(out=typer.echo, say=lambda line: typer.echo(line, err=True))


def run(work: Coroutine[Any, Any, int], *, writes: bool = True) -> NoReturn:
    """Run one command's coroutine; turn a CliError into `error: …` and its exit code.
    `writes`: the command may have written something a Ctrl-C does not take back."""
    try:
        code = asyncio.run(work)
    except CliError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(error.code) from None
    except KeyboardInterrupt:
        typer.echo(
            "interrupted (any request already written stands)" if writes else "interrupted",
            err=True,
        )
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def fail(error: CliError) -> NoReturn:
    """Print a usage or refusal error found before any request, and exit."""
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(error.code)


def read_text(path: str, flag: str) -> str:
    """The text of a file a flag names (`-`: stdin); one usage line when it cannot be read."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        fail(usage(f"{flag}: cannot read {path}: {reason.lower()}"))


def targets(names: list[str] | None, selector: str | None) -> list[str]:
    """NAMEs (one or more, as kubectl takes them) or -l, never both, never neither."""
    if names and selector is not None:
        fail(usage("a NAME and -l/--selector do not go together"))
    if not names and selector is None:
        fail(usage("name a Wukong, or select some with -l/--selector"))
    return list(dict.fromkeys(names or []))  # each once, in the order given


def keep_list(values: list[str] | None) -> list[str]:
    """--keep a --keep b and --keep a,b both name disks a and b."""
    return [part for value in values or [] for part in value.split(",") if part]


def asker(yes: bool, who: str, *, terminal: bool | None = None) -> Ask | None:
    """How `delete` confirms the deletion of `who` (`web-1`, `2 Wukongs (t1, t2)`): not at
    all (--yes), on the terminal, or never (no terminal)."""
    # Without a terminal (CI, pipes) nobody can answer: refuse rather than hang.
    # `terminal` None means: look at stdin.
    if yes:
        return None
    if terminal is None:
        terminal = sys.stdin is not None and sys.stdin.isatty()
    if not terminal:

        def refuse(_question: str) -> bool:
            """Refuse: nobody can answer."""
            raise CliError(
                f"refusing to delete {who} without confirmation: stdin is not a terminal; "
                "pass --yes"
            )

        return refuse
    return _confirm


def _confirm(question: str) -> bool:
    """Ask on the terminal; Ctrl-C and Ctrl-D answer no. The question is asked inside the
    command's event loop, whose SIGINT handler only cancels the task and lets the terminal
    read go on (Ctrl-C did nothing until a second one): Python's own handler is put back
    while the question waits."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return typer.confirm(question, default=False, err=True)
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C or Ctrl-D at the prompt
        typer.echo("", err=True)  # the answer's line was never ended
        return False
    finally:
        signal.signal(signal.SIGINT, previous)
