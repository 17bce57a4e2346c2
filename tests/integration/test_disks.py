"""Disks at runtime (issue 8): hot-plug, guarded hot-unplug, expansion."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scenario import (
    IMAGE,
    OPERATOR_USER,
    condition,
    create,
    get,
    items,
    k,
    operator,
    patch_spec,
    path,
    requests_sent,
    sim,
    simulator,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from tests.integration.test_lifecycle import request
from tests.integration.test_lifecycle_sequences import settled_answer
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import Invalid
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane
from wukong.testing.operator import InProcessOperator, OperatorProcess

__all__ = ["k", "operator", "sim"]  # fixtures
SYSTEM = {"name": "system", "size": "10Gi", "image": IMAGE}


def disk(name: str, size: str = "1Gi", **extra: Any) -> dict[str, Any]:
    return {"name": name, "size": size, **extra}


def volume(cr: dict[str, Any], name: str) -> dict[str, Any]:
    return next((v for v in cr["status"].get("volumes") or [] if v["name"] == name), {})


def calls(sim: Simulator, verb: str) -> list[Any]:
    """The operator's own calls (virt-controller also calls the VMI's addvolume, with real
    KubeVirt's HotplugVolumes gate)."""
    return [c for c in sim.calls if c.subresource == verb and c.user == OPERATOR_USER]


async def template_volumes(k: Kube, namespace: str, name: str) -> list[str]:
    vm = await get(k, "vm", namespace, f"{name}-vm")
    assert vm is not None
    return [v["name"] for v in vm["spec"]["template"]["spec"]["volumes"]]


async def test_disk_added_to_a_running_wukong_is_hotplugged_through_addvolume(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await create(k, "wukong", namespace, wukong("hp-1", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-1", "Running")
    await patch_spec(k, namespace, "hp-1", {"disks": [SYSTEM, disk("logs")]})
    cr = await wait_for(k, namespace, "hp-1", lambda c: volume(c, "logs").get("attached"))
    assert volume(cr, "logs")["hotplugged"] is True
    [call] = calls(sim, "addvolume")
    assert call.body == {
        "name": "logs",
        "disk": {"name": "logs", "disk": {"bus": "virtio"}, "serial": "logs"},
        "volumeSource": {"persistentVolumeClaim": {"claimName": "hp-1-logs", "hotpluggable": True}},
    }
    assert cr["status"]["phase"] == "Running"
    # DiskHotplug is there only while a disk is being plugged (docs/decisions.md).
    await wait_for(k, namespace, "hp-1", lambda c: condition(c, "DiskHotplug") == {})
    # `kubectl describe` tells the attach as it tells a detach: one Normal Event.
    [attached] = await eventually(
        lambda: wukong_events(k, namespace, "DiskAttached"), message="a DiskAttached Event"
    )
    assert (attached["type"], attached["message"]) == (
        "Normal",
        "disk logs plugged into the running VM",
    )


async def test_disk_added_to_a_stopped_wukong_joins_the_vm_template(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await create(
        k, "wukong", namespace, wukong("hp-2", disks=[SYSTEM], startStrategy={"autoStart": False})
    )
    await wait_phase(k, namespace, "hp-2", "Stopped")
    await patch_spec(k, namespace, "hp-2", {"disks": [SYSTEM, disk("logs")]})
    await eventually(lambda: _has(template_volumes(k, namespace, "hp-2"), "logs"), timeout=20)
    assert calls(sim, "addvolume") == []


async def deleted_by_hand(
    k: Kube, namespace: str, kind: str, name: str, *, within: float
) -> dict[str, Any]:
    """`kubectl delete KIND NAME` of a disk's child; waits (`within` s) until the operator
    has made it again (another uid) and returns the one Warning DiskClaimLost it posted."""
    before = await get(k, kind, namespace, name)
    assert before is not None
    await k.delete(path(kind, namespace, name))

    async def made_again() -> bool:
        now = await get(k, kind, namespace, name)
        return now is not None and now["metadata"]["uid"] != before["metadata"]["uid"]

    await eventually(made_again, timeout=within, message=f"{kind} {name} made again")

    async def said() -> list[dict[str, Any]]:
        return await wukong_events(k, namespace, "DiskClaimLost")

    [told] = await eventually(said, timeout=10, message="DiskClaimLost posted")
    assert told["type"] == "Warning"
    return told


async def test_a_claim_deleted_outside_wukong_is_made_again_and_the_loss_is_said(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """kubectl delete pvc of a stopped Wukong's blank disk: the operator makes the claim
    again (the spec says the disk exists), and a Warning says it is empty now."""
    body = wukong("lost-1", disks=[SYSTEM, disk("data")], startStrategy={"autoStart": False})
    await create(k, "wukong", namespace, body)
    await wait_for(
        k,
        namespace,
        "lost-1",
        lambda c: bool(c.get("status")) and volume(c, "data").get("bound") is True,
        what="disk data bound",
    )
    await wait_phase(k, namespace, "lost-1", "Stopped")
    told = await deleted_by_hand(k, namespace, "pvc", "lost-1-data", within=30)
    assert told["message"] == (
        "claim lost-1-data of disk data was deleted outside Wukong: it is made again, empty "
        "(the data that was on it is gone)"
    )


async def test_an_imported_disks_data_volume_deleted_outside_wukong_is_imported_again_and_said(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    body = wukong("lost-2", disks=[SYSTEM], startStrategy={"autoStart": False})
    await create(k, "wukong", namespace, body)
    await wait_for(
        k,
        namespace,
        "lost-2",
        lambda c: bool(c.get("status")) and volume(c, "system").get("phase") == "Succeeded",
        what="disk system imported",
    )
    told = await deleted_by_hand(
        k, namespace, "dv", "lost-2-system", within=60
    )  # its claim goes too
    assert told["message"] == (
        "DataVolume lost-2-system of disk system was deleted outside Wukong, and its claim "
        "with it: the disk is made again and imported anew (what the guest wrote on it is "
        "gone)"
    )
    await wait_for(
        k,
        namespace,
        "lost-2",
        lambda c: volume(c, "system").get("phase") == "Succeeded",
        within=60,
        what="imported again",
    )


async def _has(names_: Any, wanted: str) -> bool:
    return wanted in await names_


async def test_mounted_disk_is_not_unplugged_until_the_guest_unmounts_it(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await create(k, "wukong", namespace, wukong("hp-3", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-3", "Running")
    await patch_spec(k, namespace, "hp-3", {"disks": [SYSTEM, disk("logs")]})
    await wait_for(k, namespace, "hp-3", lambda c: volume(c, "logs").get("attached"))
    sim.guest(namespace, "hp-3-vm").mount("logs", "/var/log")
    await patch_spec(k, namespace, "hp-3", {"disks": [SYSTEM]})
    cr = await wait_for(
        k, namespace, "hp-3", lambda c: condition(c, "DiskDetach").get("reason") == "DiskInUse"
    )
    assert "/var/log" in condition(cr, "DiskDetach")["message"]
    assert calls(sim, "removevolume") == []
    assert "logs" in await template_volumes(k, namespace, "hp-3")
    sim.guest(namespace, "hp-3-vm").unmount("/var/log")  # the operator asks again by itself
    await eventually(lambda: _gone(k, "pvc", namespace, "hp-3-logs"), timeout=30)
    assert len(calls(sim, "removevolume")) == 1
    assert "logs" not in await template_volumes(k, namespace, "hp-3")


async def _gone(k: Kube, kind: str, namespace: str, name: str) -> bool:
    return await get(k, kind, namespace, name) is None


async def test_a_disk_mounted_since_the_guests_last_report_is_not_unplugged(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    kubevirt: KubeVirtPlane | None,
    operator_kubeconfig: Path,
) -> None:
    """KubeVirt answers filesystemlist from virt-launcher's cache of the guest agent's
    report, refreshed every 5 minutes: a disk mounted since reads unmounted. The operator
    unplugged such a disk at once, under its filesystem (found by a simulator audit, session
    40). Now an "unmounted" answer counts only once a report made after the detach must
    exist: here the newer report shows the mount, and nothing is unplugged until the guest
    unmounts it. (A 4 s refresh, for both the simulated node and the operator.)"""
    every = 4.0
    config = replace(SimConfig(), guest_report_interval=every)
    async with (
        simulator(control_plane, kubevirt, namespace, config) as node,
        InProcessOperator(operator_kubeconfig, namespace=namespace, guest_report_interval=every),
    ):
        await create(k, "wukong", namespace, wukong("hp-c", disks=[SYSTEM]))
        await wait_phase(k, namespace, "hp-c", "Running")
        await patch_spec(k, namespace, "hp-c", {"disks": [SYSTEM, disk("logs")]})
        await wait_for(k, namespace, "hp-c", lambda c: volume(c, "logs").get("attached"))
        fslist = api_path("subresources.kubevirt.io", "v1", "virtualmachineinstances", namespace)
        reported = await k.get(f"{fslist}/hp-c-vm/filesystemlist")  # KubeVirt caches this one
        assert "/srv" not in {fs["mountPoint"] for fs in reported["items"]}
        node.guest(namespace, "hp-c-vm").mount("logs", "/srv")
        await patch_spec(k, namespace, "hp-c", {"disks": [SYSTEM]})
        cr = await wait_for(
            k,
            namespace,
            "hp-c",
            lambda c: condition(c, "DiskDetach").get("reason") == "AwaitingGuestReport",
            what="the detach waiting for a newer report",
        )
        assert (
            "is unmounted as the guest agent last reported"
            in (condition(cr, "DiskDetach")["message"])
        )
        cr = await wait_for(
            k,
            namespace,
            "hp-c",
            lambda c: condition(c, "DiskDetach").get("reason") == "DiskInUse",
            within=3 * every,
            what="the newer report showing the mount",
        )
        assert calls(node, "removevolume") == []
        assert "logs" in await template_volumes(k, namespace, "hp-c")
        node.guest(namespace, "hp-c-vm").unmount("/srv")  # shown at the next refresh
        await eventually(lambda: _gone(k, "pvc", namespace, "hp-c-logs"), timeout=30)
        assert len(calls(node, "removevolume")) == 1


async def test_a_guest_agent_that_reports_no_disk_serials_holds_the_detach(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """SPEC §6: "if it is [mounted], or the agent cannot tell, the detach waits". A guest
    agent without serials (qemu-ga older than 3.1, or built without libudev) cannot say
    which disk a filesystem is on: the disk, mounted at /srv, was read "not mounted" and
    unplugged, its claim deleted (found by the disk-safety audit, session 46). Now it waits,
    until the agent can tell (here: it is upgraded, and the guest unmounts it)."""
    await create(k, "wukong", namespace, wukong("hp-s", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-s", "Running")
    await patch_spec(k, namespace, "hp-s", {"disks": [SYSTEM, disk("logs")]})
    await wait_for(k, namespace, "hp-s", lambda c: volume(c, "logs").get("attached"))
    guest = sim.guest(namespace, "hp-s-vm")
    guest.reports_serials = False
    guest.mount("logs", "/srv")
    await asyncio.sleep(sim.config.guest_report_interval)  # in KubeVirt's report now
    await patch_spec(k, namespace, "hp-s", {"disks": [SYSTEM]})
    cr = await wait_for(
        k,
        namespace,
        "hp-s",
        lambda c: condition(c, "DiskDetach").get("reason") == "DiskCheckUnavailable",
        what="the detach waiting for an agent that cannot tell",
    )
    message = condition(cr, "DiskDetach")["message"]
    assert "the guest agent names no disk serial for the filesystems at /, /srv" in message
    assert "detachOptions.force" in message
    # Several refreshes of the report later (1 s each here), still waiting.
    await asyncio.sleep(3 * sim.config.guest_report_interval + 2)
    assert calls(sim, "removevolume") == []
    assert "logs" in await template_volumes(k, namespace, "hp-s")
    assert await get(k, "pvc", namespace, "hp-s-logs") is not None
    cr = await get(k, "wukong", namespace, "hp-s")
    assert cr is not None and condition(cr, "DiskDetach").get("reason") == "DiskCheckUnavailable"
    # An agent that can tell, and the disk unmounted: the detach goes on by itself.
    guest.reports_serials = True
    guest.unmount("/srv")
    await eventually(lambda: _gone(k, "pvc", namespace, "hp-s-logs"), timeout=30)
    assert len(calls(sim, "removevolume")) == 1


async def test_a_kept_disk_still_detaching_survives_the_wukongs_deletion(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The detach asked to keep the data, the guest still has the disk mounted, and the
    Wukong is deleted meanwhile: the disk is no longer in the spec, but its data is kept."""
    await create(k, "wukong", namespace, wukong("hp-7", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-7", "Running")
    logs = disk("logs", detachOptions={"preserveData": True})
    await patch_spec(k, namespace, "hp-7", {"disks": [SYSTEM, logs]})
    await wait_for(k, namespace, "hp-7", lambda c: volume(c, "logs").get("attached"))
    sim.guest(namespace, "hp-7-vm").mount("logs", "/var/log")
    await patch_spec(k, namespace, "hp-7", {"disks": [SYSTEM]})
    await wait_for(
        k, namespace, "hp-7", lambda c: condition(c, "DiskDetach").get("reason") == "DiskInUse"
    )
    await k.delete(path("wukong", namespace, "hp-7"))
    await eventually(lambda: _gone(k, "wukong", namespace, "hp-7"), timeout=60)
    await eventually(lambda: _gone(k, "pvc", namespace, "hp-7-system"), timeout=30)
    pvc = await get(k, "pvc", namespace, "hp-7-logs")
    assert pvc is not None, "the disk whose detach said preserveData was deleted"
    assert pvc["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "hp-7"
    assert not pvc["metadata"].get("ownerReferences")


async def test_a_detached_imported_disk_kept_with_its_data_outlives_its_data_volume(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """Review s23 F2: an imported disk's claim is CDI's, owned by its DataVolume. Only the
    DataVolume was released, so the claim died with it, and a later Wukong of the same name
    deleted the claim as its own (CDI then made a new, empty one under the kept labels)."""
    await create(k, "wukong", namespace, wukong("hp-9", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-9", "Running")
    extra = disk("extra", image=IMAGE, detachOptions={"preserveData": True, "force": True})
    await patch_spec(k, namespace, "hp-9", {"disks": [SYSTEM, extra]})
    await wait_for(k, namespace, "hp-9", lambda c: volume(c, "extra").get("attached"), within=40)
    await patch_spec(k, namespace, "hp-9", {"disks": [SYSTEM]})

    async def released() -> dict[str, Any] | None:
        pvc = await get(k, "pvc", namespace, "hp-9-extra")
        labels = (pvc or {}).get("metadata", {}).get("labels") or {}
        return pvc if labels.get(names.LABEL_RETAINED_FROM) == "hp-9" else None

    kept = await eventually(released, timeout=30, message="the detached disk's claim released")
    assert not kept["metadata"].get("ownerReferences")
    assert names.LABEL_WUKONG not in kept["metadata"]["labels"]
    await wait_for(k, namespace, "hp-9", lambda c: not volume(c, "extra"), what="detach ended")

    # A new Wukong of the same name, without that disk, deleted again: the claim stays.
    await k.delete(path("wukong", namespace, "hp-9"))
    await eventually(lambda: _gone(k, "wukong", namespace, "hp-9"), timeout=60)
    await create(k, "wukong", namespace, wukong("hp-9", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-9", "Running")
    await k.delete(path("wukong", namespace, "hp-9"))
    await eventually(lambda: _gone(k, "wukong", namespace, "hp-9"), timeout=60)
    # The user tidies up the leftover DataVolume: the claim holds the data and stays.
    await k.delete(path("dv", namespace, "hp-9-extra"))
    await eventually(lambda: _gone(k, "dv", namespace, "hp-9-extra"), timeout=30)
    await eventually(lambda: _gone(k, "pvc", namespace, "hp-9-system"), timeout=30)
    pvc = await get(k, "pvc", namespace, "hp-9-extra")
    assert pvc is not None and pvc["metadata"]["uid"] == kept["metadata"]["uid"]
    assert not pvc["metadata"].get("deletionTimestamp")


@pytest.mark.parametrize(
    ("options", "agent", "expect"),
    [
        pytest.param({"preserveData": True}, True, "kept", id="preserve-data-keeps-the-pvc"),
        pytest.param({"force": True}, False, "deleted", id="force-skips-the-guest-check"),
        pytest.param({}, False, "waits", id="agent-disconnected-waits"),
    ],
)
async def test_detach_options_decide_what_happens_to_the_disk(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    options: dict[str, Any],
    agent: bool,
    expect: str,
) -> None:
    await create(k, "wukong", namespace, wukong("hp-4", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-4", "Running")
    logs = disk("logs", detachOptions=options)
    await patch_spec(k, namespace, "hp-4", {"disks": [SYSTEM, logs]})
    await wait_for(k, namespace, "hp-4", lambda c: volume(c, "logs").get("attached"))
    sim.guest(namespace, "hp-4-vm").set_agent(agent)
    # virt-api answers guest-agent calls from the VMI's AgentConnected condition: the detach
    # starts once KubeVirt, not only the guest, says the agent is gone.
    await eventually(lambda: _agent_shown(k, namespace, "hp-4-vm", agent), timeout=20)
    await patch_spec(k, namespace, "hp-4", {"disks": [SYSTEM]})
    if expect == "waits":
        cr = await wait_for(
            k,
            namespace,
            "hp-4",
            lambda c: condition(c, "DiskDetach").get("reason") == "DiskCheckUnavailable",
        )
        assert "agent" in condition(cr, "DiskDetach")["message"]
        assert calls(sim, "removevolume") == []
        return
    await eventually(lambda: _unplugged(k, namespace), timeout=30)
    if expect == "kept":
        pvc = await eventually(lambda: _retained(k, namespace, "hp-4-logs"), timeout=20)
        assert pvc["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "hp-4"
        assert not pvc["metadata"].get("ownerReferences")
        await asyncio.sleep(2)
        assert await get(k, "pvc", namespace, "hp-4-logs") is not None
    else:
        await eventually(lambda: _gone(k, "pvc", namespace, "hp-4-logs"), timeout=20)
        assert calls(sim, "filesystemlist") == []


async def _agent_shown(k: Kube, namespace: str, vmi: str, connected: bool) -> bool:
    conditions = ((await get(k, "vmi", namespace, vmi)) or {}).get("status", {}).get("conditions")
    shown = any(
        c.get("type") == "AgentConnected" and c.get("status") == "True" for c in conditions or []
    )
    return shown == connected


async def _retained(k: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    pvc = await get(k, "pvc", namespace, name)
    labels = (pvc or {}).get("metadata", {}).get("labels") or {}
    return pvc if names.LABEL_RETAINED_FROM in labels else None


async def _unplugged(k: Kube, namespace: str) -> bool:
    return "logs" not in await template_volumes(k, namespace, "hp-4")


async def test_removing_the_system_disk_is_refused_and_nothing_changes(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("hp-5", disks=[SYSTEM, disk("data")]))
    await wait_phase(k, namespace, "hp-5", "Running")
    with pytest.raises(Invalid, match="system disk"):
        await patch_spec(k, namespace, "hp-5", {"disks": [disk("data")]})
    # Nor in two edits, a reorder first (review s23 F8): the first disk is the boot disk.
    with pytest.raises(Invalid, match=r"system disk .* cannot change"):
        await patch_spec(k, namespace, "hp-5", {"disks": [disk("data"), SYSTEM]})
    # Marked boot: true, it may go anywhere in the list.
    await patch_spec(k, namespace, "hp-5", {"disks": [disk("data"), SYSTEM | {"boot": True}]})
    assert await template_volumes(k, namespace, "hp-5") == ["system", "data"]


async def test_growing_a_disk_grows_the_pvc_request_and_capacity(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("hp-6", disks=[SYSTEM, disk("data", "1Gi")]))
    await wait_phase(k, namespace, "hp-6", "Running")
    await patch_spec(k, namespace, "hp-6", {"disks": [SYSTEM, disk("data", "2Gi")]})
    # What gives the guest 2Gi once virt-launcher takes the filesystem overhead off the claim
    # (CDI's default 6 %, in the simulated CDIConfig): 2Gi / 0.94 up to whole MiB, 2179Mi.
    # Since session 39 (the bare 2Gi gave the guest 1.89Gi); by CDIConfig since session 40.
    padded = "2284847104"
    cr = await wait_for(
        k, namespace, "hp-6", lambda c: volume(c, "data").get("capacity") == padded, within=30
    )
    # VolumesResized is there only while a disk is not at its size: gone, or still Resizing.
    assert condition(cr, "VolumesResized").get("reason") in (None, "Resizing")
    pvc = await get(k, "pvc", namespace, "hp-6-data")
    assert pvc is not None and pvc["spec"]["resources"]["requests"]["storage"] == padded
    # A grow the user asked for is told in Normal Events, never a Warning: it starts, it is
    # done, and what is left is the guest's.
    done = await eventually(
        lambda: wukong_events(k, namespace, "UpToDate"), message="the grow's Normal Event"
    )
    told = await wukong_events(k, namespace, "Resizing")
    grown = await eventually(
        lambda: wukong_events(k, namespace, "DiskGrown"), message="a DiskGrown Event"
    )
    events = [*told, *done, *grown]
    assert [e["type"] for e in events] == ["Normal", "Normal", "Normal"], events
    assert told[0]["message"] == "growing data to 2Gi"
    assert grown[0]["message"].startswith(
        "disk data is 2Gi now (its claim 2179Mi): the guest sees it bigger"
    )
    ours = [
        e for e in await items(k, "event", namespace) if e["involvedObject"]["kind"] == "Wukong"
    ]
    assert [e for e in ours if e.get("type") == "Warning"] == [], ours


async def test_an_imported_disk_grown_a_little_grows_as_cdi_would_have_made_it(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """CDI asks a 10Gi imported disk's claim 6 % bigger (10.6Gi, CDIConfig's default):
    grown to 10.5Gi, the claim was left as it was and the guest kept its 10Gi. The claim now
    asks what gives the guest 10.5Gi (10752Mi / 0.94, up to whole MiB), and grows."""
    await create(k, "wukong", namespace, wukong("hp-g", disks=[SYSTEM]))
    await wait_phase(k, namespace, "hp-g", "Running")
    made = await get(k, "pvc", namespace, "hp-g-system")
    assert made is not None and made["spec"]["resources"]["requests"]["storage"] == "11381663335"
    await patch_spec(k, namespace, "hp-g", {"disks": [SYSTEM | {"size": "10752Mi"}]})
    padded = str((math.floor(10752 * 2**20 / 0.94) + 1 + 2**20 - 1) // 2**20 * 2**20)
    cr = await wait_for(
        k, namespace, "hp-g", lambda c: volume(c, "system").get("capacity") == padded, within=30
    )
    assert volume(cr, "system")["size"] == "10752Mi"
    pvc = await get(k, "pvc", namespace, "hp-g-system")
    assert pvc is not None and pvc["spec"]["resources"]["requests"]["storage"] == padded
    grown = await eventually(
        lambda: wukong_events(k, namespace, "DiskGrown"), message="a DiskGrown Event"
    )
    assert grown[0]["message"].startswith("disk system is 10752Mi now (its claim 11439Mi)"), grown


async def test_non_expandable_class_gets_a_condition_and_no_write_loop(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    fixed = disk("data", "1Gi", storageClassName="fixed")
    await create(k, "wukong", namespace, wukong("hp-7", disks=[SYSTEM, fixed]))
    # Settled first (the IP arrives after Running): only a write loop may move the count.
    await wait_for(k, namespace, "hp-7", _settled, within=30)
    await patch_spec(k, namespace, "hp-7", {"disks": [SYSTEM, fixed | {"size": "2Gi"}]})
    cr = await wait_for(
        k,
        namespace,
        "hp-7",
        lambda c: (
            condition(c, "VolumesResized").get("reason")
            in ("ExpansionNotSupported", "ExpansionRefused")
        ),
    )
    assert "fixed" in condition(cr, "VolumesResized")["message"]
    assert operator.operator is not None
    await eventually(lambda: _quiet(operator), timeout=15)  # a write loop never gets quiet
    before = _writes(operator)
    await asyncio.sleep(3)
    assert _writes(operator) == before, "the operator kept writing after the refusal"
    pvc = await get(k, "pvc", namespace, "hp-7-data")
    assert pvc is not None and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"


def _settled(cr: dict[str, Any]) -> bool:
    status = cr.get("status") or {}
    ips = [i.get("ipAddress") for i in status.get("interfaces") or []]
    return status.get("phase") == "Running" and bool(ips) and all(ips)


async def _quiet(op: InProcessOperator) -> bool:
    """No write for one second."""
    before = _writes(op)
    await asyncio.sleep(1)
    return _writes(op) == before


def _writes(op: InProcessOperator) -> float:
    return sum(requests_sent(op, verb=verb) for verb in ("POST", "PUT", "PATCH", "DELETE"))


@pytest.mark.timeout(90)
async def test_operator_killed_before_addvolume_plugs_the_disk_exactly_once(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator
) -> None:
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    # The next operator loads its modules meanwhile, and starts the moment the first is killed.
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.prepare()
    try:
        await create(k, "wukong", namespace, wukong("hp-8", disks=[SYSTEM]))
        await wait_phase(k, namespace, "hp-8", "Running", within=30)
        sim.config.bind_delay = 2.0  # the PVC exists but is not bound yet when we crash
        await patch_spec(k, namespace, "hp-8", {"disks": [SYSTEM, disk("logs")]})
        await eventually(lambda: get(k, "pvc", namespace, "hp-8-logs"), timeout=20)
    except BaseException:
        second.kill()
        raise
    finally:
        first.kill()
    assert calls(sim, "addvolume") == []
    second.start()
    try:
        await wait_for(k, namespace, "hp-8", lambda c: volume(c, "logs").get("attached"), within=40)
    finally:
        assert second.terminate() == 0
    assert len(calls(sim, "addvolume")) == 1


async def test_63_character_disk_names_boot_and_hot_plug_with_distinct_serials(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The serial rule is one rule: the name when it fits KubeVirt's 36 characters, else a
    prefix and a hash, at boot and in addvolume alike; two long names sharing their first
    36 characters still get two serials (issue 18)."""
    stem = "application-server-data-volume-0001-"  # 36 characters shared by both disks
    boot, plugged = stem + "a" * 27, stem + "b" * 27
    assert len(boot) == len(plugged) == 63 and boot[:36] == plugged[:36]
    await create(k, "wukong", namespace, wukong("hp-9", disks=[SYSTEM, disk(boot)]))
    await wait_phase(k, namespace, "hp-9", "Running")
    await patch_spec(k, namespace, "hp-9", {"disks": [SYSTEM, disk(boot), disk(plugged)]})
    cr = await wait_for(k, namespace, "hp-9", lambda c: volume(c, plugged).get("attached"))
    assert volume(cr, boot)["attached"] and volume(cr, plugged)["hotplugged"]
    vm = await get(k, "vm", namespace, "hp-9-vm")
    assert vm is not None
    devices = {d["name"]: d for d in vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"]}
    serials = [devices[boot]["serial"], devices[plugged]["serial"]]
    assert len(set(serials)) == 2 and all(len(s) <= 36 for s in serials), serials
    [call] = calls(sim, "addvolume")
    assert call.body["disk"]["serial"] == devices[plugged]["serial"]


async def test_a_disk_removed_in_edits_the_operator_did_not_see_is_kept(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator
) -> None:
    """Review s23 F3: `detachOptions.preserveData` set, then the disk removed, while the
    operator was down (or two Git commits synced at once): the options lived in the removed
    entry, and the claim was deleted by the options of the generation before."""
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    try:
        await create(k, "wukong", namespace, wukong("hp-10", disks=[SYSTEM]))
        await wait_phase(k, namespace, "hp-10", "Running", within=40)
        await patch_spec(k, namespace, "hp-10", {"disks": [SYSTEM, disk("data")]})
        await wait_for(
            k, namespace, "hp-10", lambda c: volume(c, "data").get("attached"), within=40
        )
    finally:
        first.kill()
    claim = await get(k, "pvc", namespace, "hp-10-data")
    assert claim is not None
    keep = disk("data", detachOptions={"preserveData": True, "force": True})
    await patch_spec(k, namespace, "hp-10", {"disks": [SYSTEM, keep]})
    await patch_spec(k, namespace, "hp-10", {"disks": [SYSTEM]})
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.start()
    try:
        warned = await eventually(
            lambda: wukong_events(k, namespace, "DetachOptionsUnknown"),
            timeout=40,
            message="a Warning that the removed disk is kept",
        )
        await wait_for(
            k, namespace, "hp-10", lambda c: not volume(c, "data"), within=40, what="detach ended"
        )
    finally:
        second.terminate()
    assert "hp-10-data" in warned[0]["message"]
    pvc = await get(k, "pvc", namespace, "hp-10-data")
    assert pvc is not None and pvc["metadata"]["uid"] == claim["metadata"]["uid"]
    assert pvc["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "hp-10"


async def test_a_boot_disk_detached_at_the_restart_is_said_once_and_nothing_else_warns(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """A disk attached at boot and removed from the spec leaves at the next restart. Found by
    a user audit (session 37): during that restart its claim's delete (held by the PVC
    protection finalizer while the old VMI's pod used it) was sent again, with a
    `DiskDetached` Event, on every pass (six here), and KubeVirt's own RestartRequired on the
    VM, set while it swapped the VMI, was passed on as a Warning to restart the VM that was
    restarting."""
    await create(k, "wukong", namespace, wukong("bd-1", disks=[SYSTEM, disk("data")]))
    await wait_phase(k, namespace, "bd-1", "Running", within=60)
    await patch_spec(k, namespace, "bd-1", {"disks": [SYSTEM]})
    await wait_for(
        k,
        namespace,
        "bd-1",
        lambda c: condition(c, "DiskDetach").get("reason") == "RestartRequired",
        what="the detach waiting for a restart",
    )
    generation = await request(k, namespace, "bd-1", "restart")
    await wait_for(k, namespace, "bd-1", settled_answer(generation), within=60, what="restarted")
    await eventually(lambda: gone_pvc(k, namespace, "bd-1-data"), timeout=30)
    told = await wukong_events(k, namespace, "DiskDetached")
    assert [(e["message"], e.get("count", 1)) for e in told] == [
        ("detached disk data: data deleted", 1)
    ]
    assert await wukong_events(k, namespace, "SpecChanged") == []


async def gone_pvc(k: Kube, namespace: str, name: str) -> bool:
    return await get(k, "pvc", namespace, name) is None


def protecting(namespace: str, claim: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy, bound to `namespace` alone, that refuses deleting the
    claim `claim` (422, the policy's default reason), as a site protecting a claim would."""
    name = f"protect-{namespace}"
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["DELETE"],
        "resources": ["persistentvolumeclaims"],
    }
    said = f"claim {claim} is protected"
    check = {"expression": f"oldObject.metadata.name != '{claim}'", "message": said}
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    group = "admissionregistration.k8s.io/v1"
    return [
        {
            "apiVersion": group,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [check],
            },
        },
        {
            "apiVersion": group,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": selector},
            },
        },
    ]


async def _delete_refused(k: Kube, namespace: str, claim: str) -> bool:
    """Whether the API server refuses deleting `claim` now (asked as a dry run)."""
    try:
        await k.request("DELETE", path("pvc", namespace, claim), query={"dryRun": "All"})
    except Invalid:
        return True
    return False


async def test_of_two_disks_detached_together_one_delete_refused_each_is_said_on_its_own(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """Two disks removed from a stopped Wukong in one edit: one pass deletes both claims,
    and an admission policy refuses one of the deletes. One `DiskDetached` named both and
    went out only if both deletes did: neither disk was said detached, and the one deleted
    never was afterwards (session 49). Each disk is now said on its own: the one deleted
    detached, the refused one `Detaching` with the API server's words, until the policy
    lets it go."""
    body = wukong(
        "dd-1", disks=[SYSTEM, disk("logs"), disk("tmp")], startStrategy={"autoStart": False}
    )
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "dd-1", "Stopped", within=60)
    policy = protecting(namespace, "dd-1-logs")
    control_plane.apply(policy)
    try:
        await eventually(
            lambda: _delete_refused(k, namespace, "dd-1-logs"), timeout=30, message="in effect"
        )
        await patch_spec(k, namespace, "dd-1", {"disks": [SYSTEM]})
        await eventually(lambda: gone_pvc(k, namespace, "dd-1-tmp"), timeout=30)

        def refused_logs(c: dict[str, Any]) -> bool:
            return "claim dd-1-logs is protected" in (volume(c, "logs").get("message") or "")

        cr = await wait_for(k, namespace, "dd-1", refused_logs, what="logs said refused")
        assert volume(cr, "logs")["phase"] == "Detaching"
        assert volume(cr, "logs")["message"].startswith(
            "the API server refused to delete PersistentVolumeClaim dd-1-logs: "
        )
        admitted = condition(cr, "ChildrenAdmitted")
        assert (admitted["status"], admitted["reason"]) == ("False", "Refused")
        assert "dd-1-logs" in admitted["message"] and "dd-1-tmp" not in admitted["message"]

        async def detached() -> list[str]:
            return [e["message"] for e in await wukong_events(k, namespace, "DiskDetached")]

        told = await eventually(detached, timeout=10, message="DiskDetached posted")
        assert told == ["detached disk tmp: data deleted"]
        assert await get(k, "pvc", namespace, "dd-1-logs") is not None
    finally:
        for doc in reversed(policy):
            kind = "validatingadmissionpolicies"
            if doc["kind"].endswith("Binding"):
                kind = "validatingadmissionpolicybindings"
            name = doc["metadata"]["name"]
            await k.delete(api_path("admissionregistration.k8s.io", "v1", kind, None, name))

    # The policy gone, the retry deletes logs's claim: it is said detached in its turn.
    await eventually(lambda: gone_pvc(k, namespace, "dd-1-logs"), timeout=60)
    cr = await wait_for(
        k, namespace, "dd-1", lambda c: condition(c, "ChildrenAdmitted") == {}, what="admitted"
    )
    assert volume(cr, "tmp") == {}

    async def both() -> list[str] | None:
        said = sorted(e["message"] for e in await wukong_events(k, namespace, "DiskDetached"))
        return said if len(said) == 2 else None

    assert await eventually(both, timeout=10, message="logs said detached") == [
        "detached disk logs: data deleted",
        "detached disk tmp: data deleted",
    ]
