"""Derived names (issue 18): every one fits its limit for every name the CRD accepts, and
names never collide within a Wukong."""

from __future__ import annotations

import re
import string

from hypothesis import given
from hypothesis import strategies as st

from wukong.api import names
from wukong.api._base import DNS_LABEL_PATTERN
from wukong.api.v1alpha1 import WukongSpec
from wukong.api.validation import derived_name_clashes

LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SERIAL = re.compile(r"[A-Za-z0-9_.+-]+")
IFNAME = re.compile(r"[^/\s:]{1,15}")

_ALNUM = string.ascii_lowercase + string.digits
dns_labels = st.from_regex(DNS_LABEL_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 63)
# Wukong names: DNS subdomains of at most 63 characters (the CRD's rule), dots included.
wukong_names = (
    st.lists(
        st.text(_ALNUM + "-", min_size=1, max_size=20).filter(
            lambda s: s[0] != "-" and s[-1] != "-"
        ),
        min_size=1,
        max_size=4,
    )
    .map(".".join)
    .filter(lambda s: len(s) <= 63)
)
edge_names = st.sampled_from(["a" * 63, "a" * 60, "a" * 61, "x-" * 31 + "y", "a." * 31 + "b"])


@given(st.one_of(wukong_names, edge_names))
def test_a_63_character_name_still_boots(wukong: str) -> None:
    # The VM name is the value of KubeVirt's kubevirt.io/vm label on the VMI: it must be a
    # valid label value (at most 63 characters) and a valid object name.
    vm = names.vm_name(wukong)
    assert len(vm) <= 63 and LABEL_VALUE.fullmatch(vm) and SUBDOMAIN.fullmatch(vm), vm
    assert vm.endswith("-vm")


@given(st.one_of(wukong_names, edge_names), dns_labels)
def test_every_derived_name_fits_its_limit(wukong: str, entry: str) -> None:
    claim = names.disk_claim_name(wukong, entry)
    nad = names.nad_name(wukong, entry)
    assert len(claim) <= 253 and SUBDOMAIN.fullmatch(claim), claim
    assert len(nad) <= 63 and SUBDOMAIN.fullmatch(nad), nad
    assert IFNAME.fullmatch(names.bridge_name(entry))
    serial = names.disk_serial(entry)
    assert len(serial) <= names.MAX_SERIAL and SERIAL.fullmatch(serial)


def test_short_names_keep_their_plain_form() -> None:
    assert names.vm_name("web-1") == "web-1-vm"
    assert names.disk_claim_name("web-1", "system") == "web-1-system"
    assert names.nad_name("web-1", "vlan100") == "web-1-vlan100"
    assert names.bridge_name("vlan100") == "br-vlan100"
    assert names.disk_serial("data") == "data"
    # The longest plain forms that fit stay as they were before issue 18.
    assert names.vm_name("a" * 60) == "a" * 60 + "-vm"
    assert names.bridge_name("a" * 12) == "br-" + "a" * 12


def test_two_networks_sharing_15_characters_get_their_own_bridges() -> None:
    first, second = names.bridge_name("longnetname-a"), names.bridge_name("longnetname-b")
    assert first != second and len(first) <= 15 and len(second) <= 15


def test_two_disks_sharing_36_characters_get_their_own_serials() -> None:
    stem = "d" * 36
    assert names.disk_serial(stem + "-a") != names.disk_serial(stem + "-b")


def test_long_names_are_cut_at_a_boundary_and_end_in_a_stable_hash() -> None:
    cut = names.fit("ab-" * 30, 20)
    assert cut == names.fit("ab-" * 30, 20) and len(cut) <= 20
    assert not cut.startswith("-") and "--" not in cut and ".-" not in cut
    assert names.wukong_of_vm_name(names.vm_name("web-1")) == "web-1"
    long_vm = names.vm_name("w" * 63)
    # A cut name cannot be undone; what comes back is the one name whose VM this is uncut.
    assert names.vm_name(names.wukong_of_vm_name(long_vm) or "") == long_vm


@given(st.one_of(wukong_names, edge_names), st.lists(dns_labels, min_size=1, max_size=16))
def test_names_never_collide_within_a_wukong(wukong: str, entries: list[str]) -> None:
    unique = list(dict.fromkeys(entries))
    spec = WukongSpec.model_validate(
        {
            "cpu": 1,
            "memory": "1Gi",
            "disks": [{"name": n, "size": "1Gi"} for n in unique],
            "networks": [{"name": n} for n in unique if n != "default"][:8],
        }
    )
    assert derived_name_clashes(spec, wukong) == []
    claims = {names.disk_claim_name(wukong, n) for n in unique}
    assert len(claims) == len(unique)
