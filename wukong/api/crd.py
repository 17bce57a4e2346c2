"""The Wukong CRD, generated from the pydantic models: `python -m wukong.api.crd [--check]`.

`model_json_schema()` is JSON Schema, not a Kubernetes structural schema: it has `$ref`s,
`anyOf [X, null]` for optional fields, titles, `const`, numeric `exclusiveMinimum` and
`additionalProperties: false`. `structural()` rewrites it into what the API server accepts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from wukong.api import names
from wukong.api.quantity import QUANTITY_PATTERN
from wukong.api.spec import WukongSpec
from wukong.api.status import WukongStatus

Schema = dict[str, Any]

CRD_PATH = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "wukong.yaml"
HEADER = "# Generated from wukong/api by `python -m wukong.api.crd`; do not edit by hand.\n"

# Keys first in this order, the rest alphabetically: reads like a hand-written CRD.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "items",
)
_MAX_NAME = names.MAX_WUKONG_NAME
_NAME_RULE = {
    "rule": f"self.metadata.name.size() <= {_MAX_NAME}",
    "message": f"a Wukong name is at most {_MAX_NAME} characters: it is a label value on children",
}
_PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "VM", "type": "string", "jsonPath": ".status.vmName"},
    {"name": "Node", "type": "string", "jsonPath": ".status.nodeName"},
    {"name": "IP", "type": "string", "jsonPath": ".status.interfaces[0].ipAddress"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "CPU", "type": "integer", "jsonPath": ".spec.cpu", "priority": 1},
    {"name": "Memory", "type": "string", "jsonPath": ".spec.memory", "priority": 1},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
]
# status.phase as the state machine names them (wukong.fsm.states.Phase; a unit test pins it).
PHASES = (
    "Pending", "Creating", "Starting", "Running", "Stopping", "Stopped", "Restarting",
    "Suspending", "Suspended", "Resuming", "Deleting", "Error",
)  # fmt: skip
# Quantity fields: a person reads "memory must be a quantity such as 4Gi (did you mean 1G or
# 1Gi?)", not the grammar's regular expression (SPEC: bad input gets a clear message).
_QUANTITY_EXAMPLE = {"memory": "4Gi", "size": "20Gi"}


def structural(schema: Schema, *, keep_defaults: bool = True) -> Schema:
    """A pydantic JSON schema rewritten as a Kubernetes structural schema."""
    return _clean(schema, schema.get("$defs", {}), keep_defaults)


def _clean(node: Schema, defs: Schema, keep_defaults: bool) -> Schema:
    node = _flatten(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in ("$defs", "title") or (key == "default" and (value is None or not keep_defaults)):
            continue
        if key == "additionalProperties" and value is False:
            continue  # the structural schema prunes unknown fields anyway
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {
                name: _readable_quantity(name, _clean(prop, defs, keep_defaults))
                for name, prop in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _clean(value, defs, keep_defaults)
        elif key == "x-kubernetes-validations":
            # pydantic sorts keys; a rule reads better before its message.
            out[key] = [{"rule": r["rule"], "message": r["message"]} for r in value]
            for rule, source in zip(out[key], value, strict=True):
                if "messageExpression" in source:
                    rule["messageExpression"] = source["messageExpression"]
        else:
            out[key] = value
    _exclusive_bounds(out)
    return _ordered(out)


def _readable_quantity(name: str, node: Schema) -> Schema:
    """A quantity's regex `pattern` becomes a CEL rule whose message names the field, gives
    an example and, for `1GB`/`1GiB`, the spelling meant."""
    if node.get("pattern") != QUANTITY_PATTERN:
        return node
    node = dict(node)
    pattern = node.pop("pattern")
    example = _QUANTITY_EXAMPLE.get(name, "4Gi")
    stem = "self.substring(0, size(self) - 1)"
    hint = (
        f"(self.endsWith('iB') ? ' (did you mean ' + {stem} + '?)' : "
        f"self.endsWith('B') && size(self) > 1 ? ' (did you mean ' + {stem} + ' or ' + "
        f"{stem} + 'i?)' : '')"
    )
    rule = {
        "rule": f"self.matches({_cel_string(pattern)})",
        "messageExpression": (
            f"'{name} must be a quantity such as {example}' + {hint} + ', not ' + self"
        ),
        "message": f"{name} must be a quantity such as {example} (a number and a suffix "
        "such as Ki Mi Gi Ti or k M G T)",
    }
    node["x-kubernetes-validations"] = [rule, *node.get("x-kubernetes-validations", [])]
    return _ordered(node)


def _cel_string(text: str) -> str:
    """A CEL string literal for `text` (a raw string: no escapes to double)."""
    assert "'" not in text
    return f"r'{text}'"


def _flatten(node: Schema, defs: Schema) -> Schema:
    """Inline `$ref`, unwrap `anyOf [X, null]` and single-entry `allOf` into one schema."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keys beside the $ref (description, default) describe the field, so they win.
        node = _flatten(target, defs) | node
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator not in node:
            continue
        options = [o for o in node.pop(combinator) if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express {combinator} {options} in a structural schema")
        node = _flatten(options[0], defs) | node
    return node


def _exclusive_bounds(node: Schema) -> None:
    # JSON Schema 2020 numbers; OpenAPI v3.0 wants a bound plus a boolean flag.
    for exclusive, bound, step in (
        ("exclusiveMinimum", "minimum", 1),
        ("exclusiveMaximum", "maximum", -1),
    ):
        value = node.get(exclusive)
        if isinstance(value, bool) or value is None:
            continue
        del node[exclusive]
        if node.get("type") == "integer":
            node[bound] = value + step
        else:
            node[bound] = value
            node[exclusive] = True


def _ordered(node: Schema) -> Schema:
    first = [k for k in _KEY_ORDER if k in node]
    rest = sorted(k for k in node if k not in _KEY_ORDER)
    return {k: node[k] for k in [*first, *rest]}


def build_schema() -> Schema:
    """The openAPIV3Schema of the Wukong resource."""
    spec = structural(WukongSpec.model_json_schema(by_alias=True))
    # Defaults in status would be filled in by the API server and look like a status change.
    status = structural(WukongStatus.model_json_schema(by_alias=True), keep_defaults=False)
    status["properties"]["phase"] = _ordered(status["properties"]["phase"] | {"enum": list(PHASES)})
    return {
        "description": "A virtual machine on KubeVirt, declared as one resource.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [_NAME_RULE],
    }


def build_crd() -> Schema:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) for Wukong."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{names.PLURAL}.{names.GROUP}",
            "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY},
        },
        "spec": {
            "group": names.GROUP,
            "names": {
                "kind": names.KIND,
                "listKind": f"{names.KIND}List",
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
                "categories": ["all"],
            },
            # `kubectl get all` lists Wukongs, as it lists KubeVirt's VMs.
            "scope": "Namespaced",
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": build_schema()},
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed in manifests/crd/wukong.yaml."""
    body = yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    """Write the CRD file, or with --check fail when the committed one is stale."""
    parser = argparse.ArgumentParser(prog="python -m wukong.api.crd", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=CRD_PATH, help="default: %(default)s")
    args = parser.parse_args(argv)
    rendered = render_crd()
    path: Path = args.output
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != rendered:
            print(f"{path} is stale: run `python -m wukong.api.crd`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
