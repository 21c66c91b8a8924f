"""List, then watch, one resource type forever: the cache feed behind every scheduling answer.

Resumes from the last resourceVersion (bookmarks keep it fresh), re-lists on 410 Gone, backs
off exponentially with jitter on errors. Handlers are plain callbacks run in the event loop, so
caches they update need no locks.

Lists come in pages (``limit``/``continue``, 500 objects a page as client-go's reflector asks),
each decoded and handed over before the next is fetched: a peer of 100,000 pods (hundreds of MB
of JSON) never stalls the event loop for more than one page, never holds more than one page of
decoded objects, and a timeout bounds each page's silence, not the whole download.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Awaitable, Sequence
from typing import Generic, TypeVar

import msgspec

from extender.kube.api import WatchApi
from extender.kube.raw import ApiError

T = TypeVar("T")
log = logging.getLogger("spillover.reflector")


PAGE_SIZE = 500
CHUNK = 100
"""Objects of a page handed over at a time: the event loop runs between chunks, so no handler
holds it for long even when a server ignores ``limit`` and sends everything in one page."""


class ListMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""
    continue_: str = msgspec.field(default="", name="continue")


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


class Listing(Generic[T]):
    """One list as it arrives, page by page; what it says holds only once ``done`` is called (a list
    cut short by an error is dropped, and the next one starts afresh)."""

    def add(self, items: list[T]) -> None:
        """One page of the list."""

    def done(self) -> Awaitable[None] | None:
        """The last page came: the pages together are the authoritative set. A handler with much
        to do may return an awaitable that does it in turns (the reflector awaits it)."""
        return None


class _Collected(Listing[T]):
    def __init__(self, handler: Handler[T]) -> None:
        self.handler = handler
        self.items: list[T] = []

    def add(self, items: list[T]) -> None:
        self.items.extend(items)

    def done(self) -> None:
        self.handler.replace(self.items)
        return None


class Handler(Generic[T]):
    """Callbacks of a reflector; override what you need."""

    def replace(self, items: list[T]) -> None:
        """A full list (at start and after every re-list): the authoritative set."""

    def listing(self) -> Listing[T]:
        """Start taking a list. By default the pages are collected and handed to ``replace`` once
        complete; a handler of large lists takes each page as it comes instead, so no more than one
        page of decoded objects is alive at a time."""
        return _Collected(self)

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
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.raw = raw
        self.path = path
        self.handler = handler
        self.query = list(query)
        self.name = name or path
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self.page_size = page_size
        """Objects per list page; 0 lists everything in one response."""
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
        listing = self.handler.listing()
        token = ""
        while True:
            query: list[tuple[str, str | int]] = [*self.query]
            if self.page_size:
                query.append(("limit", self.page_size))
            if token:
                query.append(("continue", token))
            try:
                payload = await self.raw.list_page(self.path, query)
            except ApiError as exc:
                if exc.status == 410 and token:  # the continue token expired mid-list: start over
                    raise _Gone from None
                raise
            async with _turns():
                page = self._list_decoder.decode(payload)
                del payload
                items = page.items
                for start in range(0, len(items), CHUNK):
                    if start:
                        await asyncio.sleep(0)  # let the scheduling path in between chunks
                    listing.add(items[start : start + CHUNK] if len(items) > CHUNK else items)
            token, version = page.metadata.continue_, page.metadata.resource_version
            del page, items
            if not token:
                break
        async with _turns():
            finishing = listing.done()
            if finishing is not None:
                await finishing
        self.resource_version = version
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


_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _turns() -> asyncio.Lock:
    """One list at a time takes in what it fetched (fetching goes on in parallel). Each chunk is
    one step of the event loop; with twenty lists at once, twenty such steps would be ready
    together and a scheduler's call would wait behind all of them, where now it waits behind one."""
    loop = asyncio.get_running_loop()
    lock = _TURNS.get(loop)
    if lock is None:
        lock = _TURNS[loop] = asyncio.Lock()
    return lock


class _Gone(Exception):
    """410: the resourceVersion is too old; list again."""
