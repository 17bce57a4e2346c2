"""virt-controller's migration loop for the pure simulator (KubeVirt
pkg/virt-controller/watch/migration/migration.go, much reduced), with virt-handler's part.

A VirtualMachineInstanceMigration moves through KubeVirt's phases — Pending, Scheduling,
Scheduled, PreparingTarget, TargetReady, Running, Succeeded — one step per
`migration_step_delay`, while the VMI's `status.migrationState` says what virt-controller and
the two virt-handlers would write; at the end the VMI runs on the other node. There is no
admission webhook here: a migration of a VMI that is not running or not migratable
(`LiveMigratable=False`), or while another runs, fails at once with KubeVirt's reason. A
migration deleted while it runs is aborted (the VMI stays where it was). One whose source
node is lost (`Simulator.lose_node`) stops where it is, and fails once the VMI does.
"""

from __future__ import annotations

import asyncio

from ._informer import Informer
from ._kube import EVENTS, VMIS, ApiError, JsonObj, Kube, Resource, key_of
from ._queue import Controller
from .config import SimConfig
from .events import event
from .node import node_affinity_fits, node_labels
from .objects import deleting, now_iso, phase

MIGRATIONS = Resource("kubevirt.io", "v1", "virtualmachineinstancemigrations")
FINAL = ("Succeeded", "Failed")
STEPS = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running")


class MigrationController(Controller):
    """Migrations of the VMIs in scope."""

    name = "virt-controller-migration"

    def __init__(self, kube: Kube, cfg: SimConfig, migrations: Informer, vmis: Informer) -> None:
        super().__init__()
        self.kube, self.cfg, self.migrations, self.vmis = kube, cfg, migrations, vmis
        self._since: dict[str, float] = {}
        self._vmi_uids: dict[str, str] = {}  # migration uid -> the VMI it moves
        self.lost: set[str] = set()  # the Kubelet's: nodes whose machine is gone
        self._unschedulable: set[str] = set()  # migrations whose Warning was posted
        migrations.handlers.append(lambda obj: self.enqueue(key_of(obj)))

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        migration = self.migrations.get(ns, name)
        try:
            if migration is None or deleting(migration):
                await self._abort_orphans(ns)
                return None
            return await self._step(migration)
        except ApiError as err:
            if err.status in (404, 409):
                return 0.05
            raise

    def _vmi(self, migration: JsonObj) -> JsonObj | None:
        vmi_name = (migration.get("spec") or {}).get("vmiName", "")
        return self.vmis.get(migration["metadata"]["namespace"], vmi_name)

    async def _step(self, migration: JsonObj) -> float | None:
        status = dict(migration.get("status") or {})
        current = status.get("phase") or ""
        if current in FINAL:
            return None
        vmi = self._vmi(migration)
        uid = migration["metadata"]["uid"]
        if current == "":
            why = self._refusal(migration, vmi)
            if why is not None:
                await self._set(migration, status | {"phase": "Failed"}, why)
                return None
            await self._set(migration, status | {"phase": "Pending"})
            if vmi is not None:
                self._vmi_uids[uid] = vmi["metadata"]["uid"]
            self._since[uid] = asyncio.get_running_loop().time()
            return self.cfg.migration_step_delay
        moved = self._vmi_uids.setdefault(uid, (vmi or {}).get("metadata", {}).get("uid", ""))
        if vmi is None or phase(vmi) != "Running" or vmi["metadata"]["uid"] != moved:
            # Gone, ended, or another VMI of the same name (the VM started again after it
            # ended): virt-controller fails the migration.
            await self._set(migration, status | {"phase": "Failed"}, "vmi shut down")
            return None
        loop = asyncio.get_running_loop()
        waited = loop.time() - self._since.setdefault(uid, loop.time())
        if waited < self.cfg.migration_step_delay:
            return self.cfg.migration_step_delay - waited
        self._since[uid] = loop.time()
        vstatus = vmi.get("status") or {}
        source = vstatus.get("nodeName")
        state = dict(vstatus.get("migrationState") or {})
        following = STEPS[STEPS.index(current) + 1] if current in STEPS[:-1] else "Succeeded"
        if source in self.lost and following in ("Running", "Succeeded"):
            # The source's virt-handler is gone with its machine: it neither sends the domain
            # nor gives up. The migration waits, until the VMI ends (its pod gone).
            return self.cfg.migration_step_delay
        targets = self._targets(vmi, source)
        if following == "Scheduled" and not targets:
            # No node takes the target pod (the VMI's placement, and never the source's node):
            # the pod stays Pending, and virt-controller says so on the migration at each sync
            # (migration.go handlePendingPodTimeout; its 5-minute timeout is not played).
            if uid not in self._unschedulable:
                self._unschedulable.add(uid)
                await self._unschedulable_event(migration, vmi)
            return self.cfg.migration_step_delay
        if following == "PreparingTarget":
            target = targets[0] if targets else source
            state = {
                "migrationUid": uid,
                "sourceNode": source,
                "targetNode": target,
                "targetPod": f"virt-launcher-{vmi['metadata']['name']}-target",
            }
        elif following == "TargetReady":
            state |= {"targetNodeAddress": "127.0.0.1"}
        elif following == "Running":
            state |= {"startTimestamp": now_iso(), "mode": "PreCopy"}
        elif following == "Succeeded":
            state |= {
                "targetNodeDomainDetected": True,
                "targetNodeDomainReadyTimestamp": now_iso(),
                "completed": True,
                "endTimestamp": now_iso(),
            }
        patch: JsonObj = {"migrationState": state}
        if following == "Succeeded":
            patch["nodeName"] = state.get("targetNode")
        await self.kube.merge_patch(
            VMIS, vmi["metadata"]["namespace"], vmi["metadata"]["name"], {"status": patch}, "status"
        )
        await self._set(migration, status | {"phase": following, "migrationState": state})
        return None if following == "Succeeded" else self.cfg.migration_step_delay

    def _targets(self, vmi: JsonObj, source: str | None) -> list[str]:
        """The nodes the target pod may go to: not the source's (virt-controller's required
        pod anti-affinity), not a lost one, and those the VMI's nodeSelector and required node
        affinity take (the target pod is rendered from the VMI's placement: template.go).
        The pure simulator picked the first other node whatever the placement (kubevirt-
        fidelity S1)."""
        spec = vmi.get("spec") or {}
        selector = spec.get("nodeSelector") or {}
        fits = []
        for node in self.cfg.nodes:
            if node == source or node in self.lost:
                continue
            labels = node_labels(self.cfg, node)
            if all(labels.get(k) == v for k, v in selector.items()) and node_affinity_fits(
                {"spec": spec}, node, labels
            ):
                fits.append(node)
        return fits

    async def _unschedulable_event(self, migration: JsonObj, vmi: JsonObj) -> None:
        meta = vmi["metadata"]
        words = (
            f"Migration target pod for VMI [{meta['namespace']}/{meta['name']}] is currently "
            "unschedulable."
        )
        told = event(
            migration,
            "VirtualMachineInstanceMigration",
            "migrationTargetPodUnschedulable",
            words,
            component="virtualmachine-controller",
            host="",
            api_version="kubevirt.io/v1",
            type_="Warning",
        )
        await self.kube.create(EVENTS, migration["metadata"]["namespace"], told)

    def _refusal(self, migration: JsonObj, vmi: JsonObj | None) -> str | None:
        """What KubeVirt's migration admission would have refused, in its words."""
        if vmi is None or phase(vmi) in FINAL:
            return "Cannot migrate VMI in finalized state."
        for cond in (vmi.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "LiveMigratable" and cond.get("status") == "False":
                return f"Cannot migrate VMI, Reason: {cond.get('reason')}, Message: " + str(
                    cond.get("message")
                )
        ns, vmi_name = migration["metadata"]["namespace"], vmi["metadata"]["name"]
        for other in self.migrations.list(ns):
            if other["metadata"]["uid"] == migration["metadata"]["uid"]:
                continue
            running = (other.get("status") or {}).get("phase") not in FINAL
            if running and (other.get("spec") or {}).get("vmiName") == vmi_name:
                return "in-flight migration detected"
        return None

    async def _set(self, migration: JsonObj, status: JsonObj, failure: str = "") -> None:
        if failure:
            # Where KubeVirt says why (migrationState.failureReason): a migration has no
            # Failed condition.
            state = dict(status.get("migrationState") or {})
            status = status | {"migrationState": state | {"failureReason": failure}}
        meta = migration["metadata"]
        updated = await self.kube.merge_patch(
            MIGRATIONS, meta["namespace"], meta["name"], {"status": status}, "status"
        )
        self.migrations.apply(updated)

    async def _abort_orphans(self, ns: str) -> None:
        """A deleted migration that was running: the source aborts it, the VM stays put."""
        live = {m["metadata"]["uid"] for m in self.migrations.list(ns) if not deleting(m)}
        for vmi in self.vmis.list(ns):
            state = (vmi.get("status") or {}).get("migrationState") or {}
            ended = state.get("completed") or state.get("failed")
            if state.get("migrationUid") and not ended:
                if state["migrationUid"] not in live:
                    # As virt-controller marks it (markMigrationAbortInVmiStatus) and
                    # virt-handler's source reports the abort: Failed, never Completed.
                    aborted = state | {
                        "abortRequested": True,
                        "abortStatus": "Succeeded",
                        "failureReason": "Live migration aborted ",
                        "failed": True,
                        "endTimestamp": now_iso(),
                    }
                    meta = vmi["metadata"]
                    await self.kube.merge_patch(
                        VMIS,
                        meta["namespace"],
                        meta["name"],
                        {"status": {"migrationState": aborted}},
                        "status",
                    )
