"""/metrics on its own port: every documented family, and kubebuilder-style authentication
(TokenReview, then SubjectAccessReview) with a per-token cache."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from wukong.adapters.kube import Kube
from wukong.errors import Forbidden
from wukong.runtime.clock import FakeClock
from wukong.runtime.metrics import DOCUMENTED, Metrics
from wukong.runtime.metrics_server import MetricsServer, Reviewer, ServingCert
from wukong.testing._certs import KeyPair, write_pki

TOKENS = {"prom": ("system:serviceaccount:monitoring:prometheus", True), "dev": ("dev", False)}


class ReviewingKube(Kube):
    """Answers TokenReviews and SubjectAccessReviews from TOKENS, counting them."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.posts: list[str] = []
        self.refuse = refuse
        self.allowed: set[str] = set()  # users granted after the fact

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
        allowed = user in self.allowed or any(name == user and ok for name, ok in TOKENS.values())
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
    assert "wukong_workqueue_retries" not in text  # = reconcile_total{result="error"}
    assert 'wukong_build_info{python="' in text


async def test_metrics_are_served_as_the_0_0_4_text_format(http: aiohttp.ClientSession) -> None:
    """The literal header, not the constant the server sends: prometheus_client's own
    CONTENT_TYPE_LATEST says `version=1.0.0` since 0.26, so a change of the constant or of
    the client could change what scrapers are told unnoticed (audit s42, finding 10)."""
    async with MetricsServer(Metrics(), reviewer=None, host="127.0.0.1", port=0) as server:
        async with http.get(f"http://127.0.0.1:{server.port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = await response.text()
    assert text.startswith("# HELP ") and "# EOF" not in text  # not OpenMetrics


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


async def test_a_refusal_is_kept_briefly_so_a_scraper_just_bound_gets_in() -> None:
    """CI, session 24: the SubjectAccessReview right after the ClusterRoleBinding was created
    came before the API server's RBAC cache saw it; cached 60 s, that 403 locked the scraper out
    for a minute."""
    kube = ReviewingKube()
    clock = FakeClock()
    reviewer = Reviewer(kube, ttl=60, refusal_ttl=5, clock=clock)
    assert (await reviewer.check("Bearer dev"))[0] == 403
    assert (await reviewer.check("Bearer stolen"))[0] == 401
    reviews = kube.posts.count("TokenReview")
    clock.advance(4)
    assert (await reviewer.check("Bearer dev"))[0] == 403
    assert kube.posts.count("TokenReview") == reviews  # still cached
    kube.allowed.add("dev")  # the binding arrives
    clock.advance(2)
    assert (await reviewer.check("Bearer dev"))[0] == 200
    assert (await reviewer.check("Bearer stolen"))[0] == 401
    assert kube.posts.count("TokenReview") == reviews + 2
    clock.advance(30)
    assert (await reviewer.check("Bearer dev"))[0] == 200  # an allowance lasts longer
    assert kube.posts.count("TokenReview") == reviews + 2


async def test_a_review_the_operator_may_not_make_is_a_500_not_a_pass(
    http: aiohttp.ClientSession,
) -> None:
    reviewer = Reviewer(ReviewingKube(refuse=True))
    async with MetricsServer(Metrics(), reviewer=reviewer, host="127.0.0.1", port=0) as server:
        status, text = await scrape(http, server, "prom")
    assert status == 500 and "cannot review the token" in text


class SlowReviewingKube(ReviewingKube):
    """Takes a turn of the event loop per review, as a real API call does."""

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return await super().create(path, obj)


async def test_concurrent_scrapes_with_one_token_share_one_review() -> None:
    kube = SlowReviewingKube()
    reviewer = Reviewer(kube, clock=FakeClock())
    verdicts = await asyncio.gather(*(reviewer.check("Bearer prom") for _ in range(50)))
    assert {v[0] for v in verdicts} == {200}
    assert kube.posts == ["TokenReview", "SubjectAccessReview"]


async def test_unknown_tokens_are_reviewed_at_a_bounded_rate() -> None:
    """Anyone who reaches the port can send tokens: 5,000 junk ones cost the API server
    5,000 TokenReviews before (review finding, session 22)."""
    kube = ReviewingKube()
    clock = FakeClock()
    reviewer = Reviewer(kube, clock=clock, reviews_per_second=5, burst=20)
    verdicts = [(await reviewer.check(f"Bearer junk-{i}"))[0] for i in range(5000)]
    assert verdicts.count(401) == 20 and verdicts.count(429) == 4980
    assert len(kube.posts) == 20
    clock.advance(1)
    assert (await reviewer.check("Bearer prom"))[0] == 200  # the bucket refills
    # A known token is answered from the cache whatever the rate.
    assert [(await reviewer.check("Bearer prom"))[0] for _ in range(100)] == [200] * 100


async def test_the_token_cache_keeps_the_most_recently_used() -> None:
    kube = ReviewingKube()
    reviewer = Reviewer(kube, clock=FakeClock(), max_tokens=2)
    for token in ("prom", "dev", "prom", "junk-1"):
        await reviewer.check(f"Bearer {token}")
    reviews = kube.posts.count("TokenReview")
    assert reviews == 3
    await reviewer.check("Bearer prom")  # kept: used more recently than "dev"
    assert kube.posts.count("TokenReview") == reviews
    await reviewer.check("Bearer dev")  # dropped
    assert kube.posts.count("TokenReview") == reviews + 1


async def served_cert(port: int) -> bytes:
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return bytes(der)


def install(pair: KeyPair, cert_dir: Path) -> bytes:
    """Put a key pair in place the way a Secret volume does (a new file, renamed in)."""
    for source, name in ((pair.cert, "tls.crt"), (pair.key, "tls.key")):
        shutil.copy(source, cert_dir / f".{name}.new")
        os.replace(cert_dir / f".{name}.new", cert_dir / name)
    return ssl.PEM_cert_to_DER_cert(pair.cert.read_text())


async def test_a_renewed_certificate_is_served_after_the_next_scrape(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """cert-manager renews the mounted Secret: the old certificate was served until it
    expired, then every scrape failed (review finding, session 22)."""
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    first = install(write_pki(tmp_path / "a").serving, cert_dir)
    tls = ServingCert(cert_dir)
    async with MetricsServer(Metrics(), reviewer=None, host="127.0.0.1", port=0, tls=tls) as s:
        assert await served_cert(s.port) == first
        install(write_pki(tmp_path / "b").serving, cert_dir)
        (cert_dir / "tls.key").write_text("half written")  # a bad pair keeps the old one
        async with http.get(f"https://127.0.0.1:{s.port}/metrics", ssl=False) as response:
            assert response.status == 200
        assert await served_cert(s.port) == first
        renewed = install(write_pki(tmp_path / "c").serving, cert_dir)
        async with http.get(f"https://127.0.0.1:{s.port}/metrics", ssl=False) as response:
            assert response.status == 200
        assert await served_cert(s.port) == renewed
