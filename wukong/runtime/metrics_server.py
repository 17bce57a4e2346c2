"""/metrics on its own port, authenticated and authorized the way kubebuilder's secure
metrics (controller-runtime's `WithAuthenticationAndAuthorization`) do it:

- the scraper sends `Authorization: Bearer <token>` (Prometheus: its ServiceAccount token);
- a TokenReview asks the API server who that is (401 when nobody);
- a SubjectAccessReview asks whether that user may `get` the non-resource URL `/metrics`
  (403 when not; ClusterRole `wukong-metrics-reader` grants it).

Verdicts are cached per token for `ttl` seconds, so a scrape every 15 s costs two API
requests a minute, not two a scrape. With `cert_dir` (tls.crt, tls.key) it serves HTTPS.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from pathlib import Path
from typing import Final

from aiohttp import web

from wukong.adapters.kube import Kube, api_path
from wukong.errors import ApiError
from wukong.runtime.clock import Clock, MonotonicClock
from wukong.runtime.metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger(__name__)
Verdict = tuple[int, str]
METRICS_PATH: Final = "/metrics"


class Reviewer:
    """Decides whether a request's bearer token may read /metrics."""

    def __init__(self, kube: Kube, *, ttl: float = 60.0, clock: Clock | None = None) -> None:
        self.kube = kube
        self.ttl = ttl
        self._clock: Clock = clock or MonotonicClock()
        self._cache: dict[str, tuple[float, Verdict]] = {}

    async def check(self, authorization: str | None) -> Verdict:
        """(200, user) when allowed; (401|403|500, reason) when not."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "Unauthorized: send a bearer token (Authorization: Bearer <token>)"
        key = hashlib.sha256(token.strip().encode()).hexdigest()
        now = self._clock.now()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            verdict = await self._review(token.strip())
        except ApiError as error:
            logger.warning("cannot review a /metrics token: %s", error)
            return 500, f"cannot review the token: {error.message}"
        if len(self._cache) > 1000:  # bounded: stale entries go first
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + self.ttl, verdict)
        return verdict

    async def _review(self, token: str) -> Verdict:
        review = await self.kube.create(
            api_path("authentication.k8s.io", "v1", "tokenreviews"),
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return 401, f"Unauthorized: {status.get('error') or 'the token was not accepted'}"
        user = status.get("user") or {}
        name = str(user.get("username") or "")
        spec = {
            "user": name,
            "uid": user.get("uid"),
            "groups": user.get("groups") or [],
            "extra": user.get("extra") or {},
            "nonResourceAttributes": {"path": METRICS_PATH, "verb": "get"},
        }
        access = await self.kube.create(
            api_path("authorization.k8s.io", "v1", "subjectaccessreviews"),
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {k: v for k, v in spec.items() if v is not None},
            },
        )
        if not (access.get("status") or {}).get("allowed"):
            return 403, f'Forbidden: user "{name}" cannot get path "{METRICS_PATH}"'
        return 200, name


def tls_context(cert_dir: Path) -> ssl.SSLContext:
    """A server TLS context from `cert_dir/tls.crt` and `cert_dir/tls.key` (a Secret of
    type kubernetes.io/tls mounted there, e.g. by cert-manager)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    return context


class MetricsServer:
    """Serves /metrics only; with a `Reviewer`, only to callers allowed to read it."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        reviewer: Reviewer | None,
        host: str = "0.0.0.0",
        port: int = 8443,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.metrics = metrics
        self.reviewer = reviewer
        self.host = host
        self._requested_port = port
        self._tls = tls
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._port is None:
            raise RuntimeError("metrics server is not started")
        return self._port

    @property
    def scheme(self) -> str:
        """http or https."""
        return "https" if self._tls is not None else "http"

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, ssl_context=self._tls)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        mode = "authenticated" if self.reviewer is not None else "unauthenticated"
        logger.info("metrics (%s, %s) on %s:%d", mode, self.scheme, self.host, self._port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.reviewer is not None:
            status, reason = await self.reviewer.check(request.headers.get("Authorization"))
            if status != 200:
                return web.Response(status=status, text=reason + "\n")
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
