"""What follows a spilled pod stays true: its ConfigMaps and Secrets in the peer follow home's.

A pod runs in a peer with a ConfigMap (env), a Secret (volume) and a second ConfigMap that does
not exist yet. The missing one is told on the pod (ReferenceMissing); changed at home, the copies
change in the peer within seconds (a key removed at home goes there too); created at home, the
missing one is copied (ReferenceCopied); deleted at home, its copy goes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import pytest_asyncio
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.models import V1ConfigMap, V1Secret
from spillover_lab import lab as lablib

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import ensure_namespace, events_for, pod_template, unique

NS = "copies"
FOLLOW_WITHIN = 15.0
"""Seconds a change at home may take to reach the peer (measured: well under one)."""


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], NS, enabled=True)
    yield clusters["home"]


async def _copy(peer: Cluster, kind: str, name: str) -> V1ConfigMap | V1Secret | None:
    try:
        if kind == "ConfigMap":
            config_map: V1ConfigMap = await peer.core.read_namespaced_config_map(name, NS)
            return config_map
        secret: V1Secret = await peer.core.read_namespaced_secret(name, NS)
        return secret
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def _reasons(home: Cluster, pod: str) -> set[str]:
    return {e.reason for e in await events_for(home, NS, pod) if e.reporting_component == "spillover"}


async def test_copies_in_the_peer_follow_home_and_a_missing_reference_is_copied_when_it_appears(
    home: Cluster, clusters: dict[str, Cluster]
) -> None:
    name = unique("follow")
    settings, creds, late = f"{name}-settings", f"{name}-creds", f"{name}-late"
    await home.core.create_namespaced_config_map(
        NS, {"metadata": {"name": settings}, "data": {"mode": "blue", "old": "x"}}
    )
    await home.core.create_namespaced_secret(NS, {"metadata": {"name": creds}, "stringData": {"token": "one"}})
    spec = pod_template(name, "100m")["spec"]
    spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": settings}}, {"configMapRef": {"name": late}}]
    spec["volumes"] = [{"name": "creds", "secret": {"secretName": creds}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "creds", "mountPath": "/creds"}]
    meta = {"name": name, "labels": {"app": name}, "annotations": {"spillover.io/policy": "remote-only"}}
    await home.core.create_namespaced_pod(NS, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    try:

        async def spilled() -> str | None:
            pod = await home.core.read_namespaced_pod(name, NS)
            return (
                (pod.metadata.annotations or {}).get("spillover.io/cluster") if pod.status.phase == "Running" else None
            )

        peer = clusters[await eventually(spilled, 90, f"{name} running in a peer")]
        copy = await _copy(peer, "ConfigMap", settings)
        assert copy is not None and copy.data == {"mode": "blue", "old": "x"}, copy

        async def told_missing() -> bool:
            return "ReferenceMissing" in await _reasons(home, name)

        await eventually(told_missing, 30, "a ReferenceMissing Event on the pod", interval=0.5)

        changed = time.monotonic()
        await home.core.replace_namespaced_config_map(
            settings, NS, {"metadata": {"name": settings}, "data": {"mode": "green", "new": "y"}}
        )
        await home.core.patch_namespaced_secret(creds, NS, {"stringData": {"token": "two"}})

        async def followed() -> bool:
            cm, secret = await _copy(peer, "ConfigMap", settings), await _copy(peer, "Secret", creds)
            assert cm is not None and secret is not None, "a copy went from the peer"
            return cm.data == {"mode": "green", "new": "y"} and secret.data == {
                "token": base64.b64encode(b"two").decode()
            }

        await eventually(followed, FOLLOW_WITHIN, "the ConfigMap and Secret changed in the peer", interval=0.1)
        followed_in = time.monotonic() - changed

        created = time.monotonic()
        await home.core.create_namespaced_config_map(NS, {"metadata": {"name": late}, "data": {"late": "1"}})

        async def copied() -> bool:
            found = await _copy(peer, "ConfigMap", late)
            return found is not None and found.data == {"late": "1"}

        await eventually(copied, FOLLOW_WITHIN, "the ConfigMap created at home copied to the peer", interval=0.1)
        copied_in = time.monotonic() - created

        async def told_copied() -> bool:
            return "ReferenceCopied" in await _reasons(home, name)

        await eventually(told_copied, 30, "a ReferenceCopied Event on the pod", interval=0.5)

        await home.core.delete_namespaced_config_map(late, NS)

        async def gone() -> bool:
            return await _copy(peer, "ConfigMap", late) is None

        await eventually(
            gone, FOLLOW_WITHIN, "the copy of a ConfigMap deleted at home deleted in the peer", interval=0.1
        )
        print(
            f"\n[copies] change reached the peer in {followed_in:.2f}s; a new reference was copied in {copied_in:.2f}s"
        )
    finally:
        await home.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        for delete in (home.core.delete_namespaced_config_map, home.core.delete_namespaced_secret):
            for obj in (settings, creds, late):
                try:
                    await delete(obj, NS)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
