"""Fault injection for the subresource API; object-level faults are annotations (see config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InjectedFailure:
    """One canned error answer for a subresource call."""

    status: int
    message: str


@dataclass
class Faults:
    """Per-subresource failures and latency; `subresource` is e.g. "stop" or "addvolume"."""

    _pending: dict[str, list[InjectedFailure]] = field(default_factory=dict)
    _delays: dict[str, float] = field(default_factory=dict)
    _failing_imports: set[str] = field(default_factory=set)

    def fail_next(
        self, subresource: str, status: int = 500, message: str | None = None, times: int = 1
    ) -> None:
        """The next `times` calls of `subresource` answer `status` before doing anything."""
        text = message or ("injected conflict" if status == 409 else "injected failure")
        queue = self._pending.setdefault(subresource, [])
        queue.extend(InjectedFailure(status, text) for _ in range(times))

    def take_failure(self, subresource: str) -> InjectedFailure | None:
        """Pop the next injected failure for this subresource, if any."""
        queue = self._pending.get(subresource)
        return queue.pop(0) if queue else None

    def slow(self, seconds: float, subresource: str = "*") -> None:
        """Delay every call of `subresource` ("*" = all) by `seconds` before handling it."""
        self._delays[subresource] = seconds

    def delay_for(self, subresource: str) -> float:
        """Added latency for one call."""
        return self._delays.get(subresource, self._delays.get("*", 0.0))

    def fail_imports(self, url_fragment: str) -> None:
        """Imports whose URL contains `url_fragment` fail (besides the config markers)."""
        self._failing_imports.add(url_fragment)

    def import_fails(self, url: str, markers: tuple[str, ...]) -> bool:
        """Whether an import from `url` is doomed."""
        return any(m and m in url for m in (*markers, *self._failing_imports))

    def clear(self) -> None:
        """Forget every injected fault."""
        self._pending.clear()
        self._delays.clear()
        self._failing_imports.clear()
