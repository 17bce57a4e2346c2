"""The one-line errors people see."""

from __future__ import annotations

import json

import aiohttp

from wukong.console.errors import explain, not_found, server_words, transport_reason
from wukong.errors import Broken, Conflict, Forbidden, Invalid, NotFound, ServerError, classify

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


INGRESS_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    + "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6
    + "</body>\r\n</html>\r\n"
)


def test_a_proxys_web_page_is_its_status_line_and_a_short_excerpt() -> None:
    """An ingress's 502 page where a Status should be: the whole page was printed, tags,
    comments and all (audit leftovers, session 50). As kubectl says it, and its title."""
    error = classify(502, INGRESS_502, "/apis/vm.novasphere.dev/v1alpha1/namespaces/d/wukongs")
    assert error.raw
    assert explain(error, SERVER) == (
        f"the server at {SERVER} responded with the status code 502 but did not return more "
        "information (a web page: 502 Bad Gateway)"
    )
    # A page with no title: its text, without markup, cut short.
    untitled = classify(403, "<html><body><p>Access &amp; denied " + "x" * 300 + "</p></body>")
    said = explain(untitled, SERVER)
    assert said.startswith(
        f"the server at {SERVER} responded with the status code 403 but did not return more "
        "information (a web page: Access & denied xxx"
    )
    assert len(said) < len(SERVER) + 200 and "<" not in said and "\n" not in said


def test_a_web_page_404_is_no_missing_wukong_nor_api() -> None:
    error = classify(404, INGRESS_502.replace("502 Bad Gateway", "404 Not Found"), "/apis/x")
    assert isinstance(error, NotFound)
    said = explain(error, SERVER)
    assert said == (
        f"the server at {SERVER} did not answer as a Kubernetes API server (the answer was a "
        "404 web page: 404 Not Found)"
    )


def test_an_aggregated_apis_plain_text_is_said_on_one_short_line() -> None:
    """virt-api answers some refusals in plain text: its words stay, on one line."""
    short = classify(500, "VMI does not have guest agent connected\n")
    assert explain(short, SERVER) == (
        "the API server failed (500 ServerError): VMI does not have guest agent connected"
    )
    long = classify(500, "line one\nline two\n" + "y" * 400)
    said = server_words(long)
    assert "\n" not in said and len(said) == 200 and said.endswith("…")
    # A Status's message is said as it is, whatever its length.
    status = json.dumps({"kind": "Status", "code": 500, "message": "etcd\n" + "z" * 300})
    assert not classify(500, status).raw
    assert server_words(classify(500, status)) == "etcd\n" + "z" * 300


def test_an_api_errors_own_words_are_short_for_the_operators_logs_and_conditions() -> None:
    """The operator's log lines and a Wukong's conditions say `str(error)` and `said`: a web
    page was whole there (audit leftovers, session 50). The CLI's excerpt, shared."""
    page = classify(502, INGRESS_502, "/apis/kubevirt.io/v1/namespaces/d/virtualmachines/v")
    assert page.said == "a web page: 502 Bad Gateway"
    assert str(page) == (
        "502 ServerError: a web page: 502 Bad Gateway "
        "(/apis/kubevirt.io/v1/namespaces/d/virtualmachines/v)"
    )
    assert page.message == INGRESS_502.strip()  # whole, for whoever reads it (the CLI)
    text = classify(500, "line one\nline two\n" + "y" * 400)
    assert text.said == server_words(text) and len(text.said) == 200 and "\n" not in str(text)
    status = classify(500, json.dumps({"kind": "Status", "message": "etcd\n" + "z" * 300}))
    assert status.said == "etcd\n" + "z" * 300  # a Status's message as the server said it
