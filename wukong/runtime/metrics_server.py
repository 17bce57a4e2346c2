"""/metrics on its own port, authenticated and authorized the way kubebuilder's secure
metrics (controller-runtime's `WithAuthenticationAndAuthorization`) do it:

- the scraper sends `Authorization: Bearer <token>` (Prometheus: its ServiceAccount token);
- a TokenReview asks the API server who that is (401 when nobody);
- a SubjectAccessReview asks whether that user may `get` the non-resource URL `/metrics`
  (403 when not; ClusterRole `wukong-metrics-reader` grants it).

Verdicts are cached per token, an allowance for `ttl` seconds (a scrape every 15 s costs two
API requests a minute, not two a scrape) and a refusal for `refusal_ttl` seconds: an
administrator who has just bound a scraper to the reader role, or an API server whose RBAC
cache has not yet seen the new binding, must not lock that scraper out for a minute. Anyone
who can reach the port can send tokens, so what that costs is bounded: the cache keeps the
`max_tokens` most recently used, concurrent scrapes with one token share one review, and
tokens not in the cache are reviewed at most `reviews_per_second` (429 beyond). With
`cert_dir` (tls.crt, tls.key) it serves HTTPS and loads a renewed certificate (cert-manager
rotates the mounted Secret) for new connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import OrderedDict
from pathlib import Path
from typing import Final

from aiohttp import web

from wukong.adapters.kube import Kube, api_path
from wukong.errors import ApiError
from wukong.runtime._ratelimit import TokenBucket
from wukong.runtime.clock import Clock, MonotonicClock
from wukong.runtime.metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger(__name__)
Verdict = tuple[int, str]
METRICS_PATH: Final = "/metrics"


class Reviewer:
    """Decides whether a request's bearer token may read /metrics."""

    def __init__(
        self,
        kube: Kube,
        *,
        ttl: float = 60.0,
        refusal_ttl: float = 5.0,
        clock: Clock | None = None,
        max_tokens: int = 1000,
        reviews_per_second: float = 5.0,
        burst: int = 20,
    ) -> None:
        self.kube = kube
        self.ttl = ttl
        self.refusal_ttl = refusal_ttl
        self.max_tokens = max_tokens
        self._clock: Clock = clock or MonotonicClock()
        self._cache: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()
        self._reviewing: dict[str, asyncio.Task[Verdict]] = {}
        self._reviews = TokenBucket(reviews_per_second, burst, self._clock)

    async def check(self, authorization: str | None) -> Verdict:
        """(200, user) when allowed; (401|403|429|500, reason) when not."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "Unauthorized: send a bearer token (Authorization: Bearer <token>)"
        key = hashlib.sha256(token.strip().encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock.now():
            self._cache.move_to_end(key)
            return cached[1]
        review = self._reviewing.get(key)
        if review is None:
            if not self._reviews.try_take():
                return 429, "Too Many Requests: too many tokens to review now; retry later"
            review = asyncio.ensure_future(self._review_once(key, token.strip()))
            self._reviewing[key] = review
        # Shielded: a scraper that hangs up does not cancel the review the others wait for.
        return await asyncio.shield(review)

    async def _review_once(self, key: str, token: str) -> Verdict:
        try:
            verdict = await self._review(token)
        except ApiError as error:
            logger.warning("cannot review a /metrics token: %s", error)
            return 500, f"cannot review the token: {error.said}"
        finally:
            del self._reviewing[key]
        ttl = self.ttl if verdict[0] == 200 else self.refusal_ttl
        self._cache[key] = (self._clock.now() + ttl, verdict)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_tokens:
            self._cache.popitem(last=False)  # the least recently used
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


class ServingCert:
    """A server TLS context from `cert_dir/tls.crt` and `cert_dir/tls.key` (a Secret of
    type kubernetes.io/tls mounted there, e.g. by cert-manager), loaded again when they
    change. The files are looked at on each scrape (two stat calls), not on a timer: a
    renewed certificate is in place well before the old one expires, and a new connection
    after the next scrape gets it (open connections keep the one they shook hands with).
    """

    def __init__(self, cert_dir: Path) -> None:
        self.cert, self.key = cert_dir / "tls.crt", cert_dir / "tls.key"
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._loaded = self._stamp()
        self.context.load_cert_chain(self.cert, self.key)

    def _stamp(self) -> tuple[int, int, int, int]:
        cert, key = self.cert.stat(), self.key.stat()
        return cert.st_mtime_ns, cert.st_ino, key.st_mtime_ns, key.st_ino

    def refresh(self) -> None:
        """Load the files again if they changed; keep the old pair if the new one is bad."""
        try:
            stamp = self._stamp()
            if stamp == self._loaded:
                return
            # Tried on a scratch context first: a failed load can leave the live one with
            # the new certificate and the old key, and then no handshake succeeds.
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            # cert and key are written one after the other: the next scrape tries again.
            logger.warning("cannot load the renewed metrics certificate yet: %s", error)
            return
        self._loaded = stamp
        logger.info("metrics certificate reloaded from %s", self.cert.parent)


class MetricsServer:
    """Serves /metrics only; with a `Reviewer`, only to callers allowed to read it."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        reviewer: Reviewer | None,
        host: str = "0.0.0.0",
        port: int = 8443,
        tls: ServingCert | None = None,
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
        context = self._tls.context if self._tls is not None else None
        site = web.TCPSite(self._runner, self.host, self._requested_port, ssl_context=context)
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
        if self._tls is not None:
            self._tls.refresh()
        if self.reviewer is not None:
            status, reason = await self.reviewer.check(request.headers.get("Authorization"))
            if status != 200:
                return web.Response(status=status, text=reason + "\n")
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
