"""Event names sort as the Events were posted (`EventRecorder._name`)."""

from __future__ import annotations

from typing import Any

from wukong.adapters.events import EventRecorder


def test_event_names_sort_in_the_order_they_were_made() -> None:
    # kubectl describe sorts on lastTimestamp (whole seconds) and keeps the list's order for
    # a tie: names that sort as the posts did keep one pass's Events in order.
    recorder = EventRecorder(Any)  # type: ignore[arg-type]
    made = [recorder._name("web-1") for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(n.startswith("web-1.") and len(n) <= len("web-1.") + 16 for n in made)
