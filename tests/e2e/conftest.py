"""Session fixtures for the end-to-end tests: the real lab, once per run, and a client per cluster.

A lab that is already up (hack/lab/up) is reused and left running; one started here is stopped
at the end. Nothing here ever skips: if the lab cannot start, every e2e test errors with why.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config
from spillover_lab import lab as lablib


@dataclass
class Cluster:
    name: str
    kubeconfig: Path
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def lab() -> Iterator[lablib.State]:
    root = lablib.lab_root()
    already = lablib.State(root)
    reuse = bool(already.data["clusters"]) and lablib.healthy(already)
    state = lablib.up(root=root)
    yield state
    if not reuse and not os.environ.get("SPILLOVER_KEEP_LAB"):
        lablib.down(root)


@pytest.fixture(scope="session")
def spillover(lab: lablib.State) -> Iterator[lablib.State]:
    """Spillover installed from manifests/ in the default (own-scheduler) mode, east and west
    joined. A test that needs the other mode takes ``extender_mode`` as well."""
    from spillover_lab import spillover as sp

    started_here = sp.running_serve(lab) is None
    sp.ensure_running(lab, sp.DEFAULT_MODE)
    yield lab
    if started_here and not os.environ.get("SPILLOVER_KEEP_LAB"):
        sp.stop(lab)


@pytest.fixture(scope="module")
def extender_mode(spillover: lablib.State) -> Iterator[lablib.State]:
    """Spillover installed from manifests/extender for one test module: home's own
    kube-scheduler calls the extender over HTTPS with its client certificate. The default mode
    is back afterwards, for the modules that follow."""
    from spillover_lab import spillover as sp

    sp.ensure_running(spillover, "extender")
    yield spillover
    sp.ensure_running(spillover, sp.DEFAULT_MODE)


async def _client(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


@pytest_asyncio.fixture(scope="session")
async def clusters(lab: lablib.State) -> AsyncIterator[dict[str, Cluster]]:
    out = {}
    for name in lab.cluster_names():
        out[name] = Cluster(name, lab.kubeconfig(name), await _client(lab.kubeconfig(name)))
    yield out
    for c in out.values():
        await c.api.close()
