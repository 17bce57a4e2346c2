"""Hypothesis strategies for Wukong specs drawn from the CRD's own openAPIV3Schema, valid and
invalid: every constraint the schema states (types, enums, patterns, lengths, ranges, item
counts, required keys) is followed most of the time and broken some of the time. The CEL rules
(x-kubernetes-validations) are not modelled, except that quantities are drawn as quantities:
specs that break the other rules are part of the point.

(Issue 18's property test has a generator of its own; a later merge may unify them.)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.draws import in_fresh_interpreter

CRD = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "wukong.yaml"
Schema = dict[str, Any]
BROKEN = 0.05  # the chance that one value breaks its own schema
# Whether a value breaks its schema is a coin of our own, seeded from one Hypothesis draw per
# object: Hypothesis' own draws lean towards the ends of a range (a small integer comes up far
# more often than 1 in 20), which broke nearly every spec and left no valid one in the corpus.


# Top-level fields the schema lets go but a working spec names (cpu and memory, unless an
# instancetype does: a CEL rule this generator does not read), and the fields that exclude
# them; without this, nearly every spec broke that one rule and few were accepted.
USUALLY_PRESENT = ("cpu", "memory")
USUALLY_ABSENT = ("instancetype", "preference")


def spec_schema() -> Schema:
    """openAPIV3Schema.properties.spec of the Wukong CRD."""
    crd = next(d for d in yaml.safe_load_all(CRD.read_text()) if d)
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def _breaking(schema: Schema) -> st.SearchStrategy[Any]:
    """A value this schema refuses: wrong type, out of range, too long, not in the enum."""
    kind = schema.get("type")
    options: list[st.SearchStrategy[Any]] = [
        st.just({"unexpected": "object"}) if kind != "object" else st.just("text")
    ]
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        options += [st.just(low - 1)] if low is not None else []
        options += [st.just(high + 1)] if high is not None else []
    if kind == "string":
        options.append(st.just("Not A Valid Value!"))
        if "maxLength" in schema:
            options.append(st.just("x" * (schema["maxLength"] + 1)))
    if kind == "array" and "maxItems" in schema:
        options.append(st.just([None] * (schema["maxItems"] + 1)))
    return st.one_of(options)


def from_schema(schema: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of this (structural) schema; each object breaks a field now and then."""
    return _valid(schema, depth)


def _valid(schema: Schema, depth: int) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return _object(schema, depth)
    if kind == "array":
        items = from_schema(schema.get("items") or {"type": "string"}, depth + 1)
        low, high = schema.get("minItems", 0), min(schema.get("maxItems", 4), 4)
        keys = schema.get("x-kubernetes-list-map-keys")
        if keys:  # a list-map: unique keys, or the API server refuses it for that reason alone
            return st.lists(items, min_size=low, max_size=max(high, low), unique_by=_key(keys))
        return st.lists(items, min_size=low, max_size=max(high, low))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "boolean":
        return st.booleans()
    if kind == "string" and _is_quantity(schema):
        # A quantity's rules are CEL (issue 17: messages in words), not a `pattern`: drawn as
        # `<n><unit>` of at least 1Mi, as users write them; breaking them is _breaking's job.
        return st.builds(
            lambda n, unit: f"{n}{unit}", st.integers(1, 64), st.sampled_from(["Mi", "Gi", "G"])
        )
    if kind == "string":
        longest = schema.get("maxLength", 64)
        if "pattern" in schema:
            text = st.from_regex(schema["pattern"], fullmatch=True)
            return text.filter(lambda s: len(s) <= longest)
        return st.text(max_size=min(longest, 40))
    return st.none()


def _is_quantity(schema: Schema) -> bool:
    rules = schema.get("x-kubernetes-validations") or []
    return any("isQuantity(" in str(r.get("rule", "")) for r in rules)


def _key(keys: list[str]) -> Any:
    def key(item: Any) -> Any:
        return tuple(str(item.get(k)) for k in keys) if isinstance(item, dict) else repr(item)

    return key


def _object(schema: Schema, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Schema] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    # Built once per schema node, not per draw: building a strategy (from_regex above all) is
    # what made drawing 500 specs take 50 s of CPU. The draws, and so the corpus, are the same.
    valid = {name: from_schema(sub, depth + 1) for name, sub in properties.items()}
    breaking = {name: _breaking(sub) for name, sub in properties.items()}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        coin = random.Random(draw(st.integers(0, 2**32 - 1)))

        def _breaks() -> bool:
            return coin.random() < BROKEN

        out: dict[str, Any] = {}
        for name in properties:
            if depth == 0 and name in USUALLY_PRESENT:
                keep = not _breaks()
            elif depth == 0 and name in USUALLY_ABSENT:
                keep = _breaks()
            else:
                keep = name in required or draw(st.integers(0, 2)) == 0
            if name in required and _breaks():
                keep = False  # a required key left out
            if keep:
                value = draw(valid[name])
                if not _breaks():
                    out[name] = value
                else:
                    out[name] = draw(breaking[name])
        return out

    return build()


def corpus(count: int, seed_schema: Schema | None = None) -> list[dict[str, Any]]:
    """`count` specs, the same on every run: derandomized, and drawn in a fresh interpreter
    (in a pytest worker, Hypothesis' draws depend on the modules loaded: draws.py)."""
    specs: list[dict[str, Any]] = in_fresh_interpreter(
        "tests.integration.crd_specs:draw_corpus", count, seed_schema
    )
    return specs


def draw_corpus(count: int, seed_schema: Schema | None) -> list[dict[str, Any]]:
    """`count` specs: Hypothesis draws, we collect."""
    specs: list[dict[str, Any]] = []
    strategy = from_schema(seed_schema or spec_schema())

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(spec: dict[str, Any]) -> None:
        specs.append(spec)

    collect()
    return specs[:count]
