"""`kubectl wukong <TAB>` (kubectl_complete-wukong) and `wukong <TAB>`: commands, flags, and
Wukong names from the cluster; a completion that cannot reach the cluster offers nothing and
prints nothing else."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wukong.cli import complete_for_kubectl, kubectl_completions


def test_commands_are_offered_by_their_first_letters() -> None:
    offered = kubectl_completions(["st"])
    assert {"start", "status", "stop"} <= set(offered)
    assert all(word.startswith("st") for word in offered)


def test_flags_are_offered_after_a_dash() -> None:
    offered = kubectl_completions(["stop", "--gr"])
    assert offered == ["--grace-period"]


def test_names_from_an_unreachable_cluster_are_none_and_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    started = time.monotonic()
    assert kubectl_completions(["stop", "--kubeconfig", str(kubeconfig), "we"]) == []
    assert kubectl_completions(["stop", "--kubeconfig", str(kubeconfig), "-n", "de"]) == []
    assert time.monotonic() - started < 5
    assert capsys.readouterr() == ("", "")


def test_kubectl_gets_one_word_a_line_then_no_file_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # kubectl runs kubectl_complete-wukong with the words after `wukong`, the last one the
    # word to complete, and reads cobra's directive from the last line (:4, no file names).
    monkeypatch.setattr("sys.argv", ["kubectl_complete-wukong", "desc"])
    complete_for_kubectl()
    assert capsys.readouterr().out == "describe\n:4\n"


def test_completion_is_printed_never_installed_into_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """typer's --install-completion appended to ~/.bashrc and wrote ~/.bash_completions/
    (CLI audit, session 44): gone; `wukong completion SHELL` prints the script."""
    from typer.testing import CliRunner

    from wukong.cli import app

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/bash")
    runner = CliRunner()
    helped = runner.invoke(app, ["--help"])
    assert helped.exit_code == 0
    assert "--install-completion" not in helped.stdout
    assert "--show-completion" not in helped.stdout
    for flag in ("--install-completion", "--show-completion"):
        refused = runner.invoke(app, [flag, "bash"])
        assert refused.exit_code == 2, refused.output
        assert f"no such option: {flag}" in refused.stderr
    assert list(tmp_path.iterdir()) == []
    printed = runner.invoke(app, ["completion", "bash"])
    assert printed.exit_code == 0 and "complete" in printed.stdout
    # The script it prints still works: typer's shells are registered without those flags.
    env = {"_WUKONG_COMPLETE": "complete_bash", "COMP_WORDS": "wukong st", "COMP_CWORD": "1"}
    completed = runner.invoke(app, [], env=env, prog_name="wukong")
    assert {"start", "status", "stop"} <= set(completed.stdout.split()), completed.output


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (["status", "-o", ""], ["json", "yaml", "wide", "name"]),
        (["stop", "web-1", "--dry-run=client", "-o", ""], ["json", "yaml"]),
        (["version", "-o", ""], ["json", "yaml"]),
        (["create", "web-1", "-o", ""], ["json", "yaml", "name"]),
        (["expose", "web-1", "--type", ""], ["ClusterIP", "NodePort", "LoadBalancer"]),
        (["expose", "web-1", "--type", "N"], ["NodePort"]),
        (["expose", "web-1", "--protocol", "u"], ["udp"]),
    ],
)
def test_a_choice_completes_to_what_the_flag_takes(words: list[str], offered: list[str]) -> None:
    """Each -o offers its own command's formats; `--protocol u` still completes, as click's
    case-insensitive choice did before the flags had parsers of their own (session 45)."""
    assert kubectl_completions(words) == offered
