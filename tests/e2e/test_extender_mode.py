"""The extender install mode (manifests/extender): home's own kube-scheduler consults Spillover
over HTTPS (HTTP/2) with the client certificate of manifests/extender/kube-scheduler-config.yaml,
made by hack/install/self-signed-certs. Only that certificate gets in; rotated certificates keep
the scheduler working. The module switches the lab into this mode and back (``extender_mode``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import ssl
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from spillover_lab import lab as lablib
from spillover_lab import pki
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    create_deployment,
    delete_deployment,
    ensure_namespace,
    overflow_twelve,
    pods,
    unique,
    wait_bound,
)

SHOP = "shop"


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], extender_mode: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], SHOP, enabled=True)
    await ensure_namespace(clusters["home"], "plain", enabled=False)
    yield clusters["home"]


def connections(state: lablib.State) -> Counter[str]:
    """spillover_extender_connections_total by protocol, from Spillover's /metrics."""
    with urllib.request.urlopen(sp.metrics_url(state) + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found: Counter[str] = Counter()
    for protocol, value in re.findall(
        r'^spillover_extender_connections_total\{protocol="([^"]+)"\} (\S+)$', text, re.M
    ):
        found[protocol] = int(float(value))
    return found


def client_context(state: lablib.State, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(sp.certs_dir(state) / "ca.crt"))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def call(state: lablib.State, context: ssl.SSLContext, path: str, body: dict[str, object]) -> tuple[int, bytes]:
    """One HTTPS call to the extender (the lab's certificates also name 127.0.0.1)."""
    port = state.ports("home")["extender"]
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def refused(state: lablib.State, context: ssl.SSLContext, path: str, body: dict[str, object]) -> bool:
    try:
        call(state, context, path, body)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


def sign(state: lablib.State, folder: Path, stem: str, cn: str, expired: bool = False) -> tuple[Path, Path]:
    """A client certificate signed by Spillover's CA (the one self-signed-certs made)."""
    certs = sp.certs_dir(state)
    ca_cert = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    pki.make_leaf(folder, stem, (ca_cert, ca_key), cn, expired=expired)
    return folder / f"{stem}.crt", folder / f"{stem}.key"


async def test_the_control_plane_scheduler_spills_a_deployment_over_one_http2_connection(
    home: Cluster, extender_mode: lablib.State
) -> None:
    lab = extender_mode
    assert sp.current_mode(lab) == "extender"
    before = connections(lab)
    name = unique("web")
    try:
        await overflow_twelve(home, SHOP, name)
        assert {p.spec.scheduler_name for p in await pods(home, SHOP, name)} == {"default-scheduler"}
    finally:
        await delete_deployment(home, SHOP, name)
    made = connections(lab) - before
    assert set(made) <= {"h2"}, f"the scheduler negotiated HTTP/2 over TLS: {made}"
    assert 1 <= made["h2"] <= 2, f"12 filters and 12 binds over {made['h2']} connection(s), not one per bind"


async def test_only_the_schedulers_certificate_gets_in(
    home: Cluster, extender_mode: lablib.State, tmp_path: Path
) -> None:
    lab = extender_mode
    certs = sp.certs_dir(lab)
    # Issue 11's attack: a pending pod outside the opted-in namespaces, bound by one extender call.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": unique("stuck")},
        "spec": {"nodeSelector": {"no": "such-node"}, "containers": [{"name": "c", "image": "registry.example/app:1"}]},
    }
    created = await home.core.create_namespaced_pod("plain", pod)
    bind = {
        "PodName": created.metadata.name,
        "PodNamespace": "plain",
        "PodUID": created.metadata.uid,
        "Node": "home-node-1",
    }
    try:
        expired = sign(lab, tmp_path, "expired", "kube-scheduler", expired=True)
        tenant = sign(lab, tmp_path, "tenant", "tenant")
        other_ca = (lab.root / "home" / "pki" / "spillover.crt", lab.root / "home" / "pki" / "spillover.key")
        callers = {
            "no client certificate": (None, None),
            "a certificate of another CA (the cluster's)": other_ca,
            "an expired certificate of Spillover's CA": expired,
            "a certificate of Spillover's CA for another name": tenant,
        }
        before = connections(lab)
        for what, (cert, key) in callers.items():
            assert await asyncio.to_thread(refused, lab, client_context(lab, cert, key), "/bind", bind), what
        assert connections(lab)["refused"] - before["refused"] == 1, "the misnamed one got past TLS only"
        plain = http.client.HTTPConnection("127.0.0.1", lab.ports("home")["extender"], timeout=5)
        try:
            plain.request("POST", "/bind", json.dumps(bind))
            answered = plain.getresponse().status
        except (ConnectionError, http.client.HTTPException):
            answered = 0
        assert answered == 0, "plain HTTP gets no answer from the TLS port"
        scheduler = client_context(lab, certs / "client.crt", certs / "client.key")
        status, body = await asyncio.to_thread(call, lab, scheduler, "/filter", {})
        assert status == 400 and b"Pod" in body, "the scheduler's own certificate gets in (and a bad body a 400)"
        again = await home.core.read_namespaced_pod(created.metadata.name, "plain")
        assert not again.spec.node_name, "nothing was bound"
    finally:
        await home.core.delete_namespaced_pod(created.metadata.name, "plain", grace_period_seconds=0)


async def test_rotated_certificates_keep_the_scheduler_working(home: Cluster, extender_mode: lablib.State) -> None:
    lab = extender_mode
    certs = sp.certs_dir(lab)
    old = (certs / "extender.crt").read_bytes()
    before = connections(lab)
    printed = await asyncio.to_thread(sp.renew_certificates, lab)
    assert "signed" in printed and (certs / "extender.crt").read_bytes() != old
    await asyncio.to_thread(sp.sync_volumes, lab)  # the kubelet's part: the Secret's new files in the pod

    def served() -> bytes | None:
        port = lab.ports("home")["extender"]
        context = client_context(lab, certs / "client.crt", certs / "client.key")
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1"
        ) as tls:
            der = tls.getpeercert(binary_form=True)
        current = x509.load_pem_x509_certificate((certs / "extender.crt").read_bytes())
        return der if der == current.public_bytes(serialization.Encoding.DER) else None

    async def reloaded() -> bytes | None:
        return await asyncio.to_thread(served)

    await eventually(reloaded, 30, "Spillover serving the renewed extender certificate")
    name = unique("rotated")
    await create_deployment(home, SHOP, name, 2, "100m", annotations={"spillover.io/policy": "remote-only"})
    try:
        placed = await wait_bound(home, SHOP, name, 2, timeout=60)
        assert all(node.startswith("spillover-") for node in placed.values()), placed
    finally:
        await delete_deployment(home, SHOP, name)
    assert connections(lab)["h2"] > before["h2"], "the scheduler reconnected under the new certificates"
