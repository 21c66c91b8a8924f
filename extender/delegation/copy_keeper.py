"""Peer copies of home ConfigMaps and Secrets, kept in step with home (as Liqo reflects them).

At bind the creator copies what a pod references into its delegate's namespace. Afterwards this
keeper holds them true:

- a change at home reaches every peer holding a copy within seconds (one read at home, one
  patch per copy);
- a reference missing at home is told on the pod (Event ``ReferenceMissing``) and copied when it
  appears (``ReferenceCopied``); a home object deleted has its copies deleted too (as at home, a
  container started later could not find it; running ones keep what they read);
- an object Spillover did not create, or another home's copy, is never touched; an immutable
  copy is replaced (deleted, created again) only when its home object was replaced.

Every replica watches home's ConfigMaps and Secrets (names and resourceVersions only; the data
is read when a copy needs it) and learns each delegate's references from the delegate watches,
so nothing is polled. The writes are the leader's (``lead``). Each copy carries the
resourceVersion of the home object it was made from: on taking the lead, each peer's copies are
listed once and only the stale ones are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from extender import labels
from extender.delegation import delegate_spec
from extender.delegation.copies import MISSING_NOTE, Key, Target, is_ours, write_copy
from extender.delegation.delegate_spec import COPIED, SOURCE_VERSION_ANNOTATION
from extender.delegation.view import DelegationView
from extender.kube.api import Api, PartialList, WatchApi
from extender.kube.events import EventSink
from extender.kube.raw import ApiError
from extender.kube.reflector import Handler, Reflector
from extender.peers.directory import PeerDirectory
from extender.wire.core import ObjectMeta

log = logging.getLogger("spillover.copies")
SETTLE = 0.2
"""Seconds to gather changes before writing: a burst of edits at home becomes one write per copy."""
PARALLEL = 8
RETRY = 2.0
"""Seconds before keys that could not be brought in step (a peer unreachable, a conflict) are tried again."""
MISSING = ""
"""What ``pushed`` holds for a copy known to be absent because its home object is."""


class Named(msgspec.Struct):
    """A home object as the keeper keeps it: its name and resourceVersion (never its data)."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class _HomeObjects(Handler[Named]):
    def __init__(self, keeper: CopyKeeper, kind: str) -> None:
        self.keeper = keeper
        self.kind = kind

    def replace(self, items: list[Named]) -> None:
        fresh = {(self.kind, i.metadata.namespace, i.metadata.name): i.metadata.resource_version for i in items}
        versions = self.keeper.versions
        for key in [k for k in versions if k[0] == self.kind and k not in fresh]:
            del versions[key]
            self.keeper.changed(key)
        for key, version in fresh.items():
            if versions.get(key) != version:
                versions[key] = version
                self.keeper.changed(key)

    def upsert(self, item: Named) -> None:
        key = (self.kind, item.metadata.namespace, item.metadata.name)
        self.keeper.versions[key] = item.metadata.resource_version
        self.keeper.changed(key)

    def delete(self, item: Named) -> None:
        key = (self.kind, item.metadata.namespace, item.metadata.name)
        self.keeper.versions.pop(key, None)
        self.keeper.changed(key)


class CopyKeeper:
    def __init__(
        self, home: WatchApi, directory: PeerDirectory, view: DelegationView, events: EventSink, home_cluster: str
    ) -> None:
        self.home = home
        self.directory = directory
        self.view = view
        self.events = events
        self.home_cluster = home_cluster
        self.copies_selector = delegate_spec.copies_selector(home_cluster)
        self.versions: dict[Key, str] = {}
        """resourceVersion of every home ConfigMap and Secret."""
        self.users: dict[Key, dict[Target, set[str]]] = {}
        """The proxies (UIDs) whose delegates need each home object, by where they run."""
        self.refs: dict[tuple[str, str], tuple[Target, tuple[Key, ...]]] = {}
        """(peer, proxy UID) -> where its delegate runs and what it references."""
        self.pushed: dict[tuple[Key, Target], str] = {}
        """The home resourceVersion each copy holds, as last written or read."""
        self.told_missing: set[tuple[str, Key]] = set()
        self.ignored: set[tuple[Key, Target]] = set()
        """Copies not ours (another home's, or made by someone else): logged once, never written."""
        self._unlearned: set[str] = set()
        """Peers whose copies are to be listed (what each holds) before any is read one by one."""
        self._dirty: set[Key] = set()
        self._wake = asyncio.Event()
        self.reflectors = [
            Reflector(home, resource.collection(), Named, _HomeObjects(self, kind), name=f"home/{resource.plural}")
            for kind, resource in COPIED.items()
        ]
        """Run on every replica (app.py starts them): a new leader knows home at once."""

    @property
    def caught_up(self) -> bool:
        """No home object changed since its copies were last brought in step."""
        return not self._dirty

    # ---- what the watches show (every replica) ----------------------------------------------
    def changed(self, key: Key) -> None:
        if key in self.users:
            self._dirty.add(key)
            self._wake.set()

    def delegate_seen(self, peer: str, meta: ObjectMeta) -> None:
        """A delegate (ADDED or MODIFIED): what it references is tracked; cheap when known."""
        found = meta.labels or {}
        uid = found.get(labels.PROXY_UID, "")
        if not uid:
            return
        home_ns = found.get(labels.HOME_NAMESPACE, "")
        target = (peer, meta.namespace)
        keys = tuple((kind, home_ns, name) for kind, name in sorted(delegate_spec.needed_by(meta.annotations)))
        if self.refs.get((peer, uid)) == (target, keys):
            return
        self.delegate_gone(peer, meta)
        self.refs[(peer, uid)] = (target, keys)
        for key in keys:
            self.users.setdefault(key, {}).setdefault(target, set()).add(uid)
            if self.pushed.get((key, target)) != self.versions.get(key, MISSING):
                self._dirty.add(key)
        if keys:
            self._wake.set()

    def delegate_gone(self, peer: str, meta: ObjectMeta) -> None:
        uid = (meta.labels or {}).get(labels.PROXY_UID, "")
        known = self.refs.pop((peer, uid), None)
        if known is None:
            return
        target, keys = known
        for key in keys:
            self.told_missing.discard((uid, key))
            by_target = self.users.get(key, {})
            holders = by_target.get(target)
            if holders is not None:
                holders.discard(uid)
                if not holders:
                    del by_target[target]
                    self.pushed.pop((key, target), None)
                    self.ignored.discard((key, target))
            if not by_target:
                self.users.pop(key, None)

    def delegates_listed(self, peer: str, items: list[ObjectMeta]) -> None:
        """The peer's delegates listed afresh (start, or the peer back): forget the ones gone, and
        learn what its copies hold before deciding what to write."""
        fresh = {(meta.labels or {}).get(labels.PROXY_UID, "") for meta in items}
        for name, uid in list(self.refs):
            if name == peer and uid not in fresh:
                self.delegate_gone(peer, ObjectMeta(labels={labels.PROXY_UID: uid}))
        for key, target in [k for k in self.pushed if k[1][0] == peer]:
            del self.pushed[(key, target)]
        self._unlearned.add(peer)
        for meta in items:
            self.delegate_seen(peer, meta)

    def copied(self, key: Key, target: Target, version: str) -> None:
        """The creator's bind made (or refreshed) this copy from this home version."""
        self.pushed[(key, target)] = version

    # ---- writing (the leader) ------------------------------------------------------------------
    async def lead(self) -> None:
        """Check every copy first (what changed while another replica led, or none ran), then
        follow the changes."""
        self.pushed.clear()
        self._unlearned.update(peer for peer, _ in self.refs)
        self._dirty.update(self.users)
        self._wake.set()
        while True:
            await self._wake.wait()
            await asyncio.sleep(SETTLE)
            self._wake.clear()
            if not all(r.synced.is_set() for r in self.reflectors):
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            await self._sync_dirty()

    async def _learn(self, peer: str, client: Api) -> None:
        """One list per kind of this home's copies in the peer: which home version each holds."""
        for kind, resource in COPIED.items():
            query = [("labelSelector", self.copies_selector)]
            listed = msgspec.json.decode(await client.get(resource.collection(), query=query), type=PartialList)
            for item in listed.items:
                meta = item.metadata
                key = (kind, (meta.labels or {}).get(labels.HOME_NAMESPACE, ""), meta.name)
                target = (peer, meta.namespace)
                if target in self.users.get(key, {}):
                    self.pushed[(key, target)] = (meta.annotations or {}).get(SOURCE_VERSION_ANNOTATION, "?")

    async def _sync_dirty(self) -> None:
        for peer in list(self._unlearned):
            client = self._client(peer)
            if client is not None:
                try:
                    await self._learn(peer, client)
                    self._unlearned.discard(peer)
                except Exception as exc:  # each copy is read on its own instead
                    log.info("copies in peer %s not listed: %s", peer, exc)
        dirty, self._dirty = self._dirty, set()
        queue = list(dirty)
        while queue:
            batch, queue = queue[:PARALLEL], queue[PARALLEL:]
            results = await asyncio.gather(*(self.sync(key) for key in batch), return_exceptions=True)
            for key, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("copies of %s %s/%s not brought in step with home: %r", *key, result)
                if result is not True:
                    self._dirty.add(key)
        if self._dirty:  # tried again after a pause (a peer unreachable, a conflict)
            asyncio.get_running_loop().call_later(RETRY, self._wake.set)

    def _client(self, peer: str) -> Api | None:
        runtime = self.directory.peers.get(peer)
        return runtime.raw if runtime is not None and runtime.state.reachable else None

    async def sync(self, key: Key) -> bool:
        """Bring every copy of one home object in step; False when some must be tried again."""
        done = True
        original: dict[str, Any] | None = None
        for target, uids in list(self.users.get(key, {}).items()):
            if (key, target) in self.ignored:
                continue
            version = self.versions.get(key, MISSING)
            if self.pushed.get((key, target)) == version and version != MISSING:
                continue
            client = self._client(target[0])
            if client is None:
                done = False
                continue
            if version == MISSING:
                await self._absent(client, key, target, uids)
                continue
            existing = await self._read(client, key, target[1])
            if existing is not None and not is_ours(existing, self.home_cluster):
                self.ignored.add((key, target))
                kind, _, name = key
                log.info(
                    "%s %s/%s in peer %s is not a copy this home made; left as it is", kind, target[1], name, target[0]
                )
                continue
            held = ((existing or {}).get("metadata", {}).get("annotations") or {}).get(SOURCE_VERSION_ANNOTATION)
            if existing is not None and held == version:
                self.pushed[(key, target)] = version
                continue
            if original is None:
                original = await self._read(self.home, key, key[1])
                if original is None:  # deleted meanwhile: its DELETED event follows
                    return False
            body = delegate_spec.copy_body(original, target[1], key[1], self.home_cluster)
            try:
                await write_copy(client, key[0], body, existing)
            except ApiError as exc:
                if exc.status in (409, 422):  # changed under us: read again next round
                    done = False
                    continue
                raise
            self.pushed[(key, target)] = original.get("metadata", {}).get("resourceVersion", version)
            self._tell_copied(key, target, uids)
        return done

    async def _absent(self, client: Api, key: Key, target: Target, uids: set[str]) -> None:
        """The home object does not exist: tell the pods, and remove a copy of ours left of it."""
        kind, home_ns, name = key
        for uid in uids:
            if (uid, key) not in self.told_missing:
                self.told_missing.add((uid, key))
                self._event(uid, "ReferenceMissing", MISSING_NOTE.format(kind, home_ns, name, target[0]), warning=True)
        if self.pushed.get((key, target)) == MISSING:
            return
        existing = await self._read(client, key, target[1])
        if existing is not None and is_ours(existing, self.home_cluster):
            with contextlib.suppress(ApiError):
                await client.request("DELETE", COPIED[kind].item(name, target[1]))
                log.info("%s %s/%s deleted in home: its copy in %s is deleted too", kind, home_ns, name, target[0])
        self.pushed[(key, target)] = MISSING

    def _tell_copied(self, key: Key, target: Target, uids: set[str]) -> None:
        kind, home_ns, name = key
        for uid in uids:
            if (uid, key) in self.told_missing:
                self.told_missing.discard((uid, key))
                self._event(
                    uid, "ReferenceCopied", f"{kind} {home_ns}/{name} now exists and was copied to peer {target[0]}"
                )

    def _event(self, uid: str, reason: str, message: str, warning: bool = False) -> None:
        proxy = self.view.proxies.get(uid)
        if proxy is not None:
            self.events.record(proxy.ref(), reason, message, warning=warning)

    @staticmethod
    async def _read(client: Api, key: Key, namespace: str) -> dict[str, Any] | None:
        kind, _, name = key
        try:
            found: dict[str, Any] = msgspec.json.decode(await client.get(COPIED[kind].item(name, namespace)))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found
