"""What went through KubeVirt: the local API server's audit log of KubeVirt and CDI requests.

The control plane writes one JSON line per write to a `kubevirt.io`, `snapshot.kubevirt.io`
or `cdi.kubevirt.io` object and per call of the aggregated `subresources.kubevirt.io` API
(audit policy below), so a test session can say how many requests of the operator met
KubeVirt's own webhooks and virt-api, and which were refused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "resources": [{"group": "subresources.kubevirt.io"}]},
        {
            "level": "Metadata",
            "verbs": ["create", "update", "patch", "delete"],
            "resources": [
                {"group": "kubevirt.io"},
                {"group": "snapshot.kubevirt.io"},
                {"group": "cdi.kubevirt.io"},
            ],
        },
        {"level": "None"},
    ],
}


def audit_args(work: Path) -> list[str]:
    """kube-apiserver flags for the policy above; the log is `<work>/audit.log`."""
    policy = work / "audit-policy.json"
    policy.write_text(json.dumps(POLICY))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={work / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",
    ]


@dataclass(frozen=True)
class Request:
    """One audited request: who, what, and the answer."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    message: str
    webhooks: tuple[str, ...]  # mutating webhooks that saw it (from the audit annotations)

    @property
    def what(self) -> str:
        """e.g. "virtualmachines create" or "virtualmachines/stop update"."""
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.resource}{sub} {self.verb}"

    @property
    def refused_by_webhook(self) -> bool:
        """Denied by an admission webhook (the API server's "admission webhook ... denied")."""
        return self.code >= 400 and "admission webhook" in self.message


def read(path: Path, *, since: int = 0) -> Iterator[Request]:
    """Requests in the log (from byte offset `since`), completed ones only."""
    if not path.is_file():
        return
    with path.open("rb") as log:
        log.seek(since)
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if event.get("stage") != "ResponseComplete":
                continue
            ref = event.get("objectRef") or {}
            status = event.get("responseStatus") or {}
            annotations = event.get("annotations") or {}
            hooks = tuple(
                json.loads(v).get("webhook", "")
                for k, v in annotations.items()
                if k.startswith("mutation.webhook.admission.k8s.io/")
            )
            yield Request(
                user=(event.get("user") or {}).get("username", ""),
                verb=event.get("verb", ""),
                group=ref.get("apiGroup", ""),
                resource=ref.get("resource", ""),
                subresource=ref.get("subresource", ""),
                namespace=ref.get("namespace", ""),
                name=ref.get("name", ""),
                code=int(status.get("code") or 0),
                message=str(status.get("message") or ""),
                webhooks=hooks,
            )


def size(path: Path) -> int:
    """Current length of the log, to read only what a test added later."""
    return path.stat().st_size if path.is_file() else 0


def tally(requests: Iterable[Request]) -> Counter[tuple[str, int]]:
    """(what, HTTP code) -> count."""
    return Counter((r.what, r.code) for r in requests)
