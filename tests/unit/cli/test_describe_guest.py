"""`describe`'s guest section: what the guest agent reports, or why nothing is said."""

from __future__ import annotations

from tests.unit.cli.objects import NOW, running
from wukong.console.describe import NO_AGENT, describe, guest_section, guest_unavailable
from wukong.console.errors import server_words
from wukong.errors import ApiError

GiB = 2**30
INFO = {
    "hostname": "web-1-vm",
    "os": {"prettyName": "Fedora Linux 40 (Cloud Edition)", "kernelRelease": "6.8.5"},
    "userList": [{"userName": "fedora"}, {"userName": "root"}, {"userName": "fedora"}],
    "fsInfo": {
        "disks": [
            {
                "mountPoint": "/",
                "fileSystemType": "xfs",
                "diskName": "vda1",
                "usedBytes": 2 * GiB,
                "totalBytes": 10 * GiB,
            },
            {
                "mountPoint": "/var/lib/db",
                "fileSystemType": "ext4",
                "diskName": "vdb",
                "usedBytes": 95 * GiB,
                "totalBytes": 100 * GiB,
            },
        ]
    },
}


def test_the_guest_is_its_os_users_and_filesystems_a_full_one_marked() -> None:
    assert guest_section(INFO) == [
        "Guest:           Fedora Linux 40 (Cloud Edition), kernel 6.8.5, hostname web-1-vm",
        "Logged in:       fedora, root",
        "Filesystems:",
        "  MOUNT         TYPE   DEVICE   USED     SIZE      USE\n"
        "  /             xfs    vda1     2.0Gi    10.0Gi    20%\n"
        "  /var/lib/db   ext4   vdb      95.0Gi   100.0Gi   95% (nearly full)",
    ]


def test_an_agent_that_reports_little_still_gives_a_section() -> None:
    assert guest_section({}) == ["Guest:           unknown OS", "Logged in:       -"]


def test_without_an_agent_the_section_says_how_to_get_one() -> None:
    message = (
        'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "web-1-vm": '
        "VMI does not have guest agent connected"
    )
    why = guest_unavailable(message)
    assert why.startswith("no guest agent connected: with qemu-guest-agent in the guest")
    assert guest_section(None, why) == [f"Guest:           <{why}>"]
    assert guest_unavailable("forbidden") == "unavailable: forbidden"


def test_no_agent_is_told_from_a_long_plain_text_answer_cut_to_one_line() -> None:
    # An answer that is no Status (a proxy's, an aggregator's plain text) is said on one line
    # of 200 characters: virt-api's words at its end were cut off, and the page said
    # "unavailable: …" instead of how to get an agent.
    error = ApiError(500, "", "upstream said: " + "x" * 200 + " " + NO_AGENT, raw=True)
    said = server_words(error)
    assert NO_AGENT not in said
    why = guest_unavailable(said, error.message)
    assert why.startswith("no guest agent connected")
    assert guest_unavailable(said, "forbidden") == f"unavailable: {said}"


def test_the_section_comes_before_the_events() -> None:
    page = describe(running(), [], NOW, guest=guest_section(INFO))
    assert page.index("History:") < page.index("Guest:") < page.index("Events:")
    assert "Guest:" not in describe(running(), [], NOW)
