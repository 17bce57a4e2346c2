"""`credentials add-ssh-key` and `remove-ssh-key`: a key into (or out of) the Secret the
guest agent gives a user, with the user's own rights (Secrets are theirs: the operator never
reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from wukong.adapters.kube import api_path
from wukong.api.guest import MAX_SSH_KEYS
from wukong.console import credentials as keys
from wukong.console.connect import Target, connect, kubernetes_object
from wukong.console.errors import OK, CliError
from wukong.console.flows.common import JsonObj, patch_pinned
from wukong.console.invocation import Cluster, Console, typed
from wukong.console.remote import guest_vmi
from wukong.console.status import RUNNING, phase, vmi_runs
from wukong.errors import AlreadyExists, Forbidden, NotFound

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


async def _runs(target: Target, cr: JsonObj) -> bool:
    """Whether the Wukong's VM runs, whatever its phase: a Wukong in Error (a disk added
    later whose import failed) may have a guest that runs, which takes keys live and owes a
    restart for a new Secret; its phase alone said "when it starts" (noticed in session 46)."""
    return phase(cr) in RUNNING or vmi_runs(await guest_vmi(target, cr["metadata"]["name"]))


async def add_ssh_key(
    cluster: Cluster, io: Console, name: str, user: str, key: str, *, force: bool = False
) -> int:
    """Add `key` to the Secret whose keys the guest agent gives `user` (live, while the VM
    runs); without one, make it and add it to the Wukong's sshKeys (at the next start),
    with the keys `user` may have from cloud-init, which the agent's set would replace."""
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
        seed = await _cloud_init_keys(target, cr, user)
        for problem in seed.unread:
            if not force:
                raise CliError(
                    f"{problem}: {_LOST.format(user=user)}; pass --force to make it anyway"
                )
            io.say(f"warning: {problem}: {_LOST.format(user=user)}")
        copied = [k for k in seed.found if not keys.same_key(k, key)]
        made = keys.new_secret(cr, user, key, copied)
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
            if missing := [k for k in (key, *copied) if not keys.holds(secret, k)]:
                data: dict[str, str] = {}
                for each in missing:
                    data |= keys.key_data(each)
                await target.kube.merge_patch(_secrets(target, secret_name), {"data": data})
        patched = await patch_pinned(
            target, name, lambda now: keys.with_secret(now, secret_name, user)
        )
        when = (
            f"at its next restart ({typed(f'restart {name}', target.namespace)})"
            if await _runs(target, patched)
            else "when it starts"
        )
        io.out(
            f"Secret {secret_name} made with the key and added to the sshKeys of {name} for "
            f"{user}: KubeVirt gives it to the guest {when}, and later keys without a restart"
        )
        if copied:
            count = f"{len(copied)} key{'s' if len(copied) > 1 else ''}"
            io.out(
                f"{count} {user} may have from cloud-init ({', '.join(seed.sources)}) copied "
                f"into it too: the guest agent replaces {user}'s whole authorized_keys"
            )
        return OK


# Why a key the CLI could not read is trouble (KubeVirt's AuthorizedSSHKeysSet, flags 0).
_LOST = (
    "the guest agent replaces {user}'s whole authorized_keys, and keys cloud-init gave "
    "{user} from it would not be copied into the new Secret, so they would stop working"
)


@dataclass
class _Seed:
    """What cloud-init gives that the CLI can see: the keys, where they came from, and what
    it could not read (each a phrase for the refusal)."""

    found: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def add(self, given: list[str], source: str) -> None:
        new = [k for k in given if not any(keys.same_key(h, k) for h in self.found)]
        if new:
            self.found += new
            self.sources.append(source)


async def _cloud_init_keys(target: Target, cr: JsonObj, user: str) -> _Seed:
    """The keys `user` may have from cloud-init, read with the user's own rights: the user
    data's (inline, or its Secret's) and the noCloud sshKeys Secrets'."""
    seed, name = _Seed(), cr["metadata"]["name"]
    init = (cr.get("spec") or {}).get("cloudInit") or {}
    text, where = init.get("userData"), f"the user data of {name}"
    if not text and (ref := (init.get("userDataSecretRef") or {}).get("name")):
        where = f"Secret {ref} (the user data of {name})"
        secret, problem = await _readable(target, str(ref), where)
        text = keys.secret_user_data(secret) if secret is not None else None
        seed.unread += [problem] if problem else []
    if text:
        try:
            seed.add(keys.user_data_keys(str(text), user), "user data")
        except keys.UnreadableUserData as why:
            seed.unread.append(f"cannot tell which keys {where} gives ({why})")
    for ref in keys.cloud_init_secrets(cr):
        secret, problem = await _readable(target, ref, f"Secret {ref} (noCloud keys of {name})")
        if secret is not None:
            seed.add(keys.secret_keys(secret), f"Secret {ref}")
        seed.unread += [problem] if problem else []
    return seed


async def _readable(target: Target, name: str, what: str) -> tuple[JsonObj | None, str]:
    """A Secret read with the user's rights, or why it could not be."""
    try:
        return kubernetes_object(
            await target.kube.get(_secrets(target, name)), _secrets(target)
        ), ""
    except Forbidden:
        return None, f"you may not read {what}"
    except NotFound:
        return None, f"{what} does not exist"


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
    when = LIVE if await _runs(target, cr) else f"when {name} starts"
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
        when = LIVE if await _runs(target, cr) else f"when {name} starts"
        io.out(
            f"key removed from Secret {', '.join(removed)}: the guest agent takes it out of "
            f"{user}'s authorized_keys {when}"
        )
        return OK
