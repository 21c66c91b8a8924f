"""Writing a copy of a home ConfigMap or Secret into a peer: shared by the bind (which makes the
first copy) and the copy keeper (which keeps it equal to home afterwards)."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from extender import labels
from extender.delegation import delegate_spec
from extender.kube.api import Api, PatchType
from extender.kube.raw import ApiError

Key = tuple[str, str, str]
"""(kind, home namespace, name) of a home ConfigMap or Secret."""
Target = tuple[str, str]
"""(peer, namespace there) where a copy lives."""
MISSING_NOTE = (
    "{} {}/{} does not exist in home; containers that need it cannot start in peer {}, and it is copied there "
    "as soon as it is created"
)
"""The ReferenceMissing Event's message: kind, home namespace, name, peer."""


class CopiesMade(Protocol):
    """Told each copy a bind made or refreshed (the copy keeper then knows it is current)."""

    def copied(self, key: Key, target: Target, version: str) -> None: ...


def is_ours(existing: dict[str, Any], home_cluster: str) -> bool:
    """A copy this home made (an object of the same name made by anyone else is left alone)."""
    found = existing.get("metadata", {}).get("labels") or {}
    if found.get(delegate_spec.COPY_LABEL) != "true":
        return False
    maker = found.get(labels.HOME_CLUSTER, "")
    return not (maker and home_cluster and maker != home_cluster)


def refresh_ops(existing: dict[str, Any], body: dict[str, Any], data: bool = True) -> list[dict[str, Any]]:
    """JSON patch turning a copy into ``body`` (a ``copy_body``): data replaced whole (a merge
    patch would keep keys removed at home; ``data`` False: labels and annotations only, for an
    immutable copy), guarded by the copy's resourceVersion."""
    meta = existing.get("metadata", {})
    version = meta.get("resourceVersion")
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
    for key in ("data", "binaryData") if data else ():
        if key in body:
            ops.append({"op": "add", "path": f"/{key}", "value": body[key]})
        elif key in existing:
            ops.append({"op": "remove", "path": f"/{key}"})
    if data and body.get("immutable"):
        ops.append({"op": "add", "path": "/immutable", "value": True})
    annotations = {**(meta.get("annotations") or {}), **body["metadata"]["annotations"]}
    ops.append({"op": "add", "path": "/metadata/annotations", "value": annotations})
    found = meta.get("labels") or {}
    ops.append({"op": "add", "path": "/metadata/labels", "value": {**found, **body["metadata"]["labels"]}})
    return ops


async def write_copy(client: Api, kind: str, body: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Create the copy of a ``kind`` (a ``copy_body``), or bring an existing one of ours to it:
    patched, or replaced when immutable and its data differs (its home object was replaced)."""
    meta = body["metadata"]
    resource = delegate_spec.COPIED[kind]
    body = {**body, "kind": kind}
    item = resource.item(meta["name"], meta["namespace"])
    if existing is not None and existing.get("immutable"):
        if all(existing.get(k) == body.get(k) for k in ("data", "binaryData")):
            await client.request("PATCH", item, refresh_ops(existing, body, data=False), content_type=PatchType.JSON)
            return
        with contextlib.suppress(ApiError):
            await client.request("DELETE", item)
        existing = None
    if existing is None:
        await client.request("POST", resource.collection(meta["namespace"]), body)
        return
    await client.request("PATCH", item, refresh_ops(existing, body), content_type=PatchType.JSON)
