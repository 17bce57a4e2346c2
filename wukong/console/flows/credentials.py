"""`credentials add-ssh-key` and `remove-ssh-key`: a key into (or out of) the Secret the
guest agent gives a user, with the user's own rights (Secrets are theirs: the operator never
reads them)."""

from __future__ import annotations

from wukong.adapters.kube import api_path
from wukong.api.guest import MAX_SSH_KEYS
from wukong.console import credentials as keys
from wukong.console.connect import Target, connect, kubernetes_object
from wukong.console.errors import OK, CliError
from wukong.console.flows.common import JsonObj, patch_pinned
from wukong.console.invocation import Cluster, Console, typed
from wukong.console.status import RUNNING, phase
from wukong.errors import AlreadyExists, NotFound

# kubelet refreshes a Secret mounted in the VM's pod on its own sync (about a minute), and
# only then does KubeVirt hand the keys to the guest agent: not "now".
LIVE = "without a restart, once KubeVirt sees the Secret change (within about a minute)"


def _secrets(target: Target, name: str | None = None) -> str:
    return api_path("", "v1", "secrets", target.namespace, name)


async def _secret(target: Target, cr: JsonObj, name: str) -> JsonObj:
    try:
        return kubernetes_object(await target.kube.get(_secrets(target, name)), _secrets(target))
    except NotFound:
        wukong = cr["metadata"]["name"]
        raise CliError(f"Secret {name} (in the sshKeys of {wukong}) does not exist") from None


def _runs(cr: JsonObj) -> bool:
    return phase(cr) in RUNNING


async def add_ssh_key(
    cluster: Cluster, io: Console, name: str, user: str, key: str, *, force: bool = False
) -> int:
    """Add `key` to the Secret whose keys the guest agent gives `user` (live, while the VM
    runs); without one, make it and add it to the Wukong's sshKeys (at the next start)."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        given = keys.agent_secrets(cr, user)
        if given:
            secret = await _secret(target, cr, given[0])
            await _add_to(target, io, cr, secret, user, key, force=force)
            return OK
        entries = (cr.get("spec") or {}).get("sshKeys") or []
        if len(entries) >= MAX_SSH_KEYS:
            raise CliError(
                f"{name} lists {len(entries)} sshKeys Secrets, the most a Wukong takes: give "
                f"{user} the key through a Secret it lists (add {user} to its users)"
            )
        made = keys.new_secret(cr, user, key)
        secret_name = made["metadata"]["name"]
        try:
            await target.kube.create(_secrets(target), made)
        except AlreadyExists:  # made by a run that stopped before the Wukong was patched
            secret = await _secret(target, cr, secret_name)
            if not keys.owned_by(secret, cr):
                raise CliError(
                    f"Secret {secret_name} exists and is not {name}'s: give the key another "
                    "way, or delete that Secret"
                ) from None
            if not keys.holds(secret, key):
                patch = {"data": keys.key_data(key)}
                await target.kube.merge_patch(_secrets(target, secret_name), patch)
        patched = await patch_pinned(
            target, name, lambda now: keys.with_secret(now, secret_name, user)
        )
        when = (
            f"at its next restart ({typed(f'restart {name}', target.namespace)})"
            if _runs(patched)
            else "when it starts"
        )
        io.out(
            f"Secret {secret_name} made with the key and added to the sshKeys of {name} for "
            f"{user}: KubeVirt gives it to the guest {when}, and later keys without a restart"
        )
        return OK


async def _add_to(
    target: Target,
    io: Console,
    cr: JsonObj,
    secret: JsonObj,
    user: str,
    key: str,
    *,
    force: bool,
) -> None:
    secret_name, name = secret["metadata"]["name"], cr["metadata"]["name"]
    if keys.holds(secret, key):
        io.out(f"Secret {secret_name} already holds this key for {user}")
        return
    if not force and not keys.owned_by(secret, cr):
        raise CliError(
            f"Secret {secret_name} is not {name}'s (it has no owner reference to it), and "
            "other VMs may use it: pass --force to add the key to it anyway"
        )
    await target.kube.merge_patch(_secrets(target, secret_name), {"data": keys.key_data(key)})
    when = LIVE if _runs(cr) else f"when {name} starts"
    io.out(
        f"key added to Secret {secret_name}: the guest agent puts it in {user}'s "
        f"authorized_keys {when}"
    )


async def remove_ssh_key(
    cluster: Cluster, io: Console, name: str, user: str, key: str, *, force: bool = False
) -> int:
    """Take `key` out of every Secret whose keys the guest agent gives `user` (live, while
    the VM runs). A Secret the Wukong does not own may give other VMs' users keys too: it is
    changed only with `force` (as virtctl's remove-ssh-key), and nothing is changed unless
    every Secret holding the key may be."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        given = keys.agent_secrets(cr, user)
        if not given:
            raise CliError(
                f"no Secret in the sshKeys of {name} gives {user} keys through the guest agent"
            )
        holding = []
        for secret_name in given:
            secret = await _secret(target, cr, secret_name)
            if patch := keys.without(secret, key):
                holding.append((secret, patch))
        if not holding:
            raise CliError(f"no Secret that gives {user} keys on {name} holds that key")
        shared = [s["metadata"]["name"] for s, _ in holding if not keys.owned_by(s, cr)]
        if shared and not force:
            raise CliError(
                f"Secret {', '.join(shared)} is not {name}'s (it has no owner reference to "
                "it), and other VMs may use it: pass --force to take the key out of it anyway"
            )
        removed = []
        for secret, patch in holding:
            secret_name = secret["metadata"]["name"]
            await target.kube.merge_patch(_secrets(target, secret_name), {"data": patch})
            removed.append(secret_name)
        io.out(
            f"key removed from Secret {', '.join(removed)}: the guest agent takes it out of "
            f"{user}'s authorized_keys" + (f" {LIVE}" if _runs(cr) else f" when {name} starts")
        )
        return OK
