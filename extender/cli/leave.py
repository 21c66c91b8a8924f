"""`spillover leave NAME`: remove a peer and wait until nothing of Spillover's is left in it.

Deleting the PeerCluster is all it takes (Spillover's finalizer holds it while the peer is
emptied); this waits for that, shows what it is waiting for as it changes, and then removes the
kubeconfig Secret `spillover join` made.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import msgspec

from extender.cli.errors import explain
from extender.kube import client as kube_client
from extender.kube.raw import ApiError, RawClient
from extender.peers.model import FINALIZER, PATH, give_up_command


def _progress(pc: dict[str, Any]) -> str:
    """What the detach is waiting for, from the Ready condition. A Ready=True condition was
    written before the deletion (it says the peer takes pods): not progress, so not shown."""
    for condition in (pc.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            return str(condition.get("message") or "")
    return ""


async def leave(raw: RawClient, name: str, timeout: float, keep_secret: bool) -> int:
    try:
        pc = msgspec.json.decode(await raw.get(f"{PATH}/{name}"))
    except ApiError as exc:
        if exc.status == 404:
            print(f"error: there is no PeerCluster {name} (see `kubectl get peerclusters`)", file=sys.stderr)
            return 1
        raise
    ref = pc.get("spec", {}).get("kubeconfigSecretRef") or {}
    if FINALIZER not in (pc.get("metadata", {}).get("finalizers") or ()):
        print(
            f"warning: PeerCluster {name} has no {FINALIZER} finalizer (is `spillover serve` running?): "
            "it goes at once, and whatever Spillover made in the peer stays there",
            file=sys.stderr,
        )
    await raw.request("DELETE", f"{PATH}/{name}")
    print(f"peercluster/{name} deleting: its pods are failed over and what Spillover made in the peer is removed")
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        try:
            pc = msgspec.json.decode(await raw.get(f"{PATH}/{name}"))
        except ApiError as exc:
            if exc.status != 404:
                raise
            break
        progress = _progress(pc)
        if progress and progress != said:
            print(f"  {progress}")
            said = progress
        if time.monotonic() > deadline:
            print(
                f"error: PeerCluster {name} still detaching after {timeout:g}s ({said or 'no progress reported'}); "
                f"Spillover goes on in the background. To give up on what is left in the peer: {give_up_command(name)}",
                file=sys.stderr,
            )
            return 1
        await asyncio.sleep(1)
    print(f"peercluster/{name} deleted: nothing of Spillover's is left in the peer")
    if ref.get("name") and not keep_secret:
        path = f"/api/v1/namespaces/{ref.get('namespace', 'spillover-system')}/secrets/{ref['name']}"
        try:
            await raw.request("DELETE", path)
            print(f"secret/{ref['name']} deleted")
        except ApiError as exc:
            if exc.status != 404:
                print(f"warning: secret/{ref['name']} not deleted: {exc.message}", file=sys.stderr)
    return 0


async def _run(args: argparse.Namespace) -> int:
    api = await kube_client.from_file(args.kubeconfig)
    raw = RawClient(api)
    try:
        return await leave(raw, args.name, args.timeout, args.keep_secret)
    finally:
        await raw.close()
        await api.close()


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except kube_client.KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiError as exc:
        print(explain(exc), file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot reach the home apiserver: {exc}", file=sys.stderr)
    return 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "leave", help="remove a peer: delete its PeerCluster and wait until the peer holds nothing of Spillover's"
    )
    p.add_argument("name", help="the PeerCluster to remove")
    p.add_argument("--kubeconfig", default=None, help="home cluster kubeconfig (default: $KUBECONFIG or in-cluster)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the peer to be emptied (300)")
    p.add_argument("--keep-secret", action="store_true", help="keep the kubeconfig Secret `spillover join` made")
    p.set_defaults(func=run)
