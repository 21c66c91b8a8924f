"""How PodSecurity walks a pod and words what it finds: helpers.go and visitor.go of
k8s.io/pod-security-admission/policy, shared by the baseline and the restricted checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from extender.pod_security.model import Container, ProfileType, SecurityContext, SecurityPod, Spec


def join_quote(items: Sequence[str]) -> str:
    """helpers.go joinQuote."""
    return '"' + '", "'.join(items) + '"' if items else ""


def plural(singular: str, plural: str, count: int) -> str:
    """helpers.go pluralize."""
    return singular if count == 1 else plural


def containers(spec: Spec) -> Iterator[Container]:
    """visitor.go visitContainers: init containers, containers, then ephemeral containers."""
    yield from spec.init_containers or ()
    yield from spec.containers
    yield from spec.ephemeral_containers or ()


def user_namespace(spec: Spec) -> bool:
    """helpers.go relaxPolicyForUserNamespacePod: hostUsers is false."""
    return spec.host_users is False


def windows(spec: Spec) -> bool:
    return spec.os is not None and spec.os.name == "windows"


def containers_text(names: Sequence[str]) -> str:
    return f"{plural('container', 'containers', len(names))} {join_quote(names)}"


def who_set(pod: bool, containers: Sequence[str]) -> list[str]:
    """Who set a forbidden value, as PodSecurity lists them: "pod", then the containers."""
    return (["pod"] if pod else []) + ([containers_text(containers)] if containers else [])


def profile_setters(
    pod_profile: ProfileType | None,
    visited: Sequence[Container],
    profile_of: Callable[[SecurityContext], ProfileType | None],
    allowed: Sequence[str],
) -> tuple[list[str], set[str]]:
    """Who sets a profile type outside ``allowed`` (an appArmorProfile or a seccompProfile, at pod
    or container level), and those types: the loop appArmorProfile_1_0 and
    seccompProfileBaseline_1_19 share."""
    bad: set[str] = set()
    pod_bad = pod_profile is not None and pod_profile.type not in allowed
    if pod_profile is not None and pod_bad:
        bad.add(pod_profile.type)
    names = []
    for c in visited:
        profile = profile_of(c.security_context) if c.security_context else None
        if profile is not None and profile.type not in allowed:
            names.append(c.name)
            bad.add(profile.type)
    return who_set(pod_bad, names), bad


Violation = tuple[str, str]
"""(ForbiddenReason, ForbiddenDetail) of one failed check."""
Check = Callable[[SecurityPod, Sequence[Container]], Violation | None]
"""A check reads the pod and its containers, listed once per judgement in visitContainers order."""
