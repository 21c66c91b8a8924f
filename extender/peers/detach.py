"""Detaching the peer of a deleted PeerCluster: nothing of Spillover's may be left there (no orphans).

Spillover holds every PeerCluster with its finalizer. Once one is deleted its peer takes no new
pods (the registry marks it detaching); this leader-only controller then has what Spillover made
there emptied out (its pods failed over, delegates and copies deleted) and, when a pass finds
nothing left, removes the virtual node and the finalizer, so the PeerCluster goes. What it
waits for meanwhile is its progress, shown in the PeerCluster's Ready condition.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from extender.kube.api import Api, PatchType
from extender.kube.raw import ApiError
from extender.kube.tasks import every
from extender.peers.directory import PeerDirectory
from extender.peers.model import FINALIZER, PEERCLUSTERS, give_up_command
from extender.peers.virtual_node import VirtualNodes

log = logging.getLogger("spillover.peers")
DETACH_EVERY = 1.0


class PeerContents(Protocol):
    """What Spillover keeps in a peer, as the detacher needs it emptied (delegation keeps it)."""

    def watched(self, peer: str) -> bool | None:
        """None while the peer's watches have not started; else whether they have synced."""

    async def evacuate(self, peer: str) -> int:
        """One pass: fail the peer's pods (recreated elsewhere when a controller owns them), delete
        their delegates and copies; return how many objects are still there (terminating ones too)."""

    def forget(self, peer: str) -> None:
        """The peer is released: drop what is remembered of it (nothing else would)."""


class PeerDetacher:
    def __init__(
        self, home: Api, directory: PeerDirectory, virtual_nodes: VirtualNodes, contents: PeerContents
    ) -> None:
        self.home = home
        self.directory = directory
        self.virtual_nodes = virtual_nodes
        self.contents = contents
        self._progress: dict[str, str] = {}

    @property
    def progress(self) -> Mapping[str, str]:
        """What each deleted PeerCluster still waits for (the status writer shows it)."""
        return self._progress

    async def lead(self) -> None:
        await every(DETACH_EVERY, self.detach_deleted, "detaching deleted peers failed")

    async def detach_deleted(self) -> None:
        """One pass over every deleted PeerCluster Spillover still holds."""
        deleting = self.directory.deleting()
        for name in [name for name in self._progress if name not in deleting]:
            del self._progress[name]  # gone, or no longer held: nothing to tell
        for name in deleting:
            if self.directory.peers.get(name) is None:
                why = self.directory.unusable.get(name)
                if why is not None:  # blocking the deletion would help no one: nothing can be reached
                    log.warning(
                        "PeerCluster %s deleted while its kubeconfig is unusable (%s): whatever Spillover "
                        "created in that peer stays there; letting the PeerCluster go",
                        name,
                        why,
                    )
                    await self.release(name)
                continue
            done, progress = await self.detach(name)
            self._progress[name] = progress
            if done and await self.release(name):
                self.contents.forget(name)

    async def detach(self, peer: str) -> tuple[bool, str]:
        """One pass of taking Spillover out of a peer whose PeerCluster is being deleted. Returns
        whether a pass found nothing left, and what it is waiting for."""
        force = f"to give up on them, remove the finalizer: {give_up_command(peer)}"
        watched = self.contents.watched(peer)
        runtime = self.directory.peers.get(peer)
        if watched is None or runtime is None:
            return False, "waiting for the peer's watches to start"
        state = runtime.state
        if not state.reachable or not watched:
            return False, (
                f"waiting for peer {peer} to be reachable ({state.unreachable_reason}) to delete the pods and "
                f"copies Spillover created there; {force}"
            )
        left = await self.contents.evacuate(peer)
        if left:
            return False, f"deleting {left} objects Spillover created in peer {peer}; {force}"
        return True, f"nothing of Spillover's is left in peer {peer}"

    async def release(self, name: str) -> bool:
        """The peer holds nothing of Spillover's any more: drop its virtual node and the finalizer
        (the PeerCluster then goes, and its DELETED event stops the peer's watches)."""
        pc = self.directory.specs.get(name)
        if pc is None:
            return True
        await self.virtual_nodes.remove(name)
        meta = pc.metadata
        kept = [f for f in meta.finalizers or () if f != FINALIZER]
        patch = {"metadata": {"finalizers": kept or None, "resourceVersion": meta.resource_version}}
        try:
            await self.home.request("PATCH", PEERCLUSTERS.item(name), patch, content_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status == 404:
                return True
            log.warning("could not remove finalizer %s from PeerCluster %s (will retry): %s", FINALIZER, name, exc)
            return False
        log.info("peer %s detached: finalizer %s removed", name, FINALIZER)
        return True
