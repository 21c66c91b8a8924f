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
from extender.kube.api import SECRETS, Api
from extender.kube.raw import ApiError
from extender.peers.model import FINALIZER, PEERCLUSTERS, PeerClusterWithStatus, give_up_command


def _progress(pc: PeerClusterWithStatus) -> str:
    """What the detach is waiting for, from the Ready condition. A Ready=True condition was
    written before the deletion (it says the peer takes pods): not progress, so not shown."""
    ready = pc.status.condition("Ready")
    return ready.message if ready is not None and ready.status != "True" else ""


async def _read(home: Api, name: str) -> PeerClusterWithStatus:
    return msgspec.json.decode(await home.get(PEERCLUSTERS.item(name)), type=PeerClusterWithStatus)


async def leave(raw: Api, name: str, timeout: float, keep_secret: bool) -> int:
    try:
        pc = await _read(raw, name)
    except ApiError as exc:
        if exc.status == 404:
            print(f"error: there is no PeerCluster {name} (see `kubectl get peerclusters`)", file=sys.stderr)
            return 1
        raise
    ref = pc.spec.kubeconfig_secret_ref
    if FINALIZER not in (pc.metadata.finalizers or ()):
        print(
            f"warning: PeerCluster {name} has no {FINALIZER} finalizer (is `spillover serve` running?): "
            "it goes at once, and whatever Spillover made in the peer stays there",
            file=sys.stderr,
        )
    await raw.request("DELETE", PEERCLUSTERS.item(name))
    print(f"peercluster/{name} deleting: its pods are failed over and what Spillover made in the peer is removed")
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        try:
            pc = await _read(raw, name)
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
    if ref.name and not keep_secret:
        try:
            await raw.request("DELETE", SECRETS.item(ref.name, ref.namespace))
            print(f"secret/{ref.name} deleted")
        except ApiError as exc:
            if exc.status != 404:
                print(f"warning: secret/{ref.name} not deleted: {exc.message}", file=sys.stderr)
    return 0


async def _run(args: argparse.Namespace) -> int:
    home = await kube_client.connect(args.kubeconfig)
    try:
        return await leave(home, args.name, args.timeout, args.keep_secret)
    finally:
        await home.close()


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
