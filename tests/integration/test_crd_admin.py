"""Issue 17: the CRD as an admin meets it through kubectl and the API server: Wukongs in
`kubectl get all`, READY in the default columns, phases enumerated, and quantity mistakes
answered in words."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.integration.scenario import create, k, refused, wukong
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.api.crd import build_crd
from wukong.errors import Invalid, NotFound
from wukong.testing._assets import kubectl_binary
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually

__all__ = ["k"]  # fixtures


def kubectl(control_plane: ControlPlane, *args: str) -> str:
    argv = [str(kubectl_binary()), "--kubeconfig", str(control_plane.kubeconfig), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_get_all_lists_wukongs_with_ready_in_the_default_columns(
    control_plane: ControlPlane, k: Kube, namespace: str
) -> None:
    await create(k, "wukong", namespace, wukong("adm-1"))
    everything = kubectl(control_plane, "get", "all", "-n", namespace)
    assert "wukong.vm.novasphere.dev/adm-1" in everything
    header = kubectl(control_plane, "get", "wukongs", "-n", namespace).splitlines()[0].split()
    assert header == ["NAME", "PHASE", "VM", "NODE", "IP", "AGE", "READY"]


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ("1GB", "memory must be a quantity such as 4Gi (did you mean 1G or 1Gi?), not 1GB"),
        ("4GiB", "memory must be a quantity such as 4Gi (did you mean 4Gi?), not 4GiB"),
        ("lots", "memory must be a quantity such as 4Gi, not lots"),
    ],
)
async def test_a_wrong_quantity_is_answered_in_words(
    k: Kube, namespace: str, memory: str, message: str
) -> None:
    words = await refused(k, namespace, wukong("adm-2", memory=memory))
    assert message in words
    assert "should match" not in words


async def test_disk_sizes_get_the_same_words(k: Kube, namespace: str) -> None:
    disks = [{"name": "system", "size": "20GB"}]
    message = await refused(k, namespace, wukong("adm-3", disks=disks))
    assert "size must be a quantity such as 20Gi (did you mean 20G or 20Gi?)" in message


async def test_status_phase_takes_only_the_state_machine_phases(k: Kube, namespace: str) -> None:
    await create(k, "wukong", namespace, wukong("adm-4"))
    status = api_path("vm.novasphere.dev", "v1alpha1", "wukongs", namespace, "adm-4") + "/status"
    await k.merge_patch(status, {"status": {"phase": "Stopped"}})
    with pytest.raises(Invalid) as refused:
        await k.merge_patch(status, {"status": {"phase": "Sleeping"}})
    assert "Unsupported value" in refused.value.message and "Sleeping" in refused.value.message


async def test_a_disk_stored_before_its_name_was_reserved_keeps_it_through_later_writes(
    k: Kube, namespace: str
) -> None:
    """Session 44 reserved disk names KubeVirt's pod takes only with some features
    (`vm-state`, `hugepages`…); stored Wukongs with such a disk ran, and the rule, on the
    disks list, refused every later edit of the list (upgrade audit, session 47). The rule
    is now on the disk's name: the API server ratchets a rule whose value did not change
    (map-list items correlated by name). Shown on a copy of the real CRD under a group of
    this test's own, stored first without the rule, then with it, as an upgrade does."""
    group = f"{namespace}.ratchet.novasphere.dev"
    crd = build_crd()
    crd["metadata"] = {"name": f"wukongs.{group}"}
    crd["spec"]["group"] = group
    for taken in ("shortNames", "categories"):  # the real CRD's
        crd["spec"]["names"].pop(taken)
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    name = spec["properties"]["disks"]["items"]["properties"]["name"]
    rule = name.pop("x-kubernetes-validations")
    crds = api_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    wukongs = api_path(group, names.VERSION, "wukongs", namespace)

    def body(obj_name: str, *disks: dict[str, str]) -> dict[str, Any]:
        cr = wukong(obj_name, disks=[{"name": "system", "size": "20Gi"}, *disks])
        return {**cr, "apiVersion": f"{group}/{names.VERSION}"}

    async def established() -> bool:
        got = await k.get(f"{crds}/wukongs.{group}")
        conditions = (got.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    await k.create(crds, crd)
    try:
        await eventually(established, timeout=30, message="the copy established")
        await eventually(
            lambda: k.create(wukongs, body("old", {"name": "vm-state", "size": "10Gi"})),
            timeout=30,
            retry_on=(NotFound,),
            message="the copy served",
        )
        stored = await k.get(f"{crds}/wukongs.{group}")
        name = stored["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
            "properties"
        ]["disks"]["items"]["properties"]["name"]
        name["x-kubernetes-validations"] = rule
        await k.replace(f"{crds}/wukongs.{group}", stored)

        async def new_ones_refused() -> str:
            try:
                new = body("new", {"name": "hugepages", "size": "1Gi"})
                await k.create(wukongs, new, dry_run=True)
            except Invalid as refusal:
                return refusal.message
            raise AssertionError("taken: the rule is not in force yet")

        words = await eventually(new_ones_refused, timeout=30, message="the rule in force")
        assert "a new disk may not take one" in words
        # The stored disk keeps its name through edits of the list and of itself.
        grown = {"spec": body("old", {"name": "vm-state", "size": "12Gi"})["spec"]}
        grown["spec"]["disks"].append({"name": "logs", "size": "1Gi"})
        await k.merge_patch(f"{wukongs}/old", grown)
        # A new disk of such a name is refused beside it.
        grown["spec"]["disks"].append({"name": "hugepages", "size": "1Gi"})
        with pytest.raises(Invalid) as refusal:
            await k.merge_patch(f"{wukongs}/old", grown)
        assert "a new disk may not take one" in refusal.value.message
    finally:
        await k.delete(f"{crds}/wukongs.{group}")
