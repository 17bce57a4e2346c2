"""Packaging: the PyPI name, the lock file the image uses, the image's stages and labels,
and the krew manifest's checksum (issue 17). No container engine here: the Containerfile is
read, not built."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_distribution_is_not_the_taken_pypi_name_but_the_commands_stay() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert project["name"] == "wukong-operator"
    assert project["scripts"] == {
        "wukong": "wukong.cli:main",
        "kubectl-wukong": "wukong.cli:main",
        # kubectl's plugin completion (`kubectl wukong <TAB>`, kubectl >= 1.26).
        "kubectl_complete-wukong": "wukong.cli:complete_for_kubectl",
    }


def test_the_lock_pins_every_runtime_dependency() -> None:
    pins = {
        re.split(r"==", line)[0].lower().replace("_", "-"): line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert all("==" in line for line in pins.values())
    project = pyproject()["project"]
    assert isinstance(project, dict)
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~ ;\[]", requirement)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in requirements.lock"
    assert not {"pip", "setuptools", "wheel", "cryptography", "pytest"} & set(pins)


def test_the_image_builds_in_two_stages_from_the_lock_with_oci_labels() -> None:
    text = (ROOT / "Containerfile").read_text()
    assert text.count("\nFROM ") == 2 and "AS builder" in text
    assert "-r requirements.lock" in text and "--no-deps" in text
    assert "rm -rf /opt/wukong/lib/python3.11/site-packages/wukong/testing" in text
    assert "COPY --from=builder /opt/wukong /opt/wukong" in text
    runtime = text.split("AS builder", 1)[1].split("\nFROM ", 1)[1]
    assert "pip uninstall -y pip setuptools wheel" in runtime
    for label in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{label}=" in runtime
    ignored = (ROOT / ".containerignore").read_text().splitlines()
    assert "!requirements.lock" in ignored


def test_the_krew_manifest_carries_the_archive_checksum(tmp_path: Path) -> None:
    plugin = yaml.safe_load((ROOT / "plugins" / "krew" / "wukong.yaml").read_text())
    assert plugin["kind"] == "Plugin" and plugin["metadata"]["name"] == "wukong"
    (platform,) = plugin["spec"]["platforms"]
    assert platform["bin"] == "kubectl-wukong"
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "krew_archive.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    archive = (tmp_path / "kubectl-wukong.tar.gz").read_bytes()
    assert done.stdout.strip() == hashlib.sha256(archive).hexdigest() == platform["sha256"]
