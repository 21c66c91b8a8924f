"""Placement hints: the pod annotations that are a workload's whole interface to Spillover.

Parsing is strict so that a typo is refused at admission with a message that names the
annotation, the bad value and the accepted forms, instead of silently placing a pod wrongly.
The same rules, with the same messages, are written in CEL for clusters that check hints in the
apiserver (``manifests/policies/validating.yaml``; ``tests/e2e/test_admission_policies.py``
sends both the same pods): every form here is one that CEL can state exactly.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

PREFIX = "spillover.io/"
POLICY = PREFIX + "policy"
CLUSTERS = PREFIX + "clusters"
AVOID_CLUSTERS = PREFIX + "avoid-clusters"
PREFER = PREFIX + "prefer"
MAX_COST = PREFIX + "max-cost"
GANG = PREFIX + "gang"
GANG_SIZE = PREFIX + "gang-size"
FAILOVER = PREFIX + "failover"
REPATRIATE = PREFIX + "repatriate"
REPATRIATE_AFTER = PREFIX + "repatriate-after"
REPATRIATE_MAX_IN_FLIGHT = PREFIX + "repatriate-max-in-flight"
# Written by Spillover, never by users:
CLUSTER = PREFIX + "cluster"
REASON = PREFIX + "reason"

HINTS = (
    POLICY,
    CLUSTERS,
    AVOID_CLUSTERS,
    PREFER,
    MAX_COST,
    GANG,
    GANG_SIZE,
    FAILOVER,
    REPATRIATE,
    REPATRIATE_AFTER,
    REPATRIATE_MAX_IN_FLIGHT,
)
WRITTEN_BY_SPILLOVER = (CLUSTER, REASON, PREFIX + "delegate", PREFIX + "copies")
"""Annotations Spillover itself puts on pods (a copied pod may carry them)."""
KNOWN = frozenset(HINTS + WRITTEN_BY_SPILLOVER)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_COST = re.compile(r"^[ \t]*([0-9]{1,15}([.][0-9]{0,15})?|[.][0-9]{1,15})[ \t]*$")
"""A non-negative decimal (no sign, exponent, inf or nan: finite by its form, and CEL's own)."""
NAME_FORM = "lower-case DNS labels (a-z, 0-9, '-'), at most 63 characters"


class Policy(enum.StrEnum):
    LOCAL_FIRST = "local-first"
    LOCAL_ONLY = "local-only"
    REMOTE_FIRST = "remote-first"
    REMOTE_ONLY = "remote-only"


class Failover(enum.StrEnum):
    ALWAYS = "always"
    NEVER = "never"


class HintError(ValueError):
    """A hint that does not parse; the message is shown to the user as is."""

    def __init__(self, annotation: str, value: str, expected: str) -> None:
        self.annotation = annotation
        self.value = value
        self.expected = expected
        super().__init__(f"annotation {annotation}='{value}' is invalid: expected {expected}")


@dataclass(frozen=True, slots=True)
class Hints:
    policy: Policy = Policy.LOCAL_FIRST
    clusters: frozenset[str] | None = None
    """Allow list of peer names; None means every peer."""
    avoid_clusters: frozenset[str] = frozenset()
    prefer: Mapping[str, int] = field(default_factory=dict)
    """Peer name -> weight (higher is preferred)."""
    max_cost: float | None = None
    gang: str | None = None
    gang_size: int | None = None
    failover: Failover = Failover.ALWAYS
    repatriate: bool | None = None
    """Whether the pod may be brought home from a peer; None: the default (on for pods a
    controller owns, off for bare pods: see extender.repatriation.policy)."""
    repatriate_after: float | None = None
    """Seconds home must have had room for the pod (and its age) before it comes home; None:
    the PeerCluster's ``repatriateAfterSeconds``, else the server's default."""
    repatriate_max_in_flight: int | None = None
    """Pods of the workload coming home at once; None: one."""

    def allows(self, peer: str) -> bool:
        """Whether the allow/deny lists let this peer run the pod (cost is checked elsewhere)."""
        if self.policy is Policy.LOCAL_ONLY:
            return False
        if peer in self.avoid_clusters:
            return False
        return self.clusters is None or peer in self.clusters

    def allows_cost(self, cost: float) -> bool:
        return self.max_cost is None or cost <= self.max_cost


DEFAULT = Hints()


def _names(annotation: str, value: str) -> frozenset[str]:
    names = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not _NAME.match(name) for name in names):
        raise HintError(annotation, value, f"a comma-separated list of peer names ({NAME_FORM})")
    return frozenset(names)


def _prefer(value: str) -> dict[str, int]:
    """Every pair's form first, then repeats (the first name, in order, given twice)."""
    expected = (
        "comma-separated name=weight pairs such as 'west=3,east=1' "
        f"(names are {NAME_FORM}; weights are whole numbers 0-100)"
    )
    if not value.strip():
        raise HintError(PREFER, value, expected)
    pairs = []
    for part in value.split(","):
        name, sep, weight = part.strip().partition("=")
        name, weight = name.strip(), weight.strip()
        if not sep or not _NAME.match(name) or not (weight.isascii() and weight.isdigit()) or int(weight) > 100:
            raise HintError(PREFER, value, expected)
        pairs.append((name, int(weight)))
    names = [name for name, _ in pairs]
    if repeated := next((name for name in names if names.count(name) > 1), None):
        raise HintError(PREFER, value, expected + f"; '{repeated}' appears twice")
    return dict(pairs)


def _max_cost(value: str) -> float:
    if not _COST.match(value):
        raise HintError(
            MAX_COST, value, "a non-negative decimal number such as '0.5' (the highest PeerCluster cost allowed)"
        )
    return float(value)


_DURATION = re.compile(r"^([0-9]{1,7})(s|m|h)?$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
MAX_REPATRIATE_AFTER = 7 * 24 * 3600


def _duration(annotation: str, value: str) -> float:
    expected = "a duration such as '300', '90s', '5m' or '1h' (whole seconds, minutes or hours; at most 7 days)"
    match = _DURATION.match(value.strip())
    if not match:
        raise HintError(annotation, value, expected)
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2) or ""]
    if seconds > MAX_REPATRIATE_AFTER:
        raise HintError(annotation, value, expected)
    return float(seconds)


def _repatriation(annotations: Mapping[str, str]) -> tuple[bool | None, float | None, int | None]:
    on: bool | None = None
    if (raw := annotations.get(REPATRIATE)) is not None:
        if raw.strip() not in ("true", "false"):
            raise HintError(REPATRIATE, raw, "true or false")
        on = raw.strip() == "true"
    after = _duration(REPATRIATE_AFTER, annotations[REPATRIATE_AFTER]) if REPATRIATE_AFTER in annotations else None
    limit: int | None = None
    if (raw := annotations.get(REPATRIATE_MAX_IN_FLIGHT)) is not None:
        text = raw.strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1000:
            expected = "a whole number 1-1000 (pods of the workload moving at once)"
            raise HintError(REPATRIATE_MAX_IN_FLIGHT, raw, expected)
        limit = int(text)
    return on, after, limit


def parse_hints(annotations: Mapping[str, str] | None) -> Hints:
    """Read every spillover.io/ hint; raise HintError naming the first bad one."""
    if not annotations:
        return DEFAULT
    if not any(key.startswith(PREFIX) for key in annotations):
        return DEFAULT
    policy = Policy.LOCAL_FIRST
    if (raw := annotations.get(POLICY)) is not None:
        try:
            policy = Policy(raw.strip())
        except ValueError:
            raise HintError(POLICY, raw, "one of " + ", ".join(p.value for p in Policy)) from None
    clusters = _names(CLUSTERS, annotations[CLUSTERS]) if CLUSTERS in annotations else None
    avoid = _names(AVOID_CLUSTERS, annotations[AVOID_CLUSTERS]) if AVOID_CLUSTERS in annotations else frozenset()
    if clusters is not None and clusters <= avoid:
        raise HintError(
            AVOID_CLUSTERS,
            annotations[AVOID_CLUSTERS],
            f"a list that leaves at least one of the allowed clusters ({', '.join(sorted(clusters))})",
        )
    prefer = _prefer(annotations[PREFER]) if PREFER in annotations else {}
    max_cost = _max_cost(annotations[MAX_COST]) if MAX_COST in annotations else None
    gang = None
    gang_size = None
    if (raw := annotations.get(GANG)) is not None:
        if not _NAME.match(raw.strip()):
            raise HintError(GANG, raw, f"a gang name ({NAME_FORM})")
        gang = raw.strip()
        size_raw = annotations.get(GANG_SIZE)
        size_ok = size_raw is not None and size_raw.strip().isascii() and size_raw.strip().isdigit()
        if size_raw is None or not size_ok or not 1 <= int(size_raw) <= 10000:
            raise HintError(GANG_SIZE, size_raw or "", "a whole number 1-10000, required with spillover.io/gang")
        gang_size = int(size_raw)
    elif GANG_SIZE in annotations:
        raise HintError(GANG_SIZE, annotations[GANG_SIZE], "to be set only together with spillover.io/gang")
    failover = Failover.ALWAYS
    if (raw := annotations.get(FAILOVER)) is not None:
        try:
            failover = Failover(raw.strip())
        except ValueError:
            raise HintError(FAILOVER, raw, "one of always, never") from None
    repatriate, repatriate_after, repatriate_max_in_flight = _repatriation(annotations)
    return Hints(
        policy=policy,
        clusters=clusters,
        avoid_clusters=avoid,
        prefer=prefer,
        max_cost=max_cost,
        gang=gang,
        gang_size=gang_size,
        failover=failover,
        repatriate=repatriate,
        repatriate_after=repatriate_after,
        repatriate_max_in_flight=repatriate_max_in_flight,
    )


def unknown_keys(annotations: Mapping[str, str] | None) -> list[str]:
    """A warning for each spillover.io/ annotation that is no hint: a misspelled key would
    otherwise be ignored in silence (the pod placed as if it had no hint)."""
    warnings = []
    for key in annotations or ():
        if key.startswith(PREFIX) and key not in KNOWN:
            close = difflib.get_close_matches(key, HINTS, n=1, cutoff=0.75)
            guess = f"did you mean {close[0]}? " if close else ""
            warnings.append(
                f"annotation {key} is not a Spillover hint and is ignored; {guess}"
                f"hints are {', '.join(h.removeprefix(PREFIX) for h in HINTS)} (prefix {PREFIX})"
            )
    return warnings
