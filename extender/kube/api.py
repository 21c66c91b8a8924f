"""The one request layer: what an apiserver client is, where each resource lives, how to patch.

Every apiserver path is built here from a resource's metadata (group, version, plural, scope),
as lightkube builds them from its resource classes, instead of by hand at each call; patch
content types are an enum; the bodies Spillover sends more than once are typed structs.
``RawClient`` is the real ``Api``; unit tests pass an in-memory apiserver with the same methods.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from extender.wire.core import ObjectMeta

Query = Sequence[tuple[str, str | int]]
READYZ = "/readyz"
"""The apiserver's readiness endpoint: cheap, and answered only when it can serve."""


class Api(Protocol):
    """Short requests to one apiserver (a non-2xx answer raises ``ApiError``)."""

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Query = (),
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> bytes:
        """Send one request and return the body; ``body`` is bytes, a struct or plain data."""

    async def get(self, path: str, query: Query = ()) -> bytes: ...


class WatchApi(Api, Protocol):
    """An ``Api`` that can also stream: a list page by page, a watch, a pod's log."""

    async def list_page(self, path: str, query: Query = ()) -> bytes:
        """One page of a list (``limit``/``continue`` in ``query``); the timeout bounds silence,
        not the length of a healthy page."""

    def stream_lines(self, path: str, query: Query, idle_timeout: float) -> AsyncIterator[bytes]:
        """The watch's events, one JSON line each, until the server ends it."""

    def open_stream(
        self, path: str, query: Query, idle_timeout: float | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """A streamed GET (a pod's log): entered once the server answered 2xx (``ApiError``
        otherwise), it gives the body's chunks as they arrive; ``idle_timeout`` None waits for
        the next chunk for ever (``follow``)."""


class Client(WatchApi, Protocol):
    """A ``WatchApi`` this process opened, and closes."""

    async def close(self) -> None: ...


class PatchType(enum.StrEnum):
    """The Content-Type of a PATCH says how the apiserver applies it."""

    MERGE = "application/merge-patch+json"
    """RFC 7386: maps merge, lists and null replace/delete."""
    STRATEGIC = "application/strategic-merge-patch+json"
    """Lists merge by their patch key (built-in types only)."""
    JSON = "application/json-patch+json"
    """RFC 6902 operations."""


@dataclass(frozen=True, slots=True)
class Resource:
    """Where a resource lives in the API: the path of its collection and of each object."""

    group: str
    """"" for the core group."""
    version: str
    plural: str
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        return f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"

    def collection(self, namespace: str | None = None) -> str:
        """The collection in ``namespace``; without one, across all namespaces (or cluster-scoped)."""
        if self.namespaced and namespace:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item(self, name: str, namespace: str | None = None, subresource: str = "") -> str:
        """One object (and one of its subresources: status, binding, ...)."""
        if self.namespaced and not namespace:
            raise ValueError(f"{self.plural} {name!r} needs a namespace")
        path = f"{self.collection(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path


PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
SELF_SUBJECT_ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", namespaced=False)


# ---- typed bodies ----------------------------------------------------------------------------
class Preconditions(msgspec.Struct, omit_defaults=True):
    uid: str | None = None


class DeleteOptions(msgspec.Struct, rename="camel", omit_defaults=True):
    """meta/v1 DeleteOptions: ``grace_period_seconds`` None keeps the object's own grace period."""

    api_version: str
    kind: str
    grace_period_seconds: int | None = None
    preconditions: Preconditions | None = None


def delete_options(grace: int | None = None, uid: str | None = None) -> DeleteOptions | None:
    """A DELETE body, or None when neither the grace period nor the UID is pinned."""
    if grace is None and uid is None:
        return None
    preconditions = Preconditions(uid) if uid else None
    return DeleteOptions("v1", "DeleteOptions", grace_period_seconds=grace, preconditions=preconditions)


class PartialObject(msgspec.Struct):
    """Any object, read for its metadata only."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class PartialList(msgspec.Struct):
    items: list[PartialObject] = msgspec.field(default_factory=list)


def decode_object(payload: bytes) -> PartialObject:
    return msgspec.json.decode(payload, type=PartialObject)


def decode_list(payload: bytes) -> list[PartialObject]:
    return msgspec.json.decode(payload, type=PartialList).items
