"""The table as people see it: the Mermaid diagram and the names the table refers to."""

from __future__ import annotations

import pytest

from wukong.fsm import TRANSITIONS, Facts, Phase, Request, mermaid
from wukong.fsm import machine as fsm_machine


def _names(cell: str | list[str] | None) -> list[str]:
    return [] if cell is None else [cell] if isinstance(cell, str) else cell


def test_diagram_is_a_mermaid_state_diagram_starting_in_pending() -> None:
    lines = mermaid().splitlines()

    assert lines[0] == "stateDiagram-v2"
    assert lines[1].strip() == "[*] --> Pending"


@pytest.mark.parametrize("phase", [pytest.param(p, id=p.value) for p in Phase])
def test_diagram_shows_every_state(phase: Phase) -> None:
    assert f" {phase.value} -->" in mermaid() or f"--> {phase.value}:" in mermaid()


@pytest.mark.parametrize(
    "trigger", [pytest.param(t, id=t) for t in [*(r.value for r in Request), "sync"]]
)
def test_diagram_labels_edges_with_every_trigger(trigger: str) -> None:
    assert f": {trigger}" in mermaid()


def test_diagram_names_guards_and_effects() -> None:
    diagram = mermaid()

    assert (
        "Stopping --> Stopping: sync [stop_deadline_passed, !forced, !force_issued]"
        " / FORCE_STOP_VM" in diagram
    )
    assert "Running --> Suspending: suspend [!vmi_paused_otherwise] / PAUSE_VMI" in diagram
    assert "Resuming --> Suspending: suspend [!vmi_paused_otherwise] / PAUSE_VMI" in diagram


def test_every_guard_in_the_table_is_a_fact_or_the_force_flag() -> None:
    known = {name for name in dir(Facts) if not name.startswith("_")} | {"forced"}
    known |= set(Facts.__dataclass_fields__)
    guards = {
        g for row in TRANSITIONS for key in ("conditions", "unless") for g in _names(row.get(key))
    }

    assert guards <= known


def test_every_callback_in_the_table_decides_an_effect() -> None:
    callbacks = {c for row in TRANSITIONS for c in _names(row.get("after"))}

    assert callbacks
    assert all(callable(getattr(fsm_machine._Pass, name, None)) for name in callbacks)


def test_every_row_gives_a_reason_for_people_to_read() -> None:
    assert all(row.get("reason", "").isidentifier() for row in TRANSITIONS)
    assert all(row["reason"][0].isupper() for row in TRANSITIONS)
