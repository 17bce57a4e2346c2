"""The administrator's WukongNetworkPolicy, as the operator enforces it (issue 15 point 7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.reconcile.world import NS, decide, seen, user_nad, wukong
from wukong.reconcile.actions import CreateChild, Emit
from wukong.reconcile.children import nad_config
from wukong.reconcile.tenancy import network_refusals


def policy(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "cluster"}, "spec": {"rules": list(rules)}}


def net(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "lan", **fields}]


TEAM = {"namespaces": [NS], "bridges": ["br-tenant"], "vlans": [{"from": 100, "to": 199}]}


@pytest.mark.parametrize(
    ("networks", "grant", "refused"),
    [
        pytest.param(
            net(bridge="br-tenant", vlan=150), policy(TEAM), [], id="bridge-and-vlan-in-range"
        ),
        pytest.param(
            net(bridge="br-tenant", vlan=200), policy(TEAM), ["VLAN 200"], id="vlan-out-of-range"
        ),
        pytest.param(
            net(bridge="br-mgmt", vlan=150), policy(TEAM), ["bridge 'br-mgmt'"], id="other-bridge"
        ),
        pytest.param(
            net(bridge="br-tenant"), policy(TEAM), ["untagged"], id="untagged-not-granted"
        ),
        pytest.param(
            net(bridge="br-tenant"), policy(TEAM | {"untagged": True}), [], id="untagged-granted"
        ),
        pytest.param(
            net(), policy(TEAM | {"bridges": ["br-lan"], "untagged": True}), [], id="default-bridge"
        ),
        pytest.param(
            net(bridge="br-tenant", vlan=150), None, ["bridge 'br-tenant'"], id="no-policy-closed"
        ),
        pytest.param(
            net(bridge="br-tenant", vlan=150),
            policy(TEAM | {"namespaces": ["team-b"]}),
            ["bridge 'br-tenant'"],
            id="rule-for-another-namespace",
        ),
        pytest.param(
            net(bridge="br-x", vlan=5),
            policy({"namespaces": ["*"], "bridges": ["*"], "vlans": [{"from": 1, "to": 4094}]}),
            [],
            id="wildcards",
        ),
        pytest.param(net(nadName="same-ns-nad"), None, [], id="own-namespace-nad-needs-nothing"),
        pytest.param(net(nadName=f"{NS}/same-ns-nad"), None, [], id="own-namespace-by-full-name"),
        pytest.param(
            net(nadName="infra/storage"),
            policy(TEAM),
            ["NAD 'infra/storage'"],
            id="foreign-nad-refused",
        ),
        pytest.param(
            net(nadName="infra/storage"),
            policy(TEAM | {"nads": ["infra/storage"]}),
            [],
            id="foreign-nad-listed",
        ),
        pytest.param(
            net(nadName="infra/storage"),
            policy(TEAM | {"nads": ["infra/*"]}),
            [],
            id="foreign-namespace-wildcard",
        ),
        pytest.param(
            net(nadName="infra/storage"),
            policy(TEAM | {"nads": ["infra2/*"]}),
            ["NAD"],
            id="other-wildcard",
        ),
    ],
)
def test_the_policy_decides_which_networks_a_namespace_may_use(
    networks: list[dict[str, Any]], grant: dict[str, Any] | None, refused: list[str]
) -> None:
    found = network_refusals(wukong(networks=networks), grant)
    assert len(found) == len(refused), found
    for sentence, fragment in zip(found, refused, strict=True):
        assert fragment in sentence and "network 'lan'" in sentence


def test_a_refused_network_makes_the_spec_invalid_creates_nothing_and_warns() -> None:
    cr = wukong(networks=net(bridge="br-mgmt", vlan=7))
    plan = decide(cr, {}, seen(network_policy=policy(TEAM)))
    [valid] = [c for c in plan.status["conditions"] if c["type"] == "SpecValid"]
    assert (valid["status"], valid["reason"]) == ("False", "NetworkNotAllowed")
    assert "bridge 'br-mgmt'" in valid["message"] and f"namespace '{NS}'" in valid["message"]
    assert "WukongNetworkPolicy 'cluster'" in valid["message"]
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    assert [(e.type, e.reason) for e in plan.actions if isinstance(e, Emit)][:1] == [
        ("Warning", "NetworkNotAllowed")
    ]


def test_without_any_policy_the_message_says_so() -> None:
    plan = decide(wukong(networks=net(bridge="br-x")), {}, seen(network_policy=None))
    [valid] = [c for c in plan.status["conditions"] if c["type"] == "SpecValid"]
    assert "no WukongNetworkPolicy 'cluster' exists" in valid["message"]


def test_a_wukong_without_bridge_networks_needs_no_policy() -> None:
    cr = wukong(networks=net(nadName="existing-nad"))
    plan = decide(cr, {}, seen(network_policy=None, nads={f"{NS}/existing-nad": user_nad()}))
    [valid] = [c for c in plan.status["conditions"] if c["type"] == "SpecValid"]
    assert valid["status"] == "True"


def _plugin(**network: Any) -> dict[str, Any]:
    cr = wukong(networks=net(**network))
    [plugin] = json.loads(nad_config(cr, cr.spec.networks[0]))["plugins"]
    return dict(plugin)


def test_a_vlan_network_is_on_its_vlan_only() -> None:
    """Review s22 F3: the bridge plugin left the VM's port in the bridge's default VLAN 1
    too (`preserveDefaultVlan` defaults to true): a tenant granted VLAN 150 alone also got
    the bridge's untagged traffic, and its frames tagged 1 reached every port in VLAN 1."""
    plugin = _plugin(bridge="br-tenant", vlan=150)
    assert plugin["vlan"] == 150 and plugin["preserveDefaultVlan"] is False
    assert plugin["macspoofchk"] is True


def test_an_untagged_network_keeps_the_bridges_default_vlan() -> None:
    assert "preserveDefaultVlan" not in _plugin(bridge="br-tenant")
