"""What makes a spilled pod outlive a Spillover outage: tolerating node loss for ever.

A virtual node is kept alive by Spillover renewing its Lease. While no replica runs (an upgrade
gone wrong, a crash loop), the node-lifecycle controller marks the node Unknown after its grace
period (40-50 s in a real cluster) and taints it ``node.kubernetes.io/unreachable:NoExecute``;
the taint-eviction controller then deletes every pod on it once the pod's toleration runs out
(300 s, added to every pod by the DefaultTolerationSeconds admission plugin), although the peer
runs them fine. So a pod bound to a virtual node is made to tolerate ``not-ready`` and
``unreachable`` NoExecute without a time limit (``delegation.node_loss`` writes it, right after
the bind). Whether a peer is lost, and when its pods are recreated elsewhere, stays Spillover's
decision (PeerCluster ``gracePeriodSeconds``), taken when it runs and can see the peer.
"""

from __future__ import annotations

from typing import Any

import msgspec

from extender import labels
from extender.capacity.fit import tolerates
from extender.wire.core import Pod, Taint

NODE_LOSS_TAINTS = (
    Taint(key="node.kubernetes.io/not-ready", effect="NoExecute"),
    Taint(key="node.kubernetes.io/unreachable", effect="NoExecute"),
)
"""What the node-lifecycle controller puts on a node whose kubelet (here: Spillover) stops reporting."""


def forever_patch(pod: Pod) -> list[dict[str, Any]]:
    """JSON patch making ``pod`` tolerate the node-loss taints without a time limit; [] if it does.

    The taint-eviction controller takes, for each taint, the first toleration that tolerates it
    and evicts after the least ``tolerationSeconds`` among those (pkg/controller/tainteviction
    taint_eviction.go processPodOnNode, GetMatchingTolerations, getMinTolerationTime, v1.36). So
    that first one loses its ``tolerationSeconds``, which a pod update may change
    (pkg/apis/core/validation validateOnlyAddedTolerations: existing tolerations stay, except
    their tolerationSeconds); a taint tolerated by none gets a toleration added. Each removal is
    guarded by a ``test`` of the toleration as read, so a concurrent change fails the patch
    rather than editing the wrong entry.
    """
    tolerations = pod.spec.tolerations or []
    ops: list[dict[str, Any]] = []
    added: list[dict[str, str]] = []
    for taint in NODE_LOSS_TAINTS:
        first = next((i for i, t in enumerate(tolerations) if tolerates(t, taint)), None)
        if first is None:
            added.append({"key": taint.key, "operator": "Exists", "effect": taint.effect})
        elif tolerations[first].toleration_seconds is not None:
            path = f"/spec/tolerations/{first}"
            ops.append({"op": "test", "path": path, "value": msgspec.to_builtins(tolerations[first])})
            ops.append({"op": "remove", "path": f"{path}/tolerationSeconds"})
    if added and pod.spec.tolerations is None:
        ops.append({"op": "add", "path": "/spec/tolerations", "value": added})
    else:
        ops += [{"op": "add", "path": "/spec/tolerations/-", "value": toleration} for toleration in added]
    return ops


def lacking_patch(pod: Pod) -> list[dict[str, Any]]:
    """``forever_patch`` for a live pod Spillover bound (the ``spillover.io/delegate`` annotation its
    Binding wrote); [] for any other: a pod bound to a virtual node some other way is left alone."""
    if pod.metadata.deletion_timestamp or labels.DELEGATE not in (pod.metadata.annotations or {}):
        return []
    return forever_patch(pod)
