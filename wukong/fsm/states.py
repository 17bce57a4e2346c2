"""The vocabulary of the state machine: phases, user requests and the effects they call for."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """status.phase of a Wukong; names equal values so pytransitions finds callbacks."""

    Pending = "Pending"
    Creating = "Creating"
    Starting = "Starting"
    Running = "Running"
    Stopping = "Stopping"
    Stopped = "Stopped"
    Restarting = "Restarting"
    Suspending = "Suspending"
    Suspended = "Suspended"
    Resuming = "Resuming"
    Deleting = "Deleting"
    Error = "Error"


class Request(StrEnum):
    """A lifecycle request, as written in spec.lifecycleAction.action."""

    start = "start"
    stop = "stop"
    restart = "restart"
    suspend = "suspend"
    resume = "resume"


class Effect(StrEnum):
    """What the reconciler must do for an accepted request or an escalation."""

    START_VM = "START_VM"
    STOP_VM = "STOP_VM"
    FORCE_STOP_VM = "FORCE_STOP_VM"
    RESTART_VM = "RESTART_VM"
    FORCE_RESTART_VM = "FORCE_RESTART_VM"
    PAUSE_VMI = "PAUSE_VMI"
    UNPAUSE_VMI = "UNPAUSE_VMI"
