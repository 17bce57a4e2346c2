"""The simulated guest OS: what its agent reports and how it reacts to power events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ._kube import JsonObj
from .objects import disk_bus, disks
from .serial_log import SerialLog, boot_lines, reboot_lines

GiB = 2**30

SSH_BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"  # what sshd says first, before any key exchange
OS_INFO: JsonObj = {
    "id": "fedora",
    "name": "Fedora Linux",
    "prettyName": "Fedora Linux 40 (Cloud Edition)",
    "version": "40 (Cloud Edition)",
    "versionId": "40",
    "kernelRelease": "6.8.5-301.fc40.x86_64",
    "kernelVersion": "#1 SMP PREEMPT_DYNAMIC Thu Apr 11 20:38:26 UTC 2024",
    "machine": "x86_64",
}
AGENT_COMMANDS = ("guest-ping", "guest-get-fsinfo", "guest-get-users", "guest-shutdown")


@dataclass
class Mount:
    """A filesystem the guest has mounted from one disk (named by disk name or serial)."""

    disk: str
    mount_point: str
    fs_type: str = "ext4"
    used_bytes: int | None = None
    total_bytes: int | None = None


def device_names(spec: JsonObj) -> dict[str, str]:
    """Guest device per disk name: virtio disks are vda, vdb...; scsi/sata ones sda, sdb..."""
    names: dict[str, str] = {}
    counters = {"vd": 0, "sd": 0}
    for disk in disks(spec):
        prefix = "vd" if disk_bus(disk) == "virtio" else "sd"
        names[disk["name"]] = prefix + chr(ord("a") + counters[prefix])
        counters[prefix] += 1
    return names


class Guest:
    """State a test can change; the simulator reads it on every VMI pass."""

    def __init__(
        self,
        namespace: str,
        name: str,
        agent_connected: bool = True,
        on_change: Callable[[Guest], None] | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self._agent_connected = agent_connected
        self._acpi: bool | None = None
        self.mounts: list[Mount] = []
        # virt-launcher's cache of the agent's filesystem report, per VMI uid: (when it was
        # taken, what it said). See `reported_filesystems`.
        self._fs_reports: dict[str, tuple[float, list[JsonObj]]] = {}
        self.root_mount = True  # "/" on the boot disk, like any installed guest
        # Whether its agent reports each filesystem's disk serial: not a qemu-ga built without
        # libudev, nor one older than 3.1 (CentOS 7's 2.12), nor some Windows storage drivers.
        self.reports_serials = True
        self.hostname = ""
        self.users = ["fedora"]
        self.power_off: str | None = None  # "Succeeded" (shutdown) or "Failed" (crash), once
        self.nics: tuple[str, ...] = ()  # the guest's own NICs beyond the spec's (docker0...)
        self.disk_failing = False  # its storage answers I/O with errors: QEMU pauses it
        self.serial_logs: dict[str, SerialLog] = {}  # VMI uid -> its serial console output
        self.soft_reboots = 0  # reboots in place (virt-handler's softreboot), for tests
        # TCP ports the guest serves (a banner, then an echo), where its address is this
        # machine's (guest_net.py): sshd's by default.
        self.ports: dict[int, bytes] = {22: SSH_BANNER}
        self.udp_ports: set[int] = set()  # UDP ports it serves: each datagram comes back
        # Each user's authorized SSH keys: cloud-init's at an instance's first boot, then the
        # guest agent's from the VMI's qemuGuestAgent accessCredentials, each agent user's
        # set written whole (access_credentials.py).
        self.authorized_keys: dict[str, list[str]] = {}
        # The instance-id cloud-init last booted as (cloud_init.py): it runs its per-instance
        # modules, the keys among them, only for another one.
        self.cloud_init_instance: str | None = None
        # The image's accounts (what `getent passwd` finds): keys for any other user cannot
        # be written, and KubeVirt says so in AccessCredentialsSynchronized. A cloud image's
        # login user (fedora) is made by cloud-init, at the first boot with a data source
        # (cloud_init.py); without one cloud-init turns itself off and there is none.
        self.accounts = {"root"}
        # virt-launcher's last sync of those keys, for the VMI of that uid: (uid, succeeded,
        # message), as it leaves it in the domain's metadata for virt-handler to report.
        self.credentials_sync: tuple[str, bool, str] | None = None
        self.on_change = on_change

    def __repr__(self) -> str:
        return f"Guest({self.namespace}/{self.name}, agent={self._agent_connected})"

    @property
    def agent_connected(self) -> bool:
        """Whether the guest agent answers; setting it updates AgentConnected on the VMI."""
        return self._agent_connected

    @agent_connected.setter
    def agent_connected(self, connected: bool) -> None:
        self._agent_connected = connected
        self._changed()

    @property
    def acpi(self) -> bool | None:
        """Honour the ACPI power button? None: SimConfig.acpi and the VM annotation decide."""
        return self._acpi

    @acpi.setter
    def acpi(self, honours: bool | None) -> None:
        self._acpi = honours
        self._changed()

    def serial(self, uid: str) -> SerialLog:
        """The serial console output of the VMI `uid` (its pod's `guest-console-log`)."""
        return self.serial_logs.setdefault(uid, SerialLog())

    def listen(self, port: int, banner: bytes = b"") -> None:
        """Serve `port` too (a web server, a database), from the guest's next look."""
        self.ports[port] = banner
        self._changed()

    def listen_udp(self, port: int) -> None:
        """Serve UDP `port` too (a DNS or NTP server): it answers each datagram with the
        same bytes, from the guest's next look."""
        self.udp_ports.add(port)
        self._changed()

    def soft_reboot(self, vmi: JsonObj) -> None:
        """The guest reboots in place: its console shows the reboot and a new boot, in the
        same pod's log (the VMI and its pod stay)."""
        self.soft_reboots += 1
        lines = reboot_lines() + boot_lines(vmi, OS_INFO)
        self.serial(vmi["metadata"]["uid"]).write_once(f"reboot-{self.soft_reboots}", lines)

    def report_credentials(self, uid: str, succeeded: bool, message: str) -> None:
        """virt-launcher's result of a sync of the VMI's agent keys (virt-handler reports it
        on the VMI's next pass)."""
        if self.credentials_sync != (uid, succeeded, message):
            self.credentials_sync = (uid, succeeded, message)
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def add_nics(self, *names: str) -> None:
        """NICs the guest makes itself (a container runtime's docker0 and veths): the agent
        reports them, and KubeVirt lists them in the VMI's status without a network name."""
        self.nics = (*self.nics, *names)
        self._changed()

    def set_agent(self, connected: bool) -> None:
        """Connect or disconnect the guest agent (AgentConnected follows)."""
        self.agent_connected = connected

    def mount(
        self,
        disk: str,
        mount_point: str,
        fs_type: str = "ext4",
        used_bytes: int | None = None,
        total_bytes: int | None = None,
    ) -> None:
        """Mount the disk with this name or serial at `mount_point` inside the guest."""
        self.mounts = [m for m in self.mounts if m.mount_point != mount_point]
        self.mounts.append(Mount(disk, mount_point, fs_type, used_bytes, total_bytes))
        self._changed()

    def unmount(self, disk_or_mount_point: str) -> None:
        """Unmount by mount point, disk name or serial."""
        self.mounts = [m for m in self.mounts if disk_or_mount_point not in (m.disk, m.mount_point)]
        if disk_or_mount_point == "/":
            self.root_mount = False
        self._changed()

    def disk_error(self) -> None:
        """The guest's storage starts failing its I/O (a full thin pool, a lost storage
        backend): QEMU pauses the guest (errorPolicy stop, KubeVirt's default)."""
        self.disk_failing = True
        self._changed()

    def disk_repaired(self) -> None:
        """The storage answers again; the guest stays paused until virt-handler's next try
        to resume it (or an unpause)."""
        self.disk_failing = False
        self._changed()

    def shutdown(self) -> None:
        """The guest powers itself off: the VMI ends Succeeded."""
        self.power_off = "Succeeded"
        self._changed()

    def crash(self) -> None:
        """The guest crashes: the VMI ends Failed."""
        self.power_off = "Failed"
        self._changed()

    def filesystems(self, vmi: JsonObj, capacities: dict[str, int]) -> list[JsonObj]:
        """filesystemlist items for the disks this VMI currently has."""
        spec = vmi.get("spec") or {}
        by_ident: dict[str, JsonObj] = {}
        for disk in disks(spec):
            by_ident[disk["name"]] = disk
            if disk.get("serial"):
                by_ident[str(disk["serial"])] = disk
        devices = device_names(spec)
        mounts = list(self.mounts)
        if self.root_mount and not any(m.mount_point == "/" for m in mounts):
            boot = _boot_disk(spec)
            if boot is not None:
                mounts.insert(0, Mount(boot["name"], "/", "xfs"))
        items: list[JsonObj] = []
        for mount in mounts:
            found = by_ident.get(mount.disk)
            if found is None:
                continue  # the disk is gone (unplugged): so is the mount
            disk = found
            total = mount.total_bytes or capacities.get(disk["name"]) or 10 * GiB
            device = devices[disk["name"]] + ("1" if mount.mount_point == "/" else "")
            items.append(
                {
                    "diskName": device,
                    "mountPoint": mount.mount_point,
                    "fileSystemType": mount.fs_type,
                    "usedBytes": mount.used_bytes if mount.used_bytes is not None else total // 10,
                    "totalBytes": total,
                    "disk": [self._disk_entry(disk)],
                }
            )
        return items

    def _disk_entry(self, disk: JsonObj) -> JsonObj:
        """A filesystem's disk as KubeVirt passes qemu-ga's on: `serial` is omitempty
        (VirtualMachineInstanceFileSystemDisk), absent for a disk without one or from an
        agent that cannot read serials."""
        entry: JsonObj = {"busType": disk_bus(disk)}
        if self.reports_serials and (serial := _id_serial(disk)):
            entry = {"serial": serial, **entry}
        return entry

    def reported_filesystems(
        self, vmi: JsonObj, capacities: dict[str, int], interval: float
    ) -> list[JsonObj]:
        """What KubeVirt answers for filesystemlist: not the guest as it is, but
        virt-launcher's cache of the agent's last report (manager.go GetFilesystems), which
        its poller refreshes every `interval` seconds (agent_poller.go). Taken here when
        first asked, then again at the first ask once `interval` has passed since it was
        taken; a mount or unmount between two refreshes is not in it."""
        uid = str(vmi.get("metadata", {}).get("uid") or "")
        now = time.monotonic()
        taken = self._fs_reports.get(uid)
        if taken is None or now - taken[0] >= interval:
            self._fs_reports[uid] = (now, self.filesystems(vmi, capacities))
        return self._fs_reports[uid][1]

    def os_info(
        self, vmi: JsonObj, capacities: dict[str, int], interval: float | None = None
    ) -> JsonObj:
        """The guestosinfo answer (its fsInfo from the same cache as filesystemlist when
        `interval` is given)."""
        return {
            "guestAgentVersion": "8.2.2",
            "supportedCommands": [{"name": c, "enabled": True} for c in AGENT_COMMANDS],
            "hostname": self.hostname or self.name,
            "os": dict(OS_INFO),
            "timezone": "UTC, 0",
            "userList": self.user_list()["items"],
            "fsInfo": {
                "disks": self.filesystems(vmi, capacities)
                if interval is None
                else self.reported_filesystems(vmi, capacities, interval)
            },
            "fsFreezeStatus": "thawed",
        }

    def user_list(self) -> JsonObj:
        """The userlist answer."""
        return {"items": [{"userName": u, "domain": "", "loginTime": 1.7e9} for u in self.users]}


def _id_serial(disk: JsonObj) -> str:
    """The disk's serial as a Linux guest's udev reports it (ID_SERIAL, which qemu-ga puts in
    guest-get-fsinfo): a virtio-blk disk shows its first 20 bytes (VIRTIO_BLK_ID_BYTES), a
    QEMU SCSI disk its vendor and model first."""
    serial = str(disk.get("serial") or "")
    if not serial:
        return ""
    if disk_bus(disk) == "scsi":
        return f"0QEMU_QEMU_HARDDISK_{serial}"
    return serial[:20]


def _boot_disk(spec: JsonObj) -> JsonObj | None:
    all_disks = disks(spec)
    ordered = sorted(
        (d for d in all_disks if d.get("bootOrder") is not None), key=lambda d: d["bootOrder"]
    )
    return ordered[0] if ordered else (all_disks[0] if all_disks else None)
