"""The supervisor of KubeVirt's components restarts them as the kubelet restarts a pod."""

from __future__ import annotations

from wukong.testing.kubevirt.plane import MAX_RESTART_DELAY, _restart_delay


def test_the_first_restart_waits_a_second() -> None:
    assert _restart_delay(None, now=50.0) == 1.0


def test_restarts_close_together_keep_the_doubled_delay() -> None:
    assert _restart_delay((4.0, 100.0), now=100.0 + 2 * MAX_RESTART_DELAY) == 4.0


def test_a_quiet_spell_forgets_the_back_off() -> None:
    """client-go's flowcontrol.Backoff: an entry unused for twice the longest delay is reset.
    Without it each API-server restart of a long test session waited longer than the last."""
    assert _restart_delay((MAX_RESTART_DELAY, 100.0), now=100.1 + 2 * MAX_RESTART_DELAY) == 1.0
