"""Clients from a kubeconfig file, a kubeconfig text, or in-cluster: kubernetes_asyncio reads the
kubeconfig (TLS material, credentials, exec plugins); ``RawClient`` sends the requests."""

from __future__ import annotations

import os
from typing import Any

import yaml
from kubernetes_asyncio import client, config

from extender.kube.raw import RawClient


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used; the message says which and why."""


async def from_file(path: str | None) -> client.ApiClient:
    """A client for ``path``; with no path: in-cluster config, else $KUBECONFIG/~/.kube/config."""
    cfg = client.Configuration()
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        try:
            await config.load_kube_config(config_file=path, client_configuration=cfg)
        except Exception as exc:  # the library raises several unrelated types
            raise KubeconfigError(f"cannot load kubeconfig {path or '(default)'}: {exc}") from exc
    return _tuned(cfg)


async def from_text(text: str, source: str) -> client.ApiClient:
    """A client from kubeconfig YAML held in a Secret (``source`` names it in errors)."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{source}: kubeconfig is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not data.get("clusters"):
        raise KubeconfigError(f"{source}: kubeconfig has no clusters")
    cfg = client.Configuration()
    try:
        await config.load_kube_config_from_dict(data, client_configuration=cfg)
    except Exception as exc:
        raise KubeconfigError(f"{source}: kubeconfig cannot be used: {exc}") from exc
    return _tuned(cfg)


def _tuned(cfg: client.Configuration) -> client.ApiClient:
    # Watches and bursts of binds share one pool per cluster; the default (4) serialises them.
    cfg.connection_pool_maxsize = 64
    return client.ApiClient(configuration=cfg)


async def connect(path: str | None, timeout: float = 10.0) -> RawClient:
    """A client of the cluster ``path`` (see ``from_file``) names."""
    return RawClient(await from_file(path), timeout=timeout, owns_api=True)


async def connect_text(text: str, source: str, timeout: float = 10.0) -> RawClient:
    """A client of the cluster a kubeconfig held in a Secret names (``source`` names it in errors)."""
    return RawClient(await from_text(text, source), timeout=timeout, owns_api=True)
