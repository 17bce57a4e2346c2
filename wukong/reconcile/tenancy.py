"""Tenants: which networks the administrator's WukongNetworkPolicy lets a namespace use. Pure.

The same rules as the ValidatingAdmissionPolicy in manifests/policy/network-policy.yaml, so
the operator refuses what admission would have refused even where that policy is not
installed (or the Wukong was created before it was). A Wukong-owned NAD needs a rule covering
the namespace that lists its bridge and its VLAN (or allows it untagged); `nadName` of a NAD
in the same namespace needs nothing; `nadName: other/nad` needs a rule listing that NAD.
No policy object means nothing is allowed: default closed.
"""

from __future__ import annotations

from typing import Any

from wukong.api import names
from wukong.api.spec import NetworkSpec
from wukong.api.v1alpha1 import Wukong

NETWORK_NOT_ALLOWED = "NetworkNotAllowed"
POLICY_NAME = "cluster"
POLICY_KIND = "WukongNetworkPolicy"
JsonObj = dict[str, Any]


def owned_bridge(net: NetworkSpec) -> str:
    """The node bridge a Wukong-owned NAD for this network uses."""
    return net.bridge or names.bridge_name(net.name)


def _rules(policy: JsonObj | None, namespace: str) -> list[JsonObj]:
    rules = ((policy or {}).get("spec") or {}).get("rules") or []
    return [r for r in rules if {"*", namespace} & set(r.get("namespaces") or [])]


def _allows_owned(rule: JsonObj, net: NetworkSpec) -> bool:
    bridges = rule.get("bridges") or []
    if "*" not in bridges and owned_bridge(net) not in bridges:
        return False
    if net.vlan is None:
        return bool(rule.get("untagged"))
    vlan = net.vlan
    return any(int(r["from"]) <= vlan <= int(r["to"]) for r in rule.get("vlans") or [])


def _allows_nad(rule: JsonObj, ref: str) -> bool:
    namespace = ref.partition("/")[0]
    return any(n in (ref, f"{namespace}/*", "*/*") for n in rule.get("nads") or [])


def foreign_namespace(ref: str, namespace: str) -> str | None:
    """The other namespace a `nadName` points into, None for the Wukong's own namespace."""
    other, slash, _ = ref.partition("/")
    return other if slash and other != namespace else None


def network_refusals(cr: Wukong, policy: JsonObj | None) -> list[str]:
    """One sentence per network the policy does not allow in the Wukong's namespace."""
    namespace = cr.metadata.namespace
    rules = _rules(policy, namespace)
    refused: list[str] = []
    for net in cr.spec.networks:
        if net.nad_name:
            if foreign_namespace(net.nad_name, namespace) is None:
                continue
            if not any(_allows_nad(r, net.nad_name) for r in rules):
                refused.append(f"network '{net.name}' may not use NAD '{net.nad_name}'")
        elif not any(_allows_owned(r, net) for r in rules):
            vlan = f"VLAN {net.vlan}" if net.vlan is not None else "untagged"
            refused.append(
                f"network '{net.name}' may not use bridge '{owned_bridge(net)}' ({vlan})"
            )
    return refused


def refusal_message(cr: Wukong, refused: list[str], policy: JsonObj | None) -> str:
    """The SpecValid message: what is refused, by whom, and what to do."""
    where = f"in namespace '{cr.metadata.namespace}'"
    if policy is None:
        rule = f"no {POLICY_KIND} '{POLICY_NAME}' exists, so no bridge network is allowed"
    else:
        rule = f"{POLICY_KIND} '{POLICY_NAME}' does not allow it"
    return "; ".join(refused) + f" {where}: {rule}; ask an administrator"
