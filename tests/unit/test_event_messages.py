"""Event messages are cut at 1,024 UTF-8 bytes, between characters, with "…" (audit s42,
finding 10: they were cut at 1,024 code points, up to 4 KiB, and nothing said so)."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.adapters.events import EventRecorder, shortened

# 1, 2, 3 and 4 bytes a character: a cut lands inside each kind somewhere along the message.
PIECE = "VMI web-1-vm → Scheduling: 0/3 nodes available, café 🖥 "


class PostedEvents:
    """The `Kube.create` of an EventRecorder: keeps each Event it is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.events.append(obj)
        return obj


async def posted(message: str) -> str:
    kube = PostedEvents()
    recorder = EventRecorder(kube)  # type: ignore[arg-type]
    wukong = {"apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong"}
    await recorder.post(
        {**wukong, "metadata": {"name": "web-1"}}, "Warning", "Unschedulable", message
    )
    (event,) = kube.events
    return str(event["message"])


async def test_a_long_message_is_cut_at_1024_bytes_between_characters_with_an_ellipsis() -> None:
    message = (PIECE * 40).encode()[:1995].decode("utf-8", "ignore")
    message += "x" * (2000 - len(message.encode()))
    assert len(message.encode()) == 2000 and len(message) < 1900  # multi-byte characters
    sent = await posted(message)
    assert sent.endswith("…") and message.startswith(sent[:-1])
    # No more than one character (4 bytes) short of the limit, and never over it.
    assert 1024 - 4 < len(sent.encode()) <= 1024


@pytest.mark.parametrize("cut_inside", [0, 1, 2, 3], ids=["boundary", "1-of-4", "2-of-4", "3-of-4"])
def test_a_character_the_cut_falls_in_is_left_out_whole(cut_inside: int) -> None:
    # 1021 bytes are room for the text before the 3-byte "…": put a 4-byte character there.
    message = "a" * (1021 - cut_inside) + "🖥" * 300
    cut = shortened(message)
    assert cut == "a" * (1021 - cut_inside) + "…"
    assert len(cut.encode()) == 1024 - cut_inside


@pytest.mark.parametrize("length", [0, 1, 1023, 1024])
async def test_a_message_that_fits_is_posted_as_it_is(length: int) -> None:
    message = "é" * (length // 2) + "x" * (length % 2)
    assert len(message.encode()) == length
    assert await posted(message) == message


async def test_one_byte_over_is_cut() -> None:
    sent = await posted("→" + "x" * 1022)  # 1,025 bytes
    assert sent == "→" + "x" * 1018 + "…" and len(sent.encode()) == 1024
