"""Would KubeVirt, CDI and Kubernetes admit the children the operator made? (issue 18)

`child_problems` is the one pluggable check: today it encodes, in Python, the rules of
KubeVirt v1.7.0's admitters that Wukong's children can meet, CDI v1.65's DataVolume webhook
and the API server's object-meta validation of the VMI that virt-controller creates from the
VM template; image URLs go through Go's own net/url (a stdlib-only helper built on first use),
as CDI parses them. Once KubeVirt's real webhooks are in the test loop (issue 13), swap the body
for a dry-run create through them: the callers only need "a list of problems, empty if fine".

Sources (go mod download kubevirt.io/kubevirt@v1.7.0, kubevirt.io/containerized-data-importer
@v1.65.0):
- pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go: memory requests
  >= 1M, guest <= limits, volumes unique with exactly one source, DataVolume name set.
- pkg/storage/admitters/disks.go: disk names DNS-1123 labels, unique; serial [A-Za-z0-9_.+-]
  up to 256; bus virtio/scsi/sata/usb; bootOrder > 0.
- pkg/network/admitter/netiface.go, netsource.go: interface names [A-Za-z0-9-_], every
  interface has a network and back, one pod network, masquerade only on it, multus names set.
- kubevirt.io/api core/v1 types: cpu cores/sockets/threads are uint32 in Go (a JSON decode error)
  and `format: int32` in the CRD (the API server refuses more).
- CDI pkg/apiserver/webhooks/datavolume-validate.go and util.go: registry URL url.Parse with
  scheme docker|oci, http URL url.ParseRequestURI with scheme http|https|gs, size > 0 and
  >= 1MiB, names <= 253.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

JsonObj = dict[str, Any]
INT32 = 2**31 - 1  # KubeVirt's CRD: cores, sockets, threads are `format: int32` (uint32 in Go)
MEBIBYTE = 2**20

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SERIAL = re.compile(r"[A-Za-z0-9_.+-]+")
_IFACE = re.compile(r"[A-Za-z0-9-_]+")
_QUANTITY = re.compile(
    r"(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<bin>[KMGTPE]i)|[eE](?P<exp>[+-]?[0-9]+)|(?P<dec>[numkMGTPE]?))"
)
_BIN = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_URLCHECK = Path(__file__).parent / "urlcheck" / "main.go"


def quantity(text: Any) -> Decimal | None:
    """The exact value of a resource.Quantity string, None if ParseQuantity would fail."""
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        return None
    with localcontext(prec=len(str(text)) + 40):
        number = Decimal(match["num"])
        if match["bin"]:
            return number * (1 << _BIN[match["bin"]])
        return number.scaleb(int(match["exp"] or _DEC[match["dec"] or ""]))


class GoUrls:
    """Go's url.Parse / url.ParseRequestURI, through a helper built once per source hash."""

    def __init__(self) -> None:
        source = _URLCHECK.read_bytes()
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        folder = cache / "wukong" / "urlcheck" / hashlib.sha256(source).hexdigest()[:16]
        self.binary = folder / "urlcheck"
        if not self.binary.exists():
            # Each process builds in a folder of its own and moves the binary in at once: two
            # pytest-xdist workers may both find it missing on a fresh machine.
            build = folder / f"build-{os.getpid()}"
            build.mkdir(parents=True, exist_ok=True)
            shutil.copy(_URLCHECK, build / "main.go")
            (build / "go.mod").write_text("module urlcheck\n\ngo 1.24\n")
            env = os.environ | {"CGO_ENABLED": "0", "GOFLAGS": ""}
            subprocess.run(["go", "build", "-o", "urlcheck", "."], cwd=build, env=env, check=True)
            os.replace(build / "urlcheck", self.binary)
            shutil.rmtree(build, ignore_errors=True)

    def check(self, requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(error or "", scheme) for each (mode "parse"|"request", url)."""
        if not requests:
            return []
        lines = "".join(f"{mode}\t{url}\n" for mode, url in requests)
        done = subprocess.run(
            [str(self.binary)], input=lines.encode(), capture_output=True, check=True
        )
        answers = done.stdout.decode().splitlines()
        assert len(answers) == len(requests), (requests, answers)
        return [tuple(a.split("\t", 1)) for a in answers]  # type: ignore[misc]


def child_problems(children: list[JsonObj], urls: GoUrls) -> list[str]:
    """Everything KubeVirt, CDI or the API server would refuse in these objects (the
    children of one Wukong), as "Kind/name: problem"; [] when all would be admitted."""
    problems: list[str] = []
    for obj in children:
        kind, name = obj.get("kind", "?"), obj.get("metadata", {}).get("name", "")
        where = f"{kind}/{name}"
        if kind == "DataVolume":
            found = _data_volume(obj, urls)
        else:
            check = {
                "VirtualMachine": _vm,
                "PersistentVolumeClaim": _pvc,
                "NetworkAttachmentDefinition": _nad,
            }
            found = check[kind](obj) if kind in check else []
        found += _meta(obj.get("metadata", {}))
        problems += [f"{where}: {p}" for p in found]
    problems += _clashes(children)
    return problems


def _meta(meta: JsonObj) -> list[str]:
    name = str(meta.get("name", ""))
    out = [] if len(name) <= 253 and _SUBDOMAIN.fullmatch(name) else [f"bad name {name!r}"]
    return out + _labels(meta.get("labels") or {})


def _labels(labels: JsonObj) -> list[str]:
    out = []
    for key, value in labels.items():
        prefix, _, base = str(key).rpartition("/")
        if len(base) > 63 or not _LABEL_NAME.fullmatch(base) or len(prefix) > 253:
            out.append(f"label key {key!r} is not a qualified name")
        if len(str(value)) > 63 or not _LABEL_VALUE.fullmatch(str(value)):
            out.append(f"label {key}={value!r} is not a valid label value (63 characters max)")
    return out


def _vm(vm: JsonObj) -> list[str]:
    out: list[str] = []
    spec = vm.get("spec", {})
    if spec.get("runStrategy") not in ("Always", "RerunOnFailure", "Manual", "Halted", "Once"):
        out.append(f"runStrategy {spec.get('runStrategy')!r}")
    template = spec.get("template", {})
    # virt-controller creates the VMI with the template's labels: the API server checks them.
    out += [
        f"VMI would be refused: {p}"
        for p in _labels(template.get("metadata", {}).get("labels") or {})
    ]
    tspec = template.get("spec", {})
    domain = tspec.get("domain", {})
    for field in ("cores", "sockets", "threads"):
        value = (domain.get("cpu") or {}).get(field)
        if value is not None and not (isinstance(value, int) and 0 <= value <= INT32):
            out.append(f"cpu.{field} {value} does not fit an int32")
    requests = (domain.get("resources") or {}).get("requests") or {}
    limits = (domain.get("resources") or {}).get("limits") or {}
    guest = (domain.get("memory") or {}).get("guest")
    for what, text in (("requests.memory", requests.get("memory")), ("memory.guest", guest)):
        if text is not None and quantity(text) is None:
            out.append(f"{what} {text!r} is not a quantity")
    memory = quantity(requests.get("memory")) if requests.get("memory") is not None else None
    if memory is not None and math.ceil(memory) > 0 and memory < Decimal(10**6):
        out.append(f"requests.memory {requests['memory']!r}: must be greater than or equal to 1M")
    if memory is not None and memory < 0:
        out.append("requests.memory is negative")
    if guest is not None and limits.get("memory") is not None:
        if (quantity(guest) or 0) > (quantity(limits["memory"]) or 0):
            out.append("memory.guest above the memory limit")
    if guest is None and memory is None:
        out.append("no memory requested")
    devices = domain.get("devices") or {}
    out += _disks(devices.get("disks") or [], tspec.get("volumes") or [])
    out += _networks(devices.get("interfaces") or [], tspec.get("networks") or [])
    return out


def _disks(disks: list[JsonObj], volumes: list[JsonObj]) -> list[str]:
    out = []
    names = [d.get("name") for d in disks]
    volume_names = [v.get("name") for v in volumes]
    for disk in disks:
        name = str(disk.get("name"))
        if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
            out.append(f"disk name {name!r} is not a DNS-1123 label")
        serial = disk.get("serial")
        if serial and (not _SERIAL.fullmatch(serial) or len(serial) > 256):
            out.append(f"disk {name}: serial {serial!r} is not [A-Za-z0-9_.+-], at most 256")
        bus = (disk.get("disk") or {}).get("bus")
        if bus not in (None, "virtio", "scsi", "sata", "usb"):
            out.append(f"disk {name}: unrecognized bus {bus!r}")
        order = disk.get("bootOrder")
        if order is not None and order < 1:
            out.append(f"disk {name}: bootOrder must be > 0")
        if name not in volume_names:
            out.append(f"disk {name} has no volume")
    for dup in {n for n in names if names.count(n) > 1}:
        out.append(f"two disks are named {dup!r}")
    for dup in {n for n in volume_names if volume_names.count(n) > 1}:
        out.append(f"two volumes are named {dup!r}")
    for volume in volumes:
        sources = [k for k in volume if k != "name"]
        if len(sources) != 1:
            out.append(f"volume {volume.get('name')} must have exactly one source")
        if "dataVolume" in volume and not (volume["dataVolume"] or {}).get("name"):
            out.append(f"volume {volume.get('name')}: DataVolume 'name' must be set")
        if "persistentVolumeClaim" in volume and not volume["persistentVolumeClaim"].get(
            "claimName"
        ):
            out.append(f"volume {volume.get('name')}: claimName must be set")
        if volume.get("name") not in names:
            out.append(f"volume {volume.get('name')} has no disk")
    return out


def _networks(interfaces: list[JsonObj], networks: list[JsonObj]) -> list[str]:
    out = []
    iface_names = [i.get("name") for i in interfaces]
    net_names = [n.get("name") for n in networks]
    by_name = {n.get("name"): n for n in networks}
    for iface in interfaces:
        name = str(iface.get("name"))
        if not _IFACE.fullmatch(name):
            out.append(f"interface name {name!r}: only letters, digits, '-' and '_'")
        network = by_name.get(name)
        if network is None:
            out.append(f"interface {name} has no network")
        elif "masquerade" in iface and "pod" not in network:
            out.append(f"interface {name}: masquerade only with the pod network")
    for network in networks:
        if network.get("name") not in iface_names:
            out.append(f"network {network.get('name')} has no interface")
        if "multus" in network and not (network["multus"] or {}).get("networkName"):
            out.append(f"network {network.get('name')}: multus needs a networkName")
    if sum(1 for n in networks if "pod" in n) > 1:
        out.append("more than one pod network")
    for dup in {n for n in net_names if net_names.count(n) > 1}:
        out.append(f"two networks are named {dup!r}")
    for dup in {n for n in iface_names if iface_names.count(n) > 1}:
        out.append(f"two interfaces are named {dup!r}")
    return out


def _size(text: Any) -> list[str]:
    value = quantity(text)
    if value is None:
        return [f"size {text!r} is not a quantity"]
    if value <= 0:
        return ["size can't be equal or less than zero"]
    if math.ceil(value) < MEBIBYTE:
        return [f"size {text!r} should be at least 1MiB"]
    return []


def _data_volume(dv: JsonObj, urls: GoUrls) -> list[str]:
    spec = dv.get("spec", {})
    storage = spec.get("storage") or spec.get("pvc") or {}
    out = _size(((storage.get("resources") or {}).get("requests") or {}).get("storage"))
    if len(str(storage.get("storageClassName") or "")) > 253:
        out.append("storageClassName longer than 253")
    source = spec.get("source") or {}
    registry, http = (
        (source.get("registry") or {}).get("url"),
        (source.get("http") or {}).get("url"),
    )
    if ref := spec.get("sourceRef"):  # validateSourceRef: a DataSource, named
        if ref.get("kind") != "DataSource" or not ref.get("name"):
            out.append(f"sourceRef {ref}: CDI takes a named DataSource only")
        return out
    if "pvc" in source:  # a clone: CDI wants both (datavolume-validate.go)
        clone = source.get("pvc") or {}
        if not clone.get("namespace") or not clone.get("name"):
            out.append("spec.source.PVC source PVC is not valid")
        return out
    if registry is not None:
        error, scheme = urls.check([("parse", registry)])[0]
        if error:
            out.append(f"Illegal registry source URL {registry} ({error})")
        elif scheme not in ("docker", "oci"):
            out.append(f"Illegal registry source URL scheme {registry}")
    if http is not None:
        error, scheme = urls.check([("request", http)])[0]
        if error or scheme not in ("http", "https", "gs"):
            out.append(f"Invalid source URL: {http} ({error or scheme})")
    if registry is None and http is None:
        out.append("no source")
    return out


def _pvc(pvc: JsonObj) -> list[str]:
    spec = pvc.get("spec", {})
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    out = _size(request)
    modes = spec.get("accessModes") or []
    if not modes or any(
        m not in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
        for m in modes
    ):
        out.append(f"accessModes {modes}")
    return out


def _nad(nad: JsonObj) -> list[str]:
    out = []
    name = nad.get("metadata", {}).get("name", "")
    if len(name) > 63:
        out.append("a NAD name is a DNS-1123 label (63 characters max)")
    try:
        config = json.loads(nad.get("spec", {}).get("config") or "")
    except json.JSONDecodeError:
        return [*out, "config is not JSON"]
    for plugin in config.get("plugins") or [config]:
        bridge = plugin.get("bridge")
        if plugin.get("type") == "bridge" and bridge is not None:
            if not 1 <= len(bridge) <= 15 or re.search(r"[/\s:]", bridge):
                out.append(f"bridge {bridge!r} is not a Linux interface name (15 max)")
        vlan = plugin.get("vlan")
        if vlan is not None and not 0 <= vlan <= 4094:
            out.append(f"vlan {vlan} out of range")
    return out


def _clashes(children: list[JsonObj]) -> list[str]:
    """Two disks of one VM on one serial (the guest agent could not tell them apart)."""
    out = []
    for vm in (c for c in children if c.get("kind") == "VirtualMachine"):
        disks = vm["spec"]["template"]["spec"]["domain"]["devices"].get("disks") or []
        serials = [d.get("serial") for d in disks if d.get("serial")]
        for dup in {s for s in serials if serials.count(s) > 1}:
            out.append(f"two disks share the serial {dup!r}")
    return out
