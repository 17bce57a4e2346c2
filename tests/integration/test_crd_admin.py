"""Issue 17: the CRD as an admin meets it through kubectl and the API server: Wukongs in
`kubectl get all`, READY in the default columns, phases enumerated, and quantity mistakes
answered in words."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.scenario import create, k, refused, wukong
from wukong.adapters.kube import Kube, api_path
from wukong.errors import Invalid
from wukong.testing._assets import kubectl_binary
from wukong.testing.controlplane import ControlPlane

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
