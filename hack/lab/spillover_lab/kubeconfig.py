"""Kubeconfig files for the lab's identities (embedded certs, so a file is self-contained)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def render(cluster: str, server: str, pki: Path, identity: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"{cluster}-{identity}",
                "user": {
                    "client-certificate-data": _b64(pki / f"{identity}.crt"),
                    "client-key-data": _b64(pki / f"{identity}.key"),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-{identity}"}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: Path, cluster: str, server: str, pki: Path, identity: str) -> Path:
    path.write_text(render(cluster, server, pki, identity))
    path.chmod(0o600)
    return path
