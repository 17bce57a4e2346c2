"""One-line errors and exit codes: every failure a person sees is worded here."""

from __future__ import annotations

from typing import Final

from wukong.errors import (
    NOT_KUBERNETES,
    ApiError,
    Broken,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServerError,
    excerpt,
)

OK: Final = 0
FAILED: Final = 1  # refused, failed, timed out, not found, unreachable
USAGE: Final = 2  # the command line itself is wrong (click uses 2 as well)


class CliError(Exception):
    """A failure to print as `error: <message>` before exiting with `code`."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def usage(message: str) -> CliError:
    """A usage error (exit code 2)."""
    return CliError(message, USAGE)


NO_API: Final = (
    "the Wukong API (vm.novasphere.dev/v1alpha1) is not installed in this cluster: "
    "apply manifests/crd/ first"
)


def api_missing(error: NotFound) -> bool:
    """A 404 for the resource type itself (the CRD is not installed), not for one object."""
    return "could not find the requested resource" in error.message or (
        error.reason == "NotFound" and error.message == "404 page not found"
    )


def not_found(kind: str, name: str, namespace: str, error: NotFound) -> CliError:
    """A missing object, or a missing API when the CRD is not installed."""
    if api_missing(error):
        return CliError(NO_API)
    return CliError(f"{kind} {name} not found in namespace {namespace}")


def server_words(error: ApiError, server: str = "") -> str:
    """What the server said, in one line: a Status's message as it is; an aggregated API's
    plain text on one line, at most TEXT characters; a web page not at all, but as kubectl
    says it (`the server responded with the status code 502 but did not return more
    information`) with a short excerpt. It printed a proxy's whole HTML page (audit
    leftovers, session 50). `server`: named in that sentence."""
    if not error.raw:
        return error.message or f"{error.status} {error.reason}, with no message"
    if not error.web_page:
        return error.said
    said = (
        f"the server{f' at {server}' if server else ''} responded with the status code "
        f"{error.status} but did not return more information"
    )
    return f"{said} (a web page: {words})" if (words := excerpt(error.message)) else said


def bodiless(error: NotFound) -> bool:
    """A 404 with nothing in its body, or a web page. A kube-apiserver always says why (a
    JSON Status, or `404 page not found` for a group it does not serve); a proxy, the wrong
    port or a load balancer's default backend need not. client-go calls it "the server
    could not find the requested resource", which `api_missing` would read as a missing
    CRD, and a page read as a Wukong not found told the user their VM was gone."""
    return not error.message or error.web_page


def not_kubernetes(error: NotFound) -> ServerError:
    """A bodiless 404 (or a web page), as what it says about the server."""
    if error.web_page:
        page = excerpt(error.message)
        said = f"the answer was a 404 web page: {page}" if page else "the answer was a 404 web page"
        return ServerError(404, NOT_KUBERNETES, said, path=error.path)
    return ServerError(404, NOT_KUBERNETES, "the answer was a 404 with no body", path=error.path)


def explain(error: ApiError, server: str) -> str:
    """What an API error means for the person at the keyboard; never an empty message (an
    answer with no body is named by its status: `error: ` alone said nothing, session 44);
    one line, whatever the body was (`server_words`)."""
    said = server_words(error)
    if isinstance(error, Broken):  # a reader that does not word it itself
        return f"the connection to {server} broke mid-answer ({error.cause}): run it again"
    if error.status == 0:
        return f"cannot reach the cluster at {server}: {transport_reason(error)}"
    if error.status == 401:
        return f"unauthorized at {server}: the kubeconfig's credentials were not accepted"
    if isinstance(error, NotFound):
        if bodiless(error):
            return explain(not_kubernetes(error), server)
        return NO_API if api_missing(error) and "/vm.novasphere.dev/" in error.path else said
    if error.web_page:  # not the API server's words: its status line and an excerpt
        return server_words(error, server)
    if isinstance(error, Forbidden):
        return said  # the API server's text names the user, verb and resource
    if isinstance(error, Invalid):
        return f"rejected by the API server: {said}"
    if isinstance(error, Conflict):
        return f"{said} (it changed meanwhile: run the command again)"
    if isinstance(error, ServerError) and error.reason == NOT_KUBERNETES:
        return f"the server at {server} did not answer as a Kubernetes API server ({said})"
    if isinstance(error, ServerError):
        failed = f"the API server failed ({error.status} {error.reason})"
        return f"{failed}: {said}" if error.message else failed
    return f"{error.status} {error.reason}: {said}" if error.raw else str(error)


def transport_reason(error: BaseException) -> str:
    """The root cause of a transport failure in a few words ('connection refused')."""
    seen: BaseException | None = error.__cause__
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, TimeoutError):
            return "timed out"
        if seen.__cause__ is None and seen.__context__ is None:
            break
        seen = seen.__cause__ or seen.__context__
    cause = error.__cause__
    if cause is None:
        return str(error)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause) or type(cause).__name__
