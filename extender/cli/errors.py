"""What the CLI says when the home apiserver refuses a PeerCluster call."""

from __future__ import annotations

from extender.kube.raw import ApiError


def explain(exc: ApiError) -> str:
    """The error, with what to do when the likely cause is a missing CRD."""
    hint = " (is the PeerCluster CRD installed? kubectl apply -k manifests/base)" if exc.status == 404 else ""
    return f"error: {exc}{hint}"
