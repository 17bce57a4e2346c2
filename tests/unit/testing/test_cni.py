"""The simulated node reads a pod's Multus networks as Multus does, and the pure simulator's
virt-controller names them on the launcher pod as KubeVirt v1.7.0's does."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from wukong.testing.kubevirt.cni import (
    NETWORKS_ANNOTATION,
    config_name,
    networks_annotation,
    pod_networks,
    sandbox_error,
)
from wukong.testing.kubevirt.launcher import launcher_pod


def vmi(*networks: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1-vm", "namespace": "demo", "uid": "u1"},
        "spec": {"networks": [{"name": "default", "pod": {}}, *networks]},
    }


def pod(annotation: str) -> dict[str, Any]:
    meta = {"name": "p", "namespace": "demo", "uid": "pu", "annotations": {}}
    if annotation:
        meta["annotations"] = {NETWORKS_ANNOTATION: annotation}
    return {"metadata": meta}


def test_the_launcher_pod_names_each_secondary_network_as_virt_controller_does() -> None:
    spec = vmi(
        {"name": "vlan100", "multus": {"networkName": "web-1-vlan100"}},
        {"name": "shared", "multus": {"networkName": "infra/shared-net"}},
        {"name": "primary", "multus": {"networkName": "x", "default": True}},
    )
    rendered = launcher_pod(spec)["metadata"]["annotations"][NETWORKS_ANNOTATION]
    hashed = "pod" + hashlib.sha256(b"vlan100").hexdigest()[:11]
    assert json.loads(rendered)[0] == {
        "name": "web-1-vlan100",
        "namespace": "demo",
        "interface": hashed,
    }
    assert pod_networks(pod(rendered)) == [("demo", "web-1-vlan100"), ("infra", "shared-net")]
    assert networks_annotation(vmi()) is None
    assert "annotations" not in launcher_pod(vmi())["metadata"]


def test_an_interfaces_mac_address_is_asked_of_multus() -> None:
    """newAnnotationData: the VMI interface's macAddress is the element's `mac` (Multus then
    passes it to the plugin as runtimeConfig.mac and CNI_ARGS MAC), in the Go struct's order."""
    spec = vmi(
        {"name": "lan", "multus": {"networkName": "web-1-lan"}},
        {"name": "san", "multus": {"networkName": "san"}},
    )
    spec["spec"]["domain"] = {
        "devices": {
            "interfaces": [
                {"name": "default", "masquerade": {}},
                {"name": "lan", "bridge": {}, "macAddress": "02:12:34:56:78:9a"},
                {"name": "san", "bridge": {}},
            ]
        }
    }
    rendered = json.loads(launcher_pod(spec)["metadata"]["annotations"][NETWORKS_ANNOTATION])
    assert list(rendered[0]) == ["name", "namespace", "mac", "interface"]
    assert rendered[0]["mac"] == "02:12:34:56:78:9a"
    assert "mac" not in rendered[1]


def test_multus_short_form_and_no_annotation() -> None:
    assert pod_networks(pod("a, infra/b@eth1")) == [("demo", "a"), ("infra", "b")]
    assert pod_networks(pod("")) == []


def test_the_kubelets_words_for_a_failed_attach() -> None:
    nad = {"metadata": {"name": "n"}, "spec": {"config": json.dumps({"name": "conf"})}}
    assert config_name(nad) == "conf"
    assert config_name({"metadata": {"name": "n"}, "spec": {"config": "not json"}}) == "n"
    message = sandbox_error(pod(""), "conf", '"br0" already exists but is not a bridge')
    assert message.startswith("Failed to create pod sandbox: rpc error: code = Unknown desc = ")
    assert message.endswith(
        '[demo/p/pu:conf]: error adding container to network "conf": "br0" already exists '
        "but is not a bridge"
    )
