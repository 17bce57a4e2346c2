"""The guest's serial console output, as KubeVirt keeps it: virt-launcher writes serial port 0
to a file in the VM's pod, and the pod's `guest-console-log` container (`virt-tail`) prints
it, so `kubectl logs <virt-launcher pod> -c guest-console-log` shows the guest's boot.

One log per VMI (per pod): a restart's new VMI starts a new one, as a new pod does. The
simulated guest writes what a Fedora cloud image writes on its serial console: the kernel's
first lines, systemd and cloud-init, the login prompt; and a power-down or a kernel panic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ._kube import JsonObj


@dataclass(frozen=True)
class Line:
    """One line of console output and when the guest wrote it."""

    at: datetime
    text: str


class SerialLog:
    """The serial console output of one VMI; it ends when its VM powers off."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.ended = False
        self._written: set[str] = set()
        self._changed = asyncio.Event()
        self._typing = ""  # what was typed at the console since its last Enter

    def typed(self, data: bytes) -> None:
        """Keys typed at the serial console: the guest's tty echoes them to the port, so each
        line entered is in the log too, after the prompt it answers (`web-1 login: root`)."""
        for char in data.replace(b"\r\n", b"\r").decode(errors="replace"):
            if char not in "\r\n":
                self._typing += char
                continue
            if self.ended:
                return
            last = self.lines[-1] if self.lines else None
            if last is not None and last.text.endswith(": "):  # a prompt: same line
                self.lines[-1] = Line(last.at, last.text + self._typing)
            else:
                self.lines.append(Line(datetime.now(UTC), self._typing))
            self._typing = ""
            self._wake()

    def write_once(self, tag: str, lines: list[str]) -> None:
        """Append `lines` unless `tag` was written already: a pass whose status write lost a
        race runs again, and the guest boots once."""
        if tag in self._written or self.ended:
            return
        self._written.add(tag)
        at = datetime.now(UTC)
        self.lines += [Line(at, text) for text in lines]
        self._wake()

    def end(self) -> None:
        """The VM powered off: `virt-tail` exits with the pod, and a follower's stream ends."""
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, start: int, poll: float) -> AsyncIterator[Line]:
        """Lines from index `start` on, as they are written, until the log ends; yields
        nothing new for `poll` seconds at a time so the caller can check that its pod is
        still there."""
        index = start
        while True:
            while index < len(self.lines):
                yield self.lines[index]
                index += 1
            if self.ended:
                return
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), poll)
            except TimeoutError:
                return


def _stamp(seconds: float) -> str:
    return f"[{seconds:12.6f}]"


def boot_lines(vmi: JsonObj, os_info: JsonObj) -> list[str]:
    """What a guest with `os_info` (the agent's guestOSInfo) prints from power-on to its
    login prompt."""
    spec = vmi.get("spec") or {}
    domain = spec.get("domain") or {}
    cpu = domain.get("cpu") or {}
    cpus = int(cpu.get("cores") or 1) * int(cpu.get("sockets") or 1) * int(cpu.get("threads") or 1)
    memory = (domain.get("memory") or {}).get("guest") or (
        (domain.get("resources") or {}).get("requests") or {}
    ).get("memory", "")
    host = str(spec.get("hostname") or vmi["metadata"]["name"])
    kernel = os_info["kernelRelease"]
    return [
        f"{_stamp(0)} Linux version {kernel} (mockbuild@fedoraproject.org) "
        f"{os_info['kernelVersion']}",
        f"{_stamp(0)} Command line: BOOT_IMAGE=(hd0,gpt3)/vmlinuz-{kernel} "
        "root=LABEL=fedora ro console=tty1 console=ttyS0,115200n8",
        f"{_stamp(0)} DMI: KubeVirt None/RHEL, BIOS 1.16.3-2.el9 04/01/2014",
        f"{_stamp(0.021)} smpboot: Allowing {cpus} CPUs, 0 hotplug CPUs",
        f"{_stamp(0.094)} Memory: {memory} available",
        f"{_stamp(1.802)} systemd[1]: Hostname set to <{host}>.",
        "[  OK  ] Reached target multi-user.target - Multi-User System.",
        f"{_stamp(6.417)} cloud-init[731]: Cloud-init v. 24.1.4 finished. "
        "Datasource DataSourceNoCloud [seed=/dev/vdb][dsmode=net].  Up 6.41 seconds",
        "",
        os_info["prettyName"],
        f"Kernel {kernel} on an x86_64 (ttyS0)",
        "",
        f"{host} login: ",
    ]


def power_down_lines() -> list[str]:
    """A clean shutdown (the ACPI power button, or the guest's own `poweroff`)."""
    return [
        "[  OK  ] Reached target poweroff.target - System Power Off.",
        f"{_stamp(87.113)} reboot: Power down",
    ]


def reboot_lines() -> list[str]:
    """A reboot the guest was asked for (the agent's `shutdown -r`, or the ACPI button
    with reboot as its action): systemd goes down, the firmware starts over."""
    return [
        "[  OK  ] Reached target reboot.target - System Reboot.",
        f"{_stamp(91.502)} reboot: Restarting system",
    ]


def panic_lines(os_info: JsonObj) -> list[str]:
    """The guest crashed: its last words."""
    return [
        f"{_stamp(42.318)} Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009",
        f"{_stamp(42.318)} CPU: 0 PID: 1 Comm: systemd Not tainted {os_info['kernelRelease']} #1",
        f"{_stamp(42.319)} ---[ end Kernel panic - not syncing: Attempted to kill init! "
        "exitcode=0x00000009 ]---",
    ]
