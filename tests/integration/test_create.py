"""Create and converge (issue 5): a Wukong becomes a running VM and status tells the truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scenario import (
    IMAGE,
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
    user_nad,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from tests.integration.test_lifecycle import answered, request
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.testing.admission import install_finalizer_policy, remove_finalizer_policy
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane
from wukong.testing.operator import InProcessOperator, OperatorProcess

__all__ = ["k", "operator", "sim"]  # fixtures

FULL = {
    "disks": [
        {"name": "system", "size": "10Gi", "image": IMAGE},
        {"name": "data", "size": "20Gi"},
    ],
    "networks": [
        {"name": "storage", "nadName": "storage-net"},
        {"name": "vlan100", "type": "bridge", "bridge": "br-vlan100", "vlan": 100},
    ],
}


def _owned_by(obj: dict[str, object], uid: str) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []  # type: ignore[attr-defined]
    return any(r.get("uid") == uid for r in refs)


async def test_full_wukong_reaches_running_with_node_ip_and_exactly_its_children(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "nad", namespace, user_nad("storage-net"))
    await create(k, "wukong", namespace, wukong("web-1", **FULL))
    cr = await wait_for(
        k,
        namespace,
        "web-1",
        lambda c: (
            (c.get("status") or {}).get("phase") == "Running"
            and bool((c["status"].get("interfaces") or [{}])[0].get("ipAddress"))
        ),
        what="web-1 Running with IP",
    )
    status = cr["status"]
    assert status["vmName"] == "web-1-vm" and status["nodeName"]
    assert status["interfaces"][0]["ipAddress"]
    for type_ in ("Ready", "NetworksConfigured", "VolumesBound", "SpecValid"):
        cond = condition(cr, type_)
        assert cond["status"] == "True", cond
        assert cond["reason"] and cond["message"]
    uid = cr["metadata"]["uid"]
    assert len(await items(k, "vm", namespace)) == 1
    dvs = await items(k, "dv", namespace)
    assert [d["metadata"]["name"] for d in dvs] == ["web-1-system"]
    ours = [p for p in await items(k, "pvc", namespace) if _owned_by(p, uid)]
    assert [p["metadata"]["name"] for p in ours] == ["web-1-data"]
    nads = await items(k, "nad", namespace)
    owned = [n["metadata"]["name"] for n in nads if _owned_by(n, uid)]
    assert owned == ["web-1-vlan100"]
    assert cr["metadata"]["finalizers"] == ["wukong.novasphere.dev/finalizer"]
    vm = await get(k, "vm", namespace, "web-1-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Always"
    assert vm["metadata"]["labels"]["vm.novasphere.dev/wukong"] == "web-1"


async def test_missing_nad_waits_with_a_condition_and_recovers_when_it_appears(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    spec = {"networks": [{"name": "storage", "nadName": "storage-net"}]}
    await create(k, "wukong", namespace, wukong("web-2", **spec))
    cr = await wait_for(
        k,
        namespace,
        "web-2",
        lambda c: condition(c, "NetworksConfigured").get("reason") == "NADNotFound",
    )
    assert "storage-net" in condition(cr, "NetworksConfigured")["message"]
    assert await get(k, "vm", namespace, "web-2-vm") is None
    await create(k, "nad", namespace, user_nad("storage-net"))
    await wait_phase(k, namespace, "web-2", "Running")


async def test_the_nad_of_a_network_taken_out_goes_once_the_guest_no_longer_uses_it(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Found by a source audit (session 46): the NAD made for a network removed from the
    spec stayed, on its old bridge and VLAN, until the Wukong was deleted. It goes once the
    VM's template and its running guest no longer name it (a restart; a migration's new pod
    would still need it)."""
    lan = [{"name": "lan", "bridge": "br-x", "vlan": 150}]
    await create(k, "wukong", namespace, wukong("web-9", networks=lan))
    await wait_phase(k, namespace, "web-9", "Running")
    assert await get(k, "nad", namespace, "web-9-lan") is not None
    await patch_spec(k, namespace, "web-9", {"networks": []})
    await wait_for(
        k,
        namespace,
        "web-9",
        lambda c: condition(c, "RestartRequired").get("status") == "True",
        what="RestartRequired for the network taken out",
    )
    await asyncio.sleep(1.0)  # what the operator would have deleted by now
    assert await get(k, "nad", namespace, "web-9-lan") is not None, "deleted under the guest"
    restart = await request(k, namespace, "web-9", "restart")
    await wait_for(k, namespace, "web-9", answered(restart, "Done"), within=60)

    async def gone() -> bool:
        return await get(k, "nad", namespace, "web-9-lan") is None

    await eventually(gone, timeout=30)
    vmi = await get(k, "vmi", namespace, "web-9-vm")
    assert vmi is not None and [n["name"] for n in vmi["spec"]["networks"]] == ["default"]


async def test_failed_import_sets_error_and_recovers_after_the_image_is_fixed(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    bad = [{"name": "system", "size": "10Gi", "image": "https://example.invalid/notfound.qcow2"}]
    await create(k, "wukong", namespace, wukong("web-3", disks=bad))
    cr = await wait_phase(k, namespace, "web-3", "Error")
    cond = condition(cr, "VolumesBound")
    assert cond["reason"] == "ImportFailed" and cond["message"]
    # The DataVolume spec is immutable: the operator imports the corrected image anew.
    good = [{"name": "system", "size": "10Gi", "image": IMAGE}]
    await patch_spec(k, namespace, "web-3", {"disks": good})
    await wait_phase(k, namespace, "web-3", "Running")


async def test_a_failed_import_stays_failed_while_cdi_restarts_its_importer(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    kubevirt: KubeVirtPlane | None,
    operator_kubeconfig: Path,
) -> None:
    """CDI says "Pod is running" (Running=True, the error forgotten) while each restarted
    importer runs, then the error again: the Wukong went Error -> Creating -> Error at every
    restart, with a Recovered and a ProvisioningFailed Event each time (found by the simulator
    audit, session 40). An import that failed stays failed until it gets somewhere: here the
    registry comes back, a restarted importer makes progress, and the Wukong runs."""
    # Each importer runs 0.5 s before it fails again; a working one takes 4 x 0.5 s.
    config = replace(SimConfig(), import_retry_delay=1.0, import_step_delay=0.5)
    disks = [{"name": "system", "size": "10Gi", "image": "docker://mirror.example/os:1"}]
    async with (
        simulator(control_plane, kubevirt, namespace, config) as node,
        InProcessOperator(operator_kubeconfig, namespace=namespace),
    ):
        node.faults.fail_imports("mirror.example")
        await create(k, "wukong", namespace, wukong("web-9", disks=disks))
        await wait_phase(k, namespace, "web-9", "Error")
        said: set[tuple[str, str]] = set()

        async def restarted_twice() -> bool:
            cr = await get(k, "wukong", namespace, "web-9")
            assert cr is not None
            said.add((cr["status"]["phase"], condition(cr, "VolumesBound").get("reason", "")))
            dv = await get(k, "dv", namespace, "web-9-system")
            return int(((dv or {}).get("status") or {}).get("restartCount", 0)) >= first + 2

        dv = await get(k, "dv", namespace, "web-9-system")
        first = int(((dv or {}).get("status") or {}).get("restartCount", 0))
        await eventually(restarted_twice, timeout=10, interval=0.05)
        assert said == {("Error", "ImportFailed")}
        assert await wukong_events(k, namespace, "Recovered") == []
        [failed] = await wukong_events(k, namespace, "ProvisioningFailed")
        assert failed.get("count", 1) == 1

        node.faults.clear()  # the registry is back: the next importer gets somewhere
        cr = await wait_for(
            k,
            namespace,
            "web-9",
            lambda c: (
                c["status"].get("phase") == "Creating"
                and c["status"]["volumes"][0].get("phase") == "ImportInProgress"
            ),
            what="the restarted import under way",
        )
        assert cr["status"]["volumes"][0]["progress"] != "0.00%"
        await wait_phase(k, namespace, "web-9", "Running")
        assert len(await wukong_events(k, namespace, "Recovered")) == 1


async def test_cpu_and_network_changes_update_the_vm_and_raise_restart_required(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("web-4"))
    await wait_phase(k, namespace, "web-4", "Running")
    await patch_spec(
        k,
        namespace,
        "web-4",
        {"cpu": 2, "networks": [{"name": "lan", "type": "bridge", "bridge": "br-lan"}]},
    )

    # RestartRequired names what the running VM lacks. The cpu always needs a restart; a new
    # bridge NIC does not: KubeVirt's virt-controller plugs it into the running VMI (and the
    # pure simulator's since session 41), and until it has, it is not a restart owed either.
    async def truthful() -> dict[str, Any] | None:
        cr = await get(k, "wukong", namespace, "web-4")
        vmi = await get(k, "vmi", namespace, "web-4-vm")
        cond = condition(cr or {}, "RestartRequired")
        message = cond.get("message") or ""
        plugged = "lan" in [n["name"] for n in ((vmi or {}).get("spec") or {}).get("networks", [])]
        if cond.get("status") == "True" and "cpu" in message and plugged != ("networks" in message):
            return cr
        return None

    cr = await eventually(truthful, timeout=20, message="RestartRequired names what is missing")
    assert cr["status"]["phase"] == "Running"  # not restarted behind the user's back
    vm = await get(k, "vm", namespace, "web-4-vm")
    assert vm is not None
    tmpl = vm["spec"]["template"]["spec"]
    assert tmpl["domain"]["cpu"]["cores"] == 2
    assert [n["name"] for n in tmpl["networks"]] == ["default", "lan"]


async def test_a_vlan_changed_under_a_running_vm_is_owed_a_restart_until_it_has_one(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Session 42: Multus reads a NAD when the launcher pod starts. The operator patched the
    NAD and said nothing: the VM's template names the same NAD, so neither KubeVirt nor the
    Wukong saw a change, and the guest stayed on the old VLAN with status saying all is well."""
    lan = {"name": "lan", "type": "bridge", "bridge": "br-lan", "vlan": 100}
    await create(k, "wukong", namespace, wukong("vlan-1", networks=[lan]))
    await wait_phase(k, namespace, "vlan-1", "Running")
    await patch_spec(k, namespace, "vlan-1", {"networks": [{**lan, "vlan": 200}]})
    cr = await wait_for(
        k,
        namespace,
        "vlan-1",
        lambda c: "the NAD of lan changed" in condition(c, "RestartRequired").get("message", ""),
        what="RestartRequired naming the changed NAD",
    )
    assert cr["status"]["phase"] == "Running"
    nad = await get(k, "nad", namespace, "vlan-1-lan")
    assert nad is not None and '"vlan":200' in nad["spec"]["config"]
    generation = await request(k, namespace, "vlan-1", "restart")
    await wait_for(k, namespace, "vlan-1", answered(generation, "Done"), within=60)
    await wait_for(
        k,
        namespace,
        "vlan-1",
        lambda c: condition(c, "RestartRequired") == {} and c["status"]["phase"] == "Running",
        what="no restart owed once the new pod has the new VLAN",
    )


async def test_auto_start_false_creates_the_vm_stopped(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("web-5", startStrategy={"autoStart": False}))
    await wait_phase(k, namespace, "web-5", "Stopped")
    vm = await get(k, "vm", namespace, "web-5-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Halted"
    assert await get(k, "vmi", namespace, "web-5-vm") is None


async def test_a_vm_name_taken_by_someone_else_is_reported_and_others_keep_going(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    foreign = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "taken-vm"},
        "spec": {
            "runStrategy": "Halted",
            "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}},
        },
    }
    await create(k, "vm", namespace, foreign)
    await create(k, "wukong", namespace, wukong("taken"))
    await create(k, "wukong", namespace, wukong("good-1"))
    cr = await wait_for(
        k, namespace, "taken", lambda c: condition(c, "SpecValid").get("reason") == "NameConflict"
    )
    assert "taken-vm" in condition(cr, "SpecValid")["message"]
    await wait_phase(k, namespace, "good-1", "Running")
    vm = await get(k, "vm", namespace, "taken-vm")
    assert vm is not None and not vm["metadata"].get("ownerReferences")  # left alone


@pytest.mark.parametrize("strategy", ["Halted", "Always"])
async def test_a_running_vm_of_the_name_is_neither_stopped_nor_migrated_nor_reported(
    k: Kube, namespace: str, operator: InProcessOperator, strategy: str
) -> None:
    """Source audit, session 47: only the VM planner checked the owner. A Wukong asking
    `runStrategy: Halted` set the foreign VM Halted (KubeVirt deleted its guest), and a migrate
    request made a VirtualMachineInstanceMigration of it; the status said its node."""
    foreign = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "theirs-vm"},
        "spec": {
            "runStrategy": "Always",
            "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}},
        },
    }
    await create(k, "vm", namespace, foreign)

    async def guest() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "theirs-vm")
        return vmi if vmi and (vmi.get("status") or {}).get("phase") == "Running" else None

    running = await eventually(guest, timeout=60, message="the foreign VM's guest runs")
    asked = {"action": "migrate", "requestedAt": "2026-01-01T00:00:00Z"}
    await create(
        k, "wukong", namespace, wukong("theirs", runStrategy=strategy, lifecycleAction=asked)
    )
    await wait_for(
        k, namespace, "theirs", lambda c: condition(c, "SpecValid").get("reason") == "NameConflict"
    )
    await asyncio.sleep(8)  # passes enough to stop, migrate and report it, had it been ours
    vmi = await guest()
    assert vmi is not None and vmi["metadata"]["uid"] == running["metadata"]["uid"]
    migrations = api_path(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, "virtualmachineinstancemigrations", namespace
    )
    assert (await k.get(migrations)).get("items") == []
    vm = await get(k, "vm", namespace, "theirs-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Always"
    assert not vm["metadata"].get("ownerReferences")
    cr = await get(k, "wukong", namespace, "theirs")
    assert cr is not None
    assert "nodeName" not in cr["status"] and not cr["status"].get("interfaces")
    assert condition(cr, "Ready").get("status") != "True"
    assert "nothing is done to that VM" in condition(cr, "SpecValid")["message"]
    said = await wukong_events(k, namespace, "NameConflict")
    assert [(e["type"], e.get("count", 1)) for e in said] == [("Warning", 1)]  # said once


async def test_a_vmi_of_the_name_made_without_a_vm_is_not_taken_into_its_vm(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Session 48: KubeVirt's VM controller adopts a VMI of its name that no VM controls.
    The Wukong made its VM, which took another user's bare VMI, and a stop of the Wukong
    then deleted that guest."""
    bare = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "bare-vm"},
        "spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}},
    }
    await create(k, "vmi", namespace, bare)

    async def guest() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "bare-vm")
        return vmi if vmi and (vmi.get("status") or {}).get("phase") == "Running" else None

    running = await eventually(guest, timeout=60, message="the bare VMI runs")
    await create(k, "wukong", namespace, wukong("bare", runStrategy="Halted"))
    cr = await wait_for(
        k, namespace, "bare", lambda c: condition(c, "SpecValid").get("reason") == "NameConflict"
    )
    assert "VirtualMachineInstance 'bare-vm' exists" in condition(cr, "SpecValid")["message"]
    assert "nodeName" not in cr["status"] and not cr["status"].get("interfaces")
    await asyncio.sleep(5)  # passes enough to make the VM, had the name been free
    assert await get(k, "vm", namespace, "bare-vm") is None
    vmi = await guest()
    assert vmi is not None and vmi["metadata"]["uid"] == running["metadata"]["uid"]
    assert not vmi["metadata"].get("ownerReferences")


@pytest.mark.timeout(90)
async def test_operator_killed_while_creating_converges_without_duplicates(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator, tmp_path: object
) -> None:
    sim.config.import_step_delay = 0.5  # a slow import keeps the Wukong in Creating
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    try:
        await create(
            k,
            "wukong",
            namespace,
            wukong(
                "web-6",
                disks=[
                    {"name": "system", "size": "10Gi", "image": IMAGE},
                    {"name": "data", "size": "1Gi"},
                ],
            ),
        )
        # Killed while creating: the first children exist, the VM does not (the status of
        # a create that fast is held until the VM exists: docs/decisions.md).
        await eventually(
            lambda: get(k, "dv", namespace, "web-6-system"), timeout=30, message="web-6 DV"
        )
        assert await get(k, "vm", namespace, "web-6-vm") is None
    finally:
        first.kill()
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.start()
    try:
        await wait_phase(k, namespace, "web-6", "Running", within=40)
    finally:
        assert second.terminate() == 0
    assert len(await items(k, "vm", namespace)) == 1
    assert len(await items(k, "dv", namespace)) == 1
    names = sorted(p["metadata"]["name"] for p in await items(k, "pvc", namespace))
    assert names == ["web-6-data", "web-6-system"]


async def test_a_create_costs_few_writes_and_its_events_tell_the_hops(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """One disk and one owned network. The children (NAD, PVC, VM) and the finalizer are one
    write each; status is written once per fact a user sees change, with what the pass
    learned on the way (the VM it creates makes the Wukong Starting at once); a disk that is
    still binding is the normal path, not a Warning."""

    def sent(verb: str) -> float:
        return requests_sent(operator, verb=verb)

    posts, patches = sent("POST"), sent("PATCH")
    spec = {
        "disks": [{"name": "data", "size": "1Gi"}],
        "networks": [{"name": "vlan7", "type": "bridge", "bridge": "br7", "vlan": 7}],
    }
    await create(k, "wukong", namespace, wukong("lean", **spec))
    await wait_for(
        k,
        namespace,
        "lean",
        lambda c: (
            (c.get("status") or {}).get("phase") == "Running"
            and all(i.get("ipAddress") for i in c["status"].get("interfaces") or [{}])
        ),
        what="lean Running with both IPs",
    )
    events = [
        e for e in await items(k, "event", namespace) if e["involvedObject"]["name"] == "lean"
    ]
    # Event timestamps have whole seconds; the resourceVersion says which came first.
    events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    assert [(e["type"], e["reason"]) for e in events] == [
        ("Normal", "SpecAccepted"),
        ("Normal", "VMCreated"),
        ("Normal", "VMIRunning"),
    ]
    assert sent("PUT") == 0
    assert sent("POST") - posts == 6  # NAD, PVC, VM and the three Events
    # The finalizer, then status: Creating (NAD and PVC made), Starting (VM made), the node,
    # Running, and each interface's address as the simulator reports them one by one.
    assert sent("PATCH") - patches <= 7


@pytest.fixture
async def finalizer_policy(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> AsyncIterator[None]:
    """manifests/admission applied as shipped and in effect; removed afterwards (the other
    tests run without it: the operator adds its finalizer itself there)."""
    await install_finalizer_policy(control_plane, k, namespace)
    try:
        yield
    finally:
        await remove_finalizer_policy(k)


async def test_with_the_finalizer_policy_a_create_sends_no_finalizer_patch(
    finalizer_policy: None, k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """manifests/admission: the API server sets the finalizer at create; the operator's first
    pass finds it and writes nothing to the Wukong itself, only its status; deletion still
    goes through the operator's finalizer."""
    made = await create(k, "wukong", namespace, wukong("sealed"))
    assert made["metadata"]["finalizers"] == [names.FINALIZER]
    await wait_phase(k, namespace, "sealed", "Running", within=60)
    assert requests_sent(operator, verb="PATCH", resource="wukongs") == 0
    assert requests_sent(operator, verb="PATCH", resource="wukongs/status") >= 1
    await k.request("DELETE", path("wukong", namespace, "sealed"))

    async def gone() -> bool:
        return await get(k, "wukong", namespace, "sealed") is None

    await eventually(gone, timeout=60, message="the Wukong deleted through its finalizer")
    # The operator counts a request once it has read the answer; the API server deleted the
    # Wukong on that PATCH, and this test's GET can see it gone first (same event loop).
    await eventually(
        lambda: requests_sent(operator, verb="PATCH", resource="wukongs") >= 1, timeout=5
    )
    assert requests_sent(operator, verb="PATCH", resource="wukongs") == 1  # the finalizer removed


async def test_a_running_vm_with_a_secondary_network_is_left_alone_when_nothing_changes(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The simulated node wrote `multus-status` into a secondary interface's infoSource and
    KubeVirt's virt-controller took it out again (it adds it only from the launcher pod's
    network-status annotation): the VMI was rewritten ~40 times a second, every running
    test VM with a bridge network (found by a network audit, session 41)."""
    spec = {
        "networks": [{"name": "vlan100", "type": "bridge", "bridge": "br-vlan100", "vlan": 100}]
    }
    await create(k, "wukong", namespace, wukong("quiet-1", **spec))
    await wait_phase(k, namespace, "quiet-1", "Running", within=60)

    async def addressed() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "quiet-1-vm")
        nics = ((vmi or {}).get("status") or {}).get("interfaces") or []
        return vmi if len([n for n in nics if n.get("ipAddress")]) == 2 else None

    before = await eventually(addressed, timeout=30, message="both interfaces addressed")
    await asyncio.sleep(1)
    settled = await get(k, "vmi", namespace, "quiet-1-vm")
    written = len(sim.vmi_statuses_written)
    await asyncio.sleep(3)
    after = await get(k, "vmi", namespace, "quiet-1-vm")
    assert before is not None and settled is not None and after is not None
    assert len(sim.vmi_statuses_written) == written
    assert after["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"]
