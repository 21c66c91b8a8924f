"""The kube-scheduler extender API (k8s.io/kube-scheduler/extender/v1), byte for byte.

The Go types carry no json tags, so encoding/json writes their exported field names as keys:
``Pod``, ``NodeNames``, ``FailedAndUnresolvableNodes``... The scheduler decodes our answers with
encoding/json too (case-insensitive, unknown keys ignored), but we write the exact names anyway so
a capture of either side reads the same.

We run ``nodeCacheCapable: true``: the scheduler sends ``NodeNames`` and ``Nodes`` is null. We keep
``Nodes`` as raw bytes that are never parsed, so a scheduler configured the other way costs
nothing to decode and is refused by the handlers with a clear message instead.
"""

from __future__ import annotations

import msgspec

from extender.wire.core import Pod

MAX_EXTENDER_PRIORITY = 10
"""extenderv1.MaxExtenderPriority: the scheduler scales our scores by weight * 100 / 10."""
MIN_EXTENDER_PRIORITY = 0

NULL = msgspec.Raw(b"null")


class _Go(msgspec.Struct, omit_defaults=True, kw_only=True, forbid_unknown_fields=False):
    """Field names are the JSON keys, as Go's encoding/json writes untagged exported fields."""


class ExtenderArgs(_Go):
    """Body of ``filter`` and ``prioritize``."""

    Pod: Pod
    NodeNames: list[str]
    Nodes: msgspec.Raw = NULL
    """A v1.NodeList when nodeCacheCapable is false; never read."""


class ExtenderFilterResult(_Go):
    NodeNames: list[str]
    """Always written (possibly empty): the scheduler reads a null list as "no node passed"."""
    FailedNodes: dict[str, str] = msgspec.field(default_factory=dict)
    """Node -> reason; preemption may still help on these."""
    FailedAndUnresolvableNodes: dict[str, str] = msgspec.field(default_factory=dict)
    """Node -> reason; preemption is not tried on these."""
    Error: str = ""
    Nodes: msgspec.Raw = NULL


class HostPriority(_Go):
    Host: str
    Score: int


HostPriorityList = list[HostPriority]


class MetaPod(_Go):
    UID: str


class MetaVictims(_Go):
    Pods: list[MetaPod] | None = None
    NumPDBViolations: int = 0


class Victims(_Go):
    """Full victim pods: sent only to extenders that are not nodeCacheCapable."""

    Pods: list[Pod] | None = None
    NumPDBViolations: int = 0


class ExtenderPreemptionArgs(_Go):
    Pod: Pod
    NodeNameToVictims: dict[str, Victims | None] | None = None
    NodeNameToMetaVictims: dict[str, MetaVictims | None] | None = None


class ExtenderPreemptionResult(_Go):
    NodeNameToMetaVictims: dict[str, MetaVictims]


class ExtenderBindingArgs(_Go):
    PodName: str
    PodNamespace: str
    PodUID: str
    Node: str


class ExtenderBindingResult(_Go):
    Error: str = ""


class FilterArgs(_Go):
    """ExtenderArgs with the pod left as the scheduler's JSON: filter decodes it on its own and
    keeps the bytes for bind, which rebuilds the delegate from them (one pass over the names)."""

    Pod: msgspec.Raw
    NodeNames: list[str]
    Nodes: msgspec.Raw = NULL


args_decoder = msgspec.json.Decoder(ExtenderArgs)
filter_args_decoder = msgspec.json.Decoder(FilterArgs)
preemption_args_decoder = msgspec.json.Decoder(ExtenderPreemptionArgs)
binding_args_decoder = msgspec.json.Decoder(ExtenderBindingArgs)
encoder = msgspec.json.Encoder()
