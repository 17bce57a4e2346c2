"""The command line itself: commands, flags, exit codes; nothing here needs a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wukong import __version__
from wukong.cli import app
from wukong.console.errors import CliError
from wukong.console.options import asker, keep_list

runner = CliRunner()


def test_every_command_is_listed_in_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "run", "fsm", "crd", "demo", "start", "stop", "restart", "suspend", "resume",
        "status", "describe", "attach", "detach", "delete",
    ):  # fmt: skip
        assert command in result.output


def test_operator_commands_still_work() -> None:
    assert "stateDiagram" in runner.invoke(app, ["fsm"]).output
    assert "kind: CustomResourceDefinition" in runner.invoke(app, ["crd"]).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["stop", "web-1", "--force", "--grace-period", "5"],
            "--grace-period does not apply",
            id="force-and-grace",
        ),
        pytest.param(
            ["delete", "web-1", "--keep-disks", "--keep", "data"], "drop --keep", id="keep-both"
        ),
        pytest.param(["status", "web-1", "-A"], "do not go together", id="name-and-all"),
        pytest.param(["attach", "web-1", "data", "--size", "1GB"], "did you mean", id="bad-size"),
    ],
)
def test_contradictory_or_malformed_flags_exit_2_before_any_request(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, [*args, "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["stop", "web-1", "--grace-period", "-1"], id="negative-grace"),
        pytest.param(["suspend", "web-1", "--force"], id="force-only-for-stop-restart"),
        pytest.param(["attach", "web-1", "data"], id="size-required"),
        pytest.param(["attach", "web-1", "data", "--size", "1Gi", "--bus", "ide"], id="bad-bus"),
        pytest.param(["start"], id="name-required"),
    ],
)
def test_typer_rejects_what_the_options_do_not_allow(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_without_a_kubeconfig_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = runner.invoke(app, ["status", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no cluster configured")


def test_keep_accepts_repeats_and_commas() -> None:
    assert keep_list(["data,logs", "scratch"]) == ["data", "logs", "scratch"]
    assert keep_list(None) == []


def test_delete_never_waits_for_an_answer_nobody_can_give() -> None:
    assert asker(True, "web-1") is None  # --yes
    ask = asker(False, "web-1", terminal=False)
    assert ask is not None
    with pytest.raises(CliError, match="stdin is not a terminal; pass --yes"):
        ask("Delete Wukong web-1?")


# The CLI as a person runs it, in a fresh interpreter: which modules `version --client` loads.
VERSION_PROBE = """
import json, sys
sys.argv = ["wukong", "version", "--client", "-o", "json"]
from wukong import _lazy_kube
from wukong.cli import main
try:
    main()
except SystemExit as done:
    assert done.code == 0, done.code
# The lazy packages `wukong` registers (wukong/_lazy_kube.py) are names, nothing loaded.
loaded = [
    m for m in sys.modules
    if m.split(".")[0] in ("kubernetes_asyncio", "aiohttp") and m not in _lazy_kube.PACKAGES
]
print(json.dumps(loaded))
"""


def test_version_client_loads_no_kubernetes_client() -> None:
    """Review: `wukong version --client` asks nothing of a cluster, yet imported
    kubernetes_asyncio and aiohttp (about a second); it should print at once."""
    done = subprocess.run(
        [sys.executable, "-c", VERSION_PROBE], capture_output=True, text=True, check=True
    )
    version, loaded = done.stdout.rsplit("\n", 2)[:2]
    assert json.loads(loaded) == []
    assert json.loads(version)["clientVersion"] == __version__


@pytest.mark.parametrize("program", ["wukong", "kubectl-wukong"])
def test_the_program_names_itself_as_the_user_typed_it(program: str) -> None:
    """`kubectl wukong status --bogus` said "see 'kubectl-wukong status --help'", a name the
    user never typed; kubectl plugins name themselves `kubectl <plugin>`."""
    binary = Path(sys.executable).parent / program
    typed = "kubectl wukong" if program == "kubectl-wukong" else "wukong"
    wrong = subprocess.run([binary, "status", "--bogus"], capture_output=True, text=True)
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr == f"error: no such option: --bogus (see '{typed} status --help')\n"
    helped = subprocess.run([binary, "status", "--help"], capture_output=True, text=True)
    assert f"Usage:\n  {typed} status [NAME] [options]\n" in helped.stdout
    assert f"\n  {typed} status -w\n" in helped.stdout  # its examples too
    # Its shell completion still answers on the variable its completion script sets.
    variable = "_" + program.replace("-", "_").upper() + "_COMPLETE"
    env = {"PATH": "", variable: "complete_bash", "COMP_WORDS": f"{program} sta", "COMP_CWORD": "1"}
    completed = subprocess.run([binary], capture_output=True, text=True, env=env)
    assert completed.stdout.split() == ["start", "status"]


def test_output_that_cannot_be_written_is_one_line_not_a_traceback() -> None:
    """`wukong crd > /dev/full` ended in a traceback (CLI audit, session 41)."""
    binary = Path(sys.executable).parent / "wukong"
    with open("/dev/full", "w") as full:
        done = subprocess.run([binary, "crd"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert (done.returncode, done.stderr) == (
        1,
        "error: cannot write the output: no space left on device\n",
    )
