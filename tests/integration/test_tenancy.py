"""Tenants (issue 15 point 7): an administrator's WukongNetworkPolicy decides which bridges,
VLANs and other namespaces' NADs a namespace may use. The API server refuses the rest with a
message (manifests/policy/network-policy.yaml), and the operator refuses it again where that
admission policy is not installed (SpecValid=False, reason NetworkNotAllowed, a Warning Event).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import OPEN_NETWORK_POLICY
from tests.integration.scenario import (
    condition,
    create,
    get,
    items,
    k,
    operator,
    path,
    sim,
    user_nad,
    wait_for,
    wait_phase,
    wukong,
)
from tests.integration.test_lifecycle import answered, request
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import ApiError, Forbidden, Invalid
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
ADMISSION = MANIFESTS / "policy" / "network-policy.yaml"
GROUP, VERSION = "vm.novasphere.dev", "v1alpha1"
POLICY_PATH = api_path(GROUP, VERSION, "wukongnetworkpolicies", None, "cluster")


def policy(namespace: str, **rule: Any) -> dict[str, Any]:
    """The cluster's policy with one rule for `namespace`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WukongNetworkPolicy",
        "metadata": {"name": "cluster"},
        "spec": {"rules": [{"namespaces": [namespace], **rule}]},
    }


TEAM = {"bridges": ["br-team"], "vlans": [{"from": 100, "to": 199}], "nads": ["shared/*"]}


@pytest.fixture
def narrow(control_plane: ControlPlane, namespace: str) -> Iterator[None]:
    """This namespace may use br-team with VLANs 100-199 and NADs of namespace `shared`;
    the session's open policy comes back afterwards."""
    control_plane.apply([policy(namespace, **TEAM)])
    try:
        yield
    finally:
        control_plane.apply([OPEN_NETWORK_POLICY])


@pytest.fixture
async def admission(
    control_plane: ControlPlane, k: Kube, namespace: str, narrow: None
) -> AsyncIterator[None]:
    """The shipped admission policy, installed and in effect for this test."""
    docs = [d for d in yaml.safe_load_all(ADMISSION.read_text()) if d]
    control_plane.apply(docs)
    try:

        async def enforced() -> bool:
            probe = wukong("probe", networks=[{"name": "lan", "bridge": "br-other"}])
            probe["metadata"]["namespace"] = namespace
            try:
                await k.request(
                    "POST", path("wukong", namespace), body=probe, query={"dryRun": "All"}
                )
            except (Forbidden, Invalid):
                return True
            return False

        await eventually(enforced, timeout=30, message="network admission policy in effect")
        yield
    finally:
        for doc in reversed(docs):
            kind = (
                "validatingadmissionpolicybindings"
                if doc["kind"].endswith("Binding")
                else ("validatingadmissionpolicies")
            )
            await k.delete(
                api_path("admissionregistration.k8s.io", "v1", kind, None, doc["metadata"]["name"])
            )

        async def lifted() -> bool:
            return not await enforced()

        # The API server stops enforcing a deleted policy a moment later, not at once: the next
        # test (one that runs without the admission policy) must not meet it.
        await eventually(lifted, timeout=30, message="network admission policy lifted")


def net(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "lan", **fields}]


async def refused(k: Kube, namespace: str, name: str, networks: list[dict[str, Any]]) -> str:
    with pytest.raises(ApiError) as caught:
        await create(k, "wukong", namespace, wukong(name, networks=networks))
    assert caught.value.status in (403, 422)
    return str(getattr(caught.value, "message", caught.value))


async def test_the_api_server_refuses_networks_the_policy_does_not_allow_with_a_message(
    k: Kube, namespace: str, admission: None
) -> None:
    message = await refused(k, namespace, "other-bridge", net(bridge="br-mgmt", vlan=150))
    assert "lan" in message and namespace in message and "WukongNetworkPolicy" in message
    await refused(k, namespace, "vlan-out", net(bridge="br-team", vlan=200))
    await refused(k, namespace, "untagged", net(bridge="br-team"))
    message = await refused(k, namespace, "foreign", net(nadName="infra/storage"))
    assert "infra/storage" in message and "another namespace" in message
    # Allowed: the granted bridge and range, a NAD of `shared`, any NAD of its own namespace.
    await create(
        k, "wukong", namespace, wukong("ok-bridge", networks=net(bridge="br-team", vlan=150))
    )
    await create(
        k, "wukong", namespace, wukong("ok-shared", networks=net(nadName="shared/storage"))
    )
    await create(k, "wukong", namespace, wukong("ok-own", networks=net(nadName="own-nad")))
    await create(
        k, "wukong", namespace, wukong("ok-own-full", networks=net(nadName=f"{namespace}/own-nad"))
    )
    # Changing networks is judged too; other edits of a Wukong are not (a tightened policy must
    # not block its finalizer updates or its deletion).
    with pytest.raises((Forbidden, Invalid)):
        await k.merge_patch(
            path("wukong", namespace, "ok-bridge"),
            {"spec": {"networks": net(bridge="br-team", vlan=300)}},
        )
    await k.merge_patch(path("wukong", namespace, "ok-bridge"), {"spec": {"cpu": 2}})


async def test_without_the_admission_policy_the_operator_refuses_and_says_why(
    k: Kube, namespace: str, narrow: None, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    await create(k, "wukong", namespace, wukong("outside", networks=net(bridge="br-mgmt", vlan=7)))
    cr = await wait_for(
        k,
        namespace,
        "outside",
        lambda c: condition(c, "SpecValid").get("reason") == "NetworkNotAllowed",
        what="SpecValid NetworkNotAllowed",
    )
    message = condition(cr, "SpecValid")["message"]
    assert "bridge 'br-mgmt'" in message and f"namespace '{namespace}'" in message
    assert condition(cr, "SpecValid")["status"] == "False"
    # Events go out beside the status write (docs/decisions.md): wait for it, do not race it.
    await eventually(lambda: _warned(k, namespace, "outside", "NetworkNotAllowed"), timeout=10)
    assert await items(k, "nad", namespace) == [] and await items(k, "vm", namespace) == []
    # A cross-namespace NAD the policy does not list is refused the same way.
    await create(k, "wukong", namespace, wukong("reach", networks=net(nadName="infra/storage")))
    await wait_for(
        k,
        namespace,
        "reach",
        lambda c: condition(c, "SpecValid").get("reason") == "NetworkNotAllowed",
    )
    # The administrator allows it: the operator notices the policy change by itself.
    control_plane.apply([policy(namespace, bridges=["br-mgmt"], vlans=[{"from": 7, "to": 7}])])
    await wait_phase(k, namespace, "outside", "Running", within=30)
    assert [n["metadata"]["name"] for n in await items(k, "nad", namespace)] == ["outside-lan"]


async def test_a_namespace_without_any_rule_may_still_use_its_own_nads(
    k: Kube, namespace: str, control_plane: ControlPlane, operator: InProcessOperator
) -> None:
    control_plane.apply([policy("someone-else", bridges=["*"], untagged=True)])
    try:
        await create(k, "nad", namespace, user_nad("own-nad"))
        await create(k, "wukong", namespace, wukong("mine", networks=net(nadName="own-nad")))
        await wait_phase(k, namespace, "mine", "Running", within=30)
        await create(k, "wukong", namespace, wukong("bridged", networks=net(bridge="br-x")))
        await wait_for(
            k,
            namespace,
            "bridged",
            lambda c: condition(c, "SpecValid").get("reason") == "NetworkNotAllowed",
        )
        assert await get(k, "nad", namespace, "bridged-lan") is None
    finally:
        control_plane.apply([OPEN_NETWORK_POLICY])
    await asyncio.sleep(0)


async def _warned(k: Kube, namespace: str, name: str, reason: str) -> bool:
    """Exactly one Warning `reason` Event about `name` (raises AssertionError on more)."""
    events = [e for e in await items(k, "event", namespace) if e["involvedObject"]["name"] == name]
    warnings = [e["type"] for e in events if e["reason"] == reason]
    assert warnings in ([], ["Warning"]), warnings
    return warnings == ["Warning"]


async def test_a_revoked_grant_is_not_reached_again_through_what_was_made_under_it(
    k: Kube, namespace: str, narrow: None, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """Review s22 F1 and F2: once the administrator takes br-team away, neither a NAD the
    operator made under the old grant (named by another Wukong's `nadName`) nor a start of
    the Wukong that had it plugs a guest into that bridge again. Stopping it still works."""
    await create(k, "wukong", namespace, wukong("first", networks=net(bridge="br-team", vlan=150)))
    await wait_phase(k, namespace, "first", "Running", within=60)
    control_plane.apply([policy(namespace, bridges=["br-other"], untagged=True)])
    await wait_for(
        k,
        namespace,
        "first",
        lambda c: condition(c, "SpecValid").get("reason") == "NetworkNotAllowed",
        what="first refused by the revoked grant",
    )
    await create(k, "wukong", namespace, wukong("second", networks=net(nadName="first-lan")))
    cr = await wait_for(
        k,
        namespace,
        "second",
        lambda c: condition(c, "SpecValid").get("reason") == "NetworkNotAllowed",
        what="second refused: first-lan was made under the revoked grant",
    )
    assert "NAD 'first-lan'" in condition(cr, "SpecValid")["message"]
    assert await get(k, "vm", namespace, "second-vm") is None
    # The running guest is left alone (the administrator's call); stopping it is allowed...
    stop = await request(k, namespace, "first", "stop", force=True)
    await wait_for(k, namespace, "first", answered(stop, "Done"), within=30)
    await wait_phase(k, namespace, "first", "Stopped", within=30)
    # ...starting it again is not.
    start = await request(k, namespace, "first", "start")
    cr = await wait_for(k, namespace, "first", answered(start, "Refused"), within=30)
    assert cr["status"]["lifecycleState"]["message"].startswith("cannot start: ")
    assert "bridge 'br-team'" in cr["status"]["lifecycleState"]["message"]
    await asyncio.sleep(1.0)  # what a start would have done by now: a VMI, a runStrategy
    vm = await get(k, "vm", namespace, "first-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Halted"
    assert (await get(k, "wukong", namespace, "first"))["status"]["phase"] == "Stopped"


async def test_a_preference_that_would_bring_a_network_is_refused_until_it_no_longer_does(
    k: Kube, namespace: str, narrow: None, operator: InProcessOperator
) -> None:
    """Found by a source audit (session 42): KubeVirt copies a preference's (or an
    instancetype's) `spec.annotations` onto the VMI and its pod, so a Multus annotation there
    put the VM on a network spec.networks does not name (`default-network` replaces the pod
    network). The operator reads the preference from its watch, refuses the Wukong, and
    notices by itself when the preference changes."""
    group, version = names.INSTANCETYPE_GROUP, names.INSTANCETYPE_VERSION
    where = api_path(group, version, "virtualmachinepreferences", namespace)
    annotation = {"v1.multus-cni.io/default-network": "infra/mgmt"}
    await k.create(where, {
        "apiVersion": f"{group}/{version}", "kind": "VirtualMachinePreference",
        "metadata": {"name": "linux", "namespace": namespace},
        "spec": {"annotations": annotation, "devices": {"preferredDiskBus": "virtio"}},
    })  # fmt: skip
    body = wukong("styled", preference={"kind": "VirtualMachinePreference", "name": "linux"})
    await create(k, "wukong", namespace, body)
    cr = await wait_for(
        k,
        namespace,
        "styled",
        lambda c: condition(c, "SpecValid").get("reason") == "NetworkNotAllowed",
        what="SpecValid NetworkNotAllowed for the preference's annotation",
    )
    message = condition(cr, "SpecValid")["message"]
    assert "VirtualMachinePreference 'linux'" in message
    assert "'v1.multus-cni.io/default-network'" in message
    await eventually(lambda: _warned(k, namespace, "styled", "NetworkNotAllowed"), timeout=10)
    assert await get(k, "vm", namespace, "styled-vm") is None
    # Its author takes the annotation away: the preference's watch wakes the Wukong.
    await k.json_patch(f"{where}/linux", [{"op": "remove", "path": "/spec/annotations"}])
    await wait_phase(k, namespace, "styled", "Running", within=60)
    vm = await get(k, "vm", namespace, "styled-vm")
    assert vm is not None and vm["spec"]["preference"]["name"] == "linux"


async def test_a_guest_that_crashes_after_its_grant_is_revoked_is_not_started_again(
    k: Kube,
    namespace: str,
    narrow: None,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    sim: Any,
) -> None:
    """Found by a source audit (session 42): under runStrategy Always KubeVirt makes a new
    VMI when the guest stops or crashes, and plugged it into the revoked bridge again. The
    operator sets the refused VM to Manual (the running guest is left alone), and gives the
    spec's runStrategy back with the grant."""
    await create(k, "wukong", namespace, wukong("held", networks=net(bridge="br-team", vlan=150)))
    await wait_phase(k, namespace, "held", "Running", within=60)
    vmi = await get(k, "vmi", namespace, "held-vm")
    assert vmi is not None
    control_plane.apply([policy(namespace, bridges=["br-other"], untagged=True)])

    async def manual() -> bool:
        vm = await get(k, "vm", namespace, "held-vm")
        return vm is not None and vm["spec"].get("runStrategy") == "Manual"

    await eventually(manual, timeout=30)
    still = await get(k, "vmi", namespace, "held-vm")
    assert still is not None and still["metadata"]["uid"] == vmi["metadata"]["uid"]
    sim.guest(namespace, "held-vm").crash()
    await wait_phase(k, namespace, "held", "Error", within=30)  # the guest failed
    await asyncio.sleep(2.0)  # what KubeVirt's restart under Always would have made by now
    now = await get(k, "vmi", namespace, "held-vm")
    assert now is None or now["metadata"]["uid"] == vmi["metadata"]["uid"], "started again"
    # The grant comes back: runStrategy Always again, and KubeVirt starts the guest.
    control_plane.apply([policy(namespace, **TEAM)])
    await wait_phase(k, namespace, "held", "Running", within=60)
    vm = await get(k, "vm", namespace, "held-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Always"


async def test_a_network_whose_nad_name_an_administrator_took_never_reaches_the_guest(
    k: Kube, namespace: str, admission: None, operator: InProcessOperator
) -> None:
    """Found by a source audit (session 46): a tenant granted br-team added network `mgmt` to
    the running Wukong `web` while an administrator's NAD `web-mgmt` (on another bridge)
    existed. The admission policy judges the bridge the spec names, which is granted; the
    operator said NADConflict but still put `web-mgmt` in the VM's template, and KubeVirt's
    virt-controller plugged it into the running VMI. Now the template never names it."""
    await create(k, "wukong", namespace, wukong("web", networks=net(bridge="br-team", vlan=150)))
    await wait_phase(k, namespace, "web", "Running", within=60)
    await create(k, "nad", namespace, user_nad("web-mgmt"))  # the administrator's
    mgmt = {"name": "mgmt", "bridge": "br-team", "vlan": 160}
    networks = [*net(bridge="br-team", vlan=150), mgmt]
    await k.merge_patch(path("wukong", namespace, "web"), {"spec": {"networks": networks}})
    cr = await wait_for(
        k,
        namespace,
        "web",
        lambda c: condition(c, "NetworksConfigured").get("reason") == "NADConflict",
        what="NetworksConfigured NADConflict",
    )
    assert "NAD 'web-mgmt'" in condition(cr, "NetworksConfigured")["message"]
    [said] = [n for n in cr["status"]["networks"] if n["name"] == "mgmt"]
    assert not said.get("ownedByWukong")
    await asyncio.sleep(2.0)  # what virt-controller would have plugged in by now
    vm, vmi = await get(k, "vm", namespace, "web-vm"), await get(k, "vmi", namespace, "web-vm")
    assert vm is not None and vmi is not None
    for spec in (vm["spec"]["template"]["spec"], vmi["spec"]):
        assert [n["name"] for n in spec["networks"]] == ["default", "lan"]
    assert (await get(k, "nad", namespace, "web-mgmt"))["metadata"].get("ownerReferences") is None
