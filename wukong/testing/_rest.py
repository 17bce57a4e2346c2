"""A tiny synchronous HTTPS client for the control plane's own start-up, plus kubeconfig writing."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from wukong.testing._certs import KeyPair

JsonObject = dict[str, Any]


class Rest:
    """Just enough of the Kubernetes REST API to probe, apply CRDs and request tokens."""

    def __init__(self, server: str, ca_file: Path, client: KeyPair) -> None:
        self.server = server
        # One context for every call: building it reads the files and costs more than the request.
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._context.load_cert_chain(str(client.cert), str(client.key))

    def request(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 5,
    ) -> tuple[int, str]:
        """Send one request; (status, body text) for any HTTP status; raises on I/O errors."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode(errors="replace")

    def json(self, method: str, path: str, body: JsonObject | None = None, **kw: Any) -> JsonObject:
        """Send one request and decode the JSON reply; raises RuntimeError on a non-2xx status."""
        status, text = self.request(method, path, body, **kw)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path} -> {status}: {text[:2000]}")
        result: JsonObject = json.loads(text)
        return result

    def ready(self) -> bool:
        """True once /readyz answers 200; False while it refuses, resets or reports not-ready."""
        try:
            status, _ = self.request("GET", "/readyz", timeout=2)
        except (OSError, urllib.error.URLError):
            return False
        return status == 200


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    client: KeyPair | None = None,
    token: str | None = None,
    namespace: str | None = None,
    user: str = "admin",
) -> Path:
    """Write a self-contained kubeconfig (certificates inlined, so it can be copied elsewhere)."""
    credentials: dict[str, str] = {}
    if client is not None:
        credentials["client-certificate-data"] = _b64(client.cert)
        credentials["client-key-data"] = _b64(client.key)
    if token is not None:
        credentials["token"] = token
    context: dict[str, str] = {"cluster": "wukong-local", "user": user}
    if namespace is not None:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "wukong-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
