"""Adopting this home's delegates made before they named their home (an upgrade).

Delegates and copies carry spillover.io/home-cluster so homes can share a peer; older ones
lack it and so would be neither watched nor swept. A delegate is this home's when its pod is
here with that UID; anything else is left alone, never deleted: it may be another home's, not
yet adopted by its own Spillover. Runs once per peer, on every replica (it only adds a label).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from extender import labels
from extender.delegation import delegate_spec
from extender.kube.api import PODS, Api, PatchType, decode_list, decode_object
from extender.kube.raw import ApiError
from extender.peers.directory import PeerRuntime
from extender.wire.core import pod_decoder

log = logging.getLogger("spillover.delegator")


async def adopt_until_done(home: Api, peer: PeerRuntime, home_cluster: str) -> None:
    """Adopt, retrying while the peer does not answer (it may not yet at start)."""
    while True:
        try:
            adopted = await adopt_unlabelled(home, peer.raw, home_cluster)
        except Exception as exc:  # the peer is not answering yet: try again later
            log.info("unlabelled delegates in %s not adopted yet: %s", peer.state.name, exc)
            await asyncio.sleep(10)
            continue
        if adopted:
            log.info("adopted %d delegates made before they named their home", adopted)
        return


async def adopt_unlabelled(home: Api, client: Api, home_cluster: str) -> int:
    """Label this home's unlabelled delegates and their copies; returns how many delegates."""
    mark = {"metadata": {"labels": delegate_spec.home_labels(home_cluster)}}
    query = [("labelSelector", f"{delegate_spec.DELEGATES},!{labels.HOME_CLUSTER}")]
    adopted = 0
    for item in decode_list(await client.get(PODS.collection(), query=query)):
        meta = item.metadata
        found = meta.labels or {}
        home_ns, home_name = found.get(labels.HOME_NAMESPACE), found.get(labels.HOME_NAME)
        if not home_ns or not home_name:
            continue
        try:
            pod = pod_decoder.decode(await home.get(PODS.item(home_name, home_ns)))
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        if pod.metadata.uid != found.get(labels.PROXY_UID):
            continue
        namespace = meta.namespace
        await client.request("PATCH", PODS.item(meta.name, namespace), mark, content_type=PatchType.MERGE)
        adopted += 1
        for kind, name in delegate_spec.copies_of(meta.annotations):
            path = delegate_spec.COPIED[kind].item(name, namespace)
            with contextlib.suppress(ApiError):
                copied = decode_object(await client.get(path)).metadata.labels or {}
                if copied.get(delegate_spec.COPY_LABEL) == "true" and labels.HOME_CLUSTER not in copied:
                    await client.request("PATCH", path, mark, content_type=PatchType.MERGE)
    return adopted
