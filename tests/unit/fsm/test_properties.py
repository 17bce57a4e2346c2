"""Properties that hold for any cluster state: decide() is total, bounded and level-triggered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wukong.fsm import MAX_SYNC_HOPS, Facts, Phase, Request, Step, decide

VMI_PHASES = [None, "", "Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed",
              "Unknown", "WaitingForSync"]  # fmt: skip
RUN_STRATEGIES = [None, "Always", "RerunOnFailure", "Manual", "Halted", "Once"]

facts_st = st.builds(
    Facts,
    deleting=st.booleans(),
    spec_valid=st.booleans(),
    children_ready=st.booleans(),
    provisioning_failed=st.booleans(),
    vm_exists=st.booleans(),
    want_running=st.booleans(),
    run_strategy=st.sampled_from(RUN_STRATEGIES),
    vmi_exists=st.booleans(),
    vmi_phase=st.sampled_from(VMI_PHASES),
    vmi_ready=st.booleans(),
    vmi_paused=st.booleans(),
    vmi_restarted=st.booleans(),
    stop_deadline_passed=st.booleans(),
    force_issued=st.booleans(),
)
phase_st = st.one_of(st.sampled_from(list(Phase)), st.sampled_from([None, "", "Bogus"]))
request_st = st.one_of(st.none(), st.sampled_from(list(Request)), st.sampled_from(["", "x"]))


@given(phase=phase_st, facts=facts_st, action=request_st, force=st.booleans())
def test_decide_never_raises_and_always_lands_in_a_phase(
    phase: Phase | str | None, facts: Facts, action: Request | str | None, force: bool
) -> None:
    step = decide(phase, facts, action, force=force)

    assert isinstance(step, Step)
    assert isinstance(step.phase, Phase)
    assert step.refused is None or step.refused.startswith("cannot ")
    assert len(step.hops) <= MAX_SYNC_HOPS + 1  # the request's hop, then the sync walk
    if step.hops:
        assert step.hops[0][0] is step.previous
        assert step.hops[-1][1] is step.phase
        assert step.reason == step.hops[-1][2]


@given(phase=phase_st, facts=facts_st)
def test_a_second_pass_over_the_same_cluster_changes_nothing(
    phase: Phase | str | None, facts: Facts
) -> None:
    settled = decide(phase, facts).phase

    again = decide(settled, facts)

    assert again.phase is settled
    assert all(before is after for before, after, _ in again.hops)


@given(facts=facts_st, action=request_st, force=st.booleans())
def test_once_deletion_is_seen_nothing_but_deleting_remains(
    facts: Facts, action: Request | str | None, force: bool
) -> None:
    step = decide(Phase.Deleting, facts, action, force=force)

    assert step.phase is Phase.Deleting
    assert step.effects == ()
