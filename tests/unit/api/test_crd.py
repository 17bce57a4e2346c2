"""The generated CRD is one the API server accepts, and it guards what SPEC §1 asks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from wukong.api.crd import CRD_PATH, build_crd, build_schema, main, render_crd

Schema = dict[str, Any]
CEL_WORDS = {
    "self", "oldSelf", "has", "all", "exists", "exists_one", "filter", "size", "quantity",
    "isQuantity", "compareTo", "isGreaterThan", "metadata", "name", "matches", "endsWith",
    "substring", "getHost", "asInteger", "isInteger",
}  # fmt: skip


def _walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema, list[Schema]]]:
    """Every schema node with its path and its ancestors (outermost first)."""
    stack: list[tuple[str, Schema, list[Schema]]] = [(path or "<root>", node, [])]
    while stack:
        where, current, ancestors = stack.pop()
        yield where, current, ancestors
        below = [*ancestors, current]
        for name, prop in current.get("properties", {}).items():
            stack.append((f"{where}.{name}", prop, below))
        if isinstance(current.get("items"), dict):
            stack.append((f"{where}[]", current["items"], below))


SCHEMA = build_schema()
NODES = list(_walk(SCHEMA))
RULED = [(where, node, up) for where, node, up in NODES if "x-kubernetes-validations" in node]


def _at(path: str) -> Schema:
    return next(node for where, node, _ in NODES if where == path)


def _rules(path: str) -> str:
    return "\n".join(r["rule"] for r in _at(path).get("x-kubernetes-validations", []))


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == render_crd(), (
        "manifests/crd/wukong.yaml is stale: run `python -m wukong.api.crd`"
    )


def test_check_mode_fails_on_a_stale_file_and_passes_after_writing(tmp_path: Path) -> None:
    target = tmp_path / "crd" / "wukong.yaml"
    assert main(["--check", "--output", str(target)]) == 1
    assert main(["--output", str(target)]) == 0
    assert main(["--check", "--output", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == build_crd()


@pytest.mark.parametrize(
    "key", ["$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "const", "title", "nullable"]
)
def test_no_json_schema_construct_survives_that_a_crd_cannot_hold(key: str) -> None:
    assert [where for where, node, _ in NODES if key in node] == []


def test_no_null_default_or_closed_object_survives() -> None:
    assert [
        where for where, node, _ in NODES if "default" in node and node["default"] is None
    ] == []
    closed = [w for w, n, _ in NODES if n.get("additionalProperties") is False]
    assert closed == []


def test_exclusive_bounds_are_openapi_booleans() -> None:
    for where, node, _ in NODES:
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(key, True) is True, where


def test_every_node_has_a_type_as_a_structural_schema_requires() -> None:
    assert [where for where, node, _ in NODES if "type" not in node] == []


def test_status_has_a_real_schema_without_defaults() -> None:
    status = [(w, n) for w, n, _ in NODES if w.startswith("<root>.status")]
    assert status and all("default" not in n for _, n in status)
    assert all("x-kubernetes-preserve-unknown-fields" not in n for _, n, _ in NODES)


def _read_by(where: str, node: Schema) -> Iterator[tuple[str, Schema]]:
    """The nodes a rule at `where` can read: itself, and fields its rules name."""
    words = {w for r in node["x-kubernetes-validations"] for w in re.findall(r"\w+", r["rule"])}
    for inner_where, inner, _ in _walk(node, where):
        steps = inner_where.removeprefix(where).replace("[]", "").split(".")
        if all(step in words for step in steps if step):
            yield inner_where, inner


def test_every_list_with_cel_over_it_has_max_items() -> None:
    for where, node, ancestors in RULED:
        # A rule on a list item runs once per item: the lists around it count too.
        for inner in [*ancestors, *(n for _, n in _read_by(where, node))]:
            if inner.get("type") == "array":
                assert "maxItems" in inner, f"a list around or read by the rules at {where}"


def test_every_string_a_cel_rule_reads_has_max_length() -> None:
    for where, node, _ in RULED:
        for inner_where, inner in _read_by(where, node):
            if inner.get("type") == "string" and "enum" not in inner:
                assert "maxLength" in inner, inner_where


def test_map_lists_are_keyed_by_a_required_field() -> None:
    for where, node, _ in NODES:
        for key in node.get("x-kubernetes-list-map-keys", []):
            assert key in node["items"]["required"], where


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        pytest.param("<root>.spec.disks", "exists_one(e, e.name == d.name)", id="unique-disks"),
        pytest.param("<root>.spec.networks", "exists_one(m, m.name == n.name)", id="unique-nets"),
        pytest.param("<root>.spec.disks", ".size() <= 1", id="one-boot-disk"),
        pytest.param("<root>.spec.disks", "oldSelf[0].name", id="system-disk-stays"),
        pytest.param(
            "<root>.spec.disks[]",
            "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
            id="no-shrink",
        ),
        pytest.param("<root>.spec.networks[].type", "self == 'bridge'", id="bridge-only"),
        pytest.param("<root>.spec.networks[]", "has(self.bridge)", id="vlan-needs-bridge"),
        pytest.param("<root>.spec", "preserveDisksList.all(", id="kept-disks-exist"),
        pytest.param(
            "<root>.spec.memory",
            "quantity(self).compareTo(quantity('1M')) >= 0",
            id="memory-at-least-1M",
        ),
        pytest.param("<root>", "self.metadata.name.size() <= 63", id="name-fits-a-label"),
    ],
)
def test_the_api_server_rejects_what_spec_asks_it_to(path: str, fragment: str) -> None:
    assert fragment in _rules(path)


def test_plain_schema_checks_cover_cpu_and_actions() -> None:
    assert _at("<root>.spec.cpu")["minimum"] == 1
    assert _at("<root>.spec.lifecycleAction.action")["enum"] == [
        "start", "stop", "restart", "suspend", "resume", "migrate", "snapshot", "restore"
    ]  # fmt: skip
    assert _at("<root>.spec.networks[].vlan").items() >= {"minimum": 1, "maximum": 4094}.items()
    assert _at("<root>.spec.disks[].name")["maxLength"] == 63


def _strip_strings(rule: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", rule)


@pytest.mark.parametrize(("where", "rule"), [
    pytest.param(w, r["rule"], id=f"{w.removeprefix('<root>')}:{i}")
    for w, n, _ in RULED for i, r in enumerate(n["x-kubernetes-validations"])
])  # fmt: skip
def test_cel_rules_are_balanced_and_name_only_real_fields(where: str, rule: str) -> None:
    bare = _strip_strings(rule)
    assert bare.count("(") == bare.count(")") and bare.count("[") == bare.count("]")
    assert bare.count("?") == bare.count(":")
    fields = {name for _, node, _ in _walk(_at(where)) for name in node.get("properties", {})}
    for word in re.findall(r"\.([A-Za-z_]\w*)", bare):
        assert word in fields | CEL_WORDS, f"{word!r} in {rule!r} is not a field at {where}"


def test_rules_have_messages_a_user_can_act_on() -> None:
    for where, node, _ in RULED:
        for rule in node["x-kubernetes-validations"]:
            assert len(rule["message"]) >= 20, (where, rule)


def test_kubectl_shows_phase_vm_node_ip_and_age() -> None:
    version = build_crd()["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert (
        columns.items()
        >= {
            "Phase": ".status.phase",
            "VM": ".status.vmName",
            "Node": ".status.nodeName",
            "IP": ".status.interfaces[0].ipAddress",
            "Age": ".metadata.creationTimestamp",
        }.items()
    )
    assert version["subresources"] == {"status": {}}
    names = build_crd()["spec"]["names"]
    assert (names["shortNames"], build_crd()["spec"]["scope"]) == (["wk"], "Namespaced")


def test_an_admin_finds_wukongs_in_get_all_with_ready_shown_and_phases_listed() -> None:
    from wukong.api.crd import PHASES
    from wukong.fsm.states import Phase

    crd = build_crd()
    assert crd["spec"]["names"]["categories"] == ["all"]
    (ready,) = [
        c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"] if c["name"] == "Ready"
    ]
    assert "priority" not in ready
    assert _at("<root>.status.phase")["enum"] == list(PHASES) == [p.value for p in Phase]


@pytest.mark.parametrize("path", ["<root>.spec.memory", "<root>.spec.disks[].size"])
def test_quantities_are_checked_by_a_rule_that_explains_itself(path: str) -> None:
    node = _at(path)
    assert "pattern" not in node
    first = node["x-kubernetes-validations"][0]
    assert first["rule"].startswith("self.matches(")
    field = path.rsplit(".", 1)[1]
    assert first["messageExpression"].startswith(f"'{field} must be a quantity such as ")
    assert "did you mean" in first["messageExpression"]


def test_the_clone_sources_policy_has_one_slot_per_disk_a_wukong_may_have() -> None:
    """manifests/policy/clone-sources.yaml checks the PVCs a write adds one per validation
    (two authorization checks per CEL expression at most): a slot short is a PVC unchecked."""
    from wukong.api.spec import MAX_DISKS

    root = Path(__file__).resolve().parents[3]
    policy = next(yaml.safe_load_all((root / "manifests/policy/clone-sources.yaml").read_text()))
    validations = policy["spec"]["validations"]
    assert len(validations) == MAX_DISKS
    for slot, rule in enumerate(validations):
        assert set(re.findall(r"added\[(\d+)\]", rule["expression"])) == {str(slot)}
        assert set(re.findall(r"added\[(\d+)\]", rule["messageExpression"])) == {str(slot)}
        assert rule["expression"].count("check('create')") == 2
        # The name checked: a DataSource's is '' (a grant for its whole namespace only).
        assert rule["expression"].count(f".name(variables.added[{slot}][3])") == 2
    added = next(v for v in policy["spec"]["variables"] if v["name"] == "added")
    assert "n.startsWith('DataSource/') ? ''" in added["expression"]
