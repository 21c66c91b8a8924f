"""One Node per peer in home: the scheduler's view of a peer, kept honest and alive.

Allocatable is what the peer can take now, so kube-scheduler's own NodeResourcesFit is a real
first cut. Every capacity change bumps an annotation: the scheduler re-queues pods it had
rejected on any node update (not on Lease renewals), so spill candidates are retried at once
instead of after the 5-minute unschedulable timeout (kubernetes#122019). Liveness comes from a
Lease in kube-node-lease renewed every 10 s, as a kubelet does; health flips are status writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from extender import __version__, labels
from extender.capacity.model import PeerState
from extender.kube.api import LEASES, NODES, Api, PatchType
from extender.kube.lease import LeaseSpec, lease_body
from extender.kube.raw import ApiError
from extender.kube.times import rfc3339
from extender.resources import CPU, MEMORY, PODS, Resources
from extender.wire.core import Node

log = logging.getLogger("spillover.virtualnode")
LEASE_SECONDS = 40
NODE_LEASE_NS = "kube-node-lease"
RENEW_EVERY = 10.0
FLUSH_EVERY = 0.25
ADOPT_GRACE = 30.0
"""Seconds a restarted process leaves an existing node's status alone while it syncs the peer."""
ADOPTED = (-1, True, True)
"""What ``_written`` holds for a node an earlier process created, before this one writes its status."""
REWRITE = (-2, False, False)
"""What ``_written`` holds for a node whose status is to be written again whatever changed."""


def virtual_node_name(peer: str) -> str:
    return labels.VIRTUAL_NODE_PREFIX + peer


def quantities(res: Resources) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, amount in res.items():
        if name == CPU:
            out[name] = f"{amount}m"
        else:
            out[name] = str(amount)
    out.setdefault(CPU, "0")
    out.setdefault(MEMORY, "0")
    out.setdefault(PODS, "0")
    return out


def node_ready(peer: PeerState) -> bool:
    """Whether the virtual node says Ready: the peer answers and can run what it holds.

    A paused peer stays Ready (it takes nothing new: its allocatable is zero). NotReady makes the
    node-lifecycle controller taint the node ``not-ready:NoExecute``, and a pod without
    Spillover's toleration would be evicted from a peer that is running it fine.
    """
    return peer.reachable and peer.synced and not peer.detaching


def ready_condition(peer: PeerState) -> dict[str, str]:
    now = rfc3339()
    if node_ready(peer):
        paused = peer.paused and not peer.healthy
        return {
            "type": "Ready",
            "status": "True",
            "reason": "PeerPaused" if paused else "PeerReady",
            "message": (
                f"peer {peer.name} is paused (PeerCluster spec.paused): its pods run on, nothing new is placed"
                if paused
                else f"peer {peer.name} is reachable and its capacity cache is synced"
            ),
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    return {
        "type": "Ready",
        "status": "False",
        "reason": "PeerDetaching" if peer.detaching else "PeerUnreachable",
        "message": peer.health_reason(),
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def node_status(peer: PeerState, kubelet: tuple[str, int] | None = None) -> dict[str, Any]:
    """``kubelet``: the address and port of Spillover's kubelet API, where kube-apiserver calls
    for the logs of the node's pods (only an InternalIP: a Hostname address, preferred by default,
    would have to resolve)."""
    allocatable = quantities(peer.advertised()) if peer.healthy else quantities({})
    endpoint: dict[str, Any] = {}
    if kubelet is not None:
        endpoint = {
            "addresses": [{"type": "InternalIP", "address": kubelet[0]}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet[1]}},
        }
    return {
        **endpoint,
        "capacity": allocatable,
        "allocatable": allocatable,
        "conditions": [ready_condition(peer)],
        "nodeInfo": {
            "kubeletVersion": f"spillover-{__version__}",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": "",
            "osImage": f"Spillover virtual node for peer {peer.name}",
            "containerRuntimeVersion": "",
            "kubeProxyVersion": "",
        },
    }


def node_body(peer: PeerState, kubelet: tuple[str, int] | None = None) -> dict[str, Any]:
    name = virtual_node_name(peer.name)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "virtual-kubelet",
                labels.VIRTUAL: "true",
                labels.PEER: peer.name,
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
            },
            "annotations": {labels.CAPACITY_GENERATION: str(peer.generation)},
        },
        "spec": {"taints": [{"key": labels.VIRTUAL, "value": peer.name, "effect": "NoSchedule"}]},
        "status": node_status(peer, kubelet),
    }


class VirtualNodes:
    """Writes virtual nodes and their Leases; ``touch`` marks a peer for the next flush."""

    def __init__(self, home: Api, kubelet: tuple[str, int] | None = None) -> None:
        self.home = home
        self.kubelet = kubelet
        """Address and port of the kubelet API served for the virtual nodes (None: not served)."""
        self.leading = False
        """Whether this replica leads, and so writes its kubelet address on the nodes."""
        self.peers: dict[str, PeerState] = {}
        self._dirty: set[str] = set()
        self._written: dict[str, tuple[int, bool, bool]] = {}
        self._wake = asyncio.Event()
        self._started = time.monotonic()

    def add(self, peer: PeerState) -> None:
        self.peers[peer.name] = peer
        self.touch(peer)

    def touch(self, peer: PeerState) -> None:
        self._dirty.add(peer.name)
        self._wake.set()

    async def remove(self, peer_name: str) -> None:
        self.peers.pop(peer_name, None)
        self._dirty.discard(peer_name)
        self._written.pop(peer_name, None)
        name = virtual_node_name(peer_name)
        for path in (LEASES.item(name, NODE_LEASE_NS), NODES.item(name)):
            try:
                await self.home.request("DELETE", path)
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("could not delete %s: %s", path, exc)

    async def run_flush(self) -> None:
        """Coalesce capacity changes: at most one write per peer per FLUSH_EVERY."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for name in dirty:
                peer = self.peers.get(name)
                if peer is None:
                    continue
                try:
                    await self.sync(peer)
                except Exception as exc:  # report and retry on the next tick
                    log.warning("virtual node for %s not written: %s", name, exc)
                    self._dirty.add(name)
                    self._wake.set()
            await asyncio.sleep(FLUSH_EVERY)

    async def sync(self, peer: PeerState) -> None:
        key = (peer.generation, peer.healthy, node_ready(peer))
        written = self._written.get(peer.name)
        if written == key:
            return
        name = virtual_node_name(peer.name)
        path = NODES.item(name)
        if written is None:
            try:
                await self.home.request("POST", NODES.collection(), node_body(peer, self.kubelet))
                await self.renew_lease(peer.name)
                self._written[peer.name] = key
                log.info("created virtual node %s", name)
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise
            body = node_body(peer, self.kubelet)  # an earlier process's node: labels and taints brought up to date
            await self.home.request(
                "PATCH", path, {"metadata": body["metadata"], "spec": body["spec"]}, content_type=PatchType.STRATEGIC
            )
            self._written[peer.name] = ADOPTED
        elif self.keeps_last_status(peer):
            return
        else:
            await self.home.request(
                "PATCH",
                path,
                {"metadata": {"annotations": {labels.CAPACITY_GENERATION: str(peer.generation)}}},
                content_type=PatchType.MERGE,
            )
        if self.keeps_last_status(peer):
            return
        # Only the leader writes its kubelet address: a status patch without one leaves the
        # node's as it is, so the nodes name one live replica, not whichever wrote last.
        status = {"status": node_status(peer, self.kubelet if self.leading else None)}
        await self.home.request(
            "PATCH", NODES.item(name, subresource="status"), status, content_type=PatchType.STRATEGIC
        )
        self._written[peer.name] = key

    async def lead(self) -> None:
        """While this replica leads, the nodes carry its kubelet address (where kube-apiserver
        asks for a spilled pod's logs): written on every node when it takes the lead, so the
        address of a replica that went away does not linger until the next capacity change."""
        self.leading = True
        try:
            if self.kubelet is not None:
                for name, peer in self.peers.items():
                    if name in self._written and self._written[name] != ADOPTED:
                        self._written[name] = REWRITE
                    self.touch(peer)
            await asyncio.Event().wait()  # until cancelled: the lead is lost or the process stops
        finally:
            self.leading = False

    def keeps_last_status(self, peer: PeerState) -> bool:
        """Whether an existing node keeps what an earlier process wrote while this one's cache of
        the peer is still filling (a restart). Writing "not synced" would turn the node NotReady
        with no room for a moment, and kube-scheduler, which reads the node, would send the first
        pods to whichever peer synced first (a pricier one, say). The extender's filter answers
        from the cache meanwhile, so nothing is placed on the stale figures. Bounded by
        ``ADOPT_GRACE``: a peer that does not sync by then is written as it is."""
        return (
            self._written.get(peer.name) == ADOPTED
            and peer.reachable
            and not peer.synced
            and not peer.detaching
            and time.monotonic() - self._started < ADOPT_GRACE
        )

    def caught_up(self) -> bool:
        """Every node says what its peer's health is now (for /readyz: the scheduler reads the
        nodes, so a replica is not ready before they are written)."""
        for name, peer in self.peers.items():
            written = self._written.get(name)
            stale = written in (None, ADOPTED) or written[1:] != (peer.healthy, node_ready(peer))
            if stale and not self.keeps_last_status(peer):
                return False
        return True

    async def renew_lease(self, peer_name: str) -> None:
        name = virtual_node_name(peer_name)
        spec = LeaseSpec(holder_identity=name, lease_duration_seconds=LEASE_SECONDS, renew_time=rfc3339(micro=True))
        try:
            await self.home.request(
                "PATCH", LEASES.item(name, NODE_LEASE_NS), {"spec": spec}, content_type=PatchType.MERGE
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.home.request("POST", LEASES.collection(NODE_LEASE_NS), lease_body(name, NODE_LEASE_NS, spec))

    async def run_leases(self) -> None:
        """Renew every virtual node's Lease; a ready peer's node (paused too) also re-asserts Ready=True.

        The node-lifecycle controller marks a node Unknown when its Lease lapses, and only a
        status write brings it back, so a peer that recovers is written as well as renewed.
        """
        while True:
            for name, peer in list(self.peers.items()):
                try:
                    await self.renew_lease(name)
                    if self._written.get(name) == ADOPTED and not self.keeps_last_status(peer):
                        self.touch(peer)  # the grace is over: write the status as it is
                    if node_ready(peer):
                        await self._reassert_ready(peer)
                except Exception as exc:
                    log.warning("lease of virtual node for %s not renewed: %s", name, exc)
            await asyncio.sleep(RENEW_EVERY)

    async def _reassert_ready(self, peer: PeerState) -> None:
        node = msgspec.json.decode(await self.home.get(NODES.item(virtual_node_name(peer.name))), type=Node)
        if not any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or ()):
            self._written.pop(peer.name, None)
            self._written[peer.name] = (-1, False, False)
            self.touch(peer)
