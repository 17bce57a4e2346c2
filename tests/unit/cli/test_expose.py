"""`wukong expose`: the Service it makes, and what it says."""

from __future__ import annotations

import pytest

from tests.unit.cli.objects import running, wukong
from wukong.console.errors import USAGE, CliError
from wukong.console.expose import (
    Exposure,
    Protocol,
    ServiceType,
    exposed,
    not_running_note,
    service,
)


def test_the_service_selects_the_vms_launcher_pod_and_is_owned_by_the_wukong() -> None:
    svc = service(running("web-1"), Exposure(port=80))
    assert svc == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web-1",
            "labels": {"vm.novasphere.dev/wukong": "web-1"},
            "ownerReferences": [
                {
                    "apiVersion": "vm.novasphere.dev/v1alpha1",
                    "kind": "Wukong",
                    "name": "web-1",
                    "uid": "uid-web-1",
                }
            ],
        },
        "spec": {
            "type": "ClusterIP",
            # Not an importer or hot-plug pod that carries the Wukong's label too.
            "selector": {"vm.novasphere.dev/wukong": "web-1", "kubevirt.io": "virt-launcher"},
            "ports": [{"name": "tcp-80", "protocol": "TCP", "port": 80, "targetPort": 80}],
        },
    }


def test_name_type_protocol_and_target_port_are_taken_from_flags() -> None:
    wanted = Exposure(2222, 22, "web-1-ssh", ServiceType.NODE_PORT, Protocol.TCP)
    svc = service(running("web-1"), wanted)
    assert svc["metadata"]["name"] == "web-1-ssh"
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [
        {"name": "tcp-2222", "protocol": "TCP", "port": 2222, "targetPort": 22}
    ]
    udp = service(running("dns-1"), Exposure(53, protocol=Protocol.UDP))
    assert udp["spec"]["ports"][0]["name"] == "udp-53"


@pytest.mark.parametrize(
    ("wukong_name", "flag", "said"),
    [
        ("db.prod", None, "the default name 'db.prod' (the Wukong's): "),  # a subdomain
        ("1st-vm", None, "the default name '1st-vm' (the Wukong's): "),
        ("web-1", "Web", "--name: "),
        ("web-1", "x" * 64, "--name: "),
    ],
)
def test_a_name_no_service_can_have_is_a_usage_error(
    wukong_name: str, flag: str | None, said: str
) -> None:
    with pytest.raises(CliError) as refused:
        service(wukong(wukong_name), Exposure(80, name=flag))
    assert refused.value.code == USAGE
    assert refused.value.message.startswith(said)
    assert "DNS-1035" in refused.value.message
    assert ("give one with --name" in refused.value.message) is (flag is None)


def test_what_it_says_names_the_node_port() -> None:
    made = {
        "metadata": {"name": "web-1-ssh"},
        "spec": {
            "type": "NodePort",
            "ports": [{"port": 22, "nodePort": 31022, "protocol": "TCP", "targetPort": 22}],
        },
    }
    assert exposed(made, "web-1") == (
        "service/web-1-ssh exposed: NodePort 22:31022/TCP → port 22 of web-1"
    )
    web = {"port": 80, "protocol": "TCP", "targetPort": 8080}
    made["spec"] = {"type": "ClusterIP", "ports": [web]}
    assert exposed(made, "web-1") == (
        "service/web-1-ssh exposed: ClusterIP 80/TCP → port 8080 of web-1"
    )


def test_a_vm_that_does_not_run_gets_a_warning() -> None:
    assert not_running_note(running("web-1")) is None
    stopped = wukong("db-1", status={"phase": "Stopped"})
    assert not_running_note(stopped) == (
        "warning: db-1 is Stopped: the Service answers once its VM runs"
    )
