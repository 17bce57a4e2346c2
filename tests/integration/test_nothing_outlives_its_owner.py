"""Killing `wukong demo` however it is killed leaves no control plane process and no etcd data.

`timeout`, a closed terminal and a cancelled CI job send SIGTERM or SIGHUP; an OOM kill or a
`kill -9` sends SIGKILL. None of them runs Python's cleanup, so the control plane's watchdog
(wukong/testing/_watchdog.py) must stop etcd, kube-apiserver, kube-controller-manager and
KubeVirt's virt-api and virt-controller, and remove etcd's data in /dev/shm, on its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wukong.testing._watchdog import start_time

CONTROL_PLANE = {"etcd", "kube-apiserver", "kube-controller-manager"}
KUBEVIRT = {"virt-api", "virt-controller"}
# When each signal arrives. SIGKILL once everything runs, KubeVirt and the operator included;
# SIGTERM and SIGHUP (the demo has no handler for either, so they kill it as SIGKILL does) as
# soon as the control plane answers, while KubeVirt's components are still starting: what a
# cancelled CI job does, and about 40 s less for each of the two.
KILL_AT = {
    signal.SIGKILL: "operator running",
    signal.SIGTERM: "kubeconfig:",
    signal.SIGHUP: "kubeconfig:",
}


def _children(parent: int) -> dict[int, list[str]]:
    """Direct children of `parent`: pid -> argv."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found[int(entry.name)] = [a.decode() for a in argv if a]
    return found


def _alive(pid: int, started: str) -> bool:
    """The same process still exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and start_time(pid) == started


class _Lines:
    """The demo's output, read in the background."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line)

    def close(self) -> None:
        """Once the process has ended: let the reader finish, close the pipe."""
        self._thread.join(10)
        assert self._proc.stdout is not None
        self._proc.stdout.close()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self._proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} from the demo:\n{''.join(self.lines[-30:])}")


def _default_signals() -> None:
    """In the child before exec: SIGHUP and SIGTERM do what they do by default."""
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: signal.Signals(s).name
)
def test_a_killed_demo_leaves_no_control_plane_and_no_etcd_data(sig: signal.Signals) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "wukong", "demo", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As from a terminal: a run under nohup (or a CI runner that ignores SIGHUP) would
        # hand the demo an ignored SIGHUP, and it would rightly live on.
        preexec_fn=_default_signals,
    )
    output = _Lines(demo)
    guarded: dict[int, str] = {}
    try:
        ready = output.wait_for("kubeconfig:", timeout=120)
        work_dir = Path(re.sub(r".*kubeconfig: ", "", ready).strip()).parent
        output.wait_for(KILL_AT[sig], timeout=120)
        children = _children(demo.pid)
        planes = {
            pid: argv
            for pid, argv in children.items()
            if Path(argv[0]).name in CONTROL_PLANE | KUBEVIRT
        }
        running = {Path(argv[0]).name for argv in planes.values()}
        assert running >= CONTROL_PLANE, running
        if any("virt-api (webhooks" in line for line in output.lines):  # real mode, started
            assert running >= KUBEVIRT, running
        guarded = {pid: start_time(pid) for pid in planes}
        etcd = next(argv for argv in planes.values() if Path(argv[0]).name == "etcd")
        data_dir = Path(next(a.split("=", 1)[1] for a in etcd if a.startswith("--data-dir=")))
        assert data_dir.is_dir() and work_dir.is_dir()

        demo.send_signal(sig)
        assert demo.wait(30) != 0

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            any(_alive(pid, started) for pid, started in guarded.items()) or data_dir.exists()
        ):
            time.sleep(0.2)
        left = {pid: planes[pid][0] for pid, started in guarded.items() if _alive(pid, started)}
        assert left == {}, f"still running after {sig.name}: {left}"
        assert not data_dir.exists(), f"etcd's data survived {sig.name}: {data_dir}"
        assert not work_dir.exists(), f"the work dir survived {sig.name}: {work_dir}"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        output.close()
        for pid, started in guarded.items():  # a failed test must not leak its control plane
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)


OWNER = """
import sys, time
from pathlib import Path
from wukong.testing.operator import OperatorProcess
proc = OperatorProcess(Path(sys.argv[1]), namespace="default")
proc.start()
print(proc.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(60)
def test_an_operator_process_dies_with_the_test_run_that_started_it(
    operator_kubeconfig: Path,
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(operator_kubeconfig)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    started = start_time(pid)
    try:
        assert _alive(pid, started)
        owner.kill()  # SIGKILL: no cleanup of its own
        owner.wait(10)
        deadline = time.monotonic() + 10
        while _alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid, started), "the operator outlived the process that started it"
    finally:
        owner.stdout.close()
        if _alive(pid, started):
            os.kill(pid, signal.SIGKILL)
