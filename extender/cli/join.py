"""`spillover join NAME --peer-kubeconfig FILE`: register a peer cluster with the home cluster.

Creates (or updates) the kubeconfig Secret and the PeerCluster in home; safe to run again. A
PeerCluster that exists keeps every setting whose flag is not given (join is also how a kubeconfig
is rotated, and that must not reset a cost or a grace period set earlier); a flag given empty
(``--namespace=``) removes the setting.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

from extender.cli.errors import explain
from extender.hints import _NAME, NAME_FORM
from extender.kube import client as kube_client
from extender.kube.api import NAMESPACES, SECRETS, Api, PatchType, Resource, decode_object
from extender.kube.raw import ApiError
from extender.peers import access
from extender.peers.model import PEERCLUSTERS
from extender.pod_security import DEFAULT_LEVEL, Level


async def _apply(raw: Api, resource: Resource, namespace: str | None, name: str, body: dict[str, Any]) -> str:
    try:
        await raw.request("POST", resource.collection(namespace), body)
        return "created"
    except ApiError as exc:
        if exc.status != 409:
            raise
    await raw.request("PATCH", resource.item(name, namespace), body, content_type=PatchType.MERGE)
    return "updated"


DEFAULTS: dict[str, Any] = {
    "cost": 1.0,
    "costPerGiB": 0.0,
    "costPerGPU": 0.0,
    "tier": 0,
    "gracePeriodSeconds": 60,
    "podSecurity": str(DEFAULT_LEVEL),
}
"""A new PeerCluster's settings when their flags are not given (the CRD's defaults)."""


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The PeerCluster spec fields whose flags were given; None for one given empty (remove it)."""
    spec: dict[str, Any] = {}
    for flag, field in (
        ("cost", "cost"),
        ("cost_per_gib", "costPerGiB"),
        ("cost_per_gpu", "costPerGPU"),
        ("tier", "tier"),
        ("grace_period", "gracePeriodSeconds"),
        ("pod_security", "podSecurity"),
    ):
        if getattr(args, flag) is not None:
            spec[field] = getattr(args, flag)
    if args.namespace is not None:
        spec["namespace"] = args.namespace or None
    if args.allowed_namespaces is not None:
        key, _, value = args.allowed_namespaces.partition("=")
        spec["allowedNamespaces"] = {"matchLabels": {key: value}} if key else None
    return spec


def _present(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if v is not None}


async def write_peercluster(raw: Api, name: str, secret_ref: dict[str, str], given: dict[str, Any]) -> str:
    """Create the PeerCluster, or change only the settings given on one that exists (the rest of
    its spec stays as it is; a merge patch's null removes a setting given empty). Returns what
    was done, for the user."""
    ref = {"kubeconfigSecretRef": secret_ref}
    body = {"apiVersion": "spillover.io/v1alpha1", "kind": "PeerCluster", "metadata": {"name": name}}
    try:
        await raw.request("POST", PEERCLUSTERS.collection(), {**body, "spec": {**DEFAULTS, **ref, **_present(given)}})
        return f"peercluster/{name} created"
    except ApiError as exc:
        if exc.status != 409:
            raise
    await raw.request("PATCH", PEERCLUSTERS.item(name), {"spec": {**ref, **given}}, content_type=PatchType.MERGE)
    kept = [field for field in DEFAULTS if field not in given]
    return f"peercluster/{name} updated" + (f" (kept as they were: {', '.join(kept)})" if kept else "")


async def being_deleted(raw: Api, name: str) -> bool:
    """A PeerCluster still detaching: patching it would be lost when it goes a moment later."""
    try:
        existing = decode_object(await raw.get(PEERCLUSTERS.item(name)))
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return bool(existing.metadata.deletion_timestamp)


async def _check_peer(text: str, source: str) -> str | None:
    """Why the peer cannot be used with this kubeconfig, or None: asked of the peer itself."""
    raw = await kube_client.connect_text(text, source, timeout=10)  # fails early on a bad file
    try:
        lacking = await access.missing(raw)
    except (ApiError, OSError) as exc:
        return f"cannot ask the peer apiserver {raw.host} what this identity may do: {exc}"
    finally:
        await raw.close()
    if lacking:
        return (
            f"the identity in {source} cannot {', '.join(lacking)} in the peer; apply manifests/peer there "
            "(kubectl apply -k manifests/peer) and use its ServiceAccount's token, or bind the ClusterRole "
            "spillover-peer to this identity"
        )
    return None


async def join(args: argparse.Namespace) -> int:
    text = Path(args.peer_kubeconfig).read_text()  # noqa: ASYNC240 (once, before any I/O)
    if args.skip_checks:
        await (await kube_client.from_text(text, args.peer_kubeconfig)).close()  # fail early on a bad file
    elif problem := await _check_peer(text, args.peer_kubeconfig):
        print(f"error: {problem}; nothing was changed (--skip-checks joins anyway)", file=sys.stderr)
        return 1
    raw = await kube_client.connect(args.kubeconfig)
    try:
        if await being_deleted(raw, args.name):
            print(
                f"error: PeerCluster {args.name} is being deleted (Spillover is emptying the peer); "
                f"wait for it to go (`spillover leave {args.name}` waits and shows progress), then join again",
                file=sys.stderr,
            )
            return 1
        ns = args.secret_namespace
        await _apply(raw, NAMESPACES, None, ns, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        secret_name = f"peer-{args.name}-kubeconfig"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": ns, "labels": {"spillover.io/peer": args.name}},
            "type": "Opaque",
            "data": {"kubeconfig": base64.b64encode(text.encode()).decode()},
        }
        print(f"secret/{secret_name} {await _apply(raw, SECRETS, ns, secret_name, secret)}")
        ref = {"name": secret_name, "namespace": ns, "key": "kubeconfig"}
        print(await write_peercluster(raw, args.name, ref, given_settings(args)))
    finally:
        await raw.close()
    return 0


def run(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name):
        print(f"error: peer name {args.name!r} is invalid: use {NAME_FORM}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(join(args))
    except FileNotFoundError as exc:
        print(
            f"error: {exc.filename}: no such file; pass the peer's kubeconfig with --peer-kubeconfig", file=sys.stderr
        )
    except kube_client.KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiError as exc:
        print(explain(exc), file=sys.stderr)
    return 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("join", help="register a peer cluster (Secret + PeerCluster in home)")
    p.add_argument("name", help="peer name (a DNS label); its virtual node is spillover-NAME")
    p.add_argument("--peer-kubeconfig", required=True, help="kubeconfig file with access to the peer")
    p.add_argument("--kubeconfig", default=None, help="home cluster kubeconfig (default: $KUBECONFIG or in-cluster)")
    keeps = "; when joining again, not given keeps the PeerCluster's value"
    p.add_argument("--cost", type=float, default=None, help="relative price per CPU hour (new peer: 1.0)" + keeps)
    p.add_argument("--cost-per-gib", type=float, default=None, help="relative price per GiB-hour (new peer: 0)" + keeps)
    p.add_argument("--cost-per-gpu", type=float, default=None, help="relative price per GPU-hour (new peer: 0)" + keeps)
    p.add_argument("--tier", type=int, default=None, help="lower tiers fill first (new peer: 0)" + keeps)
    p.add_argument(
        "--grace-period", type=int, default=None, help="seconds unreachable before failover (new peer: 60)" + keeps
    )
    p.add_argument(
        "--namespace",
        default=None,
        help="run delegates in this peer namespace (new peer: the pod's own; given empty: back to that)" + keeps,
    )
    p.add_argument(
        "--pod-security",
        choices=[str(level) for level in Level],
        default=None,
        help="Pod Security level the peer accepts, enforced on the namespaces Spillover creates there "
        f"(new peer: {DEFAULT_LEVEL})" + keeps,
    )
    p.add_argument(
        "--allowed-namespaces",
        default=None,
        help="only home namespaces with this label KEY=VALUE (given empty: every opted-in namespace)" + keeps,
    )
    p.add_argument("--secret-namespace", default="spillover-system", help="home namespace for the kubeconfig Secret")
    p.add_argument(
        "--skip-checks",
        action="store_true",
        help="join without first asking the peer whether this identity may do what Spillover needs there",
    )
    p.set_defaults(func=run)
