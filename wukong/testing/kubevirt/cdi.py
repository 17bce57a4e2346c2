"""CDI's DataVolume controller: creates the claim, then walks the import phases.

Importer pods are not simulated; progress is a function of time since the claim bound.
A failing source behaves like CDI with a crash-looping importer: the phase stays
ImportInProgress and restartCount grows; each restarted importer runs a while (the Running
condition True, "Pod is running") and fails again (False with the importer's error), as CDI
copies the pod's state at each restart (setAnnotationsFromPodWithPrefix). The first half of
each `import_retry_delay` runs, the second fails (import_failure_mode="fail" gives phase
Failed instead).

A clone (`source.pvc`) waits for its source PVC as CDI does: no claim, a Warning Event
`CloneWithoutSource` (CDI's pvc-clone-controller.go), and a look again each second (CDI
watches the source instead). It also waits, in phase `CloneScheduled`, while a pod that is
not done mounts the source (a running VM's virt-launcher pod): a Warning `CloneSourceInUse`
per pod, "pod <ns>/<name> using PersistentVolumeClaim <source>" (CDI's isSourceReadyToClone
and GetPodsUsingPVCs), and a look again each second (CDI: every 5 s).

CDI's datavolume-mutate webhook refuses a DataVolume whose DataSource, or the namespace of
the PVC it clones, does not exist (`cdi_admission.py`, served by `cdi_webhook.py`); who may
clone what, its other half, is an admission policy with its rule and words
(`CLONE_AUTHORIZATION`).
"""

from __future__ import annotations

import asyncio
import math

from ._informer import Informer
from ._kube import DATAVOLUMES, EVENTS, PVCS, ApiError, JsonObj, Kube, Resource, key_of
from ._queue import Controller
from .cdi_config import CONFIG_NAME, overhead_for
from .config import ANN_FAIL_IMPORT, SimConfig
from .events import event
from .faults import Faults
from .node import PODS
from .objects import (
    annotation,
    controlled_by,
    deleting,
    flag,
    owner_ref,
    phase,
    quantity_bytes,
    set_condition,
)
from .storage import BIND_IMMEDIATE_ANN

POPULATED_FOR_ANN = "cdi.kubevirt.io/storage.populatedFor"
# On every claim CDI makes for a DataVolume: that DataVolume's uid (newPersistentVolumeClaim).
# Such a claim is never adopted by that DataVolume (util.go AllowClaimAdoption).
CREATED_FOR_ANN = "cdi.kubevirt.io/createdForDataVolume"
# On a DataVolume: whether it may adopt a claim it did not make, whatever the feature gate.
ALLOW_ADOPTION_ANN = "cdi.kubevirt.io/allowClaimAdoption"
# In CDIConfig's spec.featureGates: any DataVolume may adopt a claim of its name it did not
# make (featuregates.DataVolumeClaimAdoption); off by default.
CLAIM_ADOPTION_GATE = "DataVolumeClaimAdoption"
# A DataVolume whose claim someone else fills (KubeVirt's restore): CDI makes no claim for it
# and leaves it alone (controller-base.go dvIsPrePopulated).
PRE_POPULATED_ANN = "cdi.kubevirt.io/storage.prePopulated"
# Written on every DataVolume CDI syncs (util.go updateDataVolumeUseCDIPopulator): "false"
# here, the simulated class has no CSIDriver. KubeVirt's restore JSON-patches a DataVolume's
# annotations one by one and fails on one that has none.
USE_POPULATOR_ANN = "cdi.kubevirt.io/storage.usePopulator"
CDI_LABELS = {
    "app": "containerized-data-importer",
    "app.kubernetes.io/component": "storage",
    "app.kubernetes.io/managed-by": "cdi-controller",
}


DATASOURCES = Resource("cdi.kubevirt.io", "v1beta1", "datasources")
_POLICIES = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", False)
_BINDINGS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", False
)
_CLONED = "object.spec.source.pvc"
_MAY_CLONE = " || ".join(
    f"authorizer.group('{group}').resource('{resource}'){sub}"
    f".namespace({_CLONED}.namespace).name({_CLONED}.name).check('create').allowed()"
    for group, resource, sub in (
        ("cdi.kubevirt.io", "datavolumes", ".subresource('source')"),
        ("", "pods", ""),
    )
)
CLONE_AUTHORIZATION: tuple[JsonObj, JsonObj] = (
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "sim-cdi-clone-authorization"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["cdi.kubevirt.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE"],
                        "resources": ["datavolumes"],
                    }
                ]
            },
            # CanUserClonePVC: a clone within the namespace needs no more.
            "matchConditions": [
                {
                    "name": "clones-another-namespace",
                    "expression": f"has(object.spec.source) && has({_CLONED}) && "
                    f"has({_CLONED}.namespace) && {_CLONED}.namespace != request.namespace",
                }
            ],
            # sendSubjectAccessReviewsPvc: datavolumes/source or pods, create, on the source.
            # CDI's webhook answers 422 with these words.
            "validations": [
                {
                    "expression": _MAY_CLONE,
                    "messageExpression": "'User ' + request.userInfo.username + ' has "
                    f"insufficient permissions in clone source namespace ' + {_CLONED}.namespace",
                    "reason": "Invalid",
                }
            ],
        },
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "sim-cdi-clone-authorization"},
        "spec": {
            "policyName": "sim-cdi-clone-authorization",
            "validationActions": ["Deny"],
        },
    },
)


async def install_clone_authorization(kube: Kube) -> None:
    """CDI's clone check, once per cluster (simulators of other namespaces share it)."""
    for resource, body in zip((_POLICIES, _BINDINGS), CLONE_AUTHORIZATION, strict=True):
        try:
            await kube.create(resource, None, body)
        except ApiError as err:
            if err.status != 409:
                raise


def clone_source(dv: JsonObj) -> tuple[str, str] | None:
    """(namespace, name) of the PVC a DataVolume clones; None when it imports (or names a
    DataSource: `data_source_of`)."""
    pvc = ((dv.get("spec") or {}).get("source") or {}).get("pvc")
    if not pvc:
        return None
    return str(pvc.get("namespace") or dv["metadata"]["namespace"]), str(pvc.get("name"))


def data_source_of(dv: JsonObj) -> tuple[str, str] | None:
    """(namespace, name) of the DataSource a DataVolume's sourceRef names."""
    ref = (dv.get("spec") or {}).get("sourceRef") or {}
    if ref.get("kind") != "DataSource":
        return None
    return str(ref.get("namespace") or dv["metadata"]["namespace"]), str(ref.get("name"))


def pointed_pvc(data_source: JsonObj) -> tuple[str, str] | None:
    """The PVC a DataSource points to (CDI's spec.source.pvc; its namespace defaults to the
    DataSource's)."""
    pvc = ((data_source.get("spec") or {}).get("source") or {}).get("pvc") or {}
    if not pvc.get("name"):
        return None
    return str(pvc.get("namespace") or data_source["metadata"]["namespace"]), str(pvc["name"])


def source_of(dv: JsonObj) -> tuple[str, str]:
    """(kind, url): kind is http, registry, blank, pvc, upload, ... ; url may be empty."""
    source = (dv.get("spec") or {}).get("source") or {}
    for kind, body in source.items():
        return str(kind), str((body or {}).get("url", ""))
    return ("blank", "") if not (dv.get("spec") or {}).get("sourceRef") else ("sourceRef", "")


def failure_message(kind: str, url: str) -> str:
    """What CDI's importer reports when the source cannot be read."""
    if kind == "registry":
        return (
            f"Unable to process data: Unable to transfer source data to scratch space: "
            f"Failed to read registry image: Could not fetch image manifest for {url}: "
            "reading manifest: manifest unknown"
        )
    return (
        "Unable to connect to http data source: expected status code 200, got 404. "
        "Status: 404 Not Found"
    )


POD_RUNNING = "Pod is running"  # CDI's PodRunningReason, the Running condition's reason
TRANSFER_RUNNING = "TransferRunning"  # the Ready condition's reason while an importer runs
ALIGN = 1 << 20  # CDI's DefaultAlignBlockSize


def with_overhead(size: str, overhead: float) -> str:
    """The size CDI asks for a Filesystem claim of a DataVolume's `storage` API (not `pvc`):
    aligned up to 1 MiB, then the filesystem's overhead on top, in bytes (util.go
    GetRequiredSpace, through renderPvcSpecVolumeSize; a 10Gi disk at CDI's default 0.06
    asks 11381663335)."""
    aligned = -(-quantity_bytes(size) // ALIGN) * ALIGN
    return str(math.ceil(aligned * (1 + overhead)))


def claim_manifest(dv: JsonObj, overhead: float = 0.0) -> JsonObj:
    """The PVC CDI creates for a DataVolume (same name, owned by it)."""
    spec = dv.get("spec") or {}
    storage = spec.get("storage") or spec.get("pvc") or {}
    kind, url = source_of(dv)
    mode = storage.get("volumeMode") or "Filesystem"
    requests = dict((storage.get("resources") or {}).get("requests") or {})
    if "storage" in spec and mode == "Filesystem" and requests.get("storage"):
        requests["storage"] = with_overhead(requests["storage"], overhead)
    pvc_spec: JsonObj = {
        "accessModes": storage.get("accessModes") or ["ReadWriteOnce"],
        "volumeMode": mode,
        "resources": {"requests": requests},
    }
    if storage.get("storageClassName"):
        pvc_spec["storageClassName"] = storage["storageClassName"]
    annotations = {
        "cdi.kubevirt.io/storage.contentType": spec.get("contentType", "kubevirt"),
        "cdi.kubevirt.io/storage.import.source": kind if kind != "blank" else "none",
        CREATED_FOR_ANN: str(dv["metadata"].get("uid") or ""),
    }
    if url:
        annotations["cdi.kubevirt.io/storage.import.endpoint"] = url
    if annotation(dv, BIND_IMMEDIATE_ANN) is not None:
        annotations[BIND_IMMEDIATE_ANN] = "true"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": dv["metadata"]["name"],
            "namespace": dv["metadata"]["namespace"],
            # CDI's own label, then every label of the DataVolume (newPersistentVolumeClaim).
            "labels": {**CDI_LABELS, **(dv["metadata"].get("labels") or {})},
            "annotations": annotations,
            "ownerReferences": [owner_ref(dv, "DataVolume", "cdi.kubevirt.io/v1beta1")],
        },
        "spec": pvc_spec,
    }


class DataVolumeController(Controller):
    """Drives DataVolume status from its PVC and a simulated importer."""

    name = "cdi"

    def __init__(
        self,
        kube: Kube,
        cfg: SimConfig,
        faults: Faults,
        dvs: Informer,
        pvcs: Informer,
        classes: Informer,
        pods: Informer,
        configs: Informer,
    ) -> None:
        super().__init__()
        self.kube, self.cfg, self.faults = kube, cfg, faults
        self.dvs, self.pvcs, self.classes, self.pods = dvs, pvcs, classes, pods
        self.configs = configs
        self._bound_at: dict[str, float] = {}
        self._failed: set[str] = set()  # DataVolumes whose importer failed
        self._told_no_source: set[str] = set()
        self._told_in_use: set[tuple[str, str]] = set()
        dvs.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        pvcs.handlers.append(lambda obj: self.enqueue(key_of(obj)))

    async def reconcile(self, key: str) -> float | None:
        """Ensure the claim, then publish phase/progress/conditions."""
        ns, _, name = key.partition("/")
        dv = self.dvs.get(ns, name)
        if dv is None or deleting(dv):
            return None
        pvc = self.pvcs.get(ns, name)
        if pvc is None and annotation(dv, PRE_POPULATED_ANN) is not None:
            # Nothing is made for it, but its status says the claim is gone (CDI's
            # updateStatus: shouldSetDataVolumePending, updateConditions without a claim).
            # KubeVirt's in-place restore deletes the claim of a DataVolume it marked so,
            # and has no handler for a claim's deletion: this status update is what wakes
            # it to make the claim again from the snapshot (restore_base.go handleDataVolume).
            await self._write_status(dv, self._no_claim(dv))
            return None
        if pvc is None and (ref := data_source_of(dv)) is not None:
            # CDI's webhook refused this DataVolume had its DataSource been missing then; one
            # deleted since, or pointing to a PVC that is missing, is waited for as CDI does.
            found = await self.kube.get_or_none(DATASOURCES, *ref)
            source = pointed_pvc(found) if found is not None else None
            if source is None or await self.kube.get_or_none(PVCS, *source) is None:
                await self._no_source(dv, source[1] if source else ref[1])
                return 1.0
            if await self._source_in_use(dv, source):
                return 1.0
        elif pvc is None and (source := clone_source(dv)) is not None:
            # Another namespace's source is not in this simulator's informer: asked for.
            if await self.kube.get_or_none(PVCS, *source) is None:
                await self._no_source(dv, source[1])
                return 1.0
            if await self._source_in_use(dv, source):
                return 1.0
        if pvc is None:
            if annotation(dv, USE_POPULATOR_ANN) is None:
                marked = {"metadata": {"annotations": {USE_POPULATOR_ANN: "false"}}}
                self.dvs.apply(await self.kube.merge_patch(DATAVOLUMES, ns, name, marked))
            try:
                storage = (dv.get("spec") or {}).get("storage") or {}
                config = self.configs.get(None, CONFIG_NAME)
                overhead = overhead_for(config, storage.get("storageClassName"), self.classes)
                claim = claim_manifest(dv, overhead)
                self.pvcs.apply(await self.kube.create(PVCS, ns, claim))
            except ApiError as err:
                if err.status != 409:
                    raise
            return None
        gate = CLAIM_ADOPTION_GATE in _feature_gates(self.configs.get(None, CONFIG_NAME))
        if not controlled_by(pvc, dv) and takes_over(pvc, dv, gate):
            # CDI's validatePVC: a claim that needs no work is taken over
            # (SetControllerReference, which fails on a claim another object controls).
            refs = pvc["metadata"].get("ownerReferences") or []
            if not any(r.get("controller") for r in refs):
                body = {
                    "metadata": {
                        "ownerReferences": [
                            *refs,
                            owner_ref(dv, "DataVolume", "cdi.kubevirt.io/v1beta1"),
                        ],
                        "resourceVersion": pvc["metadata"]["resourceVersion"],
                    }
                }
                self.pvcs.apply(await self.kube.merge_patch(PVCS, ns, name, body))
                pvc = self.pvcs.get(ns, name) or pvc
        status, after = self._status(dv, pvc)
        await self._write_status(dv, status)
        return after

    async def _write_status(self, dv: JsonObj, status: JsonObj) -> None:
        """Write `status` as the DataVolume's whole status, if it changed."""
        old = dv.get("status") or {}
        if status != old:
            body = {"status": {**{k: None for k in old if k not in status}, **status}}
            ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
            self.dvs.apply(await self.kube.merge_patch(DATAVOLUMES, ns, name, body, "status"))

    @staticmethod
    def _no_claim(dv: JsonObj) -> JsonObj:
        """A prePopulated DataVolume's status while its claim is gone: Pending, not bound."""
        status = dict(dv.get("status") or {})
        conds = list(status.get("conditions") or [])
        conds = set_condition(conds, "Bound", "False", "NotFound", "No PVC found")
        conds = set_condition(conds, "Ready", "False")
        status["conditions"] = set_condition(conds, "Running", "False")
        status["phase"] = "Pending"
        return status

    async def _no_source(self, dv: JsonObj, source: str) -> None:
        """CDI's Warning about a clone whose source PVC does not exist, once."""
        uid = dv["metadata"]["uid"]
        if uid in self._told_no_source:
            return
        self._told_no_source.add(uid)
        told = event(
            dv,
            "DataVolume",
            "CloneWithoutSource",
            f"The source pvc {source} doesn't exist",
            component="datavolume-pvc-clone-controller",
            host="",
            api_version="cdi.kubevirt.io/v1beta1",
            type_="Warning",
        )
        await self.kube.create(EVENTS, dv["metadata"]["namespace"], told)

    async def _source_in_use(self, dv: JsonObj, source: tuple[str, str]) -> bool:
        """CDI's isSourceReadyToClone: a pod not done mounts the source PVC. Then the
        DataVolume is CloneScheduled, with a Warning per pod (once each here; CDI's recorder
        folds its repeats into one Event's count)."""
        namespace, claim = source
        if self.pods.namespace in (None, namespace):
            pods = self.pods.list(namespace)
        else:
            pods = (await self.kube.request("GET", PODS.path(namespace))).get("items") or []
        using = [
            p
            for p in pods
            if phase(p) not in ("Succeeded", "Failed")
            and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                for v in (p.get("spec") or {}).get("volumes") or []
            )
        ]
        if not using:
            return False
        uid = dv["metadata"]["uid"]
        for pod in using:
            where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            if (uid, where) in self._told_in_use:
                continue
            self._told_in_use.add((uid, where))
            told = event(
                dv,
                "DataVolume",
                "CloneSourceInUse",
                f"pod {where} using PersistentVolumeClaim {claim}",
                component="datavolume-pvc-clone-controller",
                host="",
                api_version="cdi.kubevirt.io/v1beta1",
                type_="Warning",
            )
            await self.kube.create(EVENTS, dv["metadata"]["namespace"], told)
        if (dv.get("status") or {}).get("phase") != "CloneScheduled":
            body = {"status": {"phase": "CloneScheduled", "progress": "N/A"}}
            ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
            self.dvs.apply(await self.kube.merge_patch(DATAVOLUMES, ns, name, body, "status"))
        return True

    def _status(self, dv: JsonObj, pvc: JsonObj) -> tuple[JsonObj, float | None]:
        old = dv.get("status") or {}
        name = dv["metadata"]["name"]
        conds = list(old.get("conditions") or [])
        status: JsonObj = {"claimName": name, "progress": "N/A"}
        if not controlled_by(pvc, dv):
            status["phase"] = "Pending"
            msg = f'Resource "{name}" already exists and is not managed by DataVolume'
            status["conditions"] = set_condition(conds, "Bound", "False", "ErrClaimNotValid", msg)
            return status, None
        if _populated_for(pvc, dv):
            # pvcRequiresWork false: Succeeded, bound or not (reconcileDataVolumeStatus).
            return self._succeeded(status, conds), None
        if phase(pvc) != "Bound":
            sc = self.classes.get(None, (pvc.get("spec") or {}).get("storageClassName") or "")
            wffc = (sc or {}).get("volumeBindingMode") == "WaitForFirstConsumer" and (
                annotation(pvc, BIND_IMMEDIATE_ANN) is None
            )
            status["phase"] = "WaitForFirstConsumer" if wffc else "Pending"
            conds = set_condition(conds, "Bound", "False", "Pending", f"PVC {name} Pending")
            conds = set_condition(conds, "Running", "False", status["phase"])
            status["conditions"] = set_condition(conds, "Ready", "False", status["phase"])
            return status, None
        conds = set_condition(conds, "Bound", "True", "Bound", f"PVC {name} Bound")
        now = asyncio.get_running_loop().time()
        elapsed = now - self._bound_at.setdefault(dv["metadata"]["uid"], now)
        kind, url = source_of(dv)
        if kind == "blank":
            return self._succeeded(status, conds), None
        step = self.cfg.import_step_delay
        scheduled, running = (
            ("CloneScheduled", "CloneInProgress")
            if kind in ("pvc", "sourceRef")
            else ("ImportScheduled", "ImportInProgress")
        )
        if elapsed < step:
            status["phase"] = scheduled
            conds = set_condition(conds, "Running", "False", "Pending")
            status["conditions"] = set_condition(conds, "Ready", "False", scheduled)
            return status, step - elapsed
        uid = dv["metadata"]["uid"]
        if flag(ANN_FAIL_IMPORT, dv) or self.faults.import_fails(
            url, self.cfg.failing_import_markers
        ):
            self._failed.add(uid)
            return self._failing(status, conds, kind, url, elapsed - step)
        if uid in self._failed:  # the source works again: the next importer starts over
            self._failed.discard(uid)
            self._bound_at[uid] = now - step
            elapsed = step
        if old.get("restartCount"):  # CDI keeps the count (the claim's annotation)
            status["restartCount"] = old["restartCount"]
        done = int((elapsed - step) / step) if step > 0 else self.cfg.import_steps
        if done >= self.cfg.import_steps:
            return self._succeeded(status, conds), None
        status["phase"] = running
        status["progress"] = f"{100.0 * done / self.cfg.import_steps:.2f}%"
        conds = set_condition(conds, "Running", "True", POD_RUNNING)
        status["conditions"] = set_condition(conds, "Ready", "False", TRANSFER_RUNNING)
        return status, step - (elapsed - step) % step

    def _succeeded(self, status: JsonObj, conds: list[JsonObj]) -> JsonObj:
        status["phase"], status["progress"] = "Succeeded", "100.0%"
        conds = set_condition(conds, "Running", "False", "Completed")
        status["conditions"] = set_condition(conds, "Ready", "True")
        return status

    def _failing(
        self, status: JsonObj, conds: list[JsonObj], kind: str, url: str, failing_for: float
    ) -> tuple[JsonObj, float | None]:
        message = failure_message(kind, url)
        if self.cfg.import_failure_mode == "fail":
            conds = set_condition(conds, "Running", "False", "Error", message)
            status["phase"] = "Failed"
            status["conditions"] = set_condition(conds, "Ready", "False", "Failed")
            return status, None
        retry = max(self.cfg.import_retry_delay, 0.05)  # 0 would rewrite the status non-stop
        restarts, into = divmod(failing_for, retry)
        status["phase"] = "ImportInProgress"
        status["restartCount"] = int(restarts)  # the kubelet counts a restart as it starts
        if into < retry / 2:  # this attempt's importer runs: CDI says so, error forgotten
            conds = set_condition(conds, "Running", "True", POD_RUNNING)
            status["conditions"] = set_condition(conds, "Ready", "False", TRANSFER_RUNNING)
            return status, retry / 2 - into
        status["conditions"] = set_condition(conds, "Running", "False", "Error", message)
        return status, retry - into


def _populated_for(pvc: JsonObj, dv: JsonObj) -> bool:
    """The claim says it holds this DataVolume's data already (populatedFor)."""
    return bool(annotation(pvc, POPULATED_FOR_ANN) == dv["metadata"]["name"])


def takes_over(pvc: JsonObj, dv: JsonObj, gate: bool) -> bool:
    """Whether CDI makes `pvc`, which `dv` does not control, `dv`'s (controller-base.go
    pvcRequiresWork false): populated for it; else not made for it (createdForDataVolume,
    which KubeVirt's restore strips) and adoption allowed, by the DataVolume's annotation if
    it has one, else by the feature gate (`gate`: util.go AllowClaimAdoption)."""
    if _populated_for(pvc, dv):
        return True
    made_for = annotation(pvc, CREATED_FOR_ANN)
    if made_for is not None and made_for == dv["metadata"].get("uid"):
        return False
    allowed = annotation(dv, ALLOW_ADOPTION_ANN)
    if allowed is not None:
        return allowed in ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool
    return gate


def _feature_gates(config: JsonObj | None) -> list[str]:
    """CDIConfig's spec.featureGates (featuregates.go getConfig)."""
    return list(((config or {}).get("spec") or {}).get("featureGates") or [])


class DataSourceController(Controller):
    """CDI's DataSource controller for PVC sources (`datasource-controller.go`): status.source
    is the PVC it points to, and Ready says whether that PVC can be cloned: "PVC not found"
    (NotFound), "Import DataVolume phase P" while the DataVolume of that name has not
    succeeded, else True "DataSource is ready to be consumed". A source in another
    namespace is asked for (not in this simulator's informers), again each second until it
    is ready."""

    name = "cdi-datasources"

    def __init__(self, kube: Kube, sources: Informer, dvs: Informer, pvcs: Informer) -> None:
        super().__init__()
        self.kube, self.sources = kube, sources
        sources.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        # A PVC or DataVolume of this namespace: every DataSource here may point to it.
        for informer in (dvs, pvcs):
            informer.handlers.append(lambda _obj: self._everyone())

    def _everyone(self) -> None:
        for source in self.sources.list():
            self.enqueue(key_of(source))

    async def reconcile(self, key: str) -> float | None:
        """Publish status.source and the Ready condition."""
        ns, _, name = key.partition("/")
        source = self.sources.get(ns, name)
        if source is None or deleting(source):
            return None
        pointed = pointed_pvc(source)
        conds = list((source.get("status") or {}).get("conditions") or [])
        status: JsonObj = {"source": {}}
        ready: tuple[str, str, str]
        if pointed is None:
            ready = ("False", "NoSource", "No source PVC set")
        else:
            status["source"] = {"pvc": {"namespace": pointed[0], "name": pointed[1]}}
            pvc = await self.kube.get_or_none(PVCS, *pointed)
            dv = await self.kube.get_or_none(DATAVOLUMES, *pointed)
            dv_phase = str(((dv or {}).get("status") or {}).get("phase") or "")
            if pvc is None:
                ready = ("False", "NotFound", "PVC not found")
            elif dv is not None and dv_phase != "Succeeded":
                ready = ("False", dv_phase or "Pending", f"Import DataVolume phase {dv_phase}")
            else:
                ready = ("True", "Ready", "DataSource is ready to be consumed")
        # CDI's ConditionState has no lastProbeTime: a null one would be pruned, and the
        # status would never read back equal (a patch on every pass).
        status["conditions"] = [
            {k: v for k, v in c.items() if v is not None}
            for c in set_condition(conds, "Ready", ready[0], ready[1], ready[2])
        ]
        old = source.get("status") or {}
        if _said(status) != _said(old):
            # CDI's DataSource CRD has no status subresource: the object itself is written.
            body = {"status": status}
            self.sources.apply(await self.kube.merge_patch(DATASOURCES, ns, name, body))
        return None if ready[0] == "True" else 1.0


def _said(status: JsonObj) -> tuple[object, ...]:
    """What a DataSource's status says, without its timestamps."""
    ready: JsonObj = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    return (
        status.get("source") or {},
        tuple(ready.get(k) for k in ("status", "reason", "message")),
    )
