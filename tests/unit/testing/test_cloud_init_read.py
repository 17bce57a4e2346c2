"""The simulated virt-launcher reads a VMI's cloud-init Secrets as KubeVirt v1.7.0's does
(pkg/cloud-init/cloud-init.go), so a Secret without the key it reads fails the same way."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from wukong.testing.kubevirt.cloud_init_read import (
    REQUIRED,
    read_error,
    secret_names,
    sync_failed_message,
)


def vmi(**source: Any) -> dict[str, Any]:
    volume = {"name": "cloudinitdisk", "cloudInitNoCloud": source}
    return {"spec": {"volumes": [{"name": "system", "dataVolume": {"name": "s"}}, volume]}}


def secret(**data: str) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


UD = {"secretRef": {"name": "ud"}}
ND = {"networkDataSecretRef": {"name": "nd"}}


@pytest.mark.parametrize(
    ("source", "secrets", "error"),
    [
        pytest.param(UD, {"ud": secret(userdata="#cloud-config\n")}, None, id="userdata"),
        pytest.param(UD, {"ud": secret(userData="#cloud-config\n")}, None, id="userData"),
        pytest.param(UD, {"ud": secret(**{"user-data": "x"})}, REQUIRED, id="from-file"),
        pytest.param(UD, {"ud": secret(userdata="")}, REQUIRED, id="empty-key"),
        # One Secret read is enough for the other to be missing: no error for it.
        pytest.param({**UD, "networkData": "v: 2"}, {"ud": secret(x="y")}, None, id="inline-net"),
        pytest.param(
            {**UD, **ND},
            {"ud": secret(x="1"), "nd": secret(networkdata="v: 2")},
            None,
            id="network-only",
        ),
        pytest.param(
            {**UD, **ND},
            {"ud": secret(x="1"), "nd": secret(y="2")},
            "no cloud-init data-source found at volume: cloudinitdisk",
            id="neither",
        ),
        pytest.param({"userData": "#cloud-config\n"}, {}, None, id="inline"),
    ],
)
def test_the_keys_virt_launcher_reads(
    source: dict[str, Any], secrets: dict[str, Any], error: str | None
) -> None:
    assert read_error(vmi(**source), secrets) == error


def test_the_secrets_read_and_the_message_virt_handler_writes() -> None:
    assert secret_names(vmi(**UD, **ND)) == ["ud", "nd"]
    assert secret_names({"spec": {"volumes": [{"name": "a", "emptyDisk": {}}]}}) == []
    assert sync_failed_message(REQUIRED) == (
        'server error. command SyncVMI failed: "ReadCloudInitVolumeDataSource failed: '
        "userDataBase64, userData, networkDataBase64 or networkData is required for a "
        'cloud-init data source"'
    )
