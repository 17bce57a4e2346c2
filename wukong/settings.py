"""One Settings model for the operator, filled from flags and `WUKONG_*` environment variables.

`wukong run` is built from this model (wukong/cli.py): every field is one flag, named after the
field (`--stall-after`), read from `WUKONG_<FIELD>` (kubeconfig: `KUBECONFIG`), with the
field's description as its help. Validation lives here, so a bad flag and a bad environment
variable get the same one-line answer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wukong.api.durations import parse_duration

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DURATIONS: Final = (
    "lease_duration",
    "renew_deadline",
    "retry_period",
    "stall_after",
    "guest_report_interval",
)
"""The fields given as Go durations (`15s`, `5m`); `run --help` shows their defaults so."""


def _address(value: str, field: str) -> str:
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:{field}), port 0-65535")
    if " " in host:
        raise ValueError(f"{value!r}: the host has a space")
    return value


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class Settings(BaseModel):
    """Everything `wukong run` can be told."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    kubeconfig: Path | None = Field(
        None, description="kubeconfig file; the pod's service account when unset"
    )
    context: str | None = Field(None, description="kubeconfig context")
    namespace: str | None = Field(None, description="watch one namespace (default: all)")
    concurrency: int = Field(8, ge=1, le=256, description="reconciles running at once (1-256)")
    probe_address: str = Field(
        "0.0.0.0:8081", description="host:port of /healthz and /readyz (plain HTTP)"
    )
    metrics_address: str = Field(
        "0.0.0.0:8080",
        description="host:port of /metrics; port 0 picks a free one, 'off' serves none",
    )
    metrics_secure: bool = Field(
        True,
        description="authenticate /metrics scrapes (TokenReview) and authorize them "
        "(SubjectAccessReview: get on the non-resource URL /metrics)",
    )
    metrics_cert_dir: Path | None = Field(
        None, description="folder with tls.crt and tls.key: serve /metrics over HTTPS"
    )
    log_format: Literal["json", "text"] = Field("text", description="json or text")
    log_level: str = Field("INFO", description="debug, info, warning or error")
    leader_election: bool = Field(False, description="take a Lease before reconciling")
    lease_name: str = Field("wukong-operator", description="name of the leader Lease")
    lease_namespace: str | None = Field(None, description="namespace of the Lease")
    lease_duration: float = Field(15.0, gt=0, description="Lease duration (e.g. 15s)")
    renew_deadline: float = Field(10.0, gt=0, description="leader gives up after (e.g. 10s)")
    retry_period: float = Field(2.0, gt=0, description="Lease poll period (e.g. 2s)")
    watch_timeout: int = Field(
        300, ge=1, description="shortest server-side watch timeout, seconds (each draws [T, 2T))"
    )
    stall_after: float = Field(300.0, gt=0, description="a phase lasting longer is Stalled (5m)")
    guest_report_interval: float = Field(
        300.0,
        gt=0,
        description="how often KubeVirt's virt-launcher refreshes the guest agent's filesystem "
        "list (its --qemu-agent-file-interval, 5m): a disk reported unmounted is detached "
        "only from a report made after the detach was asked",
    )
    retry_qps: float = Field(
        10.0, gt=0, description="retries of failed passes per second, over all Wukongs"
    )
    retry_burst: int = Field(100, ge=1, description="retries allowed at once before retry_qps")
    identity: str | None = Field(None, description="leader-election identity (default: host)")

    @field_validator("kubeconfig", "context", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `--kubeconfig ''` is not the path "." (what Path("") is): load_configuration
        # then reads KUBECONFIG, as kubectl does.
        return None if value == "" else value

    @field_validator(*DURATIONS, mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("watch_timeout", mode="before")
    @classmethod
    def _whole_seconds(cls, value: Any) -> Any:
        return int(parse_duration(value)) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        level = str(value).strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level: use debug, info, warning or error")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        text = str(value).strip().lower()
        if text not in ("json", "text"):
            raise ValueError(f"{value!r} is not a log format: use json or text")
        return text

    @field_validator("probe_address")
    @classmethod
    def _probe(cls, value: str) -> str:
        return _address(value, "8081")

    @field_validator("metrics_address")
    @classmethod
    def _metrics(cls, value: str) -> str:
        return value if value == "off" else _address(value, "8080")

    @model_validator(mode="after")
    def _together(self) -> Settings:
        """Checks across fields (client-go refuses the same timings)."""
        if self.leader_election and self.renew_deadline >= self.lease_duration:
            raise ValueError(
                f"--renew-deadline ({self.renew_deadline:g}s) must be shorter than "
                f"--lease-duration ({self.lease_duration:g}s)"
            )
        if self.metrics_cert_dir is not None:
            missing = [
                f for f in ("tls.crt", "tls.key") if not (self.metrics_cert_dir / f).is_file()
            ]
            if missing:
                raise ValueError(
                    f"--metrics-cert-dir {self.metrics_cert_dir} lacks {', '.join(missing)}"
                )
        return self

    @property
    def probe_host_port(self) -> tuple[str, int]:
        """`probe_address` split into host and port."""
        return _split(self.probe_address)

    @property
    def metrics_host_port(self) -> tuple[str, int] | None:
        """`metrics_address` split into host and port (None: no metrics endpoint)."""
        return None if self.metrics_address == "off" else _split(self.metrics_address)

    @property
    def level(self) -> int:
        """`log_level` as a `logging` level number."""
        return int(logging.getLevelName(self.log_level))
