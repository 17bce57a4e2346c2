"""The operator says, in /readyz and its log, which watched API the cluster does not serve
(Multus' NADs, CDI's DataVolumes…), instead of a bare "caches not synced"."""

from __future__ import annotations

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.api import kinds
from wukong.controller import Operator
from wukong.reconcile.actions import Emit
from wukong.settings import Settings


async def test_a_missing_crd_is_named_with_what_installs_it() -> None:
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        ok, why = operator.readiness()
        assert not ok and why.startswith("caches not synced: wukongs.vm.novasphere.dev")
        operator.informers[kinds.NAD.cache].installed = False
        operator.informers[kinds.DATA_VOLUME.cache].installed = False
        ok, why = operator.readiness()
    assert not ok
    assert why == (
        "caches not synced: the API server does not serve datavolumes.cdi.kubevirt.io (CDI), "
        "network-attachment-definitions.k8s.cni.cncf.io (Multus): install it; "
        "the operator waits and retries"
    )


async def test_phase_stalled_and_unhealthy_counts_come_from_the_cache() -> None:
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        kind = kinds.WUKONG.cache
        stalled = {"conditions": [{"type": "Stalled", "status": "True"}], "phase": "Creating"}
        paused = {
            "conditions": [
                {"type": "Stalled", "status": "False"},
                {"type": "VMHealthy", "status": "False", "reason": "PausedIOError"},
            ],
            "phase": "Running",
        }
        for name, namespace, status in (
            ("a", "x", {"phase": "Running"}),
            ("b", "x", stalled),
            ("c", "y", {}),
            ("d", "y", paused),
        ):
            meta = {"name": name, "namespace": namespace, "resourceVersion": "1"}
            operator.store.upsert(kind, {"metadata": meta, "status": status})
        assert operator.phase_counts() == {
            ("x", "Running"): 1,
            ("x", "Creating"): 1,
            ("y", "Pending"): 1,
            ("y", "Running"): 1,
        }
        assert operator.stalled_counts() == {"x": 1}
        assert operator.unhealthy_counts() == {"y": 1}
        text = operator.metrics.render().decode()
        assert 'wukong_unhealthy{namespace="y"} 1.0' in text
        assert 'wukong_stalled{namespace="x"} 1.0' in text
        # Healthy again: the tally forgets it, and the namespace's series goes.
        operator.store.upsert(
            kind,
            {
                "metadata": {"name": "d", "namespace": "y", "resourceVersion": "2"},
                "status": {"phase": "Running"},
            },
        )
        assert operator.unhealthy_counts() == {}


async def test_an_older_wukong_crd_fails_readiness_with_what_to_apply() -> None:
    """A rollout of an operator newer than the CRD shows its leader not ready (upgrade
    audit, session 47, finding 3), with the words of the status write that showed it."""
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        for informer in operator.informers.values():
            informer.synced.set()
        assert operator.readiness() == (True, "leading")
        sent = {"phase": "Running", "autoStart": True, "networks": [{"name": "a", "x": 1}]}
        answer = {"phase": "Running", "networks": [{"name": "a"}]}
        raw = {"metadata": {"namespace": "demo", "name": "web-1", "uid": "u"}}
        posted: list[str] = []

        async def post(owner: object, events: list[Emit]) -> None:
            posted.extend(e.reason for e in events)

        operator.executor.post_events = post  # type: ignore[method-assign]
        await operator.reconciler._kept(raw, sent, answer)
        ok, why = operator.readiness()
        assert not ok
        assert "dropped status.autoStart, status.networks[].x" in why
        assert "manifests/crd" in why
        assert posted == ["CRDOutdated"]
        await operator.reconciler._kept(raw, sent, sent)  # the CRD applied: kept again
        assert operator.readiness() == (True, "leading")


async def test_an_older_wukong_crd_shows_in_metrics_until_a_dropped_field_is_kept() -> None:
    """Monitoring saw only a pod not ready (audit, session 48): wukong_crd_outdated says
    why, from the start at 0, 1 while the status writes lose fields, 0 once one is kept."""
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)

        async def post(owner: object, events: list[Emit]) -> None:
            pass

        operator.executor.post_events = post  # type: ignore[method-assign]
        sample = operator.metrics.registry.get_sample_value
        assert sample("wukong_crd_outdated") == 0
        sent = {"phase": "Running", "autoStart": True}
        raw = {"metadata": {"namespace": "demo", "name": "web-1", "uid": "u"}}
        await operator.reconciler._kept(raw, sent, {"phase": "Running"})
        assert sample("wukong_crd_outdated") == 1
        assert "wukong_crd_outdated 1.0" in operator.metrics.render().decode()
        await operator.reconciler._kept(raw, sent, sent)
        assert sample("wukong_crd_outdated") == 0


async def test_a_watch_refused_after_its_cache_synced_fails_readiness_naming_it() -> None:
    """Namespaced-install audit, session 48, finding 3: a cache synced and then refused
    (403) kept /readyz green while it froze."""
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        operator.informers[kinds.STORAGE_CLASS.cache].refused = "list: forbidden"
        # At start-up too, /readyz says why, not only "caches not synced".
        assert operator.probes.readiness()[1].startswith("list/watch refused (403 Forbidden)")
        for informer in operator.informers.values():
            informer.synced.set()
        operator.informers[kinds.STORAGE_CLASS.cache].refused = "watch: forbidden"
        ok, why = operator.readiness()
        assert not ok
        assert why.startswith(
            "list/watch refused (403 Forbidden): storageclasses.storage.k8s.io: the "
            "operator's RBAC does not allow it"
        )
        assert operator.probes.readiness() == (ok, why)
        operator.informers[kinds.STORAGE_CLASS.cache].refused = None
        assert operator.readiness() == (True, "leading")


async def test_the_watch_families_name_a_resource_as_its_requests_do() -> None:
    """`resource` was the cache name on wukong_cache_synced and wukong_watch_restarts_total
    (`virtualmachines.kubevirt.io`, `events?reason=FailedMount`) but the plural on
    wukong_kube_api_requests_total (`virtualmachines`): no query could join them (monitoring
    audit, session 42, finding 8). Now the plural everywhere, and `selector` tells apart the
    resources watched more than once, one series per watch."""
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        registry = operator.metrics.registry
        for family in ("wukong_cache_synced", "wukong_watch_restarts_total"):
            [metric] = [m for m in registry.collect() if m.name == family.removesuffix("_total")]
            watched = [(s.labels["resource"], s.labels["selector"]) for s in metric.samples]
            assert sorted(watched) == sorted(
                (k.plural, k.field_selector or "") for k in kinds.WATCHED
            ), family
            assert len(set(watched)) == len(kinds.WATCHED), family
