"""Networks: a named NAD must exist; an unnamed network gets a bridge NAD the Wukong owns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wukong.api import JsonObj, names
from wukong.api.conditions import NETWORKS_CONFIGURED, Cond
from wukong.api.objects import being_deleted
from wukong.api.status import NetworkStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import Action, CreateChild, DeleteChild, PatchChild, uid_of
from wukong.reconcile.children import build_nad, nad_config, owned_by
from wukong.reconcile.observed import Observed


@dataclass(frozen=True)
class Withheld:
    """Networks of the spec the VM is not given: a template names a NAD, and KubeVirt plugs
    a running guest into whatever NAD of that name exists (a network added to its template
    is hot-plugged; a start or migration makes a pod with it)."""

    unsafe: frozenset[str] = frozenset()
    """The NAD of the name the operator would make is someone else's: never given."""
    absent: frozenset[str] = frozenset()
    """The NAD is not in the cache (a named one missing, or ours made this pass): given once
    it is; a VM that already has the network keeps it."""


NOTHING_WITHHELD = Withheld()


@dataclass(frozen=True)
class NetworkPlan:
    """What the network planner decided."""

    actions: tuple[Action, ...]
    statuses: tuple[NetworkStatus, ...]
    condition: Cond
    withheld: Withheld = NOTHING_WITHHELD

    @property
    def ready(self) -> bool:
        """All NADs exist (or are being created by this pass)."""
        return bool(self.condition.status)


# CNI types whose interface carries no traffic under KubeVirt's bridge binding, the one a
# Wukong gives every secondary network: it moves the pod interface's MAC into the guest, and
# a macvlan or ipvlan child (or an SR-IOV VF) receives only for the MAC or address it has.
NOT_BRIDGEABLE = ("macvlan", "ipvlan", "sriov")


def cni_type(nad: JsonObj) -> str | None:
    """The CNI type a NAD's pod interface comes from: its config's `type`, or the first
    plugin's of a list (the others chain onto it); None when the config does not say."""
    try:
        config = json.loads((nad.get("spec") or {}).get("config") or "")
    except ValueError:
        return None
    if isinstance(config, dict) and isinstance(plugins := config.get("plugins"), list):
        config = plugins[0] if plugins else None
    kind = config.get("type") if isinstance(config, dict) else None
    return kind if isinstance(kind, str) else None


def _go_fields(obj: JsonObj, key: str) -> list[Any]:
    """The values `obj` gives a Go struct field `key`: encoding/json, which CNI plugins and
    libcni decode with, matches keys case-insensitively, the last one winning."""
    return [v for k, v in obj.items() if isinstance(k, str) and k.lower() == key.lower()]


def takes_mac(nad: JsonObj) -> bool:
    """Whether a NAD the operator did not make gives the pod's interface the MAC address the
    VM's interface asks for, so that the guest, which KubeVirt gives that address, is not cut
    off: a bridge plugin (the config's, or the first of its list: the one that makes the
    interface) with the `mac` capability (Multus passes runtimeConfig.mac, the plugin sets it
    on the veth, macspoofchk lets it through), or one without macspoofchk (nothing checks the
    guest's address). Anything else is not known to: no MAC is asked for (session 47)."""
    try:
        config = json.loads((nad.get("spec") or {}).get("config") or "")
    except ValueError:
        return False
    if isinstance(config, dict) and isinstance(plugins := config.get("plugins"), list):
        config = plugins[0] if plugins else None
    if not isinstance(config, dict) or config.get("type") != "bridge":
        return False
    if all(v is False for v in _go_fields(config, "macspoofchk")):
        return True
    capabilities = _go_fields(config, "capabilities")
    return bool(capabilities) and all(
        isinstance(c, dict) and c.get("mac") is True for c in capabilities
    )


def given_macs(cr: Wukong, seen: Observed) -> frozenset[str]:
    """The networks whose VM interface may ask for a MAC address: those with a NAD the
    operator makes (it has the `mac` capability), and those naming a NAD that `takes_mac`, as
    the cache shows it (one outside the namespace the operator watches is not known)."""
    given = set()
    for net in cr.spec.networks:
        if net.nad_name is None:
            given.add(net.name)
        elif (nad := _lookup(net.nad_name, cr.metadata.namespace, seen)) is not None:
            if takes_mac(nad):
                given.add(net.name)
    return frozenset(given)


def _lookup(ref: str, namespace: str, seen: Observed) -> JsonObj | None:
    """A NAD named `ref` ('name' or 'namespace/name') in the cache."""
    ns, name = names.object_ref(namespace, ref)
    return seen.nads.get(f"{ns}/{name}")


def _named_by(spec: JsonObj | None) -> set[str]:
    """The NADs a VM template's or a VMI's spec names."""
    return {
        str((n.get("multus") or {}).get("networkName"))
        for n in (spec or {}).get("networks") or ()
        if n.get("multus")
    }


def _let_go(cr: Wukong, seen: Observed) -> list[Action]:
    """Delete the NADs the operator made for networks the spec no longer has, once neither
    the VM's template nor a live guest names them (a guest's pod took them in; a migration
    or a restart would make a new pod that needs them). Until session 46 they stayed until
    the Wukong was deleted, on their old bridge and VLAN."""
    namespace, uid = cr.metadata.namespace, cr.metadata.uid
    wanted = {names.nad_name(cr.metadata.name, n.name) for n in cr.spec.networks if not n.nad_name}
    template = ((seen.vm or {}).get("spec") or {}).get("template") or {}
    used = _named_by(template.get("spec"))
    if seen.vmi is not None and not seen.vmi_ended:
        used |= _named_by(seen.vmi.get("spec"))
    gone: list[Action] = []
    for key, nad in seen.nads.items():
        ns, _, name = key.partition("/")
        if ns != namespace or name in wanted or not owned_by(nad, uid):
            continue
        if name in used or f"{ns}/{name}" in used or being_deleted(nad):
            continue
        gone.append(DeleteChild("NetworkAttachmentDefinition", name, nad["metadata"].get("uid")))
    return gone


def plan_networks(cr: Wukong, seen: Observed, old: Sequence[NetworkStatus] = ()) -> NetworkPlan:
    """Check named NADs exist; create or update owned ones. `old`: the networks as the status
    says them, for when each owned NAD's config last changed."""
    changed = {n.name: (n.config_changed, n.changed_under) for n in old if n.owned_by_wukong}
    # The VMI whose pod took the NADs in (one made since reads them as they are then).
    running = None if seen.vmi is None or seen.vmi_ended else seen.vmi["metadata"].get("uid")
    actions: list[Action] = []
    statuses: list[NetworkStatus] = []
    missing: list[str] = []
    conflicts: list[str] = []
    unusable: list[str] = []
    unsafe: set[str] = set()
    absent: set[str] = set()
    namespace, uid = cr.metadata.namespace, cr.metadata.uid
    for net in cr.spec.networks:
        if net.nad_name:
            statuses.append(
                NetworkStatus(name=net.name, nad_name=net.nad_name, owned_by_wukong=False)
            )
            ns, nad_name = names.object_ref(namespace, net.nad_name)
            if seen.scope not in (None, ns):
                # Outside the namespace the operator watches: not known, not missing.
                # virt-controller looks it up when it makes the pod, and says if it is not
                # there (VMHealthy); the policy's grant of it by name still holds.
                continue
            if (found := _lookup(net.nad_name, namespace, seen)) is None:
                absent.add(net.name)
                missing.append(f"network '{net.name}' needs NAD '{nad_name}' in namespace '{ns}'")
            elif (kind := cni_type(found)) in NOT_BRIDGEABLE:
                absent.add(net.name)  # a VM that has it keeps it: nothing unsafe, only dead
                unusable.append(
                    f"network '{net.name}': NAD '{net.nad_name}' is of CNI type '{kind}'"
                )
            continue
        nad = names.nad_name(cr.metadata.name, net.name)
        current = seen.nads.get(f"{namespace}/{nad}")
        when, under = changed.get(net.name, (None, None))
        if current is None:
            actions.append(CreateChild("NetworkAttachmentDefinition", build_nad(cr, net)))
            absent.add(net.name)  # made now; a NAD of its name may have come meanwhile
        elif not owned_by(current, uid):
            conflicts.append(f"NAD '{nad}' exists but is not owned by this Wukong")
            unsafe.add(net.name)
            statuses.append(NetworkStatus(name=net.name, nad_name=nad, owned_by_wukong=False))
            continue
        elif (config := current.get("spec", {}).get("config")) != nad_config(cr, net):
            patch = {"spec": {"config": nad_config(cr, net)}}
            if config == nad_config(cr, net, mac=False):
                # Only the `mac` capability is new (NADs made before session 47): it changes
                # nothing for a pod made already, and a pod made later only with a MAC its
                # VMI asks for, which a running VM is not given (vm.py `_with_macs`). So not
                # a change a running VM owes a restart for.
                why = "mac capability added"
            else:
                why, when, under = "config changed", seen.now, running
            owned = uid_of(current)
            actions.append(PatchChild("NetworkAttachmentDefinition", nad, patch, why, uid=owned))
        statuses.append(
            NetworkStatus(
                name=net.name,
                nad_name=nad,
                owned_by_wukong=True,
                config_changed=when,
                changed_under=under,
            )
        )
    if missing:
        message = "; ".join(missing) + ": create it or fix spec.networks"
        cond = Cond(NETWORKS_CONFIGURED, False, "NADNotFound", message)
    elif conflicts:
        message = "; ".join(conflicts) + ": rename the network or delete that NAD"
        cond = Cond(NETWORKS_CONFIGURED, False, "NADConflict", message)
    elif unusable:
        message = "; ".join(unusable) + (
            ": KubeVirt's bridge binding, which Wukong gives every secondary network, carries "
            "no traffic on macvlan, ipvlan or SR-IOV (the guest takes the MAC address of the "
            "pod's interface); name a NAD of type bridge (or ovs)"
        )
        cond = Cond(NETWORKS_CONFIGURED, False, "NADNotBridgeable", message)
    else:
        extra = ", ".join(n.name for n in cr.spec.networks)
        said = f"pod network and {extra}" if extra else "pod network only"
        cond = Cond(NETWORKS_CONFIGURED, True, "NetworksReady", said)
    actions += _let_go(cr, seen)
    withheld = Withheld(frozenset(unsafe), frozenset(absent))
    return NetworkPlan(tuple(actions), tuple(statuses), cond, withheld)
