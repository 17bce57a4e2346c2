"""`wukong create NAME`: a Wukong from flags, as `kubectl create deployment` makes one and
`virtctl create vm` writes one. Pure: the manifest, checked against the API's own models
before anything is sent, so a bad flag is one line and exit 2, never a half-made VM.

What flags cannot say is written in YAML: `wukong create … --dry-run=client -o yaml` prints a
start to edit and `kubectl apply -f`. That is, on a disk: `storageClassName` (the cluster's
default class otherwise; virtctl's `create vm` has no flag for it either), `accessMode`,
`bus`, `boot`, `detachOptions`; on a network: `mtu` (`type` has one value, `bridge`);
`cloudInit.networkData` and `networkDataSecretRef`; an SSH key's `propagation` and `users`;
`hotplug`; `lifecycleAction`, `deleteOptions`; placement (`nodeSelector`, `tolerations`,
`affinity`) and `evictionStrategy`. `docs/cli.md` lists the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from wukong.api import names
from wukong.api.conditions import SPEC_VALID
from wukong.api.guest import CLOUD_INIT_MAX_BYTES
from wukong.api.placement import InstancetypeKind, PreferenceKind
from wukong.api.spec import RunStrategy, WukongSpec
from wukong.console.credentials import public_keys
from wukong.console.errors import usage
from wukong.console.invocation import typed
from wukong.console.lifecycle import Outcome, in_error, running
from wukong.console.selector import BadSelector, check_label
from wukong.console.status import condition

JsonObj = dict[str, Any]
SYSTEM_DISK: Final = "system"
DEFAULT_CPU: Final = 1
DEFAULT_MEMORY: Final = "1Gi"
DEFAULT_SIZE: Final = "10Gi"


@dataclass(frozen=True)
class Wanted:
    """What the flags ask for; None: not given."""

    name: str
    image: str | None = None
    clone_from: str | None = None  # a PVC: NAME or NAMESPACE/NAME
    data_source: str | None = None  # a CDI DataSource: NAME or NAMESPACE/NAME
    size: str = DEFAULT_SIZE
    cpu: int | None = None
    memory: str | None = None
    instancetype: str | None = None
    preference: str | None = None
    disks: Sequence[str] = ()  # NAME=SIZE
    networks: Sequence[str] = ()  # NAME=NAD
    bridges: Sequence[str] = ()  # NAME=BRIDGE[:VLAN]
    ssh_keys: Sequence[str] = ()  # Secret names
    user_data: str | None = None  # the text of --user-data FILE
    user_data_secret: str | None = None  # a Secret whose `userdata` key holds it
    ssh_public_keys: Sequence[str] = ()  # the text of each --ssh-key-file
    run_strategy: RunStrategy | None = None
    stopped: bool = False
    labels: Sequence[str] = ()  # KEY=VALUE


def pairs(flag: str, values: Sequence[str], shape: str) -> list[tuple[str, str]]:
    """`--flag A=B` values as (A, B); anything else is a usage error naming the shape."""
    found = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise usage(f"{flag} takes {shape}, not {value!r}")
        found.append((key, rest))
    return found


def labels_of(values: Sequence[str]) -> dict[str, str]:
    """`--label KEY=VALUE` values, checked as the API server checks labels (as `-l` is), so a
    label it would refuse is a usage error before any request, not a manifest it refuses
    (CLI audit, session 44). An empty value is a label, as `kubectl label tier=` sets."""
    found: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise usage(f"--label takes KEY=VALUE, e.g. tier=web, not {value!r}")
        try:
            check_label(key, rest)
        except BadSelector as error:
            raise usage(f"--label: {error}") from None
        found[key] = rest
    return found


def authorized_keys(texts: Sequence[str]) -> str:
    """cloud-config giving the image's default user these public keys (virtctl create vm
    --ssh-key does the same). A private key is refused: it must never leave the machine,
    and the user data is readable by whoever may read the Wukong."""
    keys: list[str] = []
    for text in texts:
        keys += [k for k in public_keys(text, "--ssh-key-file") if k not in keys]
    lines = ["#cloud-config", "ssh_authorized_keys:", *(f"  - {key}" for key in keys)]
    return "\n".join(lines) + "\n"


def _reference(flag: str, value: str, kinds: type[StrEnum]) -> JsonObj:
    """`NAME` (cluster-wide) or `KIND/NAME`, as virtctl takes them
    (`virtualmachineinstancetype/small` is a namespaced one)."""
    kind, slash, name = value.rpartition("/")
    if not slash:
        return {"name": value}
    known = {k.value.lower(): k.value for k in kinds}
    if kind.lower() not in known:
        raise usage(f"{flag}: {kind!r} is not one of {', '.join(sorted(known))}")
    return {"name": name, "kind": known[kind.lower()]}


def _sized(wanted: Wanted) -> JsonObj:
    """cpu and memory, or an instancetype; 1 vCPU and 1Gi when neither is given."""
    if wanted.instancetype is not None:
        if wanted.cpu is not None or wanted.memory is not None:
            raise usage("--instancetype sizes the VM: drop --cpu and --memory")
        sized: JsonObj = {
            "instancetype": _reference("--instancetype", wanted.instancetype, InstancetypeKind)
        }
    else:
        cpu = wanted.cpu if wanted.cpu is not None else DEFAULT_CPU
        memory = wanted.memory if wanted.memory is not None else DEFAULT_MEMORY
        sized = {"cpu": cpu, "memory": memory}
    if wanted.preference is not None:  # devices and firmware: with or without an instancetype
        sized["preference"] = _reference("--preference", wanted.preference, PreferenceKind)
    return sized


def _disks(wanted: Wanted) -> list[JsonObj]:
    """The system disk (--image or --clone-from, --size), then each --disk, blank."""
    system: JsonObj = {"name": SYSTEM_DISK, "size": wanted.size}
    given = [f for f, v in (("--image", wanted.image), ("--clone-from", wanted.clone_from),
                            ("--data-source", wanted.data_source)) if v is not None]  # fmt: skip
    if len(given) > 1:
        raise usage(f"{' and '.join(given)}: the system disk has one source, give one")
    if wanted.image is not None:
        system["image"] = wanted.image
    if wanted.clone_from is not None:
        system["cloneFrom"] = wanted.clone_from
    if wanted.data_source is not None:
        system["dataSource"] = wanted.data_source
    disks = [system]
    for disk, size in pairs("--disk", wanted.disks, "NAME=SIZE, e.g. data=100Gi"):
        if disk in {d["name"] for d in disks}:
            raise usage(f"--disk {disk}: a disk of that name is already there")
        disks.append({"name": disk, "size": size})
    return disks


def _networks(wanted: Wanted) -> list[JsonObj]:
    """Each --network (an existing NAD), then each --bridge (a NAD the operator makes)."""
    named = pairs("--network", wanted.networks, "NAME=NAD, e.g. storage=storage-net")
    networks: list[JsonObj] = [{"name": net, "nadName": nad} for net, nad in named]
    shape = "NAME=BRIDGE or NAME=BRIDGE:VLAN, e.g. lan=br-lan:100"
    for net, where in pairs("--bridge", wanted.bridges, shape):
        bridge, colon, vlan = where.partition(":")
        if not bridge or (colon and not vlan.isdigit()):
            raise usage(f"--bridge takes {shape}, not '{net}={where}'")
        networks.append({"name": net, "bridge": bridge, **({"vlan": int(vlan)} if colon else {})})
    taken = [n["name"] for n in networks]
    if twice := next((n for n in taken if taken.count(n) > 1), None):
        raise usage(f"network {twice} is named twice (--network and --bridge share names)")
    return networks


def _cloud_init(wanted: Wanted) -> JsonObj | None:
    """spec.cloudInit from one of --ssh-key-file, --user-data, --user-data-secret."""
    if wanted.user_data is not None and wanted.user_data_secret is not None:
        raise usage("--user-data and --user-data-secret do not go together: give one")
    if wanted.ssh_public_keys and (wanted.user_data or wanted.user_data_secret):
        raise usage(
            "--ssh-key-file writes the user data: put the key in your own user data "
            "(ssh_authorized_keys), or use --ssh-key-secret"
        )
    if wanted.ssh_public_keys:
        return {"userData": authorized_keys(wanted.ssh_public_keys)}
    if wanted.user_data is not None:
        return {"userData": wanted.user_data}
    if wanted.user_data_secret is not None:
        return {"userDataSecretRef": {"name": wanted.user_data_secret}}
    return None


def spec_of(wanted: Wanted) -> JsonObj:
    """spec, as the API server will store it (only what the flags set)."""
    spec: JsonObj = {**_sized(wanted), "disks": _disks(wanted)}
    if networks := _networks(wanted):
        spec["networks"] = networks
    if wanted.ssh_keys:
        spec["sshKeys"] = [{"secretName": secret} for secret in dict.fromkeys(wanted.ssh_keys)]
    if (cloud_init := _cloud_init(wanted)) is not None:
        spec["cloudInit"] = cloud_init
    if wanted.run_strategy is not None:
        spec["runStrategy"] = wanted.run_strategy.value
    if wanted.stopped:
        spec["startStrategy"] = {"autoStart": False}
    return spec


def manifest(wanted: Wanted) -> JsonObj:
    """The Wukong to POST to a namespace's collection (no namespace of its own, as
    `kubectl create --dry-run=client -o yaml` prints it); a usage error when the API's
    models would refuse it."""
    spec = spec_of(wanted)
    try:
        WukongSpec.model_validate(spec)
    except ValidationError as error:
        raise usage(_said(error, spec, keys=bool(wanted.ssh_public_keys))) from None
    metadata: JsonObj = {"name": wanted.name}
    labels = labels_of(wanted.labels)
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": metadata, "spec": spec}


_FLAGS: Final = {
    "cpu": "--cpu",
    "memory": "--memory",
    "instancetype": "--instancetype",
    "preference": "--preference",
    "runStrategy": "--run-strategy",
    "cloudInit": "--user-data",
    "sshKeys": "--ssh-key-secret",
}


def _said(error: ValidationError, spec: JsonObj, *, keys: bool = False) -> str:
    """The model's first complaint, named by the flag that carried the value (`keys`: the
    user data is what --ssh-key-file wrote)."""
    problem = error.errors()[0]
    where = [str(p) for p in problem.get("loc") or ()]
    message = str(problem["msg"]).removeprefix("Value error, ")
    if where[:1] == ["cloudInit"] and "userDataSecretRef" in where:
        return f"--user-data-secret: {message}"
    if where[:1] == ["cloudInit"] and "userData" in where and keys:
        # The user gave no --user-data, and --user-data-secret does not go with the keys.
        size = len(str(spec["cloudInit"]["userData"]).encode())
        return (
            f"--ssh-key-file: the keys make {size} bytes of user data, over KubeVirt's "
            f"{CLOUD_INIT_MAX_BYTES}: put them in a Secret (a key a value) and use "
            "--ssh-key-secret"
        )
    if where[:1] == ["cloudInit"] and "userData" in where:
        message = message.replace("use userDataSecretRef", "use --user-data-secret")
    if where[:1] == ["disks"] and len(where) > 2 and where[1] == "0":
        option = {"cloneFrom": "clone-from", "dataSource": "data-source"}.get(where[2], where[2])
        return f"--{option}: {message}"  # the system disk: --size, --image or --clone-from
    if where[:1] == ["disks"]:
        return f"--disk: {message}"
    if where[:1] == ["networks"] and len(where) > 1 and where[1].isdigit():
        entry = spec["networks"][int(where[1])]
        which = "--network" if "nadName" in entry else "--bridge"
        field = f" {where[2]}:" if len(where) > 2 and where[2] in ("bridge", "vlan") else ""
        return f"{which} {entry['name']}:{field} {message}"
    flag = _FLAGS.get(where[0]) if where else None
    return f"{flag}: {message}" if flag else message


def blank_system_disk(wanted: Wanted) -> str | None:
    """A warning when the system disk has no source: allowed (a VM installed over the
    network), but one line says so, since a forgotten --image otherwise shows only as a VM
    that runs and never boots an operating system."""
    if (wanted.image, wanted.clone_from, wanted.data_source) != (None, None, None):
        return None
    return (
        f"warning: the system disk of {wanted.name} is blank: the VM can boot only from the "
        "network (give --image, --clone-from or --data-source for an operating system)"
    )


def wanted_phase(wanted: Wanted) -> str:
    """Where a new Wukong settles: Stopped when nothing starts it, else Running (a Manual
    one is started once when it is new, unless --stopped)."""
    return "Stopped" if wanted.stopped or wanted.run_strategy is RunStrategy.HALTED else "Running"


def settled(cr: JsonObj | None, phase: str) -> Outcome | None:
    """`create --wait`: the outcome once the new Wukong is where it settles, in Error,
    refused by the operator (SpecValid=False: nothing happens until the spec changes, so
    waiting longer is pointless), or gone; None while on its way."""
    if cr is None:
        return Outcome(False, "the Wukong was deleted")
    name = cr["metadata"]["name"]
    status = cr.get("status") or {}
    now = status.get("phase")
    if now == phase:
        return running(cr) if phase == "Running" else Outcome(True, f"{name} is {phase}")
    invalid = condition(cr, SPEC_VALID)
    if invalid.get("status") == "False":
        why = f"{invalid.get('reason')}: {invalid.get('message')}"
        return Outcome(False, f"{name} was created, but the operator refuses its spec ({why})")
    if now == "Error":
        return in_error(cr, f"see {typed(f'describe {name}', cr['metadata']['namespace'])}")
    return None
