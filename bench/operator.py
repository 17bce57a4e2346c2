"""The operator as a process of its own, so its memory and CPU are measured apart from the
simulator and the bench; optionally sampled by py-spy."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil  # type: ignore[import-untyped]  # no stubs in the venv

from bench import apimetrics
from bench.cluster import Cluster
from wukong.testing._background import Background
from wukong.testing.operator import OperatorProcess

MIB = 2**20
T = TypeVar("T")


@dataclass(frozen=True)
class Usage:
    """One reading of the operator process: wall time, RSS and CPU seconds so far."""

    at: float
    rss_mib: float
    cpu_seconds: float


@dataclass
class Operator(Background):
    """`python -m wukong run` for one namespace, with its /metrics and its resource usage."""

    kubeconfig: Path
    namespace: str
    concurrency: int
    log_file: Path
    profile: Path | None = None
    samples: list[Usage] = field(default_factory=list)

    def __post_init__(self) -> None:
        args = ("--concurrency", str(self.concurrency), "--log-level", "WARNING")
        self.process = OperatorProcess(
            self.kubeconfig, namespace=self.namespace, log_file=self.log_file, extra_args=args
        )
        self._sampler: asyncio.Task[None] | None = None
        self._ps: psutil.Process | None = None
        self._spy: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> None:
        self.process.start()

    def _profile(self) -> None:
        """py-spy samples the running operator: on-CPU stacks only (an await is not CPU,
        unlike in pyinstrument's async mode, which counted waiting as time spent), written as
        collapsed stacks when it gets SIGINT; `python -m bench.profile` reads them."""
        assert self.profile is not None
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        argv = [spy, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "200"]
        argv += ["--nonblocking", "--output", str(self.profile)]
        self._spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def start(self, within: float = 60) -> None:
        """Spawn, wait for /readyz (caches synced), then sample RSS and CPU every 0.25 s."""
        self._spawn()
        assert self.process.proc is not None
        self._ps = psutil.Process(self.process.proc.pid)
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.proc.poll() is not None:
                    raise RuntimeError(f"operator exited; see {self.log_file}")
                try:
                    async with http.get(f"{self.process.probe_url}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("operator not ready in time")
                await asyncio.sleep(0.1)
        self._sampler = asyncio.create_task(self._sample_forever())
        if self.profile is not None:
            self._profile()

    @property
    def pid(self) -> int:
        """The operator's process id (once started)."""
        assert self.process.proc is not None
        return self.process.proc.pid

    def usage(self) -> Usage:
        """RSS and CPU (user + system) of the operator process now."""
        assert self._ps is not None
        cpu = self._ps.cpu_times()
        rss = self._ps.memory_info().rss / MIB
        return Usage(time.monotonic(), rss, cpu.user + cpu.system)

    async def _sample_forever(self) -> None:
        while True:
            self.samples.append(self.usage())
            await asyncio.sleep(0.25)

    async def metrics(self) -> str:
        """The operator's /metrics text."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.process.metrics_url}/metrics") as resp,
        ):
            return await resp.text()

    async def requests(self) -> apimetrics.Samples:
        """wukong_kube_api_requests_total now."""
        return apimetrics.parse(await self.metrics(), "wukong_kube_api_requests_total")

    async def reconciles(self) -> float:
        """Reconcile passes so far (every result)."""
        samples = apimetrics.parse(await self.metrics(), "wukong_reconcile_total")
        return sum(samples.values())

    async def quiet(self, *, still_for: float = 2.0, within: float = 60.0) -> float:
        """Wait until no reconcile pass has run for `still_for` s; the seconds it took."""
        began = time.monotonic()
        last, since = await self.reconciles(), time.monotonic()
        while time.monotonic() - since < still_for and time.monotonic() - began < within:
            await asyncio.sleep(0.25)
            now = await self.reconciles()
            if now != last:
                last, since = now, time.monotonic()
        return time.monotonic() - began

    async def stop(self) -> None:
        """Stop sampling (py-spy writes its profile on SIGINT), then SIGTERM the operator."""
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        spy, self._spy = self._spy, None
        try:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                _, err = await asyncio.to_thread(spy.communicate, timeout=60)
                if spy.returncode != 0 or not (self.profile and self.profile.exists()):
                    raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode()[-300:]}")
        finally:
            await asyncio.to_thread(self.process.terminate, 60)

    async def __aenter__(self) -> Operator:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # a half-started operator must not outlive the bench
            raise
        return self


async def observed(
    cl: Cluster, op: Operator, work: Coroutine[Any, Any, T]
) -> tuple[T, dict[str, Any]]:
    """Run `work` while sampling the operator's work queue; also CPU share per process, to
    tell an operator that falls behind (its queue grows) from a saturated API server."""
    depths: list[float] = []

    async def sample() -> None:
        while True:
            text = await op.metrics()
            depths.append(sum(apimetrics.parse(text, "wukong_workqueue_depth").values()))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    paused = gc_pauses(await op.metrics())
    began, before = time.monotonic(), cl.cpu_seconds(operator=op.pid)
    try:
        result = await work
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    took, after = time.monotonic() - began, cl.cpu_seconds(operator=op.pid)
    paused = {k: round(v - paused.get(k, 0.0), 3) for k, v in gc_pauses(await op.metrics()).items()}
    return result, {
        "operator_gc_pauses": paused,
        "seconds": round(took, 1),
        "operator_queue_depth": {
            "max": max(depths, default=0.0),
            "mean": round(sum(depths) / max(len(depths), 1), 2),
        },
        "cpu_cores_by_process": {k: round((after[k] - before[k]) / took, 2) for k in after},
    }


def gc_pauses(text: str) -> dict[str, float]:
    """The operator's garbage collections so far (wukong_gc_pause_seconds), per generation
    g: how many ("g"), how many held it over 50 ms ("g>50ms") and their seconds ("g s")."""
    out: dict[str, float] = {}
    for labels, value in apimetrics.parse(text, "wukong_gc_pause_seconds_count").items():
        out[dict(labels)["generation"]] = value
    for labels, value in apimetrics.parse(text, "wukong_gc_pause_seconds_sum").items():
        out[dict(labels)["generation"] + " s"] = value
    buckets = apimetrics.parse(text, "wukong_gc_pause_seconds_bucket")
    for labels, value in buckets.items():
        named = dict(labels)
        if named["le"] == "0.05":
            generation = named["generation"]
            out[generation + ">50ms"] = out.get(generation, 0.0) - value
    return out
