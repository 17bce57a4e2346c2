"""virt-api's error answers: apimachinery Status objects, or plain text for guest GETs."""

from __future__ import annotations

from dataclasses import dataclass

from ._kube import ApiError, JsonObj


@dataclass
class Reply:
    """An HTTP answer: JSON (dict), plain text (str) or empty (None)."""

    status: int
    body: JsonObj | str | None = None


def status_error(code: int, reason: str, message: str, details: JsonObj | None = None) -> Reply:
    """A metav1.Status failure, as apimachinery's StatusError serialises it."""
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return Reply(code, body)


def conflict(kind: str, name: str, message: str) -> Reply:
    """409 `Operation cannot be fulfilled on <kind>.kubevirt.io "<name>": <message>`."""
    return status_error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind}.kubevirt.io "{name}": {message}',
        {"name": name, "group": "kubevirt.io", "kind": kind},
    )


def not_found(kind: str, name: str) -> Reply:
    """404 `<kind>.kubevirt.io "<name>" not found`."""
    return status_error(
        404,
        "NotFound",
        f'{kind}.kubevirt.io "{name}" not found',
        {"name": name, "group": "kubevirt.io", "kind": kind},
    )


def bad_request(message: str) -> Reply:
    """400 BadRequest."""
    return status_error(400, "BadRequest", message)


def internal(message: str) -> Reply:
    """500 InternalError."""
    return status_error(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def passthrough(err: ApiError) -> Reply:
    """Give the API server's own Status back (virt-api does so for Invalid errors)."""
    if err.status == 422 and isinstance(err.body, dict):
        return Reply(422, err.body)
    return internal(str(err.body.get("message") if isinstance(err.body, dict) else err.body))


def dry_run(body: JsonObj | None) -> bool:
    """Body field dryRun == [\"All\"]."""
    dry = (body or {}).get("dryRun") or []
    return bool(dry) and dry[0] == "All"
