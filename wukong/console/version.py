"""`wukong version`: the CLI's version, and the operator's from its Deployments' labels.

The Kubernetes client is imported only to ask the cluster: `version --client` asks nothing,
and prints without loading it (about a second of imports).
"""

from __future__ import annotations

from typing import Any, Final

from wukong import __version__
from wukong.console.errors import FAILED, OK, CliError, explain
from wukong.console.invocation import Cluster, Console
from wukong.console.output import Output, document
from wukong.errors import ApiError, Forbidden

JsonObj = dict[str, Any]
OPERATOR_SELECTOR: Final = "app.kubernetes.io/name=wukong,app.kubernetes.io/component=operator"


async def version(cluster: Cluster, io: Console, client_only: bool, output: Output | None) -> int:
    """The CLI's version; unless `client_only`, the operator's from its Deployments' labels."""
    found: JsonObj = {"clientVersion": __version__}
    why_not: CliError | None = None
    if not client_only:
        # As kubectl: the client's version whatever happens, then the server's; a cluster
        # that could not be asked has no version line, its reason is said once, on stderr,
        # and the exit code is 1 (kubectl's `Server Version` line and `serverVersion` key
        # are left out then). Said on both streams until session 46.
        try:
            found["operatorVersion"] = await _operator_version(cluster)
        except CliError as error:
            why_not = error
    if output in (Output.JSON, Output.YAML):
        io.out(document(found, output))
    else:
        io.out(f"Client Version: {found['clientVersion']}")
        if "operatorVersion" in found:
            io.out(f"Operator Version: {found['operatorVersion']}")
    if why_not is None:
        return OK
    io.say(f"error: {why_not.message}")
    return FAILED


async def _operator_version(cluster: Cluster) -> str:
    """`app.kubernetes.io/version` of the operator's Deployments (any namespace), or why
    not; CliError when the cluster could not be asked."""
    from wukong.adapters.kube import api_path
    from wukong.console.connect import connect

    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        path = api_path("apps", "v1", "deployments")
        try:
            found = await target.listed(path, query={"labelSelector": OPERATOR_SELECTOR})
        except Forbidden as error:  # an answer: this user may not read Deployments
            return f"unknown ({explain(error, target.server)})"
        except ApiError as error:
            raise CliError(explain(error, target.server)) from None
        seen = sorted(
            {
                str((d["metadata"].get("labels") or {}).get("app.kubernetes.io/version") or "?")
                + f" ({d['metadata'].get('namespace')}/{d['metadata']['name']})"
                for d in found
            }
        )
        return ", ".join(seen) or f"not installed (no Deployment labelled {OPERATOR_SELECTOR})"
