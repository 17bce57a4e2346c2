"""Issue 18, case by case: what a user sees at the edges of what the API accepts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.scenario import (
    IMAGE,
    condition,
    create,
    get,
    k,
    operator,
    refused,
    sim,
    wait_for,
    wait_phase,
    wukong,
)
from wukong.adapters.kube import Kube
from wukong.api import names
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures


# 1 -------------------------------------------------------------------------------------------


async def test_a_63_character_name_still_boots(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    name = "n" * 62 + "1"
    await create(k, "wukong", namespace, wukong(name))
    cr = await wait_phase(k, namespace, name, "Running", within=60)
    vm = cr["status"]["vmName"]
    assert vm == names.vm_name(name) and len(vm) <= 63
    vmi = await get(k, "vmi", namespace, vm)
    assert vmi is not None and vmi["metadata"]["labels"]["kubevirt.io/vm"] == vm
    # A 64-character name is refused at the door, with the reason.
    message = await refused(k, namespace, wukong("n" * 64))
    assert "at most 63 characters" in message


# 2 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("memory", ["1e3", "1Ki", "1m", "0.0001"])
async def test_memory_kubevirt_refuses_is_refused_when_the_wukong_is_created(
    k: Kube, namespace: str, memory: str
) -> None:
    message = await refused(k, namespace, wukong("small", memory=memory))
    assert "memory must be at least 1M (KubeVirt refuses less)" in message


async def test_more_cpus_than_kubevirt_can_count_are_refused_when_the_wukong_is_created(
    k: Kube, namespace: str
) -> None:
    message = await refused(k, namespace, wukong("huge", cpu=9223372036854775807))
    assert "2147483647" in message


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        # More than Kubernetes counts in 64 bits: the operator's exact 2Mi check once raised
        # on such a memory on every pass (audit, session 43).
        ({"memory": "1e40"}, "memory must be less than 8Ei"),
        ({"hotplug": {"maxMemory": "1e99"}}, "hotplug.maxMemory must be less than 8Ei"),
        ({"disks": [{"name": "system", "size": "9Ei", "image": IMAGE}]}, "less than 8Ei"),
        # An empty userData is none: the CRD let it in, the model did not, and the Wukong went
        # unmanaged (its deletion too, until session 43).
        ({"cloudInit": {"userData": ""}}, "cloudInit needs userData"),
        # Kubernetes refused the launcher pod (two volumes "private"), and the VM never ran.
        (
            {
                "disks": [
                    {"name": "system", "size": "9Gi", "image": IMAGE},
                    {"name": "private", "size": "1Gi"},
                ]
            },
            "virt-launcher pod has already",
        ),
        # The same for the volume KubeVirt mounts an sshKeys Secret as (session 44).
        (
            {
                "disks": [
                    {"name": "system", "size": "9Gi", "image": IMAGE},
                    {"name": "keys-access-cred", "size": "1Gi"},
                ],
                "sshKeys": [{"secretName": "keys"}],
            },
            "after one of its sshKeys Secrets",
        ),
    ],
)
async def test_what_the_model_refuses_the_crd_refuses_with_the_same_words(
    k: Kube, namespace: str, spec: dict[str, Any], words: str
) -> None:
    message = await refused(k, namespace, wukong("edge", **spec))
    assert words in message


# 3, 4 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "docker://[::1",
        "docker://host:notaport/img",
        "docker://%zz/img",
        "http://[::1",
        "docker://host/im\u00a0g",  # \S in the old pattern let a non-breaking space through
    ],
)
async def test_an_image_url_cdi_cannot_parse_is_refused_when_the_wukong_is_created(
    k: Kube, namespace: str, image: str
) -> None:
    disks = [{"name": "system", "size": "10Gi", "image": image}]
    message = await refused(k, namespace, wukong("badurl", disks=disks))
    assert "not a URL CDI can import from" in message or "should match" in message


# 5 -------------------------------------------------------------------------------------------


async def test_a_disk_another_wukong_already_holds_is_reported_as_a_claim_conflict(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    first = [{"name": "b-data", "size": "1Gi"}]
    await create(k, "wukong", namespace, wukong("colp-a", disks=first))
    await wait_phase(k, namespace, "colp-a", "Running", within=60)
    await create(
        k, "wukong", namespace, wukong("colp-a-b", disks=[{"name": "data", "size": "1Gi"}])
    )
    cr = await wait_for(
        k,
        namespace,
        "colp-a-b",
        lambda c: condition(c, "VolumesBound").get("reason") == "ClaimConflict",
        what="colp-a-b reports ClaimConflict",
    )
    message = condition(cr, "VolumesBound")["message"]
    assert "PVC 'colp-a-b-data' already belongs to Wukong 'colp-a'" in message
    assert cr["status"]["phase"] and cr["status"]["observedGeneration"] == 1
    # The first Wukong is never disturbed.
    assert (await get(k, "wukong", namespace, "colp-a"))["status"]["phase"] == "Running"  # type: ignore[index]


# 6 -------------------------------------------------------------------------------------------


async def test_a_storage_class_that_does_not_exist_is_named_in_the_status(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    disks = [{"name": "system", "size": "10Gi", "storageClassName": "does-not-exist"}]
    await create(k, "wukong", namespace, wukong("noclass", disks=disks))
    cr = await wait_for(
        k,
        namespace,
        "noclass",
        lambda c: condition(c, "VolumesBound").get("reason") == "StorageClassNotFound",
        what="noclass reports StorageClassNotFound",
    )
    message = condition(cr, "VolumesBound")["message"]
    assert "StorageClass 'does-not-exist' does not exist" in message
    assert "standard" in message  # the classes there are


async def test_a_disk_too_small_for_cdi_is_refused_when_the_wukong_is_created(
    k: Kube, namespace: str
) -> None:
    disks = [{"name": "system", "size": "1Ki", "image": IMAGE}]
    message = await refused(k, namespace, wukong("tiny", disks=disks))
    assert "a disk size must be at least 1Mi" in message


@pytest.mark.parametrize("secret", ["keys.example", "k" * 52])
async def test_an_ssh_key_secret_kubevirt_cannot_mount_is_refused_when_the_wukong_is_created(
    k: Kube, namespace: str, secret: str
) -> None:
    """Found by the parity test: virt-controller names the pod volume '<secret>-access-cred',
    so a dotted or long Secret name got the launcher pod refused and the VM stuck Starting."""
    message = await refused(k, namespace, wukong("keys", sshKeys=[{"secretName": secret}]))
    assert "KubeVirt mounts it in the VM's pod as a volume" in message
    await create(k, "wukong", namespace, wukong("keys", sshKeys=[{"secretName": "k" * 51}]))


# 7 -------------------------------------------------------------------------------------------


def _life(cr: dict[str, Any]) -> dict[str, Any]:
    return (cr.get("status") or {}).get("lifecycleState") or {}


async def test_start_at_creation_is_done_when_the_vm_runs(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await create(k, "wukong", namespace, wukong("born", lifecycleAction={"action": "start"}))
    cr = await wait_for(
        k,
        namespace,
        "born",
        lambda c: _life(c).get("state") == "Done",
        within=60,
        what="start at creation is Done",
    )
    assert cr["status"]["phase"] == "Running"
    assert not [c for c in sim.calls if c.subresource == "start"]  # no 409 to provoke


async def test_suspend_at_creation_suspends_the_vm_once_it_runs(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("nap", lifecycleAction={"action": "suspend"}))
    cr = await wait_for(
        k,
        namespace,
        "nap",
        lambda c: (
            (c.get("status") or {}).get("phase") == "Suspended" and _life(c).get("state") == "Done"
        ),
        within=60,
        what="suspend at creation suspends the VM",
    )
    assert _life(cr)["lastAction"] == "suspend"


@pytest.mark.parametrize("action", ["restart", "resume"])
async def test_restart_or_resume_at_creation_is_done_and_the_vm_runs(
    k: Kube, namespace: str, operator: InProcessOperator, action: str
) -> None:
    await create(k, "wukong", namespace, wukong("fresh", lifecycleAction={"action": action}))
    cr = await wait_phase(k, namespace, "fresh", "Running", within=60)
    assert _life(cr)["state"] == "Done" and "being created" in _life(cr)["message"]
