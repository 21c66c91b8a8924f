"""Label and annotation keys Spillover writes (users write only the hints in extender.hints)."""

from collections.abc import Mapping

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "spillover"
PROXY_UID = "spillover.io/proxy-uid"
"""On every object Spillover creates in a peer: the UID of the home proxy pod it serves."""
HOME_CLUSTER = "spillover.io/home-cluster"
"""On every object Spillover creates in a peer: the home cluster it serves. A peer may be shared
by several homes; each Spillover watches, sweeps and detaches only its own objects."""
HOME_NAMESPACE = "spillover.io/home-namespace"
HOME_NAME = "spillover.io/home-name"
PEER = "spillover.io/peer"
VIRTUAL = "spillover.io/virtual"
"""Label (true) and taint key of virtual nodes; the taint's value is the peer name."""
CAPACITY_GENERATION = "spillover.io/capacity-generation"
DELEGATE = "spillover.io/delegate"
"""Annotation on the proxy pod: namespace/name of its delegate in the peer."""
VIRTUAL_NODE_PREFIX = "spillover-"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
"""Written (-1000) on spilled pods, carried by their Binding: a scale-down removes them first."""
ENABLED = "spillover.io/enabled"
"""Namespace label (true) by which the admin opts a home namespace in: only its pods may spill
(the webhook prepares them, the admission policy refuses the marker elsewhere, and filter and
bind send no other pod to a peer)."""


def opted_in(namespace_labels: Mapping[str, str] | None) -> bool:
    return (namespace_labels or {}).get(ENABLED) == "true"
SKIPPED = "spillover.io/skipped"
"""Annotation the webhook puts on an opted-in pod it left as it is, saying why (it names a
scheduler that does not consult Spillover)."""
