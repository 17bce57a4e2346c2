"""Live migration (issue 16): `lifecycleAction: {action: migrate}` becomes a
VirtualMachineInstanceMigration owned by the Wukong; KubeVirt's virt-controller drives it and
the simulated nodes play virt-handler's part (with WUKONG_KUBEVIRT=sim the simulator plays
both); refusals come at once and in KubeVirt's words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from tests.integration.conftest import kubevirt_mode
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
    simulator,
    wait_for,
    wait_phase,
    wukong,
)
from tests.integration.test_cli import cli
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.testing import audit
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator"]  # fixtures

SHARED = [{"name": "system", "size": "10Gi", "image": IMAGE, "accessMode": "ReadWriteMany"}]
# Slow enough to catch a migration while it runs (each of its four node steps).
STEP_SECONDS = 1.5


@pytest.fixture
async def sim(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    kubevirt: KubeVirtPlane | None,
    namespace: str,
) -> AsyncIterator[Simulator]:
    """The nodes, with live migrations taking a few seconds; a test parametrizes it
    (indirect) with {node: labels} for nodes of its own."""
    config = replace(SimConfig(), migration_step_delay=STEP_SECONDS)
    if (nodes := getattr(request, "param", None)) is not None:
        config = replace(config, nodes=tuple(nodes), node_labels=nodes)
    async with simulator(control_plane, kubevirt, namespace, config) as running:
        yield running


def migrations_path(namespace: str) -> str:
    return api_path(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, "virtualmachineinstancemigrations", namespace
    )


def migration(cr: dict[str, Any]) -> dict[str, Any]:
    return (cr.get("status") or {}).get("migration") or {}


async def migrate(k: Kube, namespace: str, name: str, stamp: str) -> None:
    action = {"action": "migrate", "requestedAt": stamp}
    await k.merge_patch(
        api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, name),
        {"spec": {"lifecycleAction": action}},
    )


async def test_migrate_moves_the_vm_to_the_other_node_and_status_follows(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    sim: Simulator,
) -> None:
    await create(k, "wukong", namespace, wukong("mig-1", disks=SHARED))
    cr = await wait_phase(k, namespace, "mig-1", "Running", within=60)
    source = cr["status"]["nodeName"]
    result = await cli(control_plane.kubeconfig, "migrate", "mig-1", "-n", namespace, "--wait")
    assert result.exit_code == 0, result.output
    cr = await wait_for(
        k, namespace, "mig-1", lambda c: migration(c).get("result") == "Succeeded", within=30
    )
    moved = migration(cr)
    assert moved["sourceNode"] == source and moved["targetNode"] not in (None, source)
    assert f"mig-1 migrated from {source} to {moved['targetNode']}" in result.output
    assert cr["status"]["phase"] == "Running"
    await wait_for(
        k, namespace, "mig-1", lambda c: c["status"].get("nodeName") == moved["targetNode"]
    )
    vmim = (await items_at(k, migrations_path(namespace)))[0]
    assert vmim["metadata"]["name"] == moved["name"]
    assert vmim["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
    assert vmim["spec"] == {"vmiName": "mig-1-vm"}
    assert vmim["status"]["phase"] == "Succeeded"
    vmi = await get(k, "vmi", namespace, "mig-1-vm")
    assert vmi is not None and vmi["status"]["nodeName"] == moved["targetNode"]
    events = [e for e in await items(k, "event", namespace) if e["reason"] == "Migrated"]
    assert any(e["involvedObject"]["kind"] == "Wukong" for e in events)
    # And back again: a second request is a new migration, to the node it came from.
    result = await cli(control_plane.kubeconfig, "migrate", "mig-1", "-n", namespace, "--wait")
    assert result.exit_code == 0, result.output
    assert f"mig-1 migrated from {moved['targetNode']} to {source}" in result.output
    assert len(await items_at(k, migrations_path(namespace))) == 2


async def items_at(k: Kube, path: str) -> list[dict[str, Any]]:
    return list((await k.get(path)).get("items") or [])


async def test_a_vm_kubevirt_cannot_migrate_is_refused_at_once_in_its_words(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    await create(k, "wukong", namespace, wukong("mig-2"))  # its disk is ReadWriteOnce
    await wait_phase(k, namespace, "mig-2", "Running", within=60)
    result = await cli(control_plane.kubeconfig, "migrate", "mig-2", "-n", namespace, "--wait")
    assert result.exit_code == 1
    assert "migrate refused: KubeVirt cannot live-migrate mig-2: DisksNotLiveMigratable" in (
        result.output
    )
    cr = await get(k, "wukong", namespace, "mig-2")
    assert cr is not None and migration(cr)["result"] == "Refused"
    assert "ReadWriteMany" in migration(cr)["message"]  # KubeVirt's message, as it says it
    assert await items_at(k, migrations_path(namespace)) == []  # nothing was created


async def test_migrate_on_a_stopped_vm_is_refused(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    body = wukong("mig-3", disks=SHARED, startStrategy={"autoStart": False})
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "mig-3", "Stopped", within=60)
    result = await cli(control_plane.kubeconfig, "migrate", "mig-3", "-n", namespace, "--wait")
    assert result.exit_code == 1
    assert "migrate refused: migrate needs a running VM: mig-3 is not running" in result.output
    assert await items_at(k, migrations_path(namespace)) == []


async def test_a_second_migrate_while_one_runs_is_refused_and_the_first_completes(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("mig-4", disks=SHARED))
    await wait_phase(k, namespace, "mig-4", "Running", within=60)
    await migrate(k, namespace, "mig-4", "2026-12-01T10:00:00.000001Z")
    first = await wait_for(
        k, namespace, "mig-4", lambda c: bool(migration(c).get("name")), what="first accepted"
    )
    await migrate(k, namespace, "mig-4", "2026-12-01T10:00:00.000002Z")
    cr = await wait_for(
        k,
        namespace,
        "mig-4",
        lambda c: bool(migration(c).get("refusal")),
        within=20,
        what="the second request refused",
    )
    assert migration(cr)["name"] == migration(first)["name"]
    assert "already running" in migration(cr)["refusal"]
    assert migration(cr).get("result") in (None, "Succeeded")
    try:
        await wait_for(
            k, namespace, "mig-4", lambda c: migration(c).get("result") == "Succeeded", within=60
        )
    except AssertionError:
        cr = await get(k, "wukong", namespace, "mig-4")
        vmis = await items_at(k, migrations_path(namespace))
        vmi = await get(k, "vmi", namespace, "mig-4-vm")
        raise AssertionError(
            f"{migration(cr or {})} {[m.get('status') for m in vmis]} "
            f"{(vmi or {}).get('status', {}).get('migrationState')}"
        ) from None
    assert len(await items_at(k, migrations_path(namespace))) == 1


async def test_deleting_a_wukong_cancels_its_running_migration_first(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    await create(k, "wukong", namespace, wukong("mig-5", disks=SHARED))
    await wait_phase(k, namespace, "mig-5", "Running", within=60)
    since = audit.size(control_plane.audit_log)
    await migrate(k, namespace, "mig-5", "2026-12-01T10:00:00.000001Z")
    await wait_for(
        k,
        namespace,
        "mig-5",
        lambda c: migration(c).get("phase") in ("PreparingTarget", "TargetReady", "Running"),
        within=60,
        what="the migration under way",
    )
    await k.delete(api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, "mig-5"))

    async def gone() -> bool:
        return await get(k, "wukong", namespace, "mig-5") is None

    await eventually(gone, timeout=90, message="mig-5 deleted")
    ours = [
        r
        for r in audit.read(control_plane.audit_log, since=since)
        if r.user == OPERATOR_USER and r.namespace == namespace and r.verb == "delete"
    ]
    order = [r.resource for r in ours]
    assert "virtualmachineinstancemigrations" in order, order
    assert order.index("virtualmachineinstancemigrations") < order.index("virtualmachines")


async def test_migrate_cancel_aborts_the_running_migration_and_the_vm_stays(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """`wukong migrate-cancel` deletes the migration object, as virtctl's does: KubeVirt
    aborts it, the VM stays on its node, and status.migration says it was cancelled."""
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("mig-6", disks=SHARED))
    cr = await wait_phase(k, namespace, "mig-6", "Running", within=60)
    source = cr["status"]["nodeName"]
    none = await cli(kubeconfig, "migrate-cancel", "mig-6", "-n", namespace)
    assert none.exit_code == 1
    assert none.stderr.strip() == "error: no migration of mig-6 is running"
    await migrate(k, namespace, "mig-6", "2026-12-01T10:00:00.000002Z")
    cr = await wait_for(
        k,
        namespace,
        "mig-6",
        lambda c: migration(c).get("phase") in ("PreparingTarget", "TargetReady", "Running"),
        within=60,
        what="the migration under way",
    )
    name = migration(cr)["name"]
    result = await cli(kubeconfig, "migrate-cancel", "mig-6", "-n", namespace, "--wait")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"migration {name} cancelled: mig-6 stays on {source}\n"
    cr = await wait_for(k, namespace, "mig-6", lambda c: migration(c).get("result") == "Failed")
    assert "was cancelled" in migration(cr)["message"]
    assert cr["status"]["nodeName"] == source and cr["status"]["phase"] == "Running"

    async def object_gone() -> bool:
        return await items_at(k, migrations_path(namespace)) == []

    await eventually(object_gone, timeout=30, message="the migration object let go")
    again = await cli(kubeconfig, "migrate-cancel", "mig-6", "-n", namespace)
    assert again.exit_code == 1
    assert again.stderr.strip() == (
        f"error: no migration of mig-6 is running (the last, {name}, Failed)"
    )
    # The aborted migration stays in the VMI's migrationState, failed and not completed (as
    # KubeVirt's source reports it): until session 40 the next migrate was refused "a
    # migration of mig-6 KubeVirt started ... is already running".
    await migrate(k, namespace, "mig-6", "2026-12-01T10:00:00.000003Z")
    cr = await wait_for(
        k,
        namespace,
        "mig-6",
        lambda c: migration(c).get("result") == "Succeeded",
        within=60,
        what="the migration after the cancelled one",
    )
    assert cr["status"]["nodeName"] != source


async def test_migrate_cancel_cancels_a_migration_started_outside_wukong(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """A node drain's, a workload update's or `virtctl migrate`'s migration: status.migration
    follows only the Wukong's own, and `migrate-cancel` said "no migration of mig-7 is
    running" (CLI audit, session 41). Found as virtctl's migrate-cancel finds one, by
    KubeVirt's `kubevirt.io/vmi-name` label, and deleted: KubeVirt aborts it."""
    kubeconfig = control_plane.kubeconfig
    await create(k, "wukong", namespace, wukong("mig-7", disks=SHARED))
    cr = await wait_phase(k, namespace, "mig-7", "Running", within=60)
    source = cr["status"]["nodeName"]
    theirs: dict[str, Any] = {
        "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "drain-1"},
        "spec": {"vmiName": "mig-7-vm"},
    }
    if kubevirt_mode() != "real":  # virt-api's mutating webhook labels it so
        theirs["metadata"]["labels"] = {"kubevirt.io/vmi-name": "mig-7-vm"}
    await k.create(migrations_path(namespace), theirs)

    async def under_way() -> bool:
        made = await k.get(f"{migrations_path(namespace)}/drain-1")
        return (made.get("status") or {}).get("phase") in ("Scheduling", "Scheduled",
                                                            "PreparingTarget", "TargetReady",
                                                            "Running")  # fmt: skip

    await eventually(under_way, timeout=30, message="the outside migration under way")
    result = await cli(kubeconfig, "migrate-cancel", "mig-7", "-n", namespace)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("migration drain-1 of mig-7 cancelled: KubeVirt aborts it ")

    async def object_gone() -> bool:
        return await items_at(k, migrations_path(namespace)) == []

    await eventually(object_gone, timeout=30, message="the migration object let go")
    cr = await wait_phase(k, namespace, "mig-7", "Running")
    assert cr["status"]["nodeName"] == source


ZONES = {
    "node-1": {"zone": "a"},
    "node-2": {"zone": "a"},
    "node-3": {"zone": "b"},
}


@pytest.mark.parametrize("sim", [ZONES], indirect=True, ids=["zones-a-a-b"])
async def test_migrate_while_a_restart_is_owed_is_refused_not_placed_by_the_old_selector(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """Found by a source audit (session 47): KubeVirt applies a new nodeSelector to the
    running VMI only while the VM owes no restart, and renders a migration's target pod from
    the VMI's. The migrate went ahead and moved the VM to the other zone-a node."""
    body = wukong("mig-z", disks=SHARED, nodeSelector={"zone": "a"})
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "mig-z", "Running", within=60)
    # The running VMI has the cluster's default: another one owes a restart.
    await patch_spec(k, namespace, "mig-z", {"evictionStrategy": "External"})
    await wait_for(
        k,
        namespace,
        "mig-z",
        lambda c: "evictionStrategy" in condition(c, "RestartRequired").get("message", ""),
        within=30,
        what="RestartRequired names evictionStrategy",
    )
    await patch_spec(k, namespace, "mig-z", {"nodeSelector": {"zone": "b"}})
    cr = await wait_for(
        k,
        namespace,
        "mig-z",
        lambda c: "nodeSelector" in condition(c, "RestartRequired").get("message", ""),
        within=30,
        what="RestartRequired names nodeSelector",
    )
    assert (
        "a migration's target pod is placed by the running VM's"
        in (condition(cr, "RestartRequired")["message"])
    )
    vmi = await get(k, "vmi", namespace, "mig-z-vm")
    assert vmi is not None and vmi["spec"]["nodeSelector"] == {"zone": "a"}
    await migrate(k, namespace, "mig-z", "z1")
    cr = await wait_for(
        k, namespace, "mig-z", lambda c: migration(c).get("result") is not None, within=30
    )
    assert migration(cr)["result"] == "Refused", migration(cr)
    assert "not applied to the running VM while it owes a restart" in migration(cr)["refusal"]
    assert await items_at(k, migrations_path(namespace)) == []
    # The restart it points to places the VM by the new selector.
    await patch_spec(
        k, namespace, "mig-z", {"lifecycleAction": {"action": "restart", "requestedAt": "r1"}}
    )
    await wait_for(
        k,
        namespace,
        "mig-z",
        lambda c: c["status"].get("nodeName") == "node-3" and not condition(c, "RestartRequired"),
        within=60,
        what="restarted on node-3 with nothing to restart for",
    )


async def test_a_migration_no_node_can_take_says_why_not_a_bare_scheduling(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Found by a source audit (session 47): the target pod of a VM pinned to its node waits
    for a node, virt-controller says so in a Warning on the migration, and the Wukong said
    only "Scheduling" for 5 minutes, then "failed: see its Events"."""
    pinned = {"kubernetes.io/hostname": "node-1"}
    await create(k, "wukong", namespace, wukong("mig-p", disks=SHARED, nodeSelector=pinned))
    await wait_phase(k, namespace, "mig-p", "Running", within=60)
    await migrate(k, namespace, "mig-p", "p1")
    cr = await wait_for(
        k,
        namespace,
        "mig-p",
        lambda c: "no node can take the target pod" in migration(c).get("message", ""),
        within=30,
        what="the migration says no node can take its target pod",
    )
    assert migration(cr)["phase"] in ("Pending", "Scheduling"), migration(cr)
    assert (
        "a node other than node-1 with kubernetes.io/hostname=node-1" in (migration(cr)["message"])
    )
