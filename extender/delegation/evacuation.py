"""Emptying a peer whose PeerCluster is being deleted: delegation's side of ``peers.detach``.

Its pods are failed with reason PeerDetached (a controller's are deleted and so recreated
elsewhere; a finished pod keeps its phase), and every delegate and copy Spillover made there
is deleted, whatever its age.
"""

from __future__ import annotations

from extender.delegation.sweep import OrphanSweeper
from extender.delegation.view import Delegations
from extender.delegation.writer import ProxyWriter


class Evacuation:
    """The detacher's ``PeerContents``."""

    def __init__(self, state: Delegations, writer: ProxyWriter, sweeper: OrphanSweeper) -> None:
        self.state = state
        self.writer = writer
        self.sweeper = sweeper

    def watched(self, peer: str) -> bool | None:
        entry = self.state.peers.get(peer)
        return None if entry is None else entry.synced()

    async def evacuate(self, peer: str) -> int:
        for proxy in self.state.proxies_on(peer):
            notes = self.state.notes(proxy.uid)
            if notes.detached:
                continue
            notes.detached = True
            if not proxy.deleting and not proxy.finished:
                recreated = "; its controller recreates it elsewhere" if proxy.controlled else ""
                await self.writer.delegate_lost(
                    proxy, "PeerDetached", f"PeerCluster {peer} is being deleted: the pod cannot run there{recreated}"
                )
            await self.writer.remove_delegate_of(proxy, grace=None)
        return await self.sweeper.sweep(peer, everything=True)

    def forget(self, peer: str) -> None:
        self.state.forget_peer(peer)
