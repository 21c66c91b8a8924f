"""The marker resource on a pod: what tells a pod Spillover's webhook prepared from any other.

Only a prepared pod reaches the extender (kube-scheduler calls an extender only for pods that
request one of its managedResources), so only a prepared pod is ever bound to a virtual node by
Spillover. Any other pod found there was bound by someone else (the default binder, for a
DaemonSet whose pods tolerate every taint; or by hand): it is no proxy, has no delegate, and
never runs.
"""

from __future__ import annotations

from extender.resources import SPILLABLE
from extender.wire.core import Pod


def has_marker(pod: Pod) -> bool:
    """Whether any container requests or limits the marker resource (kube-scheduler's
    managedResources test looks at containers and init containers alike)."""
    for container in [*pod.spec.containers, *(pod.spec.init_containers or ())]:
        resources = container.resources
        if resources is not None and (SPILLABLE in (resources.requests or {}) or SPILLABLE in (resources.limits or {})):
            return True
    return False
