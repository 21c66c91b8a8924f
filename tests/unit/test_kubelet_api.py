"""The virtual nodes' kubelet API: logs streamed from the delegate, and no caller but the apiserver.

A fake peer apiserver (plain HTTP on loopback) serves ``pods/log``; the kubelet API runs with
real TLS and real client-certificate checks, made with the lab's PKI code.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes_asyncio import client as k8s
from spillover_lab import pki

from extender.delegation.view import Delegate, Delegations, PeerDelegates, proxy_from
from extender.kube.raw import RawClient
from extender.scheduling.memory import make_pod, peer
from extender.server.kubelet_api import (
    Delegated,
    DelegateLookup,
    LogOptionError,
    client_verifying_context,
    log_query,
    start_kubelet_api,
)
from tests.unit.apiserver import FakeApiserver
from tests.unit.fakes import peer_runtime


def test_log_options_pass_through_as_the_kubelet_reads_them() -> None:
    query = log_query({"follow": "true", "tailLines": "5", "timestamps": "1", "previous": "false", "limitBytes": "100"})
    assert query == [("follow", "true"), ("timestamps", "true"), ("tailLines", "5"), ("limitBytes", "100")]
    assert log_query({"sinceSeconds": "30"}) == [("sinceSeconds", "30")]
    assert log_query({"tail": "all", "tailLines": "3"}) == []
    assert log_query({"tail": "7"}) == [("tailLines", "7")]
    assert log_query({"stream": "All"}) == []
    assert log_query({"stream": "Stderr"}) == [("stream", "Stderr")]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"tailLines": "-1"}, "tailLines=-1 must be at least 0"),
        ({"limitBytes": "0"}, "limitBytes=0 must be at least 1"),
        ({"sinceSeconds": "soon"}, "sinceSeconds='soon' is not a whole number"),
        ({"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"}, "at most one of `sinceTime` or `sinceSeconds`"),
        ({"stream": "Both"}, "stream='Both' is not one of All, Stdout, Stderr"),
        ({"stream": "Stdout", "tailLines": "1"}, "mutually exclusive"),
    ],
)
def test_bad_log_options_are_refused_naming_the_parameter(query: dict[str, str], named: str) -> None:
    with pytest.raises(LogOptionError, match=named.replace("(", r"\(").replace("`", "`")):
        log_query(query)


# ---- the delegate behind a home pod ------------------------------------------------------------


def test_lookup_finds_the_delegate_of_a_spilled_pod_and_says_why_not_otherwise() -> None:
    state = Delegations()
    lookup = DelegateLookup(state)
    assert "is not bound to a Spillover virtual node" in str(lookup.delegated("shop", "web-1"))
    state.proxies["uid-web-1"] = proxy_from(make_pod(name="web-1", nodeName="spillover-east"), "east")
    assert "not connected to now" in str(lookup.delegated("shop", "web-1"))
    client = FakeApiserver()
    entry = PeerDelegates(runtime=peer_runtime(peer("east"), client))
    state.peers["east"] = entry
    assert "has no delegate in peer east" in str(lookup.delegated("shop", "web-1"))
    entry.by_proxy["uid-web-1"] = Delegate("remote", "web-1-abc", "uid-web-1", {}, 0.0)
    found = lookup.delegated("shop", "web-1")
    assert found == Delegated("east", "remote", "web-1-abc", client)


# ---- the served API ------------------------------------------------------------------------------


@dataclass
class _Peer:
    """A peer apiserver's pods/log: records the queries, streams lines while the test feeds them."""

    queries: list[dict[str, str]] = field(default_factory=list)
    lines: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)

    async def log(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        if request.match_info["name"] == "missing":
            return web.json_response({"kind": "Status", "message": 'pods "missing" not found'}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"line one\n")
        if request.query.get("follow") == "true":
            while (line := await self.lines.get()) is not None:
                await response.write(line)
        await response.write_eof()
        return response


@dataclass
class _Fixture:
    url: str
    certs: Path
    peer: _Peer

    def client_context(self, stem: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        context.check_hostname = False
        if stem is not None:
            context.load_cert_chain(str(self.certs / f"{stem}.crt"), str(self.certs / f"{stem}.key"))
        return context


class _Lookup:
    def __init__(self, raw: RawClient) -> None:
        self.raw = raw

    def delegated(self, namespace: str, name: str) -> Delegated | str:
        if name == "not-spilled":
            return f"pod {namespace}/{name} is not bound to a Spillover virtual node"
        return Delegated("east", "remote", name, self.raw)


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[_Fixture]:
    ca = pki.make_ca(tmp_path, "ca", "home-ca")
    pki.make_leaf(tmp_path, "serving", ca, "spillover", server=True, sans=("127.0.0.1",))
    pki.make_leaf(tmp_path, "apiserver-kubelet-client", ca, "kube-apiserver-kubelet-client", "system:masters")
    other = pki.make_ca(tmp_path, "other-ca", "someone-else")
    pki.make_leaf(tmp_path, "stranger", other, "kube-apiserver-kubelet-client", "system:masters")

    peer = _Peer()
    peer_app = web.Application()
    peer_app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}/log", peer.log)
    peer_runner = web.AppRunner(peer_app, handler_cancellation=True)
    await peer_runner.setup()
    await web.TCPSite(peer_runner, "127.0.0.1", 0).start()
    config = k8s.Configuration(host=f"http://127.0.0.1:{peer_runner.addresses[0][1]}")
    api = k8s.ApiClient(configuration=config)
    raw = RawClient(api)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tmp_path / "serving.crt"), str(tmp_path / "serving.key"))
    pki.make_leaf(tmp_path, "admin", ca, "kubernetes-admin", "system:masters")  # same CA, not the apiserver
    names = frozenset({"kube-apiserver-kubelet-client"})
    runner, port = await start_kubelet_api(
        _Lookup(raw), "127.0.0.1", 0, client_verifying_context(context, str(tmp_path / "ca.crt")), names
    )
    try:
        yield _Fixture(f"https://127.0.0.1:{port}", tmp_path, peer)
    finally:
        await peer.lines.put(None)
        await runner.cleanup()
        await raw.close()
        await api.close()
        await peer_runner.cleanup()


async def _get(fixture: _Fixture, stem: str | None, path: str) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(ssl=fixture.client_context(stem))
    async with aiohttp.ClientSession(connector=connector) as session, session.get(fixture.url + path) as resp:
        return resp.status, await resp.text()


async def test_the_apiserver_certificate_reads_the_delegates_log_with_its_options(served: _Fixture) -> None:
    status, body = await _get(
        served, "apiserver-kubelet-client", "/containerLogs/shop/web-1/app?tailLines=10&timestamps=true"
    )
    assert (status, body) == (200, "line one\n")
    assert served.peer.queries == [{"container": "app", "timestamps": "true", "tailLines": "10"}]


async def test_follow_streams_each_line_as_the_peer_writes_it(served: _Fixture) -> None:
    connector = aiohttp.TCPConnector(ssl=served.client_context("apiserver-kubelet-client"))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(served.url + "/containerLogs/shop/web-1/app?follow=true") as resp,
    ):
        assert resp.status == 200
        assert await asyncio.wait_for(resp.content.readline(), 5) == b"line one\n"
        await served.peer.lines.put(b"written later\n")
        assert await asyncio.wait_for(resp.content.readline(), 5) == b"written later\n"
        await served.peer.lines.put(None)
        assert await asyncio.wait_for(resp.content.read(), 5) == b""


async def test_errors_are_plain_text_that_say_what_is_wrong(served: _Fixture) -> None:
    status, body = await _get(served, "apiserver-kubelet-client", "/containerLogs/shop/not-spilled/app")
    assert status == 404 and "is not bound to a Spillover virtual node" in body
    status, body = await _get(served, "apiserver-kubelet-client", "/containerLogs/shop/missing/app")
    assert status == 404 and 'peer east refused the log of delegate remote/missing in peer east: pods "missing"' in body
    status, body = await _get(served, "apiserver-kubelet-client", "/containerLogs/shop/web-1/app?limitBytes=0")
    assert status == 400 and "invalid log options: limitBytes=0 must be at least 1" in body


@pytest.mark.parametrize("stem", ["stranger", None], ids=["certificate-of-another-ca", "no-certificate"])
async def test_no_one_but_the_apiserver_gets_in(served: _Fixture, stem: str | None) -> None:
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await _get(served, stem, "/containerLogs/shop/web-1/app")
    assert served.peer.queries == []


async def test_a_certificate_of_the_same_ca_but_another_name_is_refused_when_names_are_set(served: _Fixture) -> None:
    status, body = await _get(served, "admin", "/containerLogs/shop/web-1/app")
    assert status == 403 and "client certificate for 'kubernetes-admin' is not allowed here" in body
    assert served.peer.queries == []
