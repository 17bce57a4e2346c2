"""Issue 17: kubectl's conventions against the API server, with the operator and the
simulator: -o, --dry-run=client|server, -l, -w, durations, --wait on attach/detach, virtctl's
aliases, version, and who wrote what (User-Agent and fieldManager)."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.integration.scenario import create, get, k, operator, patch_spec, sim, wait_for, wukong
from tests.integration.test_cli import SYSTEM, cli, running, volume
from wukong.adapters.kube import Kube
from wukong.cli import app, kubectl_completions
from wukong.console.connect import connect
from wukong.console.follow import Expired, events
from wukong.testing.controlplane import ControlPlane
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures


def labelled(name: str, tier: str, **spec: Any) -> dict[str, Any]:
    body = wukong(name, **spec)
    body["metadata"]["labels"] = {"tier": tier}
    return body


def managers(cr: dict[str, Any]) -> set[str]:
    return {str(m.get("manager")) for m in cr["metadata"].get("managedFields") or []}


async def test_output_formats_and_selectors_on_status(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, labelled("web-a", "web"))
    await create(k, "wukong", namespace, labelled("db-a", "db"))

    names = await cli(kubeconfig, "status", "-n", namespace, "-o", "name", "-l", "tier=web")
    assert names.exit_code == 0, names.output
    assert names.stdout == "wukong.vm.novasphere.dev/web-a\n"

    listed = await cli(kubeconfig, "status", "-n", namespace, "-o", "json")
    doc = json.loads(listed.stdout)
    assert doc["kind"] == "List" and sorted(i["metadata"]["name"] for i in doc["items"]) == [
        "db-a",
        "web-a",
    ]
    one = await cli(kubeconfig, "status", "web-a", "-n", namespace, "-o", "yaml")
    assert yaml.safe_load(one.stdout)["metadata"]["labels"] == {"tier": "web"}

    wide = await cli(kubeconfig, "status", "-n", namespace, "-o", "wide")
    header, *rows = wide.stdout.splitlines()
    assert header.split()[-3:] == ["CPU", "MEMORY", "AGE"] and len(rows) == 2
    assert rows[0].split()[0] == "db-a" and rows[0].split()[-3:-1] == ["1", "1Gi"]

    nothing = await cli(kubeconfig, "status", "-n", namespace, "-l", "tier=none")
    assert (nothing.exit_code, nothing.stdout) == (0, "")
    assert nothing.stderr == f"no Wukongs in namespace {namespace} match tier=none\n"


async def test_status_watch_prints_a_row_per_change_until_the_timeout(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("w-1"))
    watching = asyncio.ensure_future(
        cli(kubeconfig, "status", "-w", "--timeout", "8s", "-n", namespace)
    )
    await asyncio.sleep(3)
    await create(k, "wukong", namespace, wukong("w-2"))
    result = await watching
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "NAME" and lines[1].split()[0] == "w-1"
    assert [line.split()[0] for line in lines[2:]][:1] == ["w-2"]


async def test_dry_runs_write_nothing_and_the_server_one_is_checked(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("dry-1"))

    client = await cli(kubeconfig, "stop", "dry-1", "-n", namespace, "--dry-run=client")
    assert client.exit_code == 0, client.output
    patch = yaml.safe_load(client.stdout)
    assert patch["spec"]["lifecycleAction"]["action"] == "stop"
    as_json = await cli(
        kubeconfig, "suspend", "dry-1", "-n", namespace, "--dry-run=client", "-o", "json"
    )
    # stdout is the patch alone (the "# PATCH <name>" line goes to stderr): `| jq` reads it.
    assert json.loads(as_json.stdout)["spec"]["lifecycleAction"]["action"] == "suspend"
    assert "# PATCH wukong.vm.novasphere.dev/dry-1 (dry run: nothing sent)" in as_json.stderr

    server = await cli(kubeconfig, "stop", "dry-1", "-n", namespace, "--dry-run=server")
    assert server.exit_code == 0, server.output
    assert server.stdout == (
        "stop for dry-1 passes the API server's validation; the operator answers it only once "
        "written (server dry run)\n"
    )  # no generation: none was stored (it said "(generation N)")

    attach = await cli(
        kubeconfig, "attach", "dry-1", "data", "--size", "1Gi", "-n", namespace, "--dry-run=server"
    )
    assert attach.exit_code == 0, attach.output
    deleted = await cli(kubeconfig, "delete", "dry-1", "-n", namespace, "--dry-run=server")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.endswith("wukong dry-1 deleted (server dry run)\n")
    planned = await cli(kubeconfig, "delete", "dry-1", "-n", namespace, "--dry-run=client")
    assert "would be deleted (client dry run)" in planned.stderr
    # stdout is the deleteOptions patch alone, the plan goes to stderr: `| jq` reads it.
    keeping = await cli(
        kubeconfig, "delete", "dry-1", "-n", namespace, "--dry-run=client", "--keep-disks",
        "-o", "json",
    )  # fmt: skip
    assert keeping.exit_code == 0, keeping.output
    assert json.loads(keeping.stdout)["spec"]["deleteOptions"] == {"preserveDisks": True}
    assert "keep    disk system (PVC dry-1-system" in keeping.stderr

    cr = await get(k, "wukong", namespace, "dry-1")
    assert cr is not None and "deletionTimestamp" not in cr["metadata"]
    assert "lifecycleAction" not in cr["spec"]
    assert [d["name"] for d in cr["spec"]["disks"]] == ["system"]


async def test_selector_stops_every_matching_wukong_and_aliases_pause(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    kubeconfig = control_plane.kubeconfig
    for name, tier in (("sel-1", "web"), ("sel-2", "web"), ("sel-3", "db")):
        await create(k, "wukong", namespace, labelled(name, tier))
    for name in ("sel-1", "sel-2", "sel-3"):
        await wait_for(k, namespace, name, lambda c: c.get("status", {}).get("phase") == "Running")

    paused = await cli(
        kubeconfig, "pause", "-l", "tier=web", "-n", namespace, "--wait", "--timeout", "40s"
    )
    assert paused.exit_code == 0, paused.output
    assert sorted(paused.stdout.splitlines()) == ["sel-1 is Suspended", "sel-2 is Suspended"]
    db = await get(k, "wukong", namespace, "sel-3")
    assert db is not None and db["status"]["phase"] == "Running"

    # Both refuse a second pause: each refusal is told and named, neither stops the other.
    again = await cli(
        kubeconfig, "pause", "-l", "tier=web", "-n", namespace, "--wait", "--timeout", "40s"
    )
    assert again.exit_code == 1, again.output
    words = "cannot suspend: the VM is already suspended"
    lines = again.stderr.splitlines()
    for name in ("sel-1", "sel-2"):
        assert f"{name}: Refused: {words}" in lines
    assert lines[-2:] == [f"error: sel-{n}: suspend refused: {words}" for n in (1, 2)]

    resumed = await cli(
        kubeconfig, "unpause", "sel-1", "-n", namespace, "--wait", "--timeout", "1m"
    )
    assert resumed.exit_code == 0, resumed.output
    cr = await get(k, "wukong", namespace, "sel-1")
    assert cr is not None
    node, ip = cr["status"]["nodeName"], cr["status"]["interfaces"][0]["ipAddress"]
    assert resumed.stdout == f"sel-1 is Running on {node} at {ip}\n"  # where to connect

    none = await cli(kubeconfig, "stop", "-l", "tier=nothing", "-n", namespace)
    assert none.exit_code == 1
    assert none.stderr == f"error: no Wukongs match tier=nothing in namespace {namespace}\n"

    # Who wrote what: the CLI's writes and the operator's status carry their names.
    cr = await get(k, "wukong", namespace, "sel-1")
    assert cr is not None
    assert {"kubectl-wukong", "wukong-operator"} <= managers(cr)


async def test_addvolume_and_removevolume_wait_for_the_disk(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await running(k, namespace, "vol-1", disks=[SYSTEM])
    kubeconfig = control_plane.kubeconfig

    added = await cli(
        kubeconfig, "addvolume", "vol-1", "data", "--size", "1Gi", "-n", namespace, "--wait"
    )
    assert added.exit_code == 0, added.output
    assert added.stdout.splitlines()[-1] == "disk data is attached to vol-1"
    cr = await get(k, "wukong", namespace, "vol-1")
    assert cr is not None and volume(cr, "data").get("attached") is True

    # A disk kept on deletion by name: its entry in the keep list goes with it (the API
    # server allows only disks of spec.disks there, and refused the detach).
    await patch_spec(k, namespace, "vol-1", {"deleteOptions": {"preserveDisksList": ["data"]}})
    # It deletes the disk's PVC (virtctl's removevolume never does): asked first, and with no
    # terminal to ask on, refused unless --yes (session 26).
    words = ["removevolume", "vol-1", "data", "-n", namespace, "--wait", "--timeout", "1m"]
    refused = await cli(kubeconfig, *words)
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr, refused.output
    removed = await cli(kubeconfig, *words, "--yes")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.splitlines()[-1] == "disk data detached from vol-1"
    cr = await get(k, "wukong", namespace, "vol-1")
    assert cr is not None and volume(cr, "data") == {}


async def test_version_names_the_client_and_says_where_the_operator_is(
    control_plane: ControlPlane,
) -> None:
    from wukong import __version__

    result = await cli(control_plane.kubeconfig, "version")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Client Version: {__version__}",
        "Operator Version: not installed (no Deployment labelled "
        "app.kubernetes.io/name=wukong,app.kubernetes.io/component=operator)",
    ]


async def test_a_wait_with_no_operator_says_it_has_begun_and_that_it_still_waits(
    control_plane: ControlPlane, k: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No operator here: nothing answers the start. The person sees the request sent, how
    long the wait may take, a line each STILL_EVERY without news, and then the timeout."""
    from wukong.console import follow

    monkeypatch.setattr(follow, "STILL_EVERY", 1.0)
    await create(k, "wukong", namespace, wukong("slow-1"))
    argv = ["start", "slow-1", "--wait", "--timeout", "3500ms", "-n", namespace]
    result = await cli(control_plane.kubeconfig, *argv)
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "start requested for slow-1 (generation 2); waiting up to 3.5s"
    still = [line for line in lines if line.startswith("still waiting for slow-1 to start")]
    assert 2 <= len(still) <= 4, lines
    assert lines[-1].startswith("error: timed out after 3.5s waiting for slow-1 to start")


async def test_status_watch_as_yaml_is_a_stream_and_a_missing_name_is_not_found(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> None:
    """Review s22: `status -w -o yaml` printed the list and the first change as one document;
    `status NAME -w` for a missing NAME said the namespace had no Wukongs, exit 0. CLI audit,
    session 48: the listed Wukongs came as a v1 List, the changes as bare objects; each is
    now a document of its own, as `kubectl get -w -o yaml` prints them."""
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("y-1"))
    watching = asyncio.ensure_future(
        cli(kubeconfig, "status", "-w", "--timeout", "8s", "-n", namespace, "-o", "yaml")
    )
    await asyncio.sleep(3)
    await create(k, "wukong", namespace, wukong("y-2"))
    result = await watching
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert docs[0]["kind"] == "Wukong" and docs[0]["metadata"]["name"] == "y-1"
    assert docs[1]["kind"] == "Wukong" and docs[1]["metadata"]["name"] == "y-2"
    assert {d["kind"] for d in docs} == {"Wukong"}
    assert not [d for d in docs if "managedFields" in d["metadata"]]  # as kubectl shows them
    missing = await cli(kubeconfig, "status", "nosuch", "-w", "--timeout", "3s", "-n", namespace)
    assert missing.exit_code == 1
    assert f"wukong nosuch not found in namespace {namespace}" in missing.stderr


async def test_a_watch_from_a_version_the_server_no_longer_has_is_told_apart(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Review s22: `status -w` went on watching from the expired version, ~200 requests a
    second with nothing printed; it now lists again on this answer (410 Gone)."""
    async with connect(str(control_plane.kubeconfig), None, namespace) as target:
        stream = events(target, target.wukongs(), "1", [], bookmarks=True)
        with pytest.raises(Expired):
            async with aclosing(stream) as changes:
                async for _ in changes:
                    pass


async def test_a_wait_that_cannot_succeed_says_what_holds_it(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Review s22: `start --wait` of a VM no node can take said only "still waiting", then
    timed out, while the operator had said why (VMHealthy=False) long before."""
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("nowhere", runStrategy="Halted"))
    await wait_for(k, namespace, "nowhere", lambda c: c.get("status", {}).get("phase") == "Stopped")
    await k.merge_patch(
        f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/nowhere-vm",
        {"metadata": {"annotations": {"sim.kubevirt.io/unschedulable": "true"}}},
    )
    # KubeVirt says ErrorUnschedulable within a second or two of the start: 12 s is room enough.
    started = await cli(
        kubeconfig, "start", "nowhere", "-n", namespace, "--wait", "--timeout", "12s"
    )
    assert started.exit_code == 1, started.output
    told = "nowhere: VMHealthy=False ErrorUnschedulable: VM ErrorUnschedulable: 0/"
    assert told in started.stderr, started.stderr
    assert "timed out after 12s waiting for nowhere to start (phase Starting; VMHealthy=False" in (
        started.stderr
    )


async def test_names_complete_from_the_namespace_for_kubectl_and_the_shell(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> None:
    # `kubectl wukong stop <TAB>` (kubectl runs kubectl_complete-wukong with the words after
    # `wukong`) and `wukong describe <TAB>` (typer's bash script) offer the Wukongs of the
    # namespace the line names, as kubectl completes resource names.
    kubeconfig = str(control_plane.kubeconfig)
    for name in ("web-a", "web-b", "db-1"):
        await create(k, "wukong", namespace, wukong(name))
    words = ["stop", "--kubeconfig", kubeconfig, "-n", namespace]
    assert await asyncio.to_thread(kubectl_completions, [*words, "we"]) == ["web-a", "web-b"]
    # -n before the verb, as kubectl hands it on; a name already on the line is not offered.
    again = ["-n", namespace, "stop", "web-a", "--kubeconfig", kubeconfig, ""]
    assert await asyncio.to_thread(kubectl_completions, again) == ["db-1", "web-b"]
    line = f"wukong describe --kubeconfig {kubeconfig} -n {namespace} d"
    bash = {"_WUKONG_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": "6"}
    result = await asyncio.to_thread(CliRunner().invoke, app, [], env=bash, prog_name="wukong")
    assert result.stdout.split() == ["db-1"], result.output
    # -n completes namespace names, as kubectl's does.
    prefix = namespace[: len(namespace) - 2]
    typed = ["status", "--kubeconfig", kubeconfig, "-n", prefix]
    assert namespace in await asyncio.to_thread(kubectl_completions, typed)
