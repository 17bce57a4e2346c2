"""One Settings model for the operator, filled from flags and `WUKONG_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Everything `wukong run` can be told."""

    kubeconfig: Path | None = Field(
        None, description="kubeconfig path; in-cluster config when unset"
    )
    context: str | None = Field(None, description="kubeconfig context")
    namespace: str | None = Field(None, description="watch one namespace; all when unset")
    concurrency: int = Field(8, ge=1, le=256, description="reconciles running at once")
    probe_address: str = Field(
        "0.0.0.0:8080", description="host:port for /healthz /readyz /metrics"
    )
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    leader_election: bool = Field(False, description="take a Lease before reconciling")
    lease_name: str = "wukong-operator"
    lease_namespace: str | None = Field(None, description="defaults to the pod's namespace")
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    watch_timeout: int = Field(300, description="server-side watch timeout, seconds")
    stall_after: float = Field(300.0, description="seconds a phase may last before Stalled")
    retry_qps: float = Field(
        10.0, gt=0, description="retries of failed passes per second, over all Wukongs"
    )
    retry_burst: int = Field(100, ge=1, description="retries allowed at once before retry_qps")
    identity: str | None = Field(None, description="leader-election identity (default: hostname)")

    @property
    def probe_host_port(self) -> tuple[str, int]:
        """`probe_address` split into host and port."""
        host, _, port = self.probe_address.rpartition(":")
        return host or "0.0.0.0", int(port)
