"""The CLI (issue 10) against the local control plane, with the operator and the simulator:
what a person typing `wukong …` or `kubectl wukong …` sees, and what it does to the cluster.

The CLI runs its own event loop (`asyncio.run`), so each invocation runs in a thread while the
operator and the simulator keep running on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from typer.testing import CliRunner

from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import (
    IMAGE,
    create,
    get,
    k,
    operator,
    sim,
    wait_for,
    wukong,
)
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.cli import app
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures
SYSTEM = {"name": "system", "size": "10Gi", "image": IMAGE}
CLI_SECONDS = 45


async def cli(kubeconfig: Path, *args: str) -> Result:
    """`wukong ARGS --kubeconfig …` as a person runs it; stdin is not a terminal."""
    runner = CliRunner()
    argv = [*args, "--kubeconfig", str(kubeconfig)]
    try:
        return await asyncio.wait_for(asyncio.to_thread(runner.invoke, app, argv), CLI_SECONDS)
    except TimeoutError:
        raise AssertionError(
            f"wukong {' '.join(args)}: still running after {CLI_SECONDS}s"
        ) from None


async def running(k: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    await create(k, "wukong", namespace, wukong(name, **spec))
    return await wait_for(
        k,
        namespace,
        name,
        lambda c: (
            (c.get("status") or {}).get("phase") == "Running"
            and bool(((c["status"].get("interfaces") or [{}])[0]).get("ipAddress"))
        ),
        what=f"{name} Running with an IP",
    )


def volume(cr: dict[str, Any], disk: str) -> dict[str, Any]:
    return next((v for v in cr["status"].get("volumes") or [] if v["name"] == disk), {})


async def test_stop_waits_for_stopped_and_resuming_a_running_vm_is_refused(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await running(k, namespace, "cli-1")
    kubeconfig = control_plane.kubeconfig

    refused = await cli(kubeconfig, "resume", "cli-1", "-n", namespace, "--wait", "--timeout", "20")
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.splitlines()[-1].startswith("error: resume refused: cannot resume")
    # Without --wait too, as virtctl: the operator's refusal, not "resume requested".
    at_once = await cli(kubeconfig, "resume", "cli-1", "-n", namespace)
    assert (at_once.exit_code, at_once.stdout) == (1, ""), at_once.output
    assert at_once.stderr.startswith("error: resume refused: cannot resume"), at_once.stderr

    stopped = await cli(kubeconfig, "stop", "cli-1", "-n", namespace, "--wait", "--timeout", "20")
    assert stopped.exit_code == 0, stopped.output
    assert stopped.stdout == "cli-1 is Stopped\n"
    assert "cli-1: Running -> Stopping" in stopped.stderr
    cr = await get(k, "wukong", namespace, "cli-1")
    assert cr is not None and cr["status"]["phase"] == "Stopped"
    assert cr["spec"]["lifecycleAction"]["action"] == "stop"

    started = await cli(kubeconfig, "start", "cli-1", "-n", namespace)
    assert (started.exit_code, started.stderr) == (0, ""), started.output
    said = re.fullmatch(
        r"start requested for cli-1 \(generation \d+\): (\w+)(: .*)?\n", started.stdout
    )
    assert said is not None and said[1] in ("Accepted", "Issued", "Done"), started.stdout


async def test_status_and_describe_show_what_the_operator_reports(
    control_plane: ControlPlane,
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
) -> None:
    cr = await running(k, namespace, "cli-2")
    ip = cr["status"]["interfaces"][0]["ipAddress"]
    kubeconfig = control_plane.kubeconfig

    table = await cli(kubeconfig, "status", "-n", namespace)
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "VM", "NODE", "IP", "DISKS", "READY", "LAST-ACTION"]
    assert row.split()[:7] == [
        "cli-2",
        "Running",
        "cli-2-vm",
        cr["status"]["nodeName"],
        ip,
        "1",
        "True",
    ]

    detail = await cli(kubeconfig, "status", "cli-2", "-n", namespace)
    assert detail.exit_code == 0, detail.output
    assert "Phase:           Running" in detail.stdout and "VolumesBound" in detail.stdout

    page = await cli(kubeconfig, "describe", "cli-2", "-n", namespace)
    assert page.exit_code == 0, page.output
    events = page.stdout.split("Events:\n", 1)[1]
    assert "wukong/cli-2" in events and "SpecAccepted" in events
    # Events of passes before the one that reported Running have all been posted.
    assert events.index("SpecAccepted") < events.index("VMCreated")
    # What the guest agent says, through virt-api's guestosinfo: a nearly full disk shows.
    guest = sim.guest(namespace, "cli-2-vm")
    guest.mount("system", "/", "xfs", used_bytes=19 * 2**30, total_bytes=20 * 2**30)
    # KubeVirt answers from virt-launcher's cache of the agent's report: shown once it is
    # refreshed (every 5 minutes on a cluster; SimConfig.guest_report_interval here).
    await asyncio.sleep(sim.config.guest_report_interval)
    page = await cli(kubeconfig, "describe", "cli-2", "-n", namespace)
    head = page.stdout.split("Events:\n", 1)[0]
    assert "Guest:           Fedora Linux 40 (Cloud Edition), kernel 6.8.5-301.fc40.x86_64" in head
    assert "Logged in:       fedora" in head
    (root,) = [line for line in head.splitlines() if line.startswith("  /  ")]
    assert root.split() == ["/", "xfs", "vda1", "19.0Gi", "20.0Gi", "95%", "(nearly", "full)"]
    # The same answers as virtctl's guestosinfo, userlist and fslist print them (JSON).
    fslist = await cli(kubeconfig, "fslist", "cli-2", "-n", namespace)
    assert fslist.exit_code == 0, fslist.output
    (mounted,) = [fs for fs in json.loads(fslist.stdout)["items"] if fs["mountPoint"] == "/"]
    assert (mounted["usedBytes"], mounted["totalBytes"]) == (19 * 2**30, 20 * 2**30)
    users = await cli(kubeconfig, "userlist", "cli-2", "-n", namespace)
    assert [u["userName"] for u in json.loads(users.stdout)["items"]] == ["fedora"]
    info = await cli(kubeconfig, "guestosinfo", "cli-2", "-n", namespace, "-o", "yaml")
    assert yaml.safe_load(info.stdout)["os"]["prettyName"] == "Fedora Linux 40 (Cloud Edition)"
    guest.set_agent(False)

    async def no_agent() -> str | None:
        page = await cli(kubeconfig, "describe", "cli-2", "-n", namespace)
        return page.stdout if "no guest agent connected" in page.stdout else None

    text = await eventually(no_agent, timeout=30, message="describe without the guest agent")
    assert "Guest:           <no guest agent connected: with qemu-guest-agent" in text
    fslist = await cli(kubeconfig, "fslist", "cli-2", "-n", namespace)
    assert (fslist.exit_code, fslist.stdout) == (1, "")
    assert fslist.stderr.startswith("error: cli-2: no guest agent connected: "), fslist.stderr


async def test_create_makes_a_wukong_from_flags_and_waits_until_it_runs(
    control_plane: ControlPlane,
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    tmp_path: Path,
) -> None:
    kubeconfig = control_plane.kubeconfig
    where = ("-n", namespace)
    checked = await cli(kubeconfig, "create", "cli-6", "--image", IMAGE, "--dry-run=server", *where)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout == "wukong.vm.novasphere.dev/cli-6 created (server dry run)\n"
    assert await get(k, "wukong", namespace, "cli-6") is None

    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheTest me@laptop\n")
    flags = ("--cpu", "2", "--memory", "2Gi", "--disk", "data=1Gi", "--label", "tier=web")
    flags += ("--ssh-key-file", str(key))
    made = await cli(kubeconfig, "create", "cli-6", "--image", IMAGE, *flags, "--wait", *where)
    assert made.exit_code == 0, made.output
    said = re.fullmatch(r"cli-6 is Running on (\S+)( at \S+)?\n", made.stdout)
    assert said is not None, made.stdout
    lines = made.stderr.splitlines()
    assert lines[0].startswith("wukong.vm.novasphere.dev/cli-6 created; waiting up to 5m")
    assert any(line.endswith("-> Running") for line in lines), lines
    cr = await get(k, "wukong", namespace, "cli-6")
    assert cr is not None and cr["metadata"]["labels"]["tier"] == "web"
    assert (cr["spec"]["cpu"], cr["spec"]["memory"]) == (2, "2Gi")
    assert said[1] == cr["status"]["nodeName"]
    assert [v["name"] for v in cr["status"]["volumes"]] == ["system", "data"]
    vm = await get(k, "vm", namespace, "cli-6-vm")  # the key reaches the guest by cloud-init
    volumes = vm["spec"]["template"]["spec"]["volumes"] if vm else []
    user_data = [v["cloudInitNoCloud"]["userData"] for v in volumes if "cloudInitNoCloud" in v]
    assert user_data == [f"#cloud-config\nssh_authorized_keys:\n  - {key.read_text()}"], volumes

    again = await cli(kubeconfig, "create", "cli-6", *where)
    assert (again.exit_code, again.stdout) == (1, ""), again.output
    assert again.stderr == f"error: wukong cli-6 already exists in namespace {namespace}\n"

    bridged = ("--bridge", "lan=br-cli:120", "--stopped")
    stopped = await cli(kubeconfig, "create", "cli-7", *bridged, "--wait", *where)
    assert (stopped.exit_code, stopped.stdout) == (0, "cli-7 is Stopped\n"), stopped.output
    nad = await get(k, "nad", namespace, "cli-7-lan")  # made by the operator, as the policy allows
    assert nad is not None
    plugin = json.loads(nad["spec"]["config"])["plugins"][0]
    assert (plugin["bridge"], plugin["vlan"]) == ("br-cli", 120)


async def test_resize_grows_a_disk_and_says_cpu_waits_for_a_restart(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await running(k, namespace, "cli-8", disks=[SYSTEM, {"name": "data", "size": "1Gi"}])
    kubeconfig, where = control_plane.kubeconfig, ("-n", namespace)

    shrink = await cli(kubeconfig, "resize", "cli-8", "--disk", "data=512Mi", *where)
    assert (shrink.exit_code, shrink.stdout) == (1, ""), shrink.output
    assert shrink.stderr.startswith("error: disk data of cli-8 is 1Gi: a disk grows, never")

    grown = await cli(kubeconfig, "resize", "cli-8", "--disk", "data=2Gi", "--wait", *where)
    assert grown.exit_code == 0, grown.output
    assert grown.stdout == "cli-8 is resized\n"
    assert grown.stderr.startswith("cli-8 resized: disk data 1Gi → 2Gi (generation ")
    # 2Gi over 1 - CDI's filesystem overhead (6 %), whole MiB: the guest gets 2Gi of it.
    data = volume(await get(k, "wukong", namespace, "cli-8") or {}, "data")
    assert data["capacity"] == "2284847104"

    # No spec.hotplug: KubeVirt cannot add vCPUs to the running guest; the answer says so.
    cpu = await cli(kubeconfig, "resize", "cli-8", "--cpu", "2", *where)
    assert cpu.exit_code == 0, cpu.output
    said = re.fullmatch(r"cli-8 resized: cpu 1 → 2 \(generation \d+\): (.*)\n", cpu.stdout)
    assert said is not None and "restart it to apply" in said[1], cpu.stdout
    same = await cli(kubeconfig, "resize", "cli-8", "--cpu", "2", *where)
    assert same.stdout == "cli-8 already has that size: nothing to change\n", same.output


async def test_resize_wait_follows_a_live_cpu_hotplug_into_the_guest(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    # KubeVirt moves the VMI to a bigger pod by live migration: its disk must be shared.
    shared = [{**SYSTEM, "accessMode": "ReadWriteMany"}]
    cr = await running(k, namespace, "cli-9", disks=shared, hotplug={"maxCpu": 4})
    before = await get(k, "vmi", namespace, "cli-9-vm")
    assert before is not None
    resized = await cli(
        control_plane.kubeconfig, "resize", "cli-9", "--cpu", "2", "--wait", "-n", namespace
    )
    assert (resized.exit_code, resized.stdout) == (0, "cli-9 is resized\n"), resized.output
    assert "cli-9 resized: cpu 1 → 2" in resized.stderr
    # Done means in the guest: the same VMI (no restart) with its second vCPU.
    vmi = await get(k, "vmi", namespace, "cli-9-vm")
    assert vmi is not None and vmi["metadata"]["uid"] == before["metadata"]["uid"]
    assert vmi["spec"]["domain"]["cpu"]["sockets"] == 2
    if kubevirt_mode() == "real":
        assert vmi["status"]["currentCPUTopology"]["sockets"] == 2
    assert cr["status"]["phase"] == "Running"


async def test_attach_hotplugs_and_detach_keeps_the_data_but_never_the_system_disk(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await running(k, namespace, "cli-3", disks=[SYSTEM])
    kubeconfig = control_plane.kubeconfig

    attached = await cli(kubeconfig, "attach", "cli-3", "data", "--size", "1Gi", "-n", namespace)
    assert attached.exit_code == 0, attached.output
    await wait_for(k, namespace, "cli-3", lambda c: volume(c, "data").get("attached") is True)

    system = await cli(kubeconfig, "detach", "cli-3", "system", "-n", namespace)
    assert system.exit_code == 1
    assert "system is the system disk of cli-3" in system.stderr

    detached = await cli(kubeconfig, "detach", "cli-3", "data", "--keep-data", "-n", namespace)
    assert detached.exit_code == 0, detached.output
    cr = await get(k, "wukong", namespace, "cli-3")
    assert cr is not None and [d["name"] for d in cr["spec"]["disks"]] == ["system"]

    async def retained() -> bool:
        pvc = await get(k, "pvc", namespace, "cli-3-data")
        labels = (pvc or {}).get("metadata", {}).get("labels") or {}
        return labels.get(names.LABEL_RETAINED_FROM) == "cli-3"

    await eventually(retained, timeout=20)


async def test_delete_asks_first_and_keeps_the_disk_named_with_keep(
    control_plane: ControlPlane, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await running(k, namespace, "cli-4", disks=[SYSTEM, {"name": "data", "size": "1Gi"}])
    kubeconfig = control_plane.kubeconfig

    unconfirmed = await cli(kubeconfig, "delete", "cli-4", "--keep", "data", "-n", namespace)
    assert unconfirmed.exit_code == 1
    assert "keep    disk data (PVC cli-4-data" in unconfirmed.stdout
    assert "stdin is not a terminal; pass --yes" in unconfirmed.stderr
    cr = await get(k, "wukong", namespace, "cli-4")
    assert cr is not None and "deletionTimestamp" not in cr["metadata"]
    assert "deleteOptions" not in cr["spec"]  # nothing written before the answer

    deleted = await cli(
        kubeconfig, "delete", "cli-4", "--keep", "data", "--yes", "--wait", "-n", namespace
    )
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.endswith("wukong cli-4 deleted\n")
    assert await get(k, "wukong", namespace, "cli-4") is None
    await eventually(lambda: _gone(k, namespace, "cli-4-system"), timeout=20)
    kept = await get(k, "pvc", namespace, "cli-4-data")
    assert kept is not None and kept["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "cli-4"


async def _gone(k: Kube, namespace: str, claim: str) -> bool:
    return await get(k, "pvc", namespace, claim) is None


async def test_errors_are_one_line_and_exit_1(
    control_plane: ControlPlane, k: Kube, namespace: str, tmp_path: Path
) -> None:
    admin = control_plane.kubeconfig

    # The kubectl plugin binary, as `kubectl wukong status web-9 -n NS` runs it.
    plugin = Path(sys.executable).parent / "kubectl-wukong"
    argv = [str(plugin), "status", "web-9", "-n", namespace, "--kubeconfig", str(admin)]
    done = await asyncio.to_thread(
        subprocess.run, argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"error: wukong web-9 not found in namespace {namespace}\n",
    )

    protected = wukong("cli-5") | {
        "metadata": {
            "name": "cli-5",
            "annotations": {names.ANNOTATION_DELETION_PROTECTION: "true"},
            "labels": {"grp": "cli-del"},
        }
    }
    await create(k, "wukong", namespace, protected)
    refused = await cli(admin, "delete", "cli-5", "--yes", "-n", namespace)
    assert refused.exit_code == 1
    assert "protected from deletion" in refused.stderr
    assert await get(k, "wukong", namespace, "cli-5") is not None

    # Over a selection every plan is checked before the first write: cli-4a, listed before
    # the protected cli-5, is not deleted either, and each problem is named.
    await create(
        k,
        "wukong",
        namespace,
        wukong("cli-4a") | {"metadata": {"name": "cli-4a", "labels": {"grp": "cli-del"}}},
    )
    selected = await cli(admin, "delete", "-l", "grp=cli-del", "--yes", "-n", namespace)
    assert selected.exit_code == 1, selected.output
    assert [line.split(" ", 2)[1] for line in selected.stderr.splitlines()] == ["cli-5", "nothing"]
    assert selected.stderr.endswith(
        "error: nothing was deleted: 1 of 2 Wukongs cannot be deleted as asked\n"
    )
    kept = await cli(admin, "delete", "-l", "grp=cli-del", "--keep", "data", "-y", "-n", namespace)
    assert kept.exit_code == 1, kept.output  # no disk data, and protected
    assert "error: cli-4a has no disk data (disks: system)" in kept.stderr
    assert "error: cli-5 is protected from deletion" in kept.stderr
    for name in ("cli-4a", "cli-5"):
        cr = await get(k, "wukong", namespace, name)
        assert cr is not None and "deletionTimestamp" not in cr["metadata"]

    await k.create(
        api_path("", "v1", "serviceaccounts", namespace),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}},
    )
    nobody = control_plane.service_account_kubeconfig(namespace, "nobody")
    forbidden = await cli(nobody, "stop", "cli-5")  # the context's namespace applies
    assert forbidden.exit_code == 1
    assert forbidden.stderr.startswith(f'error: wukongs.{names.GROUP} "cli-5" is forbidden')
    assert f'in the namespace "{namespace}"' in forbidden.stderr

    dead = tmp_path / "dead.kubeconfig"
    text = admin.read_text()
    dead.write_text(text.replace(control_plane.server, "https://127.0.0.1:1"))
    unreachable = await cli(dead, "status", "-n", namespace)
    assert unreachable.exit_code == 1
    assert unreachable.stderr == (
        "error: cannot reach the cluster at https://127.0.0.1:1: connection refused\n"
    )
