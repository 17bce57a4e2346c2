"""Run the operator against a cluster from tests or the demo: in-process, or as a process
that a test can SIGKILL (crash-safety tests need a real crash, not a cancelled task).

    async with InProcessOperator(kubeconfig, namespace="t-1") as op:
        ...
    proc = OperatorProcess(kubeconfig, namespace="t-1"); proc.start(); proc.kill()
    spare = OperatorProcess(kubeconfig, namespace="t-1"); spare.prepare(); ...; spare.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient

from wukong.controller import Operator, api_client
from wukong.settings import Settings
from wukong.testing._background import Background
from wukong.testing._processes import free_ports

_PR_SET_PDEATHSIG = 1
# `prepare`'s child: the modules `python -m wukong run` loads, then, once told to go on (a line
# on stdin), `python -m wukong` itself. An empty line or none (the test ended first): exit.
_PREPARED = """
import runpy, sys
import wukong.cli, wukong.controller, wukong.runtime.heap, wukong.runtime.logs
if sys.stdin.readline().strip() != "go":
    raise SystemExit(0)
runpy.run_module("wukong", run_name="__main__", alter_sys=True)
"""


def _resolve_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Resolved here, in the parent: between fork and exec the child must not import or load.
_PRCTL = _resolve_prctl()


def die_with_parent() -> None:
    """`preexec_fn`: SIGKILL this child when the process that started it dies, however it
    dies, so a killed test run or bench leaves no operator behind (Linux; issue 15). Start the
    child from a thread that lives as long as the process: the kernel watches that thread."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below the kernel's ephemeral range (`free_ports`)."""
    return free_ports(1)[0]


class InProcessOperator(Background):
    """The operator on the caller's event loop; `stop()` is a graceful shutdown."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        namespace: str | None = None,
        stall_after: float = 300.0,
        # The simulator's refresh of the guest agent's report (SimConfig.guest_report_interval).
        guest_report_interval: float = 1.0,
        concurrency: int = 4,
        sync_timeout: float = 30.0,
    ) -> None:
        self.sync_timeout = sync_timeout
        self.settings = Settings(
            kubeconfig=kubeconfig,
            namespace=namespace,
            probe_address="127.0.0.1:0",
            metrics_address="127.0.0.1:0",
            stall_after=stall_after,
            guest_report_interval=guest_report_interval,
            concurrency=concurrency,
        )
        self._task: asyncio.Task[None] | None = None
        self._api: ApiClient | None = None
        self.operator: Operator | None = None

    async def start(self) -> None:
        """Start and wait until every cache has synced."""
        api = await api_client(self.settings)
        self._api = api
        operator = Operator(self.settings, api)
        self.operator = operator
        self._task = asyncio.create_task(operator.run(), name="operator")
        waits = [asyncio.ensure_future(i.synced.wait()) for i in operator.informers.values()]
        synced = asyncio.ensure_future(asyncio.gather(*waits))
        task = self._task
        either: list[asyncio.Future[Any]] = [task, synced]
        await asyncio.wait(either, timeout=self.sync_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not synced.done():
            synced.cancel()
            await asyncio.gather(synced, return_exceptions=True)
            # Nothing half-started may outlive the failure (its sockets would leak into the
            # next test); stop() re-raises the operator's start-up error if it died of one.
            await self.stop()
            raise TimeoutError(f"operator caches did not sync within {self.sync_timeout} s")

    async def stop(self) -> None:
        """Graceful shutdown, then close the client (also after a failed start)."""
        try:
            if self.operator is not None:
                self.operator.stop()
            if self._task is not None:
                await asyncio.wait_for(self._task, 30)
        finally:
            self._task = None
            if self._api is not None:
                await self._api.close()
                self._api = None


class OperatorProcess:
    """`python -m wukong run` as a child process."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        namespace: str | None = None,
        log_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
        guest_report_interval: float = 1.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        # The simulator's refresh of the guest agent's report (SimConfig.guest_report_interval).
        self.guest_report_interval = guest_report_interval
        self.port = free_port()
        self.metrics_port = free_port()
        # Without a log file of the caller's, the log goes to a temporary file whose tail is
        # printed when the process is stopped: pytest shows it beside a failing test.
        self._own_log = log_file is None
        if log_file is None:
            fd, name = tempfile.mkstemp(prefix="wukong-operator-", suffix=".log")
            os.close(fd)
            log_file = Path(name)
        self.log_file: Path = log_file
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._prepared = False

    @property
    def probe_url(self) -> str:
        """Base URL of /healthz, /readyz, /metrics."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Base URL of /metrics (plain HTTP, no authentication: see `start`)."""
        return f"http://127.0.0.1:{self.metrics_port}"

    def prepare(self) -> None:
        """Spawn the process and load the operator's modules, but do not run it yet: `start`
        then runs `python -m wukong run` in it, as a fresh start from the cluster's state with
        the seconds of Python imports already behind it. For a test that starts a second
        operator the moment it kills the first: one that takes seconds to load only waits."""
        assert self.proc is None, "prepare() before start(), once"
        self._spawn([sys.executable, "-c", _PREPARED], stdin=subprocess.PIPE)
        self._prepared = True

    def start(self, runner: tuple[str, ...] = ()) -> None:
        """Spawn the operator, or run it in the process `prepare` made (returns at once; poll
        `probe_url/readyz`). `runner`: Python arguments before `-m wukong`, e.g. a
        profiler's."""
        if self._prepared:
            assert self.proc is not None and self.proc.stdin is not None and not runner
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
            return
        self._spawn([sys.executable, *runner, "-m", "wukong"])

    def _spawn(self, python: list[str], stdin: int | None = None) -> None:
        argv = [
            *python,
            "run",
            "--kubeconfig",
            str(self.kubeconfig),
            "--probe-address",
            f"127.0.0.1:{self.port}",
            # Tests read /metrics without a token; InProcessOperator keeps it authenticated.
            "--metrics-address",
            f"127.0.0.1:{self.metrics_port}",
            "--no-metrics-secure",
            "--guest-report-interval",
            f"{self.guest_report_interval:g}s",
            *self.extra_args,
        ]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_stdin()
        self._show_log()

    def _close_stdin(self) -> None:
        """The pipe of a process `prepare` made and nobody started (a test that failed
        first)."""
        if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def _show_log(self, lines: int = 60) -> None:
        """Print the tail of the log this object owns, once, and remove the file."""
        if not self._own_log or not self.log_file.exists():
            return
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- operator {' '.join(self.extra_args)} (last {len(tail)} log lines) ---")
        print("\n".join(tail))
        self.log_file.unlink()

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the graceful path; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = self.proc.wait(timeout)
            self._close_stdin()
            self._show_log()
            return code
        self.kill()
        return -9
