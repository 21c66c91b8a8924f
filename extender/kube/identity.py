"""Which cluster this is: the UID of its kube-system namespace.

Kubernetes has no cluster ID; kube-system's UID is the usual stand-in (it is created with the
cluster, never deleted, and unique without anyone choosing it). Spillover labels what it makes
in peers with it, so several homes can share a peer without touching each other's objects.
"""

from __future__ import annotations

import asyncio
import logging
import time

from extender.kube.api import NAMESPACES, Api, decode_object
from extender.kube.raw import ApiError

log = logging.getLogger("spillover.identity")


async def kube_system_uid(home: Api, wait: float = 60.0) -> str:
    """Retries while the apiserver cannot answer (Spillover may start before it), then says why."""
    deadline = time.monotonic() + wait
    while True:
        try:
            uid = decode_object(await home.get(NAMESPACES.item("kube-system"))).metadata.uid
            if not uid:
                raise RuntimeError("namespace kube-system has no uid")
            return uid
        except (ApiError, OSError, RuntimeError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"cannot read namespace kube-system to identify this home cluster ({exc}); "
                    "grant `get` on namespaces or set --cluster-id"
                ) from exc
            log.warning("waiting for the home apiserver to read this cluster's id: %s", exc)
            await asyncio.sleep(2)
