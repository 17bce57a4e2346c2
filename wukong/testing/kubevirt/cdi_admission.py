"""What CDI's `datavolume-mutate` webhook answers to a DataVolume's create or update.

CDI v1.65 (apiserver/webhooks/datavolume-mutate.go, and AuthorizeUser with
newCloneSourceHandler in its API's core/v1beta1 authorize.go, authorize_utils.go) asks, for
every write of a DataVolume not being deleted, what it clones:

- `spec.source` set: its `pvc` or `snapshot`, if any (a `sourceRef` beside it is ignored);
- else a `sourceRef` of kind DataSource: that DataSource is read (namespace: the ref's, else
  the DataVolume's), and its `spec.source.pvc`/`snapshot` are the clone's source, or its
  `status.source` ones when it names another DataSource (`spec.source.dataSource`). A
  DataSource that does not exist refuses the write with Go's NotFound words, 400;
- then the source's namespace (the DataVolume's when the source names none) is read: missing,
  the write is refused the same way.

A DataVolume annotated `storage.prePopulated` or `storage.checkStaticVolume` needs no clone
token, and either lookup missing lets it through. Nothing here depends on the operation: CDI
adds a clone token on create only, which the simulator does not model. Who may clone another
namespace's PVC is the admission policy `cdi.CLONE_AUTHORIZATION`, not repeated here.

Pure: the webhook server (`cdi_webhook.py`) reads what `data_source_wanted` and
`clone_namespace` name and passes it in as `Lookups`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._kube import JsonObj
from .cdi import PRE_POPULATED_ANN, data_source_of
from .objects import annotation, deleting

# Statically provisioned: CDI checks for a PV before it makes the claim (AnnCheckStaticVolume).
CHECK_STATIC_VOLUME_ANN = "cdi.kubevirt.io/storage.checkStaticVolume"
NO_TOKEN_NEEDED = (PRE_POPULATED_ANN, CHECK_STATIC_VOLUME_ANN)
CLONE_KINDS = ("pvc", "snapshot")  # newCloneSourceHandler: a PVC first, then a snapshot


@dataclass(frozen=True)
class Lookups:
    """What the webhook read from the API server for one DataVolume: None for NotFound (or
    for what it did not need to read)."""

    data_source: JsonObj | None = None
    source_namespace: JsonObj | None = None


@dataclass(frozen=True)
class Answer:
    """The AdmissionResponse: allowed, or refused with an HTTP code and message."""

    allowed: bool
    code: int = 200
    message: str = ""


ALLOWED = Answer(allowed=True)


def refused(message: str) -> Answer:
    """CDI's toAdmissionResponseError: 400 with the error's text."""
    return Answer(allowed=False, code=400, message=message)


def data_source_wanted(dv: JsonObj) -> tuple[str, str] | None:
    """(namespace, name) of the DataSource CDI reads to learn what `dv` clones: its
    sourceRef's, unless it names a source of its own."""
    if (dv.get("spec") or {}).get("source") is not None:
        return None
    return data_source_of(dv)


def clone_namespace(dv: JsonObj, data_source: JsonObj | None) -> str | None:
    """The namespace of the PVC or snapshot `dv` clones (through `data_source`, what its
    sourceRef names); None when it clones nothing (an import, a blank disk, an upload)."""
    spec = dv.get("spec") or {}
    source: JsonObj
    if spec.get("source") is not None:
        source = spec["source"] or {}
    elif data_source is not None:
        source = (data_source.get("spec") or {}).get("source") or {}
        if source.get("dataSource") is not None:
            source = (data_source.get("status") or {}).get("source") or {}
    else:
        return None
    for kind in CLONE_KINDS:
        if (origin := source.get(kind)) is not None:
            # AuthorizeUser: a source naming no namespace is in the DataVolume's (not the
            # DataSource's).
            return str((origin or {}).get("namespace") or dv["metadata"]["namespace"])
    return None


def admit(dv: JsonObj, lookups: Lookups) -> Answer:
    """CDI's answer to a create or update of `dv` (whose metadata.namespace is set)."""
    if deleting(dv):
        return ALLOWED  # "No point continuing if DV is flagged for deletion"
    no_token_okay = any(annotation(dv, ann) is not None for ann in NO_TOKEN_NEEDED)
    ref = data_source_wanted(dv)
    if ref is not None and lookups.data_source is None:
        missing = f'datasources.cdi.kubevirt.io "{ref[1]}" not found'
        return ALLOWED if no_token_okay else refused(missing)
    namespace = clone_namespace(dv, lookups.data_source)
    if namespace is None:
        return ALLOWED
    if lookups.source_namespace is None:
        return ALLOWED if no_token_okay else refused(f'namespaces "{namespace}" not found')
    return ALLOWED  # the clone permission: CLONE_AUTHORIZATION, an admission policy
