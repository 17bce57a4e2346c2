"""The simulated CDI's configuration: CDIConfig's status as CDI's config controller settles
it (config-controller.go reconcileFilesystemOverhead, CDI v1.65)."""

from __future__ import annotations

from wukong.testing.kubevirt.cdi_config import settled_overhead


def test_the_default_overhead_is_cdis_six_percent_on_every_class() -> None:
    assert settled_overhead({}, ["fast", "standard"]) == {
        "global": "0.06",
        "storageClass": {"fast": "0.06", "standard": "0.06"},
    }


def test_a_class_gets_its_own_overhead_and_the_others_the_global_one() -> None:
    spec = {"filesystemOverhead": {"global": "0.1", "storageClass": {"fast": "0.02"}}}
    assert settled_overhead(spec, ["fast", "standard"]) == {
        "global": "0.1",
        "storageClass": {"fast": "0.02", "standard": "0.1"},
    }


def test_a_value_that_is_not_a_percent_is_not_taken() -> None:
    """CDI keeps its default for an invalid global value (validOverhead). For an invalid
    class value its reconcile fails and leaves the status as it was; the simulator gives
    that class the global value instead (the CRD's pattern refuses both anyway)."""
    spec = {"filesystemOverhead": {"global": "0.5%", "storageClass": {"fast": "2"}}}
    assert settled_overhead(spec, ["fast"]) == {"global": "0.06", "storageClass": {"fast": "0.06"}}
