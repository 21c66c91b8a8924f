"""List, then watch, one resource type forever: the cache feed behind every scheduling answer.

Resumes from the last resourceVersion (bookmarks keep it fresh), re-lists on 410 Gone, backs
off exponentially with jitter on errors, and bounds every request with a timeout. Handlers are
plain callbacks run in the event loop, so caches they update need no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Generic, TypeVar

import msgspec

from extender.kube.api import WatchApi
from extender.kube.raw import ApiError

T = TypeVar("T")
log = logging.getLogger("spillover.reflector")


class ListMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class ObjectList(msgspec.Struct, Generic[T]):
    items: list[T]
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)


class WatchEvent(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _Meta(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class _Bookmark(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class _Status(msgspec.Struct):
    code: int = 0
    message: str = ""
    reason: str = ""


class Handler(Generic[T]):
    """Callbacks of a reflector; override what you need."""

    def replace(self, items: list[T]) -> None:
        """A full list (at start and after every re-list): the authoritative set."""

    def upsert(self, item: T) -> None:
        """ADDED or MODIFIED."""

    def delete(self, item: T) -> None:
        """DELETED."""

    def failed(self, error: str) -> None:
        """The list or watch failed; the reflector retries with backoff."""


class Reflector(Generic[T]):
    def __init__(
        self,
        raw: WatchApi,
        path: str,
        item_type: type[T],
        handler: Handler[T],
        *,
        query: Sequence[tuple[str, str]] = (),
        name: str = "",
        watch_seconds: int = 300,
        max_backoff: float = 30.0,
    ) -> None:
        self.raw = raw
        self.path = path
        self.handler = handler
        self.query = list(query)
        self.name = name or path
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._list_decoder = msgspec.json.Decoder(ObjectList[item_type])  # type: ignore[valid-type]
        self._item_decoder = msgspec.json.Decoder(item_type)
        self._event_decoder = msgspec.json.Decoder(WatchEvent)
        self._bookmark_decoder = msgspec.json.Decoder(_Bookmark)
        self._status_decoder = msgspec.json.Decoder(_Status)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Cut a backoff short: the server is known to answer again (a probe got through), so a
        list/watch that failed during an outage is retried now rather than up to 45 s later."""
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                await self._watch()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except _Gone:
                log.info("watch expired, re-listing", extra={"reflector": self.name})
                self.resource_version = ""
            except Exception as exc:  # any failure: report, back off, retry
                message = f"{self.name}: {type(exc).__name__}: {exc}"
                self.handler.failed(message)
                log.warning("list/watch failed; retrying in %.1fs: %s", backoff, message)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff * (0.5 + random.random()))
                backoff = min(self.max_backoff, backoff * 2)

    async def _list(self) -> None:
        payload = await self.raw.get(self.path, query=self.query)
        listed = self._list_decoder.decode(payload)
        self.handler.replace(listed.items)
        self.resource_version = listed.metadata.resource_version
        self.synced.set()

    async def _watch(self) -> None:
        query: list[tuple[str, str | int]] = [
            *self.query,
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self.resource_version),
            ("timeoutSeconds", self.watch_seconds),
        ]
        try:
            async for line in self.raw.stream_lines(self.path, query, idle_timeout=self.watch_seconds + 30):
                self._apply(line)
        except ApiError as exc:
            if exc.status == 410:
                raise _Gone from None
            raise

    def _apply(self, line: bytes) -> None:
        event = self._event_decoder.decode(line)
        kind = event.type
        if kind == "ERROR":
            status = self._status_decoder.decode(event.object)
            if status.code == 410:
                raise _Gone
            raise ApiError(status.code or 500, bytes(event.object), "WATCH", self.path)
        self.resource_version = self._bookmark_decoder.decode(event.object).metadata.resource_version
        if kind == "BOOKMARK":
            return
        item = self._item_decoder.decode(event.object)
        if kind == "DELETED":
            self.handler.delete(item)
        else:
            self.handler.upsert(item)


class _Gone(Exception):
    """410: the resourceVersion is too old; list again."""
