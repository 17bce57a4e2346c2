"""What the operator reports in SpecValid when a spec or an edit cannot be carried out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.api.examples import spec_with
from wukong.api.v1alpha1 import WukongSpec
from wukong.api.validation import Problem, validate_spec

SYSTEM = {
    "name": "system",
    "size": "20Gi",
    "image": "docker://quay.io/containerdisks/fedora:40",
    "storageClassName": "fast",
}
DATA = {"name": "data", "size": "100Gi"}


def _spec(**changes: Any) -> WukongSpec:
    return WukongSpec.model_validate(spec_with(**changes))


def test_the_spec_example_has_no_problems() -> None:
    assert validate_spec(_spec(), _spec(), name="web-1") == []


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        pytest.param(
            _spec(disks=[SYSTEM, DATA, DATA]),
            "spec.disks[1].name",
            "disk name 'data' is used 2 times; give each disk its own name",
            id="duplicate-disk-names",
        ),
        pytest.param(
            _spec(networks=[{"name": "lan", "nadName": "a"}, {"name": "lan", "nadName": "b"}]),
            "spec.networks[0].name",
            "network name 'lan' is used 2 times",
            id="duplicate-network-names",
        ),
        pytest.param(
            _spec(disks=[SYSTEM | {"boot": True}, DATA | {"boot": True}]),
            "spec.disks",
            "disks 'system', 'data' all have boot: true; keep it on one disk",
            id="two-boot-disks",
        ),
        pytest.param(
            _spec(networks=[{"name": "lan", "vlan": 100}]),
            "spec.networks[0].vlan",
            "has vlan 100 but no bridge: name the Linux bridge",
            id="vlan-without-bridge",
        ),
        pytest.param(
            _spec(networks=[{"name": "lan", "nadName": "shared", "bridge": "br0", "mtu": 9000}]),
            "spec.networks[0]",
            "uses the existing NAD 'shared', so bridge, mtu would be ignored",
            id="bridge-beside-nad-name",
        ),
        pytest.param(
            _spec(deleteOptions={"preserveDisksList": ["data", "logs"]}),
            "spec.deleteOptions.preserveDisksList[1]",
            "'logs' is not a disk of this Wukong (disks: data, system)",
            id="unknown-kept-disk",
        ),
    ],
)
def test_a_spec_problem_names_the_field_and_the_fix(
    spec: WukongSpec, field: str, message: str
) -> None:
    problems = validate_spec(spec)
    assert [p.field for p in problems] == [field]
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        pytest.param(
            _spec(),
            _spec(disks=[SYSTEM, DATA | {"size": "50Gi"}]),
            "spec.disks[1].size",
            "disk 'data' cannot shrink from 100Gi to 50Gi: volumes can only grow; "
            "set size back to 100Gi",
            id="disk-shrinks",
        ),
        pytest.param(
            _spec(disks=[SYSTEM, DATA | {"size": "0.1Ti"}]),
            _spec(disks=[SYSTEM, DATA | {"size": "102399Mi"}]),
            "spec.disks[1].size",
            "cannot shrink from 0.1Ti to 102399Mi",
            id="disk-shrinks-across-units",
        ),
        pytest.param(
            _spec(),
            _spec(disks=[DATA], deleteOptions=None),
            "spec.disks",
            "the system disk 'system' was removed; the VM boots from it",
            id="first-disk-removed",
        ),
        pytest.param(
            _spec(disks=[SYSTEM, DATA | {"boot": True}], deleteOptions=None),
            _spec(disks=[SYSTEM], deleteOptions=None),
            "spec.disks",
            "the system disk 'data' was removed",
            id="boot-disk-removed",
        ),
        pytest.param(
            _spec(),
            _spec(disks=[DATA, SYSTEM], deleteOptions=None),
            "spec.disks",
            "the system disk would change from 'system' to 'data'",
            id="reorder-changes-the-boot-disk",
        ),
        pytest.param(
            _spec(),
            _spec(disks=[SYSTEM, DATA | {"image": "docker://quay.io/containerdisks/fedora:41"}]),
            "spec.disks[1].image",
            "disk 'data' cannot switch from blank",
            id="blank-disk-becomes-imported",
        ),
        pytest.param(
            _spec(),
            _spec(disks=[SYSTEM | {"storageClassName": "slow"}, DATA]),
            "spec.disks[0].storageClassName",
            "cannot change from fast to slow",
            id="storage-class-changed",
        ),
    ],
)
def test_an_edit_that_cannot_be_carried_out_is_refused(
    old: WukongSpec, new: WukongSpec, field: str, message: str
) -> None:
    problems = validate_spec(new, old)
    assert [p.field for p in problems] == [field], problems
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(_spec(), _spec(disks=[SYSTEM, DATA | {"size": "0.1Ti"}]), id="disk-grows"),
        pytest.param(_spec(), _spec(disks=[SYSTEM, DATA | {"size": "100Gi"}]), id="same-size"),
        pytest.param(_spec(), _spec(disks=[SYSTEM], deleteOptions=None), id="data-disk-removed"),
        pytest.param(
            _spec(),
            _spec(disks=[SYSTEM, DATA, {"name": "logs", "size": "1Gi"}]),
            id="disk-added",
        ),
    ],
)
def test_allowed_edits_raise_no_problem(old: WukongSpec, new: WukongSpec) -> None:
    assert validate_spec(new, old) == []


def test_a_name_too_long_for_a_label_value_is_reported() -> None:
    problems = validate_spec(_spec(), name="w" * 64)
    assert problems == [
        Problem(
            "metadata.name",
            f"'{'w' * 64}' is 64 characters; a Wukong name is at most 63 because it is a label "
            "value on every child object",
        )
    ]
    assert str(problems[0]).startswith("metadata.name: ")


@pytest.mark.parametrize("taken", ["private", "hotplug-disks", "cloudinitdisk-udata"])
def test_a_disk_named_like_a_volume_of_the_launcher_pod_is_a_problem(taken: str) -> None:
    """Kubernetes refuses a pod with two volumes of one name: KubeVirt's webhook took the VM,
    virt-controller's pod was refused, and a system disk so named could not be renamed (the
    CRD keeps it): the Wukong had to be made anew (audit, session 43). Made already, it is
    still a problem: its VM cannot have started."""
    spec = _spec(disks=[SYSTEM, {"name": taken, "size": "1Gi"}], deleteOptions=None)
    for made in ((), ("system", taken)):
        [problem] = validate_spec(spec, disks_made=made)
        assert problem.field == "spec.disks[1].name"
        assert f"'{taken}': disk names private, public" in problem.message
        assert "virt-launcher pod has already" in problem.message


@pytest.mark.parametrize("taken", ["vm-state", "hugepages", "kernel-boot-volume"])
def test_a_name_the_pod_takes_only_with_some_feature_is_refused_for_new_disks_only(
    taken: str,
) -> None:
    """KubeVirt adds `vm-state`, `hugepages`… to the pod only with features Wukong never sets,
    so a VM with such a disk ran; session 44 reserved them and every stored Wukong with one
    turned SpecValid=False for good, its disk and VM changes no longer applied, and the only
    way out a rename (deleting a data disk's claim; refused for a system disk) (upgrade
    audit, session 47). A disk the Wukong has already keeps its name; a new one may not."""
    spec = _spec(disks=[SYSTEM, {"name": taken, "size": "1Gi"}], deleteOptions=None)
    [problem] = validate_spec(spec)
    assert problem.field == "spec.disks[1].name"
    assert f"'{taken}': disk names vm-state, private-libvirt" in problem.message
    assert "a new disk may not take one" in problem.message
    assert validate_spec(spec, disks_made=("system", taken)) == []


def test_a_disk_named_like_the_volume_of_an_ssh_key_secret_is_a_problem() -> None:
    """virt-controller mounts each sshKeys Secret in the pod as '<secret>-access-cred': a disk
    of that name made the pod refused (noticed in session 43, done in session 44)."""
    keys = [{"secretName": "admin-keys"}]
    spec = _spec(disks=[SYSTEM, {"name": "admin-keys-access-cred", "size": "1Gi"}],
                 deleteOptions=None, sshKeys=keys)  # fmt: skip
    [problem] = validate_spec(spec)
    assert problem.field == "spec.disks[1].name"
    assert "after one of its sshKeys Secrets" in problem.message
    other = _spec(disks=[SYSTEM, {"name": "other-access-cred", "size": "1Gi"}],
                  deleteOptions=None, sshKeys=keys)  # fmt: skip
    assert validate_spec(other) == []
