"""Tenants: which networks the administrator's WukongNetworkPolicy lets a namespace use. Pure.

The same rules as the ValidatingAdmissionPolicy in manifests/policy/network-policy.yaml, so
the operator refuses what admission would have refused even where that policy is not
installed (or the Wukong was created before it was). A Wukong-owned NAD needs a rule covering
the namespace that lists its bridge and its VLAN (or allows it untagged); `nadName` of a NAD
in the same namespace needs nothing here (admission checks its author: see
manifests/policy/network-policy.yaml); `nadName: other/nad` needs a rule listing that NAD.
Either way a NAD a Wukong made needs, besides, the same rule for its bridge and VLAN as if the
Wukong naming it owned it (a grant revoked since must not live on in the NADs made under it,
and a grant of another namespace's NAD by name is not one of what a Wukong there made under
that name).
No policy object means nothing is allowed: default closed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wukong.api import kinds, names
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


def _allows_bridge(rule: JsonObj, bridge: str, vlan: int | None) -> bool:
    bridges = rule.get("bridges") or []
    if "*" not in bridges and bridge not in bridges:
        return False
    if vlan is None:
        return bool(rule.get("untagged"))
    return any(int(r["from"]) <= vlan <= int(r["to"]) for r in rule.get("vlans") or [])


def _on_bridge(bridge: str, vlan: int | None) -> str:
    return f"bridge '{bridge}' ({f'VLAN {vlan}' if vlan is not None else 'untagged'})"


def made_by_wukong(nad: JsonObj) -> bool:
    """A NAD the operator made for a Wukong: our label or a Wukong's ownerReference (a tenant
    who cannot write NADs can forge neither; one who can needs no grant anyway)."""
    meta = nad.get("metadata") or {}
    labels = meta.get("labels") or {}
    owners = meta.get("ownerReferences") or []
    return labels.get(names.LABEL_MANAGED_BY) == names.MANAGED_BY or any(
        o.get("kind") == names.KIND for o in owners
    )


# The shape `nad_config` writes (children.py): these keys at the top, one bridge plugin with
# those. A Wukong-made NAD is judged by its bridge and VLAN, so it is read only in that shape,
# never more loosely than the plugin reads it: Go's encoding/json matches keys case-insensitively
# with the last one winning ("Bridge" after "bridge"), the plugin also takes a `vlanTrunk` (every
# VLAN in it), and a chain runs every plugin in it (source audit, session 42).
_CONF_KEYS = frozenset({"cniVersion", "name", "plugins"})
_BRIDGE_KEYS = frozenset(
    {"type", "bridge", "vlan", "mtu", "disableContainerInterface", "macspoofchk",
     "preserveDefaultVlan", "capabilities"}
)  # fmt: skip
# The only capabilities `nad_config` writes (session 47): the MAC address the VM's interface
# asks for. It decides nothing about the bridge or VLAN; any other is not the shape.
_CAPABILITIES = {"mac": True}
_FLAGS = ("disableContainerInterface", "macspoofchk", "preserveDefaultVlan")


def _no_repeats(pairs: list[tuple[str, Any]]) -> JsonObj:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a key given twice")
    return dict(pairs)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _only_mac(capabilities: Any) -> bool:
    """`{"mac": true}` exactly (a JSON `1` is not `true`, though Python compares them equal)."""
    return (
        isinstance(capabilities, dict)
        and capabilities == _CAPABILITIES
        and all(isinstance(v, bool) for v in capabilities.values())
    )


def bridge_of(nad: JsonObj) -> tuple[str, int | None] | None:
    """(bridge, VLAN) of a NAD config in the shape a Wukong's NAD has; None for any other."""
    try:
        config = json.loads(
            (nad.get("spec") or {}).get("config") or "", object_pairs_hook=_no_repeats
        )
    except ValueError:
        return None
    if not isinstance(config, dict) or not set(config) <= _CONF_KEYS:
        return None
    plugins = config.get("plugins")
    if not isinstance(plugins, list) or len(plugins) != 1 or not isinstance(plugins[0], dict):
        return None
    [plugin] = plugins
    if not set(plugin) <= _BRIDGE_KEYS or plugin.get("type") != "bridge":
        return None
    bridge, vlan = plugin.get("bridge"), plugin.get("vlan")
    if not isinstance(bridge, str) or not bridge:
        return None
    if vlan is not None and not (_integer(vlan) and 0 <= vlan <= 4094):
        return None
    if "mtu" in plugin and not _integer(plugin["mtu"]):
        return None
    if any(not isinstance(plugin[flag], bool) for flag in _FLAGS if flag in plugin):
        return None
    if "capabilities" in plugin and not _only_mac(plugin["capabilities"]):
        return None
    return bridge, vlan or None  # the plugin reads VLAN 0 as untagged


def _made_nad_refusal(net: NetworkSpec, rules: list[JsonObj], nad: JsonObj) -> str | None:
    """Why a Wukong-made NAD of the namespace, named by `nadName`, is not allowed."""
    where = bridge_of(nad)
    if where is None:
        return (
            f"network '{net.name}' may not use NAD '{net.nad_name}' (a Wukong's NAD whose "
            "bridge cannot be read)"
        )
    if any(_allows_bridge(r, *where) for r in rules):
        return None
    return f"network '{net.name}' may not use NAD '{net.nad_name}' (a Wukong's NAD on " + (
        _on_bridge(*where) + ")"
    )


def _allows_nad(rule: JsonObj, ref: str) -> bool:
    namespace = ref.partition("/")[0]
    return any(n in (ref, f"{namespace}/*", "*/*") for n in rule.get("nads") or [])


def foreign_namespace(ref: str, namespace: str) -> str | None:
    """The other namespace a `nadName` points into, None for the Wukong's own namespace."""
    other, slash, _ = ref.partition("/")
    return other if slash and other != namespace else None


def network_refusals(
    cr: Wukong, policy: JsonObj | None, nads: Mapping[str, JsonObj] | None = None
) -> list[str]:
    """One sentence per network the policy does not allow in the Wukong's namespace. `nads`:
    the cached NADs by "namespace/name", to judge a Wukong-made one named by `nadName` (one
    not cached yet is judged once it is: its absence already holds the Wukong back)."""
    namespace = cr.metadata.namespace
    rules = _rules(policy, namespace)
    refused: list[str] = []
    for net in cr.spec.networks:
        if net.nad_name:
            if foreign_namespace(net.nad_name, namespace) is not None and not any(
                _allows_nad(r, net.nad_name) for r in rules
            ):
                refused.append(f"network '{net.name}' may not use NAD '{net.nad_name}'")
                continue
            # A Wukong-made NAD is judged by its bridge and VLAN wherever it is: a grant of
            # another namespace's NAD by name is not one of whatever a Wukong there put under
            # that name (a tenant's squat), nor of a bridge revoked since (session 42).
            ns, name = names.object_ref(namespace, net.nad_name)
            nad = (nads or {}).get(f"{ns}/{name}")
            if nad is not None and made_by_wukong(nad):
                if (why := _made_nad_refusal(net, rules, nad)) is not None:
                    refused.append(why)
        elif not any(_allows_bridge(r, owned_bridge(net), net.vlan) for r in rules):
            where = _on_bridge(owned_bridge(net), net.vlan)
            refused.append(f"network '{net.name}' may not use {where}")
    return refused


# Pod annotations Multus reads (k8s.v1.cni.cncf.io/networks: secondary networks;
# v1.multus-cni.io/default-network: the pod network itself, which Multus' namespaceIsolation does
# not check). KubeVirt copies an instancetype's or preference's `spec.annotations` onto the VMI
# (pkg/instancetype/apply/annotations.go) and the VMI's onto its virt-launcher pod
# (pkg/virt-controller/services/template.go, filterVMIAnnotationsForPod).
MULTUS_PREFIXES = ("k8s.v1.cni.cncf.io/", "v1.multus-cni.io/")


def size_class_refusals(cr: Wukong, size_classes: Mapping[str, JsonObj]) -> list[str]:
    """One sentence per namespaced instancetype or preference the spec names that would put
    the VM's pod on a network of its own choosing (a Multus annotation): networks come from
    spec.networks alone, where the policy judges them. Whoever may create a namespaced
    instancetype may create a pod with those annotations anyway; a user bound to
    `wukong-edit` alone may not, yet may name one (source audit, session 42). A cluster-wide
    one is an administrator's (`kinds.SIZE_CLASSES`), not judged; nor one not cached:
    KubeVirt refuses a VM naming an instancetype that does not exist, and its watch wakes
    the Wukong when it comes."""
    refused = []
    for ref in (cr.spec.instancetype, cr.spec.preference):
        if ref is None or ref.kind.value not in kinds.SIZE_CLASSES:
            continue
        if (obj := size_classes.get(ref.kind.value)) is None:
            continue
        annotations = (obj.get("spec") or {}).get("annotations") or {}
        keys = sorted(k for k in annotations if str(k).startswith(MULTUS_PREFIXES))
        if keys:
            said = ", ".join(f"'{k}'" for k in keys)
            refused.append(
                f"{ref.kind.value} '{ref.name}' puts Multus annotation(s) {said} on the VM's "
                "pod: its networks come from spec.networks only"
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
