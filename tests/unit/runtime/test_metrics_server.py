"""/metrics on its own port: every documented family, and kubebuilder-style authentication
(TokenReview, then SubjectAccessReview) with a per-token cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wukong.adapters.kube import Kube
from wukong.errors import Forbidden
from wukong.runtime.clock import FakeClock
from wukong.runtime.metrics import DOCUMENTED, Metrics
from wukong.runtime.metrics_server import MetricsServer, Reviewer

TOKENS = {"prom": ("system:serviceaccount:monitoring:prometheus", True), "dev": ("dev", False)}


class ReviewingKube(Kube):
    """Answers TokenReviews and SubjectAccessReviews from TOKENS, counting them."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.posts: list[str] = []
        self.refuse = refuse

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.posts.append(obj["kind"])
        if self.refuse:
            raise Forbidden(403, "Forbidden", "tokenreviews is forbidden", path=path)
        if obj["kind"] == "TokenReview":
            known = TOKENS.get(obj["spec"]["token"])
            if known is None:
                return {"status": {"authenticated": False, "error": "invalid bearer token"}}
            return {"status": {"authenticated": True, "user": {"username": known[0]}}}
        user = obj["spec"]["user"]
        assert obj["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
        allowed = any(name == user and ok for name, ok in TOKENS.values())
        return {"status": {"allowed": allowed}}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(
    http: aiohttp.ClientSession, server: MetricsServer, token: str | None = None
) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"http://127.0.0.1:{server.port}/metrics", headers=headers) as response:
        return response.status, await response.text()


async def test_every_documented_family_is_exposed(http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.track_phases(lambda: {("demo", "Running"): 3})
    metrics.count_api_request("patch", 409, "wukongs/status")
    metrics.count_api_request("list", 200, "wukongs")
    async with MetricsServer(metrics, reviewer=None, host="127.0.0.1", port=0) as server:
        status, text = await scrape(http, server)
    assert status == 200
    for name in DOCUMENTED:
        assert f"# TYPE {name} " in text, name
    assert 'wukong_phase{namespace="demo",phase="Running"} 3.0' in text
    assert (
        'wukong_kube_api_requests_total{code="409",resource="wukongs/status",verb="PATCH"}' in text
    )
    assert 'verb="LIST"' in text and 'verb="list"' not in text
    assert "wukong_reconcile_errors_total" not in text
    assert 'wukong_build_info{python="' in text


async def test_scrapes_need_a_token_that_may_get_metrics(http: aiohttp.ClientSession) -> None:
    kube = ReviewingKube()
    clock = FakeClock()
    reviewer = Reviewer(kube, ttl=60, clock=clock)
    async with MetricsServer(Metrics(), reviewer=reviewer, host="127.0.0.1", port=0) as server:
        assert (await scrape(http, server))[0] == 401
        assert await scrape(http, server, "stolen") == (
            401,
            "Unauthorized: invalid bearer token\n",
        )
        assert await scrape(http, server, "dev") == (
            403,
            'Forbidden: user "dev" cannot get path "/metrics"\n',
        )
        status, text = await scrape(http, server, "prom")
        assert status == 200 and "wukong_build_info" in text
        before = len(kube.posts)
        assert (await scrape(http, server, "prom"))[0] == 200
        assert len(kube.posts) == before  # cached
        clock.advance(61)
        assert (await scrape(http, server, "prom"))[0] == 200
        assert kube.posts[before:] == ["TokenReview", "SubjectAccessReview"]


async def test_a_review_the_operator_may_not_make_is_a_500_not_a_pass(
    http: aiohttp.ClientSession,
) -> None:
    reviewer = Reviewer(ReviewingKube(refuse=True))
    async with MetricsServer(Metrics(), reviewer=reviewer, host="127.0.0.1", port=0) as server:
        status, text = await scrape(http, server, "prom")
    assert status == 500 and "cannot review the token" in text
