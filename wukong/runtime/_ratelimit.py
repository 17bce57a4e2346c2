"""How long a key waits before its next try: per-key exponential backoff and a global bucket."""

from __future__ import annotations

from wukong.runtime.clock import Clock


class ExponentialBackoff:
    """Per-key delay that doubles on every failure (5 ms, 10 ms, 20 ms, ...) up to a cap."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """Delay for this failure of `key`, counting it."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # The exponent is bounded so a long-failing key cannot overflow the float.
        return min(self.cap, self.base * 2.0 ** min(failures, 64))

    def forget(self, key: str) -> None:
        """Start `key` over at the base delay."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        """How many failures of `key` are counted since the last forget."""
        return self._failures.get(key, 0)

    def failing(self) -> list[str]:
        """Keys with a failure counted since their last forget."""
        return list(self._failures)


class TokenBucket:
    """Global limit on retries (qps with a burst), so a mass failure cannot hammer the API."""

    def __init__(self, qps: float, burst: int, clock: Clock) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.now()

    def reserve(self) -> float:
        """Take one token; return how long to wait before it may be used."""
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps

    def try_take(self) -> bool:
        """Take one token if one is there now; False (and nothing taken) if not."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _refill(self) -> None:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
