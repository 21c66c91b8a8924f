"""One in-memory apiserver for every unit test (in the spirit of kopf's ``k8s_mocked``).

``FakeApiserver`` is an ``extender.kube.api.Client``, so it goes wherever Spillover takes one,
typed, with no stand-ins. It keeps objects by path and answers what Spillover asks of a real
apiserver: get; list with label and field selectors; watch (events follow the writes); create
(409 when the name is taken); merge patch with the resourceVersion precondition (409 on a
stale one); JSON patch (422 when a test fails); delete with UID preconditions and finalizers;
pods/binding; pods/eviction. Every call is recorded.
Tests steer it: ``down`` refuses connections, ``fail`` makes a call answer an error, ``hold``
makes one wait, ``answer`` serves a path with a function (SelfSubjectAccessReviews).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from extender.kube.api import Query, Resource
from extender.kube.raw import ApiError
from extender.kube.times import rfc3339

Object = dict[str, Any]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    """As plain data (structs converted), None for none."""
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Where:
    """Where a path points: a collection (``name`` "") or one object, maybe a subresource."""

    prefix: str
    plural: str
    namespace: str
    name: str
    subresource: str

    def matches(self, key: _Where) -> bool:
        return (key.prefix, key.plural) == (self.prefix, self.plural) and self.namespace in ("", key.namespace)


def _where(path: str) -> _Where:
    parts = path.strip("/").split("/")
    split = 2 if parts[0] == "api" else 3
    prefix, rest = "/" + "/".join(parts[:split]), parts[split:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    return _Where(prefix, rest[0], namespace, rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else "")


def _field(obj: Object, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def selected(obj: Object, label_selector: str = "", field_selector: str = "") -> bool:
    """The selector forms Spillover sends: ``key``, ``!key``, ``key=value``, ``key!=value``."""
    found = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, label_selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if found.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if found.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in found:
                return False
        elif term not in found:
            return False
    for term in filter(None, field_selector.split(",")):
        key, value = term.split("=", 1)
        if _field(obj, key) != value:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patches are applied the same way here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def json_patch(document: Object, ops: list[Object]) -> Object:
    """RFC 6902 add, remove and test, as the apiserver applies a JSON patch (a failed test raises
    AssertionError; a missing member, KeyError or IndexError)."""
    out: Object = copy.deepcopy(document)
    for op in ops:
        *parents, last = (t.replace("~1", "/").replace("~0", "~") for t in op["path"].lstrip("/").split("/"))
        target: Any = out
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if op["op"] == "test":
            found = target[int(last)] if isinstance(target, list) else target.get(last)
            assert found == op["value"], f"test of {op['path']} failed: {found!r} != {op['value']!r}"
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
        elif isinstance(target, list):
            if last == "-":
                target.append(copy.deepcopy(op["value"]))
            else:
                target.insert(int(last), copy.deepcopy(op["value"]))
        else:
            target[last] = copy.deepcopy(op["value"])
    return out


def _plain(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes):
        return msgspec.json.decode(body)
    return msgspec.to_builtins(body)


class _Watch:
    def __init__(self, where: _Where, query: dict[str, str]) -> None:
        self.where = where
        self.labels = query.get("labelSelector", "")
        self.fields = query.get("fieldSelector", "")
        self.events: asyncio.Queue[bytes] = asyncio.Queue()

    def sees(self, key: _Where, obj: Object | None) -> bool:
        return obj is not None and self.where.matches(key) and selected(obj, self.labels, self.fields)

    def tell(self, key: _Where, before: Object | None, after: Object | None) -> None:
        was, now = self.sees(key, before), self.sees(key, after)
        if now:
            kind = "MODIFIED" if was else "ADDED"
        elif was:
            kind, after = "DELETED", before
        else:
            return
        self.events.put_nowait(msgspec.json.encode({"type": kind, "object": after}))


class FakeApiserver:
    def __init__(self, *objects: tuple[Resource, Object]) -> None:
        self.calls: list[Call] = []
        self.down = False
        """Refuse every call, as an apiserver that is not there."""
        self._objects: dict[_Where, Object] = {}
        self._version = itertools.count(1)
        self._failures: list[tuple[str, str, int, str]] = []
        self._holds: dict[tuple[str, str], asyncio.Event] = {}
        self._answers: dict[tuple[str, str], Callable[[Any], Any]] = {}
        self._watches: list[_Watch] = []
        self._expire_pages: set[int] = set()
        self.logs: dict[str, list[bytes]] = {}
        """A pod's log, by the pod's path."""
        for resource, obj in objects:
            self.add(resource, obj)

    # ---- what tests set up and read ------------------------------------------------------------
    def add(self, resource: Resource, obj: Object) -> Object:
        """Store ``obj`` as it would be after a create (uid, resourceVersion, creationTimestamp)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = _where(resource.item(meta["name"], meta.get("namespace") or None))
        return self._store(key, obj, fill=True)

    def get_object(self, resource: Resource, name: str, namespace: str | None = None) -> Object | None:
        return self._objects.get(_where(resource.item(name, namespace)))

    def objects(self, resource: Resource, namespace: str | None = None) -> list[Object]:
        where = _where(resource.collection(namespace))
        return [obj for key, obj in self._objects.items() if where.matches(key)]

    def writes(self, method: str | None = None) -> list[Call]:
        """The calls that were not reads (of ``method`` only, if given)."""
        return [c for c in self.calls if c.method not in ("GET", "WATCH", "STREAM") and method in (None, c.method)]

    def fail(self, method: str, path: str, status: int, message: str = "") -> None:
        """The next ``method`` on ``path`` answers ``status``."""
        self._failures.append((method, path, status, message or f"injected HTTP {status}"))

    def expire_page(self, start: int) -> None:
        """The next list page asked for from item ``start`` on (its continue token) answers 410
        Expired, as an apiserver does once compaction passed the list's snapshot."""
        self._expire_pages.add(start)

    def hold(self, method: str, path: str) -> asyncio.Event:
        """``method`` on ``path`` waits until the returned event is set (then proceeds)."""
        event = self._holds[(method, path)] = asyncio.Event()
        return event

    def answer(self, method: str, path: str, handler: Callable[[Any], Any]) -> None:
        """Serve ``method`` on ``path`` with ``handler(body)`` (its result is the answer)."""
        self._answers[(method, path)] = handler

    # ---- the Client methods ------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Query = (),
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> bytes:
        plain = _plain(body)
        self.calls.append(Call(method, path, plain, {k: str(v) for k, v in query}))
        if self.down:
            raise ConnectionRefusedError(f"{method} {path}: connection refused")
        held = self._holds.get((method, path))
        if held is not None:
            await held.wait()
        for failure in self._failures:
            if failure[:2] == (method, path):
                self._failures.remove(failure)
                raise _error(failure[2], "Injected", failure[3], method, path)
        answer = self._answers.get((method, path))
        if answer is not None:
            return msgspec.json.encode(answer(plain))
        return msgspec.json.encode(self._serve(method, path, plain, dict(self.calls[-1].query)))

    async def get(self, path: str, query: Query = ()) -> bytes:
        return await self.request("GET", path, query=query)

    async def list_page(self, path: str, query: Query = ()) -> bytes:
        return await self.request("GET", path, query=query)

    async def stream_lines(self, path: str, query: Query, idle_timeout: float) -> AsyncIterator[bytes]:
        self.calls.append(Call("WATCH", path, None, {k: str(v) for k, v in query}))
        if self.down:
            raise ConnectionRefusedError(f"WATCH {path}: connection refused")
        watch = _Watch(_where(path), {k: str(v) for k, v in query})
        self._watches.append(watch)
        try:
            while True:
                yield await watch.events.get()
        finally:
            self._watches.remove(watch)

    @contextlib.asynccontextmanager
    async def open_stream(
        self, path: str, query: Query, idle_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A pod's log (``path`` ends in /log): the chunks ``logs`` holds for the pod."""
        self.calls.append(Call("STREAM", path, None, {k: str(v) for k, v in query}))
        if self.down:
            raise ConnectionRefusedError(f"GET {path}: connection refused")
        pod = path.rsplit("/", 1)[0]
        if self._objects.get(_where(pod)) is None:
            raise _error(404, "NotFound", f"{pod} not found", "GET", path)

        async def chunks() -> AsyncIterator[bytes]:
            for chunk in self.logs.get(pod, []):
                yield chunk

        yield chunks()

    async def close(self) -> None:
        pass

    # ---- the apiserver -------------------------------------------------------------------------
    def _serve(self, method: str, path: str, body: Any, query: dict[str, str]) -> Any:
        if path in ("/readyz", "/livez", "/healthz"):
            return "ok"
        where = _where(path)
        if not where.name:
            if method == "GET":
                return self._list(where, query)
            if method == "POST":
                return self._create(where, body)
        else:
            found = self._objects.get(_where(path.rsplit("/", 1)[0]) if where.subresource else where)
            key = _Where(where.prefix, where.plural, where.namespace, where.name, "")
            if found is None:
                raise _error(404, "NotFound", f'{where.plural} "{where.name}" not found', method, path)
            if method == "GET":
                return found
            if method == "POST" and where.subresource == "binding":
                return self._bind(key, found, body)
            if method == "POST" and where.subresource == "eviction":
                return self._evict(key, found, body, query)
            if method == "PATCH":
                return self._patch(key, found, body, method, path)
            if method == "PUT":
                return self._replace(key, found, body, method, path)
            if method == "DELETE":
                return self._delete(key, found, body or {}, method, path)
        raise NotImplementedError(f"the fake apiserver does not serve {method} {path}")

    def _list(self, where: _Where, query: dict[str, str]) -> Object:
        """With ``limit``, a page of it: the continue token is "<next item>/<resourceVersion>", and
        every page of one list carries the first page's resourceVersion (one snapshot)."""
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        items = [o for k, o in self._objects.items() if where.matches(k) and selected(o, labels, fields)]
        if "limit" not in query:
            return {"kind": "List", "metadata": {"resourceVersion": str(next(self._version))}, "items": items}
        start, _, version = query.get("continue", "").partition("/")
        first = int(start or 0)
        if first in self._expire_pages and query.get("continue"):
            self._expire_pages.discard(first)
            raise _error(410, "Expired", "continue parameter is too old", "GET", where.prefix)
        version = version or str(next(self._version))
        end = min(len(items), first + int(query["limit"]))
        token = f"{end}/{version}" if end < len(items) else ""
        return {"kind": "List", "metadata": {"resourceVersion": version, "continue": token}, "items": items[first:end]}

    def _create(self, where: _Where, body: Object) -> Object:
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = f"{meta.get('generateName', 'object-')}{uuid.uuid4().hex[:5]}"
        if where.namespace:
            meta["namespace"] = where.namespace
        key = _Where(where.prefix, where.plural, where.namespace, meta["name"], "")
        if key in self._objects:
            raise _error(409, "AlreadyExists", f'{where.plural} "{meta["name"]}" already exists', "POST", "")
        return self._store(key, body, fill=True)

    def _bind(self, key: _Where, pod: Object, binding: Object) -> Object:
        uid = (binding.get("metadata") or {}).get("uid")
        if uid and uid != pod["metadata"].get("uid"):
            raise _error(409, "Conflict", "the pod's uid does not match the binding's", "POST", "")
        bound = merge_patch(pod, {"spec": {"nodeName": binding["target"]["name"]}})
        annotations = (binding.get("metadata") or {}).get("annotations")
        if annotations:
            bound = merge_patch(bound, {"metadata": {"annotations": annotations}})
        self._store(key, bound)
        return {"kind": "Status", "status": "Success"}

    def _patch(self, key: _Where, found: Object, patch: Object | list[Object], method: str, path: str) -> Object:
        if isinstance(patch, list):  # a JSON patch: a failed test is the apiserver's 422
            try:
                return self._store(key, json_patch(found, patch))
            except (AssertionError, KeyError, IndexError) as exc:
                raise _error(422, "Invalid", f"the JSON patch does not apply: {exc!r}", method, path) from None
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != found["metadata"].get("resourceVersion"):
            raise _error(409, "Conflict", "the object has been modified; please apply your changes again", method, path)
        patched: Object = merge_patch(found, patch)
        meta = patched["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key)
            return patched
        return self._store(key, patched)

    def _replace(self, key: _Where, found: Object, body: Object, method: str, path: str) -> Object:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != found["metadata"].get("resourceVersion"):
            raise _error(409, "Conflict", "the object has been modified; please apply your changes again", method, path)
        return self._store(key, body)

    def _delete(self, key: _Where, found: Object, options: Object, method: str, path: str) -> Object:
        uid = (options.get("preconditions") or {}).get("uid")
        if uid and uid != found["metadata"].get("uid"):
            raise _error(409, "Conflict", f"Precondition failed: UID in precondition: {uid}", method, path)
        if found["metadata"].get("finalizers"):
            marked = merge_patch(found, {"metadata": {"deletionTimestamp": rfc3339()}})
            return self._store(key, marked)
        self._remove(key)
        return {"kind": "Status", "status": "Success"}

    def _evict(self, key: _Where, pod: Object, eviction: Object, query: dict[str, str]) -> Object:
        """policy/v1 Eviction with no PodDisruptionBudget in the way (tests inject a 429 with
        ``fail``): a dry run changes nothing; otherwise a graceful delete, which for a bound,
        running pod only marks it (its node's kubelet, or Spillover for a proxy, finishes it)."""
        uid = ((eviction.get("deleteOptions") or {}).get("preconditions") or {}).get("uid")
        if uid and uid != pod["metadata"].get("uid"):
            raise _error(409, "Conflict", f"Precondition failed: UID in precondition: {uid}", "POST", "")
        if query.get("dryRun") != "All":
            running = (pod.get("spec") or {}).get("nodeName") and (pod.get("status") or {}).get("phase") == "Running"
            if running:
                self._store(key, merge_patch(pod, {"metadata": {"deletionTimestamp": rfc3339()}}))
            else:
                self._remove(key)
        return {"kind": "Status", "status": "Success"}

    def _store(self, key: _Where, obj: Object, fill: bool = False) -> Object:
        meta = obj.setdefault("metadata", {})
        if fill:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", rfc3339())
            if key.namespace:
                meta["namespace"] = key.namespace
        meta["resourceVersion"] = str(next(self._version))
        before = self._objects.get(key)
        self._objects[key] = obj
        for watch in self._watches:
            watch.tell(key, before, obj)
        return obj

    def _remove(self, key: _Where) -> None:
        before = self._objects.pop(key)
        for watch in self._watches:
            watch.tell(key, before, None)


def _error(status: int, reason: str, message: str, method: str, path: str) -> ApiError:
    body = msgspec.json.encode({"kind": "Status", "status": "Failure", "reason": reason, "message": message})
    return ApiError(status, body, method, path)
