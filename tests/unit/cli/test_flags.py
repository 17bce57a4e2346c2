"""kubectl's conventions on the command line: help, durations, -o, --dry-run, aliases,
completion and version; nothing here needs a cluster (tests/integration/test_cli_flags.py
runs each flag against the API server)."""

from __future__ import annotations

import json
import re

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tests.unit.cli.objects import NOW, wukong
from wukong.api.durations import format_duration, parse_duration
from wukong.cli import app
from wukong.console.output import Output, listing, name_of, patch_text, watch_line, widths

runner = CliRunner()
COMMANDS = (
    "start", "stop", "restart", "suspend", "resume", "pause", "unpause", "status", "describe",
    "attach", "addvolume", "detach", "removevolume", "delete", "version", "completion", "run",
)  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_reads_like_kubectl(command: str) -> None:
    result = runner.invoke(app, [command, "-h"], prog_name="wukong")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "<bool>" not in text and "<str>" not in text and "{" not in text.split("Usage:")[-1]
    assert "╭" not in text  # no rich boxes
    assert "\nOptions:\n" in text and text.rstrip().splitlines()[-2] == "Usage:"
    assert text.rstrip().splitlines()[-1].startswith(f"  wukong {command}")


def test_restore_offers_what_it_takes_one_name_and_no_selector() -> None:
    """`restore --help` offered `[NAME...]` and `-l`, which every use refused: a snapshot is of
    one Wukong (CLI audit, session 48)."""
    text = runner.invoke(app, ["restore", "-h"], prog_name="wukong").stdout
    assert text.rstrip().splitlines()[-1] == "  wukong restore NAME [options]"
    assert "--selector" not in text and "-l tier=web" not in text
    assert "wukong restore web-1 --snapshot-name s1 --wait" in text
    for argv in (["web-1", "web-2"], ["-l", "tier=web"], []):
        result = runner.invoke(app, ["restore", *argv, "--snapshot-name", "s1"])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1


def _every_command() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        paths += [[name, sub] for sub in subs] if subs else [[name]]
    return paths


@pytest.mark.parametrize("path", _every_command(), ids=" ".join)
def test_help_shows_what_to_type_not_clicks_own_metavars(path: list[str]) -> None:
    """`vnc --port <int range>`, `--address <str>`, `[x>=-1]`, `[1<=x<=65535]` and `expose
    --type <clusterip|…>` beside `[default: ClusterIP]` (CLI audit, session 44, F12)."""
    text = runner.invoke(app, [*path, "--help"], prog_name="wukong").stdout
    options = text.split("\nOptions:\n")[1].split("\nUsage:")[0]
    flags = [line.split("  ")[1] for line in options.splitlines() if line.startswith("  -")]
    assert flags and not [flag for flag in flags if "<" in flag], flags
    assert not re.search(r"x?[<>]=x?|x[<>]|\[default: no-", options), options


def test_a_choice_is_shown_as_it_is_typed_and_defaulted() -> None:
    text = " ".join(runner.invoke(app, ["expose", "--help"]).stdout.split())
    assert "--type ClusterIP|NodePort|LoadBalancer How the Service is reached. [default: C" in text
    assert "--protocol TCP|UDP|SCTP The port's protocol. [default: TCP]" in text
    bad = runner.invoke(app, ["expose", "web-1", "--port", "80", "--type", "External"])
    assert "'External' is not one of 'ClusterIP', 'NodePort', 'LoadBalancer'" in bad.stderr


@pytest.mark.parametrize(
    ("words", "same_as"),
    [
        (["credentials", "add-ssh-key"], ["credentials", "add-ssh-key", "--help"]),
        (["credentials"], ["credentials", "--help"]),
        (["stop"], ["stop", "--help"]),
        ([], ["--help"]),
    ],
)
def test_help_takes_a_command_path_as_kubectl_help_does(
    words: list[str], same_as: list[str]
) -> None:
    """`kubectl help config view` works; `wukong help credentials add-ssh-key` said
    "unexpected extra argument(s)" (CLI audit, session 44, F12)."""
    helped = runner.invoke(app, ["help", *words], prog_name="wukong")
    assert helped.exit_code == 0, helped.output
    assert helped.stdout == runner.invoke(app, same_as, prog_name="wukong").stdout


def test_help_names_the_words_it_does_not_know() -> None:
    unknown = runner.invoke(app, ["help", "credentials", "bogus"], prog_name="wukong")
    assert unknown.exit_code == 2
    assert unknown.stderr == "error: unknown command 'credentials bogus' (see 'wukong --help')\n"


def test_a_group_of_commands_has_the_layout_of_every_other_help() -> None:
    """`credentials --help` opened with click's `Usage: wukong credentials [OPTIONS] COMMAND
    [ARGS]...`; now as `wukong --help`: description, commands, options, then usage."""
    text = runner.invoke(app, ["credentials", "--help"], prog_name="wukong").stdout
    assert not text.startswith("Usage") and "[OPTIONS]" not in text
    assert text.index("Commands:") < text.index("Options:") < text.index("Usage:")
    assert text.rstrip().splitlines()[-3:] == [
        "  wukong credentials COMMAND [options]",
        "",
        'Use "wukong credentials <command> --help" for more about a command.',
    ]


@pytest.mark.parametrize(
    ("alias", "verb"),
    [
        ("pause", "suspend"),
        ("unpause", "resume"),
        ("addvolume", "attach"),
        ("removevolume", "detach"),
    ],
)
def test_virtctl_verbs_are_aliases(alias: str, verb: str) -> None:
    listed = runner.invoke(app, ["--help"]).stdout
    assert alias in listed
    text = runner.invoke(app, [alias, "-h"]).stdout
    assert f"Alias of {verb}" in " ".join(text.split())
    same = runner.invoke(app, [verb, "-h"]).stdout
    options = lambda t: t.split("Options:")[1].split("Usage:")[0]  # noqa: E731
    assert options(text) == options(same)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25)],
)
def test_durations_are_read_as_kubectl_reads_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param(".5s", 0.5, id="no-leading-digit"),
        pytest.param("+5s", 5.0, id="plus"),
        pytest.param("1us", 1e-6, id="us"),
        pytest.param("1µs", 1e-6, id="micro-sign"),
        pytest.param("1μs", 1e-6, id="greek-mu"),
        pytest.param("30m1h", 5400.0, id="any-order"),
        pytest.param("1s1s", 2.0, id="a-unit-twice"),
        pytest.param("1.s", 1.0, id="point-without-fraction"),
        pytest.param("1500000ns", 0.0015, id="ns"),
        pytest.param("-0", 0.0, id="minus-zero"),
        pytest.param(".5", 0.5, id="bare-fraction-is-seconds"),
        pytest.param("2562047h47m16.854775807s", (2**63 - 1) / 1e9, id="longest"),
    ],
)
def test_every_duration_go_takes_is_taken(text: str, seconds: float) -> None:
    """docs/cli.md says the durations are Go's: `.5s`, `+5s`, `1us` and `30m1h` were refused
    as "not a duration" (CLI audit, session 44, F14)."""
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        pytest.param("0", 0, id="zero-without-unit"),
        pytest.param("-1.5h", -5_400_000_000_000, id="negative"),
        pytest.param("1h0.000000001s", 3_600_000_000_001, id="nanosecond-exact"),
        pytest.param("0.1ns", 0, id="fraction-of-a-nanosecond"),
        pytest.param("-2562047h47m16.854775808s", -(2**63), id="shortest"),
        pytest.param("1.00000000000000000000000001s", 1_000_000_000, id="long-fraction"),
    ],
)
def test_go_durations_are_exact_to_the_nanosecond(text: str, nanoseconds: int) -> None:
    """The same integer Go's time.ParseDuration gives (checked against Go 1.x on 25,000
    generated strings when written)."""
    from wukong.api.durations import go_duration

    assert go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    "text",
    [" 5s", "5s ", "", "1", "+", ".s", "-.s", "5 s", "1e3s", "5sec", "2562047h47m16.854775808s"],
)
def test_what_go_refuses_is_no_go_duration(text: str) -> None:
    """Go refuses spaces, an empty string and a number without a unit (but "0"); `' 5s'`
    was taken (stripped) by parse_duration."""
    from wukong.api.durations import go_duration

    with pytest.raises(ValueError):
        go_duration(text)


def test_durations_print_short() -> None:
    assert [format_duration(s) for s in (300, 5400, 45, 1.5)] == ["5m", "1h30m", "45s", "1.5s"]


@pytest.mark.parametrize(
    "text", ["5x", "m5", "", "-3", " 5s", "5s ", "٣s", "٣", "-5s", "1h-5m", "99999999999999999999"]
)
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["stop", "web-1", "-l", "tier=web"], "do not go together", id="name-and-l"),
        pytest.param(["delete"], "select some with -l", id="neither"),
        pytest.param(["stop", "web-1", "-o", "yaml"], "goes with --dry-run=client", id="o-alone"),
        pytest.param(
            ["stop", "web-1", "--dry-run=client", "-o", "wide"],
            "'wide' is not one of 'json', 'yaml'",
            id="o-wide",
        ),
        pytest.param(["stop", "web-1", "--dry-run=maybe"], "--dry-run", id="bad-dry-run"),
        pytest.param(["status", "-o", "table"], "--output", id="bad-output"),
        pytest.param(["status", "--timeout", "5s"], "only bounds -w", id="timeout-without-w"),
        pytest.param(["completion", "tcsh"], "no completion for shell", id="bad-shell"),
    ],
)
def test_flag_mistakes_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["create", "web-1", "--cpu", "0"], "'0' is not a vCPU count from 1 to 2147483647"),
        (["resize", "web-1", "--cpu", "0"], "'0' is not a vCPU count from 1 to 2147483647"),
        (["create", "web-1", "--cpu", "1.5"], "'1.5' is not an integer"),
        (["resize", "web-1", "--cpu", "1.5"], "'1.5' is not an integer"),
        (["vnc", "web-1", "--port", "x"], "'x' is not an integer"),
        (["vnc", "web-1", "--port", "70000"], "'70000' is not a port from 0 to 65535"),
        (["expose", "web-1", "--port", "x"], "'x' is not an integer"),
        (["expose", "web-1", "--port", "0"], "'0' is not a port from 1 to 65535"),
        (["expose", "web-1", "--port", "80", "--target-port", "http"], "'http' is not an int"),
        (["logs", "web-1", "--tail", "x"], "'x' is not an integer"),
        (["logs", "web-1", "--tail", "-2"], "'-2' is not a number of lines: -1 (all of them)"),
        (["logs", "web-1", "--tail", "٣"], "'٣' is not an integer"),
    ],
)
def test_the_same_flag_is_refused_in_the_same_words_on_every_command(
    args: list[str], said: str
) -> None:
    """`create --cpu 0` said pydantic's "Input should be greater than or equal to 1" and
    `resize --cpu 0` "0 is not a vCPU count"; `--port x` said "Input should be a valid
    integer, unable to parse string as an integer" (CLI audit, session 44, F17)."""
    result = runner.invoke(app, args, prog_name="wukong")
    assert result.exit_code == 2, result.output
    flag = args[-2]
    assert result.stderr.startswith(f"error: invalid value for '{flag}': {said}")
    assert result.stderr.count("\n") == 1 and "Input should" not in result.stderr


@pytest.mark.parametrize(
    ("command", "formats"),
    [
        (["status"], "'json', 'yaml', 'wide', 'name'"),
        (["create", "web-1"], "'json', 'yaml', 'name'"),
        (["create", "web-1", "--dry-run=client"], "'json', 'yaml', 'name'"),
        (["version"], "'json', 'yaml'"),
        (["stop", "web-1", "--dry-run=client"], "'json', 'yaml'"),
        (["delete", "web-1", "--dry-run=client"], "'json', 'yaml', 'name'"),
        (["resize", "web-1", "--cpu", "2", "--dry-run=client"], "'json', 'yaml'"),
        (["expose", "web-1", "--port", "80", "--dry-run=client"], "'json', 'yaml'"),
        (["fslist", "web-1"], "'json', 'yaml'"),
    ],
)
def test_o_is_refused_in_one_message_naming_only_the_commands_formats(
    command: list[str], formats: str
) -> None:
    """`create -o bogus` listed status's four formats, then `-o wide` got a second message
    of its own (CLI audit, session 44, F16): a format the command does not print, known to
    another command or to none, is one message listing what this one prints."""
    said = set()
    for wrong in ("bogus", "wide", "name", "table"):
        if f"'{wrong}'" in formats:
            continue
        result = runner.invoke(app, [*command, "-o", wrong], prog_name="wukong")
        assert result.exit_code == 2, result.output
        said.add(result.stderr.replace(repr(wrong), "FORMAT"))
    assert said == {
        f"error: invalid value for '--output' / '-o': FORMAT is not one of {formats} "
        f"(see 'wukong {command[0]} --help')\n"
    }


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script(shell: str) -> None:
    result = runner.invoke(app, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_WUKONG_COMPLETE" in result.stdout


def test_version_client_needs_no_cluster() -> None:
    from wukong import __version__

    assert runner.invoke(app, ["version", "--client"]).stdout == f"Client Version: {__version__}\n"
    out = runner.invoke(app, ["version", "--client", "-o", "json"]).stdout
    assert json.loads(out) == {"clientVersion": __version__}


def test_output_formats_of_a_list() -> None:
    items = [wukong("b", cpu=2, memory="2Gi"), wukong("a")]
    assert listing(items, NOW, Output.NAME, namespaces=False).splitlines() == [
        "wukong.vm.novasphere.dev/b",
        "wukong.vm.novasphere.dev/a",
    ]
    assert name_of(items[1]) == "wukong.vm.novasphere.dev/a"
    doc = yaml.safe_load(listing(items, NOW, Output.YAML, namespaces=False))
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == ["b", "a"]
    assert json.loads(listing(items, NOW, Output.JSON, namespaces=False)) == doc
    wide = listing(items, NOW, Output.WIDE, namespaces=True).splitlines()
    assert wide[0].split()[0] == "NAMESPACE" and wide[0].split()[-3:] == ["CPU", "MEMORY", "AGE"]
    assert wide[1].split()[1] == "a" and wide[2].split()[-3:] == ["2", "2Gi", "1h"]


def test_watch_lines_line_up_under_the_table() -> None:
    items = [wukong("web-1")]
    table = listing(items, NOW, None, namespaces=False).splitlines()
    sizes = widths(items, NOW, None, namespaces=False)
    line = watch_line(wukong("web-1"), NOW, None, namespaces=False, widths=sizes)
    assert line == table[1]


def test_a_client_dry_run_prints_the_patch_as_a_document_of_its_own() -> None:
    assert yaml.safe_load(patch_text({"spec": {"x": 1}}, None)) == {"spec": {"x": 1}}
    assert json.loads(patch_text({"a": 1}, Output.JSON)) == {"a": 1}
    several = "\n".join(patch_text({"spec": {"n": n}}, Output.YAML) for n in (1, 2))
    assert list(yaml.safe_load_all(several)) == [{"spec": {"n": 1}}, {"spec": {"n": 2}}]


@pytest.mark.parametrize(
    ("given", "run"),
    [
        (["-n", "demo", "status"], ["status", "-n", "demo"]),
        (["--namespace=demo", "stop", "w"], ["stop", "--namespace=demo", "w"]),
        (["-ndemo", "status", "-w"], ["status", "-ndemo", "-w"]),
        (
            ["--context", "c", "-n", "d", "describe", "x"],
            ["describe", "--context", "c", "-n", "d", "x"],
        ),
        (["status", "-n", "x"], ["status", "-n", "x"]),  # already after the verb
        (["-n", "demo"], []),  # no verb: help, as `kubectl -n demo` (CLI audit s44, F15)
        (["-n", "demo", "--help"], ["--help"]),
        (["--bogus", "status"], ["--bogus", "status"]),
        (  # a group's verb is its second word
            ["-n", "demo", "credentials", "add-ssh-key", "w"],
            ["credentials", "add-ssh-key", "-n", "demo", "w"],
        ),
        (["-n", "demo", "credentials"], ["credentials", "-n", "demo"]),
    ],
)
def test_kubectl_global_flags_before_the_verb_are_read(given: list[str], run: list[str]) -> None:
    """`kubectl wukong -n demo status` hands the plugin `-n demo status`."""
    from wukong.cli import hoist_global_flags

    assert hoist_global_flags(given) == run


@pytest.mark.parametrize(
    ("given", "run"),
    [
        (["-n", "demo", "version", "--client"], ["version", "--client"]),
        (["-n", "demo", "--context", "c", "version"], ["version", "--context", "c"]),
        (["-ndemo", "fsm"], ["fsm"]),
        (["-n", "demo", "run"], ["run", "--namespace", "demo"]),
        (["-n=demo", "run"], ["run", "--namespace", "demo"]),
        (["-n", "demo", "status", "w"], ["status", "-n", "demo", "w"]),
        (["-n", "demo", "bogus"], ["bogus", "-n", "demo"]),  # click names the bad command
        (["-n", "demo", "credentials"], ["credentials"]),  # the group takes none
    ],
)
def test_global_flags_a_command_does_not_take_are_dropped(given: list[str], run: list[str]) -> None:
    """`kubectl -n demo version` works; `wukong -n demo version` said "no such option: -n"
    (CLI audit, session 41). A flag the command does not take is dropped, and `-n` is
    `--namespace` where only that is taken."""
    from wukong.cli import command_flags, hoist_global_flags, split_short_equals

    assert hoist_global_flags(split_short_equals(given), command_flags) == run


@pytest.mark.parametrize(
    ("given", "run"),
    [
        pytest.param(["version", "-n", "demo"], ["version"], id="after-a-command-without-it"),
        pytest.param(["version", "--client", "-ndemo"], ["version", "--client"], id="-ndemo"),
        pytest.param(["version", "--namespace=demo", "-o", "json"], ["version", "-o", "json"]),
        pytest.param(
            ["version", "-n", "demo", "--context", "c"], ["version", "--context", "c"], id="kept"
        ),
        pytest.param(["fsm", "--kubeconfig", "k"], ["fsm"], id="fsm"),
        pytest.param(["run", "-n", "demo"], ["run", "--namespace", "demo"], id="run-namespace"),
        pytest.param(["status", "w", "-n", "demo"], ["status", "w", "-n", "demo"], id="taken"),
        pytest.param(
            ["credentials", "-n", "demo", "add-ssh-key", "w"],
            ["credentials", "add-ssh-key", "-n", "demo", "w"],
            id="between-group-and-command",
        ),
        pytest.param(
            ["version", "-o", "-n", "demo"], ["version", "-o", "-n", "demo"], id="o-takes-n"
        ),
        pytest.param(["version", "-ojson", "-n", "d"], ["version", "-ojson"], id="attached"),
        pytest.param(
            ["ssh", "w", "--", "-n", "x"], ["ssh", "w", "--", "-n", "x"], id="after-dashes"
        ),
        pytest.param(
            ["version", "--", "-n", "x"], ["version", "--", "-n", "x"], id="dashes-unread"
        ),
        pytest.param(["version", "-n"], ["version", "-n"], id="no-value-click-says-so"),
        pytest.param(["-n", "demo", "version", "-n", "x"], ["version"], id="both-sides"),
    ],
)
def test_global_flags_after_the_command_are_read_as_before_it(
    given: list[str], run: list[str]
) -> None:
    """kubectl takes its global flags anywhere: `wukong version -n demo` said "no such
    option: -n" where `wukong -n demo version` worked (CLI audit, session 44, F15)."""
    from wukong.cli import command_flags, hoist_global_flags, split_short_equals

    assert hoist_global_flags(split_short_equals(given), command_flags) == run


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        pytest.param(["version", "--client", "-n", "demo"], "Client Version:", id="version"),
        pytest.param(["-n", "demo"], "Basic commands:", id="no-command-prints-help"),
        pytest.param(["-n", "demo", "--context", "c"], "Basic commands:", id="two-flags"),
    ],
)
def test_a_global_flag_anywhere_runs_the_command(
    argv: list[str], shown: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wukong.cli import main

    monkeypatch.setattr("sys.argv", ["wukong", *argv])
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capsys.readouterr()
    assert (ended.value.code, err) == (0, ""), err
    assert shown in out


@pytest.mark.parametrize(
    ("given", "run"),
    [
        (["status", "-o=yaml", "-n=demo"], ["status", "-o", "yaml", "-n", "demo"]),
        (["status", "-l=app=web"], ["status", "-l", "app=web"]),
        (["-n=demo", "status"], ["-n", "demo", "status"]),
        (["status", "--output=yaml"], ["status", "--output=yaml"]),  # click reads these
        (["ssh", "w", "--", "-c=ls"], ["ssh", "w", "--", "-c=ls"]),  # virtctl's words
        (["status", "-o="], ["status", "-o="]),  # nothing after '=': click says so
    ],
)
def test_short_flags_with_an_equals_sign_are_read_as_kubectl_reads_them(
    given: list[str], run: list[str]
) -> None:
    """Review s22: `wukong status -o=yaml` was refused ("'=yaml' is not one of ...") and
    `-l=app=web` reached the API server as the selector "=app=web"."""
    from wukong.cli import split_short_equals

    assert split_short_equals(given) == run


@pytest.mark.parametrize(
    ("words", "params"),
    [
        (["stop", "web-1", "--force=true"], {"force": True, "name": ["web-1"]}),
        (["stop", "web-1", "--force=false"], {"force": False, "name": ["web-1"]}),
        (["stop", "web-1", "--force=True", "--grace-period=0"], {"force": True}),
        (["delete", "web-1", "--wait=false", "--yes=true"], {"wait": False, "yes": True}),
        (["status", "-A=true"], {"all_namespaces": True, "name": None}),
        (["status", "-w=false", "web-1"], {"watch": False, "name": "web-1"}),
        (["status", "-o=yaml", "web-1"], {"output": "yaml", "name": "web-1"}),
        (["stop", "-l=true"], {"selector": "true"}),  # a value, not a flag: as before
    ],
)
def test_boolean_flags_take_pflags_true_and_false(
    words: list[str], params: dict[str, object]
) -> None:
    """kubectl and virtctl (pflag) take `--force=true` and `-A=false`; click refused the
    first, and `-A=false` named a Wukong "false" (CLI audit, session 41)."""
    from wukong.cli import split_short_equals

    command = typer.main.get_command(app)
    args = split_short_equals(words)
    sub = command.commands[args[0]]  # type: ignore[attr-defined]
    ctx = sub.make_context(args[0], args[1:], parent=command.make_context("wukong", []))
    got = {key: ctx.params[key] for key in params}
    assert {k: (v.value if hasattr(v, "value") else v) for k, v in got.items()} == params


def test_a_boolean_flag_with_another_value_is_one_clear_line() -> None:
    result = runner.invoke(app, ["stop", "web-1", "--force=maybe"], prog_name="wukong")
    assert result.exit_code == 2
    assert "option '--force' does not take a value" in result.output


def test_console_timeout_needs_a_unit_where_virtctl_counts_minutes() -> None:
    """virtctl's `console --timeout=1` is a minute; wukong's other timeouts count seconds."""
    result = runner.invoke(app, ["console", "web-1", "--timeout", "5"], prog_name="wukong")
    assert result.exit_code == 2
    assert "'5' has no unit: say 5m or 5s" in result.output


def test_virtctls_pause_vm_name_pauses_the_name_not_a_wukong_called_vm() -> None:
    """`virtctl pause vm web-1` (pause.go): under virtctl's names the type word goes; it
    named a Wukong `vm` (CLI audit, session 41)."""
    from wukong.console.verbs import _virtctl_type_dropped as dropped

    assert dropped("pause", ["vm", "web-1"]) == ["web-1"]
    assert dropped("unpause", ["vmi", "web-1"]) == ["web-1"]
    assert dropped("pause", ["vm"]) == ["vm"]  # a Wukong named vm
    assert dropped("suspend", ["vm", "web-1"]) == ["vm", "web-1"]  # wukong's own verb
    assert dropped("pause", None) is None


def test_expose_type_and_protocol_take_any_case_as_virtctls() -> None:
    """virtctl lowercases --type and --protocol (expose.go): `--type nodeport` works."""
    command = typer.main.get_command(app)
    sub = command.commands["expose"]  # type: ignore[attr-defined]
    words = ["web-1", "--port", "22", "--type", "nodeport", "--protocol", "udp"]
    ctx = sub.make_context("expose", words, parent=command.make_context("wukong", []))
    assert (ctx.params["service_type"].value, ctx.params["protocol"].value) == ("NodePort", "UDP")


def test_console_timeout_has_its_default_without_the_flag() -> None:
    """The default reaches the parser as a number (5 minutes), not text: it was refused
    with a traceback (session 41's first version)."""
    command = typer.main.get_command(app)
    sub = command.commands["console"]  # type: ignore[attr-defined]
    ctx = sub.make_context("console", ["web-1"], parent=command.make_context("wukong", []))
    assert ctx.params["timeout"] == 300.0
