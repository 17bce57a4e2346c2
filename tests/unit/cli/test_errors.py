"""The one-line errors people see."""

from __future__ import annotations

import aiohttp

from wukong.console.errors import explain, not_found, transport_reason
from wukong.errors import Broken, Conflict, Forbidden, Invalid, NotFound, ServerError

SERVER = "https://127.0.0.1:6443"


def _transport_failure(cause: BaseException) -> ServerError:
    try:
        raise ServerError(0, "TransportError", repr(cause)) from cause
    except ServerError as error:
        return error


def test_connection_refused_is_named_with_the_server() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6443)")
    try:
        raise aiohttp.ClientConnectionError("cannot connect") from refused
    except aiohttp.ClientConnectionError as wrapped:
        error = _transport_failure(wrapped)
    assert explain(error, SERVER) == f"cannot reach the cluster at {SERVER}: connection refused"


def test_a_timeout_reads_as_timed_out() -> None:
    assert transport_reason(_transport_failure(TimeoutError())) == "timed out"


def test_forbidden_passes_the_servers_words_through() -> None:
    message = 'wukongs.vm.novasphere.dev "web-1" is forbidden: User "bob" cannot patch resource'
    assert explain(Forbidden(403, "Forbidden", message), SERVER) == message


def test_a_body_broken_off_is_not_said_as_an_unreachable_cluster() -> None:
    """A stream cut mid-way that no reader words itself: the cluster was reached."""
    cut = Broken(aiohttp.ClientPayloadError("Response payload is not completed"))
    assert explain(cut, SERVER) == (
        f"the connection to {SERVER} broke mid-answer (ClientPayloadError): run it again"
    )


def test_other_answers_say_what_to_do() -> None:
    assert explain(ServerError(401, "Unauthorized", "x"), SERVER).startswith("unauthorized at")
    assert explain(Invalid(422, "Invalid", "spec.cpu: bad"), SERVER) == (
        "rejected by the API server: spec.cpu: bad"
    )
    assert "run the command again" in explain(Conflict(409, "Conflict", "modified"), SERVER)
    assert "(503 ServiceUnavailable)" in explain(
        ServerError(503, "ServiceUnavailable", "x"), SERVER
    )


def test_a_missing_wukong_and_a_missing_api_are_told_apart() -> None:
    missing = NotFound(404, "NotFound", 'wukongs.vm.novasphere.dev "web-9" not found')
    assert not_found("wukong", "web-9", "demo", missing).message == (
        "wukong web-9 not found in namespace demo"
    )
    no_crd = NotFound(404, "NotFound", "the server could not find the requested resource")
    assert "not installed" in not_found("wukong", "web-9", "demo", no_crd).message
