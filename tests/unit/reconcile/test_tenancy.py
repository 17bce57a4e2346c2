"""The administrator's WukongNetworkPolicy, as the operator enforces it (issue 15 point 7)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.unit.reconcile.world import NS, decide, ready_children, seen, user_nad, wukong
from wukong.reconcile.actions import CreateChild, DeleteChild, Emit, PatchChild, VmCall
from wukong.reconcile.children import nad_config
from wukong.reconcile.observed import Observed
from wukong.reconcile.tenancy import network_refusals
from wukong.reconcile.vm import build_vm


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


REVOKED = policy({"namespaces": [NS], "bridges": ["br-other"], "untagged": True})


def _made_by_a_wukong() -> dict[str, Any]:
    """web-1's own NAD for vlan100 (br-vlan100, VLAN 100), as the operator made it."""
    return ready_children().nads[f"{NS}/web-1-vlan100"]


@pytest.mark.parametrize("grant", [REVOKED, None], ids=["grant-revoked", "no-policy"])
def test_a_revoked_grant_does_not_live_on_in_the_nads_made_under_it(
    grant: dict[str, Any] | None,
) -> None:
    """Review s22 F1: a NAD in the Wukong's own namespace needed no rule, so once the
    administrator revoked br-vlan100, any Wukong there could name the NAD the operator had
    made under the old grant (`nadName: web-1-vlan100`) and get the revoked bridge and VLAN."""
    web2 = wukong(networks=net(nadName="web-1-vlan100"))
    nads = {f"{NS}/web-1-vlan100": _made_by_a_wukong()}
    [why] = network_refusals(web2, grant, nads)
    assert "NAD 'web-1-vlan100'" in why and "bridge 'br-vlan100' (VLAN 100)" in why
    plan = decide(web2, {}, seen(network_policy=grant, nads=nads))
    [valid] = [c for c in plan.status["conditions"] if c["type"] == "SpecValid"]
    assert (valid["status"], valid["reason"]) == ("False", "NetworkNotAllowed")
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]


def test_a_nad_made_by_a_wukong_is_allowed_where_its_bridge_is() -> None:
    web2 = wukong(networks=net(nadName="web-1-vlan100"))
    nads = {f"{NS}/web-1-vlan100": _made_by_a_wukong()}
    assert network_refusals(web2, policy(TEAM | {"bridges": ["br-vlan100"]}), nads) == []
    # Someone else's NAD in the namespace needs no rule, as before.
    mine = wukong(networks=net(nadName="existing-nad"))
    assert network_refusals(mine, REVOKED, {f"{NS}/existing-nad": user_nad()}) == []


def _made_in_team_b() -> dict[str, Any]:
    """A NAD a Wukong of namespace team-b made as `storage-net`, on br-mgmt VLAN 7."""
    nad = _made_by_a_wukong()
    nad["metadata"] = {**nad["metadata"], "namespace": "team-b", "name": "storage-net"}
    nad["spec"] = {"config": json.dumps({"cniVersion": "0.3.1", "name": "storage-net",
                   "plugins": [{"type": "bridge", "bridge": "br-mgmt", "vlan": 7}]})}  # fmt: skip
    return nad


@pytest.mark.parametrize("listed", ["team-b/storage-net", "team-b/*", "*/*"])
def test_a_grant_of_another_namespaces_nad_is_not_one_of_what_a_wukong_made_there(
    listed: str,
) -> None:
    """Found by a source audit (session 42): a Wukong-made NAD was judged by its bridge only
    in the Wukong's own namespace. An administrator's grant of team-b's NAD by name reached
    whatever a Wukong of team-b made under that name (a tenant there squatting it while the
    administrator's was missing) and any bridge revoked from team-b since."""
    web2 = wukong(networks=net(nadName="team-b/storage-net"))
    nads = {"team-b/storage-net": _made_in_team_b()}
    [why] = network_refusals(web2, policy(TEAM | {"nads": [listed]}), nads)
    assert "NAD 'team-b/storage-net'" in why and "bridge 'br-mgmt' (VLAN 7)" in why
    granted = TEAM | {"nads": [listed], "bridges": ["br-mgmt"], "vlans": [{"from": 7, "to": 7}]}
    assert network_refusals(web2, policy(granted), nads) == []
    # The administrator's own NAD there is what the name grants, as before.
    assert network_refusals(web2, policy(TEAM | {"nads": [listed]}), {
        "team-b/storage-net": user_nad()}) == []  # fmt: skip


def _refused_world(strategy: str, *, running: bool) -> Any:
    """web-1's VM under `strategy`, after the administrator revoked br-vlan100."""
    world = ready_children()
    cr = wukong(runStrategy=strategy)
    vm = build_vm(cr, world, strategy)
    vm["metadata"]["uid"] = "vm-uid"
    vm["status"] = {"printableStatus": "Running" if running else "Stopped"}
    vmi = None
    if running:
        vmi = {
            "metadata": {"name": "web-1-vm", "namespace": NS, "uid": "vmi-1"},
            "spec": vm["spec"]["template"]["spec"],
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    return Observed(**{**world.__dict__, "vm": vm, "vmi": vmi, "network_policy": REVOKED})


@pytest.mark.parametrize(
    ("verb", "phase", "running"),
    [("start", "Stopped", False), ("restart", "Running", True)],
)
def test_a_wukong_the_policy_refuses_is_not_started_again(
    verb: str, phase: str, running: bool
) -> None:
    """Review s22 F2: with its network refused, a start or restart still went to KubeVirt,
    and the new guest was plugged into the revoked bridge and VLAN."""
    world = _refused_world("Halted" if not running else "Always", running=running)
    cr = wukong(runStrategy="Always", lifecycleAction={"action": verb, "requestedAt": "a"})
    status = {"phase": phase, "vmName": "web-1-vm"}
    plan = decide(cr, status, world)
    again = decide(cr, plan.status, world)
    state = again.status["lifecycleState"]
    assert state["state"] == "Refused" and state["message"].startswith(f"cannot {verb}: ")
    assert "bridge 'br-vlan100'" in state["message"]
    assert again.status["phase"] == phase
    assert not [a for a in plan.actions + again.actions if isinstance(a, VmCall)]
    [warned] = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "RequestRefused"]
    assert warned.type == "Warning"


def test_a_wukong_the_policy_refuses_can_still_be_stopped() -> None:
    world = _refused_world("Always", running=True)
    cr = wukong(lifecycleAction={"action": "stop", "requestedAt": "a"})
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    again = decide(cr, plan.status, world)
    assert [c.verb for c in again.actions if isinstance(c, VmCall)] == ["stop"]


def test_a_runstrategy_edit_does_not_start_a_wukong_the_policy_refuses() -> None:
    """Nor does setting spec.runStrategy back to Always: the VM stays Halted."""
    world = _refused_world("Halted", running=False)
    cr = wukong(runStrategy="Always")
    plan = decide(cr, {"phase": "Stopped", "vmName": "web-1-vm"}, world)
    assert not [a for a in plan.actions if isinstance(a, PatchChild | VmCall)]
    assert plan.status["phase"] == "Stopped"


def _nad_with(config: str) -> dict[str, Any]:
    return {**_made_by_a_wukong(), "spec": {"config": config}}


def _plugins(*plugins: str) -> str:
    return '{"cniVersion":"0.3.1","name":"web-1-vlan100","plugins":[' + ",".join(plugins) + "]}"


OK_PLUGIN = '{"type":"bridge","bridge":"br-vlan100","vlan":100}'


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            _plugins('{"type":"bridge","bridge":"br-ok","Bridge":"br-mgmt"}'), id="folded-key"
        ),
        pytest.param(
            _plugins('{"type":"bridge","bridge":"br-ok","bridge":"br-mgmt"}'), id="repeated-key"
        ),
        pytest.param(
            _plugins(
                '{"type":"bridge","bridge":"br-vlan100","vlanTrunk":[{"minID":1,"maxID":4094}]}'
            ),
            id="vlan-trunk",
        ),
        pytest.param(_plugins('{"type":"host-device","device":"eth1"}', OK_PLUGIN), id="chain"),
        pytest.param(_plugins(OK_PLUGIN, '{"type":"tuning"}'), id="chain-after"),
        pytest.param(
            _plugins('{"type":"bridge","bridge":"br-vlan100","vlan":true}'), id="vlan-true"
        ),
        pytest.param(
            _plugins('{"type":"bridge","bridge":"br-vlan100","vlan":"100"}'), id="vlan-text"
        ),
        pytest.param(
            _plugins('{"type":"bridge","bridge":"br-vlan100","vlan":5000}'), id="vlan-too-big"
        ),
        pytest.param(_plugins('{"type":"bridge","vlan":100}'), id="no-bridge"),
        pytest.param(
            _plugins('{"type":"Bridge","bridge":"br-vlan100","vlan":100}'), id="type-case"
        ),
        pytest.param('{"type":"bridge","bridge":"br-vlan100","vlan":100}', id="not-a-list"),
        pytest.param(
            '{"cniVersion":"0.3.1","Plugins":[{"type":"bridge","bridge":"br-mgmt"}],'
            '"plugins":[' + OK_PLUGIN + "]}",
            id="folded-top-key",
        ),
        pytest.param("not json", id="not-json"),
        # Session 47: the `mac` capability, and no other, nor written otherwise.
        pytest.param(_plugins(OK_PLUGIN[:-1] + ',"capabilities":{"mac":1}}'), id="mac-one"),
        pytest.param(_plugins(OK_PLUGIN[:-1] + ',"capabilities":{"mac":false}}'), id="mac-off"),
        pytest.param(
            _plugins(OK_PLUGIN[:-1] + ',"capabilities":{"mac":true,"ips":true}}'), id="ips-too"
        ),
        pytest.param(
            _plugins(OK_PLUGIN[:-1] + ',"capabilities":{"mac":true,"mac":true}}'), id="mac-twice"
        ),
        pytest.param(_plugins(OK_PLUGIN[:-1] + ',"capabilities":true}'), id="capabilities-true"),
        pytest.param(
            _plugins(OK_PLUGIN[:-1] + ',"Capabilities":{"mac":true}}'), id="capabilities-case"
        ),
    ],
)
def test_a_wukongs_nad_is_read_only_in_the_shape_the_operator_writes(config: str) -> None:
    """Found by a source audit (session 42): a Wukong-made NAD's bridge was read more loosely
    than the bridge plugin reads it: Go matches keys case-insensitively, last one winning, the
    plugin trunks a `vlanTrunk`, and a chain runs every plugin. Someone who may write such a
    NAD could have it read as a granted bridge and VLAN while it plugs into another. Any
    other shape is refused as a bridge that cannot be read."""
    web2 = wukong(networks=net(nadName="web-1-vlan100"))
    grant = policy(TEAM | {"bridges": ["br-vlan100", "br-ok"], "vlans": [{"from": 1, "to": 4094}]})
    assert (
        network_refusals(web2, grant, {f"{NS}/web-1-vlan100": _nad_with(_plugins(OK_PLUGIN))}) == []
    )
    [why] = network_refusals(web2, grant, {f"{NS}/web-1-vlan100": _nad_with(config)})
    assert "whose bridge cannot be read" in why


def test_the_operators_own_nad_config_reads_back_as_its_bridge_and_vlan() -> None:
    """With the `mac` capability it writes since session 47, and without (NADs made before)."""
    from wukong.reconcile.tenancy import bridge_of

    made_before = wukong(networks=net(bridge="br-x", vlan=7))
    [spec] = made_before.spec.networks
    assert bridge_of({"spec": {"config": nad_config(made_before, spec, mac=False)}}) == ("br-x", 7)

    for fields in ({"bridge": "br-x", "vlan": 7, "mtu": 9000}, {"bridge": "br-x"}, {}):
        cr = wukong(networks=net(**fields))
        [spec] = cr.spec.networks
        where = bridge_of({"spec": {"config": nad_config(cr, spec)}})
        assert where == (spec.bridge or "br-lan", spec.vlan)


def _size_class(kind: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    namespace = {} if "Cluster" in kind else {"namespace": NS}
    return {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, **namespace},
        "spec": {"annotations": annotations},
    }


def _sized(**refs: Any) -> Any:
    """web-1 sized by an instancetype (no cpu/memory), with `refs` on top."""
    body = wukong().to_dict()
    spec = {k: v for k, v in body["spec"].items() if k not in ("cpu", "memory")}
    body["spec"] = spec | {"instancetype": {"name": "u1.small"}} | refs
    return type(wukong()).from_dict(body)


@pytest.mark.parametrize(
    ("refs", "kind", "key"),
    [
        pytest.param(
            {"preference": {"name": "fedora", "kind": "VirtualMachinePreference"}},
            "VirtualMachinePreference",
            "k8s.v1.cni.cncf.io/networks",
            id="namespaced-preference-networks",
        ),
        pytest.param(
            {"instancetype": {"name": "u1.small", "kind": "VirtualMachineInstancetype"}},
            "VirtualMachineInstancetype",
            "v1.multus-cni.io/default-network",
            id="namespaced-instancetype",
        ),
    ],
)
def test_an_instancetype_or_preference_that_brings_a_network_is_refused(
    refs: dict[str, Any], kind: str, key: str
) -> None:
    """Found by a source audit (session 42): KubeVirt copies an instancetype's or
    preference's `spec.annotations` onto the VMI and from there onto its pod, so a Multus
    annotation there put the VM on a network (`default-network` replaces the pod network)
    that spec.networks does not name and the policy never judged. A user bound to wukong-edit
    alone may not make a pod with it, but may name an instancetype someone else made."""
    cr = _sized(**refs)
    name = refs.get("preference", refs.get("instancetype"))["name"]
    bad = _size_class(kind, name, {key: "infra/mgmt", "example.com/ok": "yes"})
    world = Observed(**{**ready_children().__dict__, "size_classes": {kind: bad}})
    plan = decide(cr, {}, world)
    [valid] = [c for c in plan.status["conditions"] if c["type"] == "SpecValid"]
    assert (valid["status"], valid["reason"]) == ("False", "NetworkNotAllowed")
    assert f"{kind} '{name}'" in valid["message"] and f"'{key}'" in valid["message"]
    assert "example.com/ok" not in valid["message"]
    assert not [
        a for a in plan.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"
    ]
    # Other annotations are the instancetype's business: the VM is made.
    fine = _size_class(kind, name, {"example.com/ok": "yes"})
    world = Observed(**{**ready_children().__dict__, "size_classes": {kind: fine}})
    plan = decide(cr, {}, world)
    [valid] = [c for c in plan.status["conditions"] if c["type"] == "SpecValid"]
    assert valid["status"] == "True"
    assert [a for a in plan.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"]


def test_a_refused_instancetype_is_said_beside_a_refused_network() -> None:
    kind = "VirtualMachineInstancetype"
    cr = _sized(networks=net(bridge="br-mgmt", vlan=7), instancetype={"name": "u1", "kind": kind})
    bad = _size_class(kind, "u1", {"k8s.v1.cni.cncf.io/networks": "infra/mgmt"})
    world = seen(network_policy=policy(TEAM), size_classes={kind: bad})
    [why] = [c["message"] for c in decide(cr, {}, world).status["conditions"]
             if c["type"] == "SpecValid"]  # fmt: skip
    assert "bridge 'br-mgmt'" in why and f"{kind} 'u1'" in why


def test_a_cluster_wide_instancetype_is_the_administrators_and_not_judged() -> None:
    """Only whoever may write cluster-scoped objects makes a cluster instancetype or
    preference (a namespace's edit cannot): an administrator's Multus annotation there is
    theirs to set, as their WukongNetworkPolicy is. The operator neither watches them nor
    reads one from what it was given."""
    from wukong.api import kinds

    assert set(kinds.SIZE_CLASSES) == {"VirtualMachineInstancetype", "VirtualMachinePreference"}
    kind = "VirtualMachineClusterPreference"
    cr = _sized(preference={"name": "fedora"})
    admins = _size_class(kind, "fedora", {"v1.multus-cni.io/default-network": "infra/mgmt"})
    world = Observed(**{**ready_children().__dict__, "size_classes": {kind: admins}})
    [valid] = [c for c in decide(cr, {}, world).status["conditions"] if c["type"] == "SpecValid"]
    assert valid["status"] == "True"


def test_the_size_classes_a_wukong_names_are_keyed_as_the_watch_files_them() -> None:
    from wukong.runtime.mapping import size_classes_named

    preference = {"name": "fedora", "kind": "VirtualMachinePreference"}
    cr = {"metadata": {"namespace": NS, "name": "web-1"},
          "spec": {"instancetype": {"name": "u1.small"}, "preference": preference}}  # fmt: skip
    assert size_classes_named(cr) == {(NS, "fedora")}  # not the cluster-wide instancetype
    assert size_classes_named({"metadata": {"namespace": NS}, "spec": {}}) == frozenset()


@pytest.mark.parametrize("strategy", ["Always", "RerunOnFailure"])
def test_kubevirt_does_not_start_a_refused_guest_again_once_it_stops(strategy: str) -> None:
    """Found by a source audit (session 42): under Always or RerunOnFailure KubeVirt makes a
    new VMI when the guest stops or crashes, plugged into the refused bridge again. The VM is
    set to Manual, which keeps the running guest and starts none; the runStrategy the spec
    asks comes back once the grant does."""
    world = _refused_world(strategy, running=True)
    cr = wukong(runStrategy=strategy)
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    patches = [a for a in plan.actions if isinstance(a, PatchChild)]
    assert [p.patch for p in patches] == [{"spec": {"runStrategy": "Manual"}}]
    assert not [a for a in plan.actions if isinstance(a, VmCall)]
    assert plan.status["phase"] == "Running"
    # Once Manual, nothing more; the guest stopping now leaves it stopped.
    world.vm["spec"]["runStrategy"] = "Manual"
    assert not [a for a in decide(cr, plan.status, world).actions if isinstance(a, PatchChild)]
    # The grant comes back: the spec's runStrategy is written again.
    allowed = Observed(**{**world.__dict__, "network_policy": ready_children().network_policy})
    again = decide(cr, plan.status, allowed)
    assert [p.patch for p in again.actions if isinstance(p, PatchChild)] == [
        {"spec": {"runStrategy": strategy}}
    ]
    assert not [
        a for a in again.actions if isinstance(a, Emit) and a.reason == "RunStrategyReverted"
    ]


# --- networks whose NAD is not the Wukong's to give (session 46 network audit, finding 1) ---
MGMT = {"name": "mgmt", "bridge": "br-vlan100", "vlan": 150}  # a bridge and VLAN granted


def _admins_nad() -> dict[str, Any]:
    nad = user_nad("web-1-mgmt")  # the name web-1's network `mgmt` would get
    config = {"cniVersion": "0.3.1", "type": "bridge", "bridge": "br-mgmt"}
    nad["spec"]["config"] = json.dumps(config)
    return nad


def _with(world: Observed, **nads: dict[str, Any]) -> Observed:
    return Observed(**{**world.__dict__, "nads": {**world.nads, **nads}})


def _vm_networks(plan: Any) -> list[list[str]]:
    """The NADs each VM template patch of the plan names."""
    return [
        [n["multus"]["networkName"] for n in p.patch["spec"]["template"]["spec"]["networks"]
         if "multus" in n]
        for p in plan.actions
        if isinstance(p, PatchChild) and p.kind == "VirtualMachine"
        and "template" in p.patch["spec"]
    ]  # fmt: skip


def _networks_condition(plan: Any) -> tuple[str, str]:
    [cond] = [c for c in plan.status["conditions"] if c["type"] == "NetworksConfigured"]
    return cond["status"], cond["reason"]


def test_a_network_whose_nad_name_is_taken_by_someone_else_never_reaches_the_vm() -> None:
    """A tenant allowed one bridge added network `mgmt` to a running web-1 while an
    administrator's NAD `web-1-mgmt` (another bridge) existed: the operator said NADConflict
    but still patched the VM template to name `web-1-mgmt`, and KubeVirt plugged the guest
    into it. The status also said the operator owned that NAD (so `wukong delete` listed it)."""
    from tests.unit.reconcile.test_lifecycle import running_world

    cr = wukong(networks=[*wukong().spec.to_wire()["networks"], MGMT])
    world = _with(running_world(), **{f"{NS}/web-1-mgmt": _admins_nad()})
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    assert _networks_condition(plan) == ("False", "NADConflict")
    assert all("web-1-mgmt" not in nads for nads in _vm_networks(plan))
    [mgmt] = [n for n in plan.status["networks"] if n["name"] == "mgmt"]
    assert mgmt.get("ownedByWukong") is not True
    # Nor does a start of the stopped VM give it to a new guest.
    stopped = _with(_refused_world("Halted", running=False), **{f"{NS}/web-1-mgmt": _admins_nad()})
    stopped = Observed(**{**stopped.__dict__, "network_policy": ready_children().network_policy})
    start = wukong(networks=cr.spec.to_wire()["networks"],
                   lifecycleAction={"action": "start", "requestedAt": "a"})  # fmt: skip
    first = decide(start, {"phase": "Stopped", "vmName": "web-1-vm"}, stopped)
    again = decide(start, first.status, stopped)
    assert all("web-1-mgmt" not in nads for nads in _vm_networks(first) + _vm_networks(again))


def test_a_vm_that_has_a_network_whose_nad_is_someone_elses_loses_it_at_its_restart() -> None:
    """How it got there (before the fix above, or a NAD replaced by another's): taken out of
    the template, so the next restart makes a pod without it; RestartRequired says so."""
    from tests.unit.reconcile.test_lifecycle import running_world

    cr = wukong(networks=[*wukong().spec.to_wire()["networks"], MGMT])
    world = running_world()
    own = {"name": "mgmt", "multus": {"networkName": "web-1-mgmt"}}
    for spec in (world.vm["spec"]["template"]["spec"], world.vmi["spec"]):
        spec["networks"] = [*spec["networks"], own]
        spec["domain"]["devices"]["interfaces"].append({"name": "mgmt", "bridge": {}})
    world = _with(world, **{f"{NS}/web-1-mgmt": _admins_nad()})
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    assert _vm_networks(plan) == [["existing-nad", "web-1-vlan100"]]
    [restart] = [c for c in plan.status["conditions"] if c["type"] == "RestartRequired"]
    assert restart["message"].startswith("networks changed while the VM runs")


def test_a_named_nad_that_does_not_exist_is_not_added_to_a_running_vm() -> None:
    """KubeVirt would plug the guest into whatever NAD of that name comes later, unjudged."""
    from tests.unit.reconcile.test_lifecycle import running_world

    lan = {"name": "lan", "nadName": "typo"}
    cr = wukong(networks=[*wukong().spec.to_wire()["networks"], lan])
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, running_world())
    assert _networks_condition(plan) == ("False", "NADNotFound")
    assert all("typo" not in nads for nads in _vm_networks(plan))


def test_a_network_whose_nad_is_made_this_pass_is_given_once_the_nad_is_seen() -> None:
    from tests.unit.reconcile.test_lifecycle import running_world

    cr = wukong(networks=[*wukong().spec.to_wire()["networks"], MGMT])
    world = running_world()
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    [made] = [a for a in plan.actions if isinstance(a, CreateChild)]
    assert made.body["metadata"]["name"] == "web-1-mgmt"
    assert all("web-1-mgmt" not in nads for nads in _vm_networks(plan))
    made.body["metadata"]["uid"] = "mgmt-uid"
    later = decide(cr, plan.status, _with(world, **{f"{NS}/web-1-mgmt": made.body}))
    assert _vm_networks(later) == [["existing-nad", "web-1-vlan100", "web-1-mgmt"]]
    assert _networks_condition(later) == ("True", "NetworksReady")


def test_a_vm_keeps_a_network_whose_own_nad_is_gone_for_a_moment() -> None:
    """Deleted by someone and made again by this pass: the VM's entry names the same NAD,
    and taking it out would owe a restart for nothing."""
    from tests.unit.reconcile.test_lifecycle import running_world

    world = running_world()
    nads = {k: v for k, v in world.nads.items() if k != f"{NS}/web-1-vlan100"}
    plan = decide(wukong(), {"phase": "Running", "vmName": "web-1-vm"},
                  Observed(**{**world.__dict__, "nads": nads}))  # fmt: skip
    assert [a.name for a in plan.actions if isinstance(a, CreateChild)] == ["web-1-vlan100"]
    assert _vm_networks(plan) == []
    assert not [c for c in plan.status["conditions"] if c["type"] == "RestartRequired"]


def test_a_vm_is_made_once_the_nad_made_for_it_is_seen() -> None:
    world = ready_children()
    nads = {k: v for k, v in world.nads.items() if k != f"{NS}/web-1-vlan100"}
    plan = decide(wukong(), {}, Observed(**{**world.__dict__, "nads": nads}))
    made = [a.kind for a in plan.actions if isinstance(a, CreateChild)]
    assert made == ["NetworkAttachmentDefinition"]
    assert [a.kind for a in decide(wukong(), plan.status, world).actions
            if isinstance(a, CreateChild)] == ["VirtualMachine"]  # fmt: skip


def test_a_granted_nad_outside_the_watched_namespace_is_not_missing() -> None:
    """Found by a source audit (session 46): an operator run with --namespace watches only
    its namespace, so a granted NAD of another (`nadName: infra/storage-net`, as
    docs/install.md shows) was NADNotFound for ever and the VM never made. It is not known,
    not missing: the VM names it, and virt-controller says if it is not there."""

    networks = [{"name": "storage", "nadName": "infra/storage-net"}]
    cr = wukong(networks=networks)
    grant = policy({"namespaces": [NS], "nads": ["infra/storage-net"]})
    world = Observed(**{**ready_children().__dict__, "network_policy": grant, "scope": NS,
                        "nads": {}})  # fmt: skip
    plan = decide(cr, {}, world)
    assert _networks_condition(plan) == ("True", "NetworksReady")
    [vm] = [
        a.body for a in plan.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"
    ]
    assert {"name": "storage", "multus": {"networkName": "infra/storage-net"}} in vm["spec"][
        "template"]["spec"]["networks"]  # fmt: skip
    # Watching every namespace, the same NAD not in the cache is missing.
    unscoped = Observed(**{**world.__dict__, "scope": None})
    assert _networks_condition(decide(cr, {}, unscoped)) == ("False", "NADNotFound")


def _typed_nad(name: str, config: dict[str, Any]) -> dict[str, Any]:
    nad = user_nad(name)
    nad["spec"]["config"] = json.dumps(config)
    return nad


@pytest.mark.parametrize(
    ("config", "refused"),
    [
        ({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "mode": "bridge"}, "macvlan"),
        ({"cniVersion": "0.3.1", "plugins": [{"type": "ipvlan", "master": "eth0"}]}, "ipvlan"),
        ({"cniVersion": "0.3.1", "type": "sriov", "vlan": 100}, "sriov"),
        ({"cniVersion": "0.3.1", "plugins": [{"type": "bridge", "bridge": "br1"},
                                             {"type": "tuning"}]}, None),
        ({"cniVersion": "0.3.1", "type": "ovs", "bridge": "br1"}, None),
        ({}, None),  # says nothing of its type (Multus may read a file of that name)
    ],
)  # fmt: skip
def test_a_named_nad_whose_interface_bridge_binding_cannot_use_is_said(
    config: dict[str, Any], refused: str | None
) -> None:
    """Found by a source audit (session 46): every secondary network gets KubeVirt's bridge
    binding, which carries no traffic on a macvlan or ipvlan child or an SR-IOV VF (the CRD
    already refuses those types for the NADs the operator makes); one named by `nadName` was
    taken, and everything said healthy while the guest's NIC received nothing."""
    world = ready_children()
    world = _with(world, **{f"{NS}/existing-nad": _typed_nad("existing-nad", config)})
    plan = decide(wukong(), {}, world)
    made = [a.kind for a in plan.actions if isinstance(a, CreateChild)]
    if refused is None:
        assert _networks_condition(plan) == ("True", "NetworksReady")
        assert made == ["VirtualMachine"]
        return
    assert _networks_condition(plan) == ("False", "NADNotBridgeable")
    [cond] = [c for c in plan.status["conditions"] if c["type"] == "NetworksConfigured"]
    assert f"NAD 'existing-nad' is of CNI type '{refused}'" in cond["message"]
    assert made == []


def test_a_vm_that_runs_on_a_nad_found_unbridgeable_keeps_it() -> None:
    """Nothing unsafe, only a NIC without traffic: taking it out would owe a restart."""
    from tests.unit.reconcile.test_lifecycle import running_world

    macvlan = {"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0"}
    world = _with(running_world(), **{f"{NS}/existing-nad": _typed_nad("existing-nad", macvlan)})
    plan = decide(wukong(), {"phase": "Running", "vmName": "web-1-vm"}, world)
    assert _networks_condition(plan) == ("False", "NADNotBridgeable")
    assert _vm_networks(plan) == []
    assert not [c for c in plan.status["conditions"] if c["type"] == "RestartRequired"]


def _nad_deletes(plan: Any) -> list[str]:
    return [
        a.name for a in plan.actions
        if isinstance(a, DeleteChild) and a.kind == "NetworkAttachmentDefinition"
    ]  # fmt: skip


def test_the_nad_of_a_network_taken_out_of_the_spec_goes_once_nothing_names_it() -> None:
    """Found by a source audit (session 46): a network removed (or renamed) left the NAD the
    operator made for it, on its old bridge and VLAN, until the Wukong was deleted; the
    status and `wukong delete` no longer named it meanwhile."""
    from tests.unit.reconcile.test_lifecycle import running_world

    only_named = wukong(networks=[{"name": "storage-net", "nadName": "existing-nad"}])
    # A stopped VM: its template is patched first; the NAD goes once the template is.
    world = Observed(**{**running_world().__dict__, "vmi": None})
    world.vm["spec"]["runStrategy"] = "Halted"
    stopped = {"phase": "Stopped", "vmName": "web-1-vm"}
    plan = decide(only_named, stopped, world)
    assert _vm_networks(plan) == [["existing-nad"]] and _nad_deletes(plan) == []
    world.vm["spec"]["template"]["spec"]["networks"] = [
        n for n in world.vm["spec"]["template"]["spec"]["networks"] if n["name"] != "vlan100"
    ]
    assert _nad_deletes(decide(only_named, stopped, world)) == ["web-1-vlan100"]
    # A guest that runs keeps it until a restart makes a pod without it (a migration would
    # make one that needs it).
    running = running_world()
    running.vmi["spec"] = copy.deepcopy(running.vmi["spec"])  # the template's, in that world
    running.vm["spec"]["template"]["spec"]["networks"] = world.vm["spec"]["template"]["spec"][
        "networks"
    ]
    plan = decide(only_named, {"phase": "Running", "vmName": "web-1-vm"}, running)
    assert _nad_deletes(plan) == []
    # Someone else's NAD of that name, or one the network still derives, is never deleted.
    assert _nad_deletes(decide(wukong(), stopped, world)) == []
    theirs = _with(world, **{f"{NS}/web-1-vlan100": user_nad("web-1-vlan100")})
    assert _nad_deletes(decide(only_named, stopped, theirs)) == []
