"""`Cond`: a condition a planner wants set, before it is merged into status with timestamps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cond:
    """A condition verdict: `status` True/False (None → Unknown), CamelCase reason, message."""

    type: str
    status: bool | None
    reason: str
    message: str

    @property
    def wire_status(self) -> str:
        """The status as the API writes it."""
        return "Unknown" if self.status is None else str(self.status)
