"""`wukong credentials add-ssh-key|remove-ssh-key`: a key for a guest user through the guest
agent, into the Secret KubeVirt follows while the VM runs (virtctl's credentials verbs).

The simulated node plays virt-handler's part: a running guest's users get the keys of their
VMI's qemuGuestAgent Secrets, again whenever a Secret changes, and each sync is reported in
the VMI's AccessCredentialsSynchronized condition (`access_credentials.py`).
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.scenario import (
    condition,
    create,
    get,
    k,
    operator,
    sim,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from tests.integration.test_guest_access import put_secret, secret
from tests.integration.test_remote_access import ran
from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj
from wukong.console.create import authorized_keys
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures
MINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvb0vSo0g1O4X8VrJjQ5YF3Q7Yk0m9Jk0x8pRrTqG0m me@laptop"
THEIRS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq2uQ9vJ3l0Kx7m8PzR1sT4wY6bN5cD2eF7gH8iJ9kL you@desk"


async def test_a_key_for_a_user_reaches_the_running_guest_and_the_next_without_a_restart(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    kubeconfig, where = control_plane.kubeconfig, ("-n", namespace)
    await create(k, "wukong", namespace, wukong("keys-1"))
    await wait_phase(k, namespace, "keys-1", "Running", within=60)
    mine = tmp_path / "id_ed25519.pub"
    mine.write_text(MINE + "\n")
    verb = ("credentials", "add-ssh-key", "keys-1", "--user", "fedora")

    # No Secret gives fedora keys yet: one is made, owned by the Wukong, and added to its
    # sshKeys, which KubeVirt applies at the next start.
    done = await ran(kubeconfig, *verb, "--file", str(mine), *where)
    assert done.code == 0, done.err.decode()
    assert done.out.decode() == (
        "Secret keys-1-ssh-fedora made with the key and added to the sshKeys of keys-1 for "
        "fedora: KubeVirt gives it to the guest at its next restart "
        f"(wukong restart keys-1 -n {namespace}), "
        "and later keys without a restart\n"
    )
    cr = await wait_for(
        k,
        namespace,
        "keys-1",
        lambda c: condition(c, "RestartRequired").get("status") == "True",
        within=30,
        what="RestartRequired for the new sshKeys entry",
    )
    assert cr["spec"]["sshKeys"] == [
        {"secretName": "keys-1-ssh-fedora", "propagation": "qemuGuestAgent", "users": ["fedora"]}
    ]
    secret = await k.get(api_path("", "v1", "secrets", namespace, "keys-1-ssh-fedora"))
    assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [cr["metadata"]["uid"]]
    restarted = await ran(kubeconfig, "restart", "keys-1", "--wait", *where, within=120)
    assert restarted.code == 0, restarted.err.decode()
    guest = sim.guest(namespace, "keys-1-vm")

    async def keys(wanted: set[str]) -> bool:
        return set(guest.authorized_keys.get("fedora", [])) == wanted

    await eventually(lambda: keys({MINE}), timeout=30, message="the key in the guest")
    vmi = await get(k, "vmi", namespace, "keys-1-vm")
    assert vmi is not None

    # A colleague's key: into the same Secret, and into the running guest, no restart.
    done = await ran(kubeconfig, *verb, "--value", THEIRS, *where)
    assert done.code == 0, done.err.decode()
    assert done.out.decode() == (
        "key added to Secret keys-1-ssh-fedora: the guest agent puts it in fedora's "
        "authorized_keys without a restart, once KubeVirt sees the Secret change (within "
        "about a minute)\n"
    )
    await eventually(lambda: keys({MINE, THEIRS}), timeout=30, message="both keys")
    again = await ran(kubeconfig, *verb, "--value", THEIRS, *where)
    assert again.out.decode() == "Secret keys-1-ssh-fedora already holds this key for fedora\n"

    # Taken away again, live.
    remove = ("credentials", "remove-ssh-key", "keys-1", "--user", "fedora")
    done = await ran(kubeconfig, *remove, "--file", str(mine), *where)
    assert done.code == 0, done.err.decode()
    await eventually(lambda: keys({THEIRS}), timeout=30, message="only the colleague's key")
    same = await get(k, "vmi", namespace, "keys-1-vm")
    assert same is not None and same["metadata"]["uid"] == vmi["metadata"]["uid"]
    gone = await ran(kubeconfig, *remove, "--file", str(mine), *where)
    assert (gone.code, gone.err.decode()) == (
        1,
        "error: no Secret that gives fedora keys on keys-1 holds that key\n",
    )


async def told(k: Kube, namespace: str, reason: str) -> list[JsonObj]:
    """The Wukong Events of this reason, once there is one."""

    async def posted() -> list[JsonObj] | None:
        return await wukong_events(k, namespace, reason) or None

    return await eventually(posted, timeout=20, message=f"a {reason} Event on the Wukong")


async def test_keys_for_a_user_the_guest_lacks_are_a_condition_and_a_warning_until_they_land(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
) -> None:
    """KubeVirt cannot write keys for a user the image has no account for: it says so on the
    VMI (AccessCredentialsSynchronized=False), and the Wukong says it too, with a Warning,
    until the keys land (the account made, e.g. by a configuration tool)."""
    await put_secret(k, namespace, secret("bob-keys", key=MINE))
    keys = [{"secretName": "bob-keys", "propagation": "qemuGuestAgent", "users": ["bob"]}]
    await create(k, "wukong", namespace, wukong("keys-2", sshKeys=keys))
    await wait_phase(k, namespace, "keys-2", "Running", within=60)
    cr = await wait_for(
        k,
        namespace,
        "keys-2",
        lambda c: (
            condition(c, "AccessCredentialsSynchronized").get("status") == "False"
            and condition(c, "Ready").get("status") == "True"
        ),
        within=30,
        what="AccessCredentialsSynchronized=False, and Ready: the VM runs, only keys are missing",
    )
    said = condition(cr, "AccessCredentialsSynchronized")
    assert said["reason"] == "SyncFailed", said
    assert said["message"].startswith(
        "KubeVirt could not put the keys of spec.sshKeys in the guest: "
    )
    assert "for user [bob]" in said["message"]
    # The Events follow the status write that sets the condition: wait for them too.
    warned = await told(k, namespace, "SyncFailed")
    assert [e["type"] for e in warned] == ["Warning"] and "[bob]" in warned[0]["message"]
    vmi = await get(k, "vmi", namespace, "keys-2-vm")
    assert vmi is not None
    kubevirt = next(
        c for c in vmi["status"]["conditions"] if c["type"] == "AccessCredentialsSynchronized"
    )
    assert kubevirt["status"] == "False" and said["message"].endswith(kubevirt["message"])
    described = await ran(control_plane.kubeconfig, "describe", "keys-2", "-n", namespace)
    assert "for user [bob]" in described.out.decode(), described.out.decode()

    guest = sim.guest(namespace, "keys-2-vm")
    guest.accounts.add("bob")
    await wait_for(
        k,
        namespace,
        "keys-2",
        lambda c: not condition(c, "AccessCredentialsSynchronized"),
        within=30,
        what="AccessCredentialsSynchronized gone once the keys land",
    )
    # fedora: the image's login user, made by cloud-init at the first boot (the VM has a
    # cloud-init disk for its keys since session 46), with no keys of its own.
    assert guest.authorized_keys == {"fedora": [], "bob": [MINE]}
    landed = await told(k, namespace, "NoSyncError")
    assert [e["type"] for e in landed] == ["Normal"]

    # bob-keys is the user's own Secret (no owner reference to keys-2): other VMs may take
    # keys from it, so taking a key out of it needs --force, as with virtctl's
    # remove-ssh-key (the CLI took it out with no question before session 41).
    remove = ("credentials", "remove-ssh-key", "keys-2", "--user", "bob", "--value", MINE)
    refused = await ran(control_plane.kubeconfig, *remove, "-n", namespace)
    assert (refused.code, refused.err.decode()) == (
        1,
        "error: Secret bob-keys is not keys-2's (it has no owner reference to it), and other "
        "VMs may use it: pass --force to take the key out of it anyway\n",
    )
    kept = await k.get(api_path("", "v1", "secrets", namespace, "bob-keys"))
    assert kept["data"] == secret("bob-keys", key=MINE)["data"]
    forced = await ran(control_plane.kubeconfig, *remove, "--force", "-n", namespace)
    assert forced.code == 0, forced.err.decode()
    assert forced.out.decode().startswith("key removed from Secret bob-keys: ")


async def test_the_first_agent_key_for_a_user_keeps_the_keys_cloud_init_gave_it(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
) -> None:
    """`create --ssh-key-file me.pub` gives fedora the owner's key through cloud-init; the
    guest agent replaces fedora's whole authorized_keys with its Secrets' keys. The first
    agent Secret for fedora held the colleague's key alone, and the restart it asks for
    locked the owner out (source audit, session 46): it now carries the owner's key too."""
    kubeconfig, where = control_plane.kubeconfig, ("-n", namespace)
    user_data = authorized_keys([MINE])
    await create(k, "wukong", namespace, wukong("keys-3", cloudInit={"userData": user_data}))
    await wait_phase(k, namespace, "keys-3", "Running", within=60)
    guest = sim.guest(namespace, "keys-3-vm")

    async def keys(wanted: set[str]) -> bool:
        have = guest.authorized_keys.get("fedora") or []
        return len(have) == len(wanted) and set(have) == wanted

    await eventually(lambda: keys({MINE}), timeout=30, message="cloud-init's key in the guest")
    verb = ("credentials", "add-ssh-key", "keys-3", "--user", "fedora", "--value", THEIRS)
    done = await ran(kubeconfig, *verb, *where)
    assert done.code == 0, done.err.decode()
    assert done.out.decode().splitlines()[1] == (
        "1 key fedora may have from cloud-init (user data) copied into it too: the guest "
        "agent replaces fedora's whole authorized_keys"
    )
    restarted = await ran(kubeconfig, "restart", "keys-3", "--wait", *where, within=120)
    assert restarted.code == 0, restarted.err.decode()
    # The same instance (KubeVirt keeps the firmware UUID): cloud-init writes nothing again,
    # and the agent sets fedora's keys to its Secret's, the owner's among them.
    await eventually(
        lambda: keys({THEIRS, MINE}), timeout=30, message="both keys, set by the guest agent"
    )
