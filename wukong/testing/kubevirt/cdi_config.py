"""CDI's configuration: the `CDI` resource and the `CDIConfig` its operator keeps.

An administrator sets CDI's filesystem overhead in the CDI resource's `spec.config`
(`filesystemOverhead: {global, storageClass}`); CDI's config controller copies that config,
whole, into CDIConfig 'config''s spec (the CDI resource has cdi-operator's
`configAuthority` annotation) and settles its status: the global value (0.06
unless set, CDI v1.65 common.go DefaultGlobalOverhead) and one value per StorageClass in the
cluster, the class's own when set and valid, else the global one
(config-controller.go reconcileFilesystemOverhead). CDI pads a DataVolume's claim by the
value of the claim's class (`overhead_for`), and virt-controller, seeing exactly one CDI
resource, reads the same status for the VMI's `persistentVolumeClaimInfo.filesystemOverhead`
(without one it takes 0.055).

The CDIConfig CRD has no status subresource: the object itself is written.
"""

from __future__ import annotations

import re

from ._informer import Informer
from ._kube import ApiError, JsonObj, Kube, Resource
from ._queue import Controller
from .objects import annotation

CDIS = Resource("cdi.kubevirt.io", "v1beta1", "cdis", namespaced=False)
CDI_CONFIGS = Resource("cdi.kubevirt.io", "v1beta1", "cdiconfigs", namespaced=False)
CDI_NAME, CONFIG_NAME = "cdi", "config"
DEFAULT_GLOBAL_OVERHEAD = "0.06"
DEFAULT_CLASS_ANN = "storageclass.kubernetes.io/is-default-class"
VIRT_DEFAULT_CLASS_ANN = "storageclass.kubevirt.io/is-default-virt-class"
# On the CDI resource (cdi-operator sets it on install): its spec.config is CDIConfig's spec.
CONFIG_AUTHORITY_ANN = "cdi.kubevirt.io/configAuthority"
_PERCENT = re.compile(r"^(0(?:\.\d{1,3})?|1)$")  # the CRD's pattern for a Percent


async def install_cdi(kube: Kube) -> None:
    """The CDI resource and its CDIConfig, as a CDI install leaves them (existing ones are
    left alone: they are cluster-wide, and a test may have set an overhead)."""
    for res, kind, meta in (
        (CDIS, "CDI", {"name": CDI_NAME, "annotations": {CONFIG_AUTHORITY_ANN: ""}}),
        (CDI_CONFIGS, "CDIConfig", {"name": CONFIG_NAME}),
    ):
        obj = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": kind, "metadata": meta}
        try:
            await kube.create(res, None, {**obj, "spec": {}})
        except ApiError as err:
            if err.status != 409:
                raise


def settled_overhead(spec: JsonObj, classes: list[str]) -> JsonObj:
    """The status CDI's config controller gives `spec.filesystemOverhead` over `classes`."""
    wanted = spec.get("filesystemOverhead") or {}
    given = str(wanted.get("global") or "")
    overall = given if _PERCENT.match(given) else DEFAULT_GLOBAL_OVERHEAD
    per_class = wanted.get("storageClass") or {}
    return {
        "global": overall,
        "storageClass": {
            name: per_class[name] if _PERCENT.match(str(per_class.get(name) or "")) else overall
            for name in classes
        },
    }


def overhead_for(config: JsonObj | None, storage_class: str | None, classes: Informer) -> float:
    """The overhead CDI pads a claim of `storage_class` by (GetFilesystemOverheadForStorage
    Class): the class's value, the default class's when none is named, else the global
    one; 0 without a CDIConfig."""
    settled = ((config or {}).get("status") or {}).get("filesystemOverhead")
    if not settled:
        return 0.0
    name = storage_class or default_class(classes)
    value = (settled.get("storageClass") or {}).get(name or "", settled.get("global"))
    return float(value or 0)


def default_class(classes: Informer) -> str | None:
    """CDI's default: the class marked default for VMs, else Kubernetes' default class."""
    for ann in (VIRT_DEFAULT_CLASS_ANN, DEFAULT_CLASS_ANN):
        marked = [sc for sc in classes.list() if annotation(sc, ann) == "true"]
        if marked:
            newest = max(marked, key=lambda sc: sc["metadata"].get("creationTimestamp") or "")
            return str(newest["metadata"]["name"])
    return None


class CDIConfigController(Controller):
    """CDI's config controller: CDIConfig's spec from the CDI resource, and its status."""

    name = "cdi-config"
    workers = 1

    def __init__(self, kube: Kube, cdis: Informer, configs: Informer, classes: Informer):
        super().__init__()
        self.kube, self.cdis, self.configs, self.classes = kube, cdis, configs, classes
        for informer in (cdis, configs, classes):
            informer.handlers.append(lambda _obj: self.enqueue(CONFIG_NAME))

    async def reconcile(self, key: str) -> float | None:
        config = self.configs.get(None, CONFIG_NAME)
        if config is None:
            return None
        cdi = self.cdis.get(None, CDI_NAME)
        spec = config.get("spec") or {}
        if cdi is not None and annotation(cdi, CONFIG_AUTHORITY_ANN) is not None:
            # config-controller.go setOperatorParams: the CDI resource's config, whole.
            spec = (cdi.get("spec") or {}).get("config") or {}
        classes = sorted(sc["metadata"]["name"] for sc in self.classes.list())
        status = {**(config.get("status") or {})}
        status["filesystemOverhead"] = settled_overhead(spec, classes)
        if spec == (config.get("spec") or {}) and status == (config.get("status") or {}):
            return None
        written = {**config, "spec": spec, "status": status}
        self.configs.apply(await self.kube.replace(CDI_CONFIGS, written))
        return None
