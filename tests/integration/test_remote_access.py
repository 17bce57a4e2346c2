"""`wukong console`, `vnc` and `ssh` (issue 16): the serial console and VNC go over virt-api's
websocket subresources through the API server's aggregation layer to the node; ssh is virtctl's.
`wukong logs`: the serial console's log, through the API server's pods/log and the node's
kubelet, from the container KubeVirt's virt-controller puts in the VM's pod. `wukong
soft-reboot`: virt-api's softreboot subresource, carried out by the node; `wukong screenshot`:
its vnc/screenshot, a PNG from the node.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import (
    create,
    k,
    operator,
    patch_spec,
    path,
    sim,
    wait_phase,
    wukong,
)
from wukong.adapters.kube import Kube, api_path
from wukong.console.screenshots import png_size
from wukong.errors import NotFound
from wukong.testing import audit
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures

ADMIN = "system:admin"


async def wukong_cli(
    kubeconfig: Path, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`python -m wukong ARGS --kubeconfig KUBECONFIG` as a separate process, with pipes for
    stdin/stdout/stderr."""
    return await wukong_subprocess(*args, "--kubeconfig", str(kubeconfig), env=env)


@dataclass(frozen=True)
class Ran:
    """How a `wukong` run ended: its exit code, stdout and stderr."""

    code: int | None
    out: bytes
    err: bytes


async def ran(
    kubeconfig: Path, *args: str, env: dict[str, str] | None = None, within: float = 30
) -> Ran:
    """`wukong ARGS --kubeconfig KUBECONFIG`, run to its end (at most `within` seconds)."""
    proc = await wukong_cli(kubeconfig, *args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), within)
    return Ran(proc.returncode, out, err)


async def wukong_subprocess(*args: str, env: dict[str, str] | None) -> asyncio.subprocess.Process:
    """`python -m wukong ARGS` as a separate process, with pipes for stdin/stdout/stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wukong",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def read_until(stream: asyncio.StreamReader, marker: bytes, seconds: float = 30) -> bytes:
    return await asyncio.wait_for(stream.readuntil(marker), seconds)


@asynccontextmanager
async def at_console(
    kubeconfig: Path, name: str, namespace: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`wukong console NAME` as a separate process, killed on the way out if still there."""
    proc = await wukong_cli(kubeconfig, "console", name, "-n", namespace)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def leave(proc: asyncio.subprocess.Process) -> tuple[int | None, str]:
    """Ctrl-], as one leaves virtctl's console: the exit code, and what it said on stderr."""
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(b"\x1d")
    await proc.stdin.drain()
    code = await asyncio.wait_for(proc.wait(), 15)
    return code, (await proc.stderr.read()).decode()


async def test_console_round_trip_over_the_websocket_and_ctrl_bracket_leaves(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    await create(k, "wukong", namespace, wukong("con-1"))
    await wait_phase(k, namespace, "con-1", "Running", within=60)
    since = audit.size(control_plane.audit_log)
    async with at_console(control_plane.kubeconfig, "con-1", namespace) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            await read_until(proc.stdout, b"login: ")
        except asyncio.IncompleteReadError:
            raise AssertionError((await proc.stderr.read()).decode()) from None
        proc.stdin.write(b"hello from wukong\r")
        await proc.stdin.drain()
        echoed = await read_until(proc.stdout, b"hello from wukong\r")
        assert echoed.endswith(b"hello from wukong\r")
        code, stderr = await leave(proc)
    assert code == 0, stderr
    assert (
        "Successfully connected to con-1 console. Press Ctrl+] or Ctrl+5 to exit console." in stderr
    )
    # Through the aggregation layer: the API server saw the console request for the VMI.
    seen = [
        r
        for r in audit.read(control_plane.audit_log, since=since)
        if r.group == "subresources.kubevirt.io" and r.subresource == "console"
    ]
    assert seen and seen[0].name == "con-1-vm" and seen[0].namespace == namespace


async def test_a_console_another_user_takes_over_ends_with_an_error_not_silently(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """virt-handler serves one serial console per VMI and closes the one before when
    another connects; virtctl says so and fails. `wukong console` ended silently with 0,
    so a script could not tell it from Ctrl-] (guest-access audit, session 41)."""
    await create(k, "wukong", namespace, wukong("con-2"))
    await wait_phase(k, namespace, "con-2", "Running", within=60)
    kubeconfig = control_plane.kubeconfig
    async with at_console(kubeconfig, "con-2", namespace) as first:
        assert first.stdout is not None and first.stderr is not None
        await read_until(first.stdout, b"login: ")
        async with at_console(kubeconfig, "con-2", namespace) as second:
            assert second.stdout is not None
            await read_until(second.stdout, b"login: ")
            code = await asyncio.wait_for(first.wait(), 15)
            said = (await first.stderr.read()).decode()
            assert code == 1, said
            assert said.rstrip().endswith(
                "error: disconnected from the console of con-2: another user connected to it, "
                "the VM stopped, or the network failed"
            ), said
            left, _ = await leave(second)
            assert left == 0


async def test_a_vm_that_runs_while_its_wukong_is_in_error_is_reached_all_the_same(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """A data disk added to a running VM whose import fails takes the Wukong to Error; the
    VM runs on. virt-api serves it, and so does the CLI, with a warning naming the Error
    (access audit, session 46: every access verb refused it and never asked virt-api)."""
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("err-1"))
    cr = await wait_phase(k, namespace, "err-1", "Running", within=60)
    bad = {"name": "data", "size": "1Gi", "image": "https://example.invalid/notfound.qcow2"}
    await patch_spec(k, namespace, "err-1", {"disks": [*cr["spec"]["disks"], bad]})
    await wait_phase(k, namespace, "err-1", "Error", within=60)
    vmi = await k.get(
        api_path("kubevirt.io", "v1", "virtualmachineinstances", namespace, "err-1-vm")
    )
    assert vmi["status"]["phase"] == "Running"
    async with at_console(kubeconfig, "err-1", namespace) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        warning = (await read_until(proc.stderr, b"\n")).decode()
        await read_until(proc.stdout, b"login: ")
        code, rest = await leave(proc)
    assert code == 0, rest
    assert warning.startswith("warning: wukong err-1 is in Error: "), warning
    assert warning.endswith(f"(wukong describe err-1 -n {namespace}); its VM runs all the same\n")
    assert "Successfully connected to err-1 console." in rest
    shot = await ran(kubeconfig, "screenshot", "err-1", "-n", namespace, "--file", "-")
    assert shot.code == 0, shot.err.decode()
    assert png_size(shot.out) == (720, 400)
    assert shot.err.decode() == warning


async def test_console_waits_for_a_vm_that_is_starting_then_shows_its_console(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """As `virtctl console` waits for its VMI: `console` of a VM that is starting is not an
    error but a wait, its progress on stderr, then the console. No node takes the VM's pod
    until the test lets it (the simulator's unschedulable annotation), so the VM is still on
    its way when the console asks."""
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("con-3", runStrategy="Halted"))
    await wait_phase(k, namespace, "con-3", "Stopped", within=60)
    vm = f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/con-3-vm"
    held = {"sim.kubevirt.io/unschedulable": "true"}
    await k.merge_patch(vm, {"metadata": {"annotations": held}})
    assert (await ran(kubeconfig, "start", "con-3", "-n", namespace)).code == 0
    await wait_phase(k, namespace, "con-3", "Starting", within=30)
    async with at_console(kubeconfig, "con-3", namespace) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = (await read_until(proc.stderr, b"\n")).decode()
        assert first == "waiting for con-3 to run (phase Starting; Ctrl-C stops waiting)\n"
        await k.merge_patch(vm, {"metadata": {"annotations": dict.fromkeys(held)}})  # let go
        await read_until(proc.stdout, b"login: ", 90)
        code, rest = await leave(proc)
    assert code == 0, rest
    assert "Successfully connected to con-3 console." in rest


VIEWER = """#!{python}
import pathlib, socket, sys
host, port = sys.argv[1].removeprefix("vnc://").rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=20) as vnc:
    seen = b""
    while len(seen) < 12:
        seen += vnc.recv(12 - len(seen))
pathlib.Path(__file__).with_suffix(".seen").write_bytes(seen)
"""


async def test_vnc_opens_a_viewer_or_serves_the_vms_vnc_on_a_local_port(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    await create(k, "wukong", namespace, wukong("vnc-1"))
    await wait_phase(k, namespace, "vnc-1", "Running", within=60)
    # A viewer on PATH (here a stand-in for remote-viewer that reads the server's greeting):
    # it is opened on the local port, and closing it ends the command, as with virtctl.
    viewer = tmp_path / "remote-viewer"
    viewer.write_text(VIEWER.format(python=sys.executable))
    viewer.chmod(0o755)
    path = os.pathsep.join([str(tmp_path), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    done = await ran(
        control_plane.kubeconfig, "vnc", "vnc-1", "-n", namespace, env=os.environ | {"PATH": path}
    )
    assert done.code == 0, done.err.decode()
    assert viewer.with_suffix(".seen").read_bytes() == b"RFB 003.008\n"
    assert re.search(rb"VNC of vnc-1 on 127\.0\.0\.1:\d+: opening remote-viewer\n", done.err)
    # With no viewer (none on this machine's PATH) or --proxy-only: the port, for one's own,
    # and for one connection, as virtctl's: virt-handler gives the display to the newest
    # connection, so a second one would take it over (access audit, session 46).
    proc = await wukong_cli(control_plane.kubeconfig, "vnc", "vnc-1", "-n", namespace)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        port = json.loads(line)["port"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = await asyncio.wait_for(reader.readexactly(12), 30)
        assert greeting == b"RFB 003.008\n"  # the guest's VNC server speaks first
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0  # the connection's end ends it
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_console_of_a_stopped_vm_says_so_and_ssh_without_virtctl_says_how(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    await create(k, "wukong", namespace, wukong("off-1", startStrategy={"autoStart": False}))
    await wait_phase(k, namespace, "off-1", "Stopped", within=60)
    proc = await wukong_cli(control_plane.kubeconfig, "console", "off-1", "-n", namespace)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert err.decode().strip() == (
        "error: wukong off-1 is Stopped, not running: start it first "
        f"(wukong start off-1 -n {namespace})"
    )
    await create(k, "wukong", namespace, wukong("ssh-1"))
    await wait_phase(k, namespace, "ssh-1", "Running", within=60)
    bare = os.environ | {"PATH": str(tmp_path)}
    python_dir = str(Path(sys.executable).parent)
    bare["PATH"] = f"{tmp_path}{os.pathsep}{python_dir}"
    proc = await wukong_cli(control_plane.kubeconfig, "ssh", "ssh-1", "-n", namespace, env=bare)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "wukong ssh uses virtctl or OpenSSH's ssh, and neither is on PATH" in err.decode()
    assert "wukong console ssh-1" in err.decode()
    # With virtctl installed, wukong hands over to it for the Wukong's VM.
    fake = tmp_path / "virtctl"
    fake.write_text('#!/bin/sh\necho "virtctl $*"\n')
    fake.chmod(0o755)
    proc = await wukong_cli(
        control_plane.kubeconfig, "ssh", "ssh-1", "-n", namespace, "-l", "fedora", env=bare
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    # virtctl is sent to the cluster the user named, not its default kubeconfig's (review s22).
    kubeconfig = control_plane.kubeconfig
    assert out.decode().strip() == (
        f"virtctl ssh vm/ssh-1-vm --namespace {namespace} --kubeconfig {kubeconfig} "
        "--username fedora"
    )
    text = await asyncio.to_thread(Path(kubeconfig).read_text)
    context = yaml.safe_load(text)["current-context"]
    argv = ["--kubeconfig", str(kubeconfig), "--context", context, "-n", namespace]
    # After --, OpenSSH's options whichever client runs: virtctl gets each one as its
    # --local-ssh-opts (given as they were, `-L` was virtctl's unknown flag; session 41).
    proc = await wukong_subprocess(
        "ssh", "ssh-1", *argv, "--", "-L", "8080:localhost:80", env=bare
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == (
        f"virtctl ssh vm/ssh-1-vm --namespace {namespace} --kubeconfig {kubeconfig} "
        f"--context {context} --local-ssh-opts=-L --local-ssh-opts=8080:localhost:80"
    )
    # An option wukong does not know is a mistake before `--`, not virtctl's to guess.
    proc = await wukong_subprocess("ssh", "ssh-1", *argv, "--bogus", env=bare)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and "--bogus" in err.decode()
    # A command instead of a shell: virtctl ssh's --command.
    proc = await wukong_subprocess("ssh", "ssh-1", *argv, "-c", "uptime -p", env=bare)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip().endswith(f"--context {context} --command uptime -p")
    # With OpenSSH there too, a cluster the user named goes to OpenSSH with wukong's own
    # ProxyCommand: virtctl's tunnel (`virtctl port-forward`, namespace only) would take the
    # default kubeconfig's context (guest-access audit, session 41).
    openssh = tmp_path / "ssh"
    openssh.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    openssh.chmod(0o755)
    proc = await wukong_subprocess("ssh", "ssh-1", *argv, "-l", "fedora", env=bare)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "virtctl's tunnel would not take --kubeconfig or --context" in err.decode()
    words = out.decode().splitlines()
    assert words[0] == "-o" and words[1].startswith("ProxyCommand=")
    assert f"--kubeconfig {kubeconfig} --context {context}" in words[1]
    assert words[-1] == f"fedora@ssh-1.{namespace}"


if kubevirt_mode() == "real":  # the guest-console-log container is virt-controller's

    async def test_logs_print_the_guests_serial_console_and_follow_it_to_a_panic(
        k: Kube,
        namespace: str,
        operator: InProcessOperator,
        sim: Simulator,
        control_plane: ControlPlane,
    ) -> None:
        kubeconfig = control_plane.kubeconfig
        await create(k, "wukong", namespace, wukong("log-1"))
        await wait_phase(k, namespace, "log-1", "Running", within=60)
        proc = await wukong_cli(kubeconfig, "logs", "log-1", "-n", namespace)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        boot = out.decode().splitlines()
        assert boot[0].startswith("[    0.000000] Linux version 6.8.5-301.fc40.x86_64"), boot
        assert "Fedora Linux 40 (Cloud Edition)" in boot
        assert boot[-1] == "log-1-vm login: "
        proc = await wukong_cli(
            kubeconfig, "logs", "log-1", "-n", namespace, "--tail", "1", "--timestamps"
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
        assert re.fullmatch(f"{stamp} log-1-vm login: \n", out.decode()), out
        # -f prints the boot, then what comes: the guest's panic, and ends with its pod's VM.
        proc = await wukong_cli(kubeconfig, "logs", "log-1", "-n", namespace, "-f")
        assert proc.stdout is not None
        await read_until(proc.stdout, b"log-1-vm login: ")
        sim.guest(namespace, "log-1-vm").crash()
        rest, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert "Kernel panic - not syncing: Attempted to kill init!" in rest.decode()
        # Under runStrategy Always KubeVirt starts the VM again, in a new pod: a new boot.
        await wait_phase(k, namespace, "log-1", "Running", within=60)

        async def rebooted() -> str | None:
            proc = await wukong_cli(kubeconfig, "logs", "log-1", "-n", namespace)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            text = out.decode()
            return text if proc.returncode == 0 and "Kernel panic" not in text else None

        assert (await eventually(rebooted, timeout=30)).endswith("log-1-vm login: \n")
        # What is typed at the console is echoed to the serial port, so the log has it,
        # after the prompt it answers.
        async with at_console(kubeconfig, "log-1", namespace) as console:
            assert console.stdin is not None and console.stdout is not None
            await read_until(console.stdout, b"login: ")
            console.stdin.write(b"fedora\rls /\r")
            await read_until(console.stdout, b"ls /\r")
            code, said = await leave(console)
        assert code == 0, said
        done = await ran(kubeconfig, "logs", "log-1", "-n", namespace, "--tail", "2")
        assert done.out.decode().splitlines() == ["log-1-vm login: fedora", "ls /"]

    async def test_logs_of_a_stopped_vm_say_there_is_none(
        k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
    ) -> None:
        await create(k, "wukong", namespace, wukong("log-2", startStrategy={"autoStart": False}))
        await wait_phase(k, namespace, "log-2", "Stopped", within=60)
        proc = await wukong_cli(control_plane.kubeconfig, "logs", "log-2", "-n", namespace)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert (proc.returncode, out) == (1, b"")
        assert err.decode().strip() == (
            "error: wukong log-2 is Stopped and has no running VM: the serial console log "
            f"lives in the VM's pod, from its start (wukong start log-2 -n {namespace})"
        )


async def test_soft_reboot_reboots_the_guest_in_its_pod_and_describe_tells_it(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("sr-1"))
    await wait_phase(k, namespace, "sr-1", "Running", within=60)
    vmis = api_path("kubevirt.io", "v1", "virtualmachineinstances", namespace)
    before = await k.get(f"{vmis}/sr-1-vm")
    done = await ran(kubeconfig, "soft-reboot", "sr-1", "-n", namespace)
    assert done.code == 0, done.err.decode()
    assert done.out.decode() == "sr-1 is rebooting in place (same pod, node and address)\n"
    guest = sim.guest(namespace, "sr-1-vm")
    assert guest.soft_reboots == 1
    # The same VMI (so the same pod and node) runs on: nothing for the operator to do.
    after = await k.get(f"{vmis}/sr-1-vm")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert (after["status"]["phase"], after["status"]["nodeName"]) == (
        "Running",
        before["status"]["nodeName"],
    )

    # KubeVirt's only word of it, virt-handler's Event on the VMI, is in describe's story.
    async def told() -> str | None:
        page = (await ran(kubeconfig, "describe", "sr-1", "-n", namespace)).out.decode()
        return page if "SoftRebooted" in page else None

    page = await eventually(told, timeout=30, message="describe shows the soft reboot")
    (line,) = [x for x in page.split("Events:\n", 1)[1].splitlines() if "SoftRebooted" in x]
    cells = line.split()
    reason = cells.index("SoftRebooted")
    assert cells[reason - 1 : reason + 2] == ["Normal", "SoftRebooted", "vmi/sr-1-vm"], line
    assert line.rstrip().endswith("VirtualMachineInstance soft rebooted"), line
    if kubevirt_mode() == "real":  # the serial log is the VM pod's (virt-controller's)
        done = await ran(kubeconfig, "logs", "sr-1", "-n", namespace)
        assert done.code == 0, done.err.decode()
        lines = done.out.decode().splitlines()
        restart = next(i for i, x in enumerate(lines) if x.endswith("reboot: Restarting system"))
        assert lines[restart + 1].startswith("[    0.000000] Linux version"), lines
        assert lines.count("sr-1-vm login: ") == 2 and lines[-1] == "sr-1-vm login: "
    # A paused guest cannot reboot: one line, and nothing reaches KubeVirt.
    done = await ran(kubeconfig, "suspend", "sr-1", "-n", namespace, "--wait", within=60)
    assert done.code == 0, done.err.decode()
    done = await ran(kubeconfig, "soft-reboot", "sr-1", "-n", namespace)
    assert (done.code, done.out) == (1, b"")
    assert done.err.decode() == (
        "error: sr-1 is Suspended: a paused guest cannot reboot "
        f"(wukong resume sr-1 -n {namespace} first)\n"
    )
    assert guest.soft_reboots == 1


async def test_screenshot_saves_what_the_vms_screen_shows(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("shot-1"))
    await wait_phase(k, namespace, "shot-1", "Running", within=60)
    shot = tmp_path / "shot.png"
    argv = ["screenshot", "shot-1", "-n", namespace]
    done = await ran(kubeconfig, *argv, "--file", str(shot))
    assert done.code == 0, done.err.decode()
    assert done.out.decode() == f"{shot}: the screen of shot-1, 720x400\n"
    # The PNG as virt-handler sent it, through virt-api and the API server, byte for byte.
    data = shot.read_bytes()
    assert png_size(data) == (720, 400)
    done = await ran(kubeconfig, *argv, "--file", "-")
    assert (done.code, done.out) == (0, data), done.err.decode()
    # A VM without a display: virt-api refuses the screenshot with a 500 in plain text, its
    # words, which the CLI told as the API server failing (guest-access audit, session 41).
    vm = path("vm", namespace, "shot-1-vm")
    no_display = {"autoattachGraphicsDevice": False}
    await k.merge_patch(vm, {"spec": {"template": {"spec": {"domain": {"devices": no_display}}}}})
    restarted = await ran(kubeconfig, "restart", "shot-1", "-n", namespace, "--wait", within=120)
    assert restarted.code == 0, restarted.err.decode()
    done = await ran(kubeconfig, *argv, "--file", str(shot))
    assert (done.code, done.err.decode()) == (
        1,
        "error: KubeVirt cannot take a screenshot of shot-1: No graphics devices are present.\n",
    )


async def test_expose_makes_a_service_for_the_vms_pod_that_goes_with_the_wukong(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("exp-1"))
    await wait_phase(k, namespace, "exp-1", "Running", within=60)
    argv = ["expose", "exp-1", "-n", namespace, "--name", "exp-1-ssh", "--port", "2222"]
    argv += ["--target-port", "22", "--type", "NodePort"]
    proc = await wukong_cli(kubeconfig, *argv)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    said = re.fullmatch(
        r"service/exp-1-ssh exposed: NodePort 2222:(\d+)/TCP → port 22 of exp-1\n", out.decode()
    )
    assert said is not None, out
    svc = await k.get(api_path("", "v1", "services", namespace, "exp-1-ssh"))
    assert svc["spec"]["ports"][0]["nodePort"] == int(said.group(1))
    # The selector picks the VM's virt-launcher pod, and only it.
    selector = ",".join(f"{key}={value}" for key, value in svc["spec"]["selector"].items())
    pods = await k.request(
        "GET", api_path("", "v1", "pods", namespace), query={"labelSelector": selector}
    )
    vmis = api_path("kubevirt.io", "v1", "virtualmachineinstances", namespace)
    vmi = await k.get(f"{vmis}/exp-1-vm")
    (pod,) = pods["items"]
    assert pod["metadata"]["labels"]["kubevirt.io/created-by"] == vmi["metadata"]["uid"]
    proc = await wukong_cli(kubeconfig, *argv)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert err.decode().strip() == (
        f"error: service exp-1-ssh already exists in namespace {namespace}: "
        "give another with --name"
    )
    # The delete plan names it, and the garbage collector removes it after the Wukong.
    proc = await wukong_cli(kubeconfig, "delete", "exp-1", "-n", namespace, "--yes", "--wait")
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    assert "  delete  Service exp-1-ssh\n" in out.decode()

    async def service_gone() -> bool:
        try:
            await k.get(api_path("", "v1", "services", namespace, "exp-1-ssh"))
        except NotFound:
            return True
        return False

    await eventually(service_gone, timeout=30, message="the Service collected with its Wukong")


async def test_scp_hands_the_copy_to_virtctl_for_the_wukongs_vm(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("scp-1"))
    await wait_phase(k, namespace, "scp-1", "Running", within=60)
    python_dir = str(Path(sys.executable).parent)
    bare = os.environ | {"PATH": f"{tmp_path}{os.pathsep}{python_dir}"}
    argv = ["scp", "fedora@scp-1:/var/log/cloud-init.log", str(tmp_path), "-n", namespace]
    proc = await wukong_cli(kubeconfig, *argv, env=bare)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "wukong scp uses virtctl or OpenSSH's scp, and neither is on PATH" in err.decode()
    fake = tmp_path / "virtctl"
    fake.write_text('#!/bin/sh\necho "virtctl $*"\n')
    fake.chmod(0o755)
    proc = await wukong_cli(kubeconfig, *argv, "-r", env=bare)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == (
        f"virtctl scp --namespace {namespace} --kubeconfig {kubeconfig} --recursive "
        f"fedora@vm/scp-1-vm:/var/log/cloud-init.log {tmp_path}"
    )
    # A VM that does not run is said before virtctl is asked.
    await create(k, "wukong", namespace, wukong("scp-2", startStrategy={"autoStart": False}))
    await wait_phase(k, namespace, "scp-2", "Stopped", within=60)
    proc = await wukong_cli(kubeconfig, "scp", ".", "scp-2:/tmp", "-n", namespace, env=bare)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert err.decode().strip() == (
        "error: wukong scp-2 is Stopped, not running: start it first "
        f"(wukong start scp-2 -n {namespace})"
    )
