"""The simulated guest's serial console log and the kubelet's way of serving it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from wukong.testing.kubevirt.guest import OS_INFO
from wukong.testing.kubevirt.kubelet_logs import render, selected
from wukong.testing.kubevirt.serial_log import Line, SerialLog, boot_lines, panic_lines

VMI = {
    "metadata": {"name": "web-1-vm"},
    "spec": {"domain": {"cpu": {"cores": 2}, "memory": {"guest": "4Gi"}}},
}


async def test_a_guest_boots_once_and_says_nothing_after_it_powers_off() -> None:
    log = SerialLog()
    log.write_once("boot", boot_lines(VMI, OS_INFO))
    log.write_once("boot", boot_lines(VMI, OS_INFO))  # a pass that ran again
    texts = [line.text for line in log.lines]
    assert texts.count("web-1-vm login: ") == 1
    assert "smpboot: Allowing 2 CPUs" in texts[3]
    log.write_once("end", panic_lines(OS_INFO))
    log.end()
    log.write_once("late", ["never"])
    assert "Kernel panic" in log.lines[-3].text and log.lines[-1].text.endswith("]---")


async def test_a_follower_gets_new_lines_and_stops_when_the_log_ends() -> None:
    log = SerialLog()
    log.write_once("boot", ["one"])
    got: list[str] = []

    async def follow() -> None:
        async for line in log.follow(0, poll=5):
            got.append(line.text)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    log.write_once("more", ["two"])
    log.end()
    await asyncio.wait_for(task, 1)
    assert got == ["one", "two"]


async def test_a_quiet_follow_returns_after_its_poll() -> None:
    log = SerialLog()
    lines = [line async for line in log.follow(0, poll=0.01)]
    assert lines == [] and not log.ended


def test_tail_and_since_pick_lines_as_the_kubelet_does() -> None:
    now = datetime(2026, 12, 5, 2, 0, 0, tzinfo=UTC)
    lines = [Line(now - timedelta(seconds=s), f"l{s}") for s in (30, 20, 10, 0)]
    assert [x.text for x in selected(lines, {"tailLines": "2"}, now)] == ["l10", "l0"]
    assert [x.text for x in selected(lines, {"tailLines": "9"}, now)] == ["l30", "l20", "l10", "l0"]
    assert selected(lines, {"tailLines": "0"}, now) == []
    assert [x.text for x in selected(lines, {"sinceSeconds": "15"}, now)] == ["l10", "l0"]
    since = {"sinceTime": "2026-12-05T01:59:45Z", "tailLines": "1"}
    assert [x.text for x in selected(lines, since, now)] == ["l0"]


def test_timestamps_are_rfc3339_with_nanoseconds() -> None:
    line = Line(datetime(2026, 12, 5, 2, 0, 0, 123456, tzinfo=UTC), "login: ")
    assert render(line, timestamps=True) == b"2026-12-05T02:00:00.123456000Z login: \n"
    assert render(line, timestamps=False) == b"login: \n"


def test_what_is_typed_at_the_console_is_in_the_log_after_its_prompt() -> None:
    log = SerialLog()
    log.write_once("boot", ["Fedora Linux 40 (Cloud Edition)", "web-1 login: "])
    log.typed(b"fed")
    assert log.lines[-1].text == "web-1 login: "  # nothing until Enter, as a tty's line
    log.typed(b"ora\r")
    log.typed(b"ls /\r\n")  # Enter as a terminal sends it, or a pipe's line end: one line
    assert [line.text for line in log.lines] == [
        "Fedora Linux 40 (Cloud Edition)",
        "web-1 login: fedora",
        "ls /",
    ]
    log.end()
    log.typed(b"reboot\r")
    assert log.lines[-1].text == "ls /"  # the pod's log ended with its VM
