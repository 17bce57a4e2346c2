"""The per-Wukong state machine: phases, the transition table and the pure `decide()`."""

from wukong.fsm.facts import Facts
from wukong.fsm.machine import (
    MAX_SYNC_HOPS,
    TRANSITIONS,
    Step,
    allowed_requests,
    decide,
    mermaid,
)
from wukong.fsm.states import Effect, Phase, Request

__all__ = [
    "MAX_SYNC_HOPS",
    "TRANSITIONS",
    "Effect",
    "Facts",
    "Phase",
    "Request",
    "Step",
    "allowed_requests",
    "decide",
    "mermaid",
]
