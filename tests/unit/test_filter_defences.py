"""filter sends to a peer only pods of opted-in namespaces that the peer's Pod Security level admits,
and keeps off a peer a pod whose bind there failed for a reason that lasts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extender import pod_security
from extender.app import scheduler_only
from extender.capacity.reservations import Reservations
from extender.config import Config
from extender.delegation.avoid import AvoidList
from extender.home_capacity import HomeCapacity
from extender.live_state import HomeNamespaces, LiveState, PlannerVeto
from extender.peers.directory import PeerDirectory
from extender.pod_security import Level
from extender.scheduling.binder import Binder
from extender.scheduling.filter import Outcome, filter_nodes
from extender.scheduling.memory import OPTED_IN, InMemoryHome, InMemoryState, make_pod, peer, pod_dict
from extender.scheduling.refusals import PeerRefusals
from tests.unit.apiserver import FakeApiserver

EAST, WEST, NORTH = "spillover-east", "spillover-west", "spillover-north"


def levels(
    east: Level = Level.BASELINE, west: Level = Level.BASELINE, north: Level = Level.PRIVILEGED
) -> InMemoryState:
    peers = [peer("east"), peer("west", cost=2.0), peer("north", cost=3.0)]
    for p, level in zip(peers, (east, west, north), strict=True):
        p.pod_security = level
    return InMemoryState(peers, home_nodes=["home-1"])


def test_a_pod_of_a_namespace_not_opted_in_never_passes_a_virtual_node_and_is_not_planned() -> None:
    state = InMemoryState([peer("east")], home_nodes=["home-1"], namespaces={"plain": {"team": "web"}})
    pod = make_pod(namespace="plain", annotations={"spillover.io/policy": "remote-only"})
    out = filter_nodes(state, pod, ["home-1", EAST])
    assert out.outcome is Outcome.HOME and out.result.NodeNames == ["home-1"]
    assert out.result.FailedAndUnresolvableNodes == {
        EAST: "namespace plain is not opted in to Spillover (label spillover.io/enabled=true): its pods never run on "
        "peers"
    }
    assert state.candidates == []


def test_a_namespace_the_cache_has_not_seen_yet_is_an_error_the_scheduler_retries() -> None:
    state = InMemoryState([peer("east")], home_nodes=["home-1"], namespaces={})
    out = filter_nodes(state, make_pod(), [EAST])
    assert out.outcome is Outcome.NONE and out.result.NodeNames == []
    assert "namespace shop is not in Spillover's namespace cache yet" in out.result.Error


def test_a_pod_the_peers_pod_security_level_would_refuse_stays_off_that_peer_with_the_reason() -> None:
    body = json.dumps(pod_dict(hostNetwork=True, hostPID=True)).encode()
    out = filter_nodes(levels(), make_pod(), [EAST, WEST, NORTH], body)
    assert out.result.NodeNames == [NORTH]
    assert out.result.FailedAndUnresolvableNodes[EAST] == (
        'peer east enforces Pod Security "baseline" (PeerCluster spec.podSecurity) and would refuse the pod: '
        "host namespaces (hostNetwork=true, hostPID=true)"
    )
    assert "peer west enforces" in out.result.FailedAndUnresolvableNodes[WEST]


def test_the_pod_is_judged_once_per_level_in_a_call_not_per_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    judged: list[Level] = []
    real = pod_security.violations

    def counting(pod: Any, level: Level) -> Any:
        judged.append(level)
        return real(pod, level)

    monkeypatch.setattr(pod_security, "violations", counting)
    body = json.dumps(pod_dict()).encode()
    state = levels(Level.RESTRICTED, Level.RESTRICTED, Level.BASELINE)
    out = filter_nodes(state, make_pod(), [EAST, WEST, NORTH], body)
    assert sorted(judged) == [Level.BASELINE, Level.RESTRICTED]
    assert out.result.NodeNames == [NORTH]  # a plain pod is not restricted-compliant


def test_a_lasting_bind_refusal_keeps_that_peer_off_the_pod_in_filter() -> None:
    east = peer("east")
    home = FakeApiserver()
    binder = Binder(home, {east.virtual_node: east}, Reservations(), InMemoryHome())
    namespaces = HomeNamespaces()
    namespaces.labels = {"shop": dict(OPTED_IN)}
    directory = PeerDirectory()
    directory.by_virtual_node[east.virtual_node] = east
    state = LiveState(home, directory, HomeCapacity(), namespaces, binder, AvoidList(300))
    pod = make_pod()
    why = "the pod references Secret db and Secret shop/db in peer east was not copied there by Spillover"
    binder.refused.note(pod.metadata.uid, "east", why)
    out = filter_nodes(state, pod, [EAST])
    assert out.result.FailedAndUnresolvableNodes == {EAST: why}


@pytest.mark.parametrize(
    ("address", "trusted"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.7", False)],
)
def test_bind_believes_what_filter_was_sent_only_when_the_extender_listens_on_loopback(
    address: str, trusted: bool
) -> None:
    assert scheduler_only(Config(bind_address=address)) is trusted


def test_a_pod_security_refusal_filter_found_keeps_the_planner_off_that_peer_until_the_level_changes() -> None:
    east = peer("east")
    east.pod_security = Level.BASELINE
    home = FakeApiserver()
    refusals = PeerRefusals()
    binder = Binder(home, {east.virtual_node: east}, Reservations(), InMemoryHome(), refusals=refusals)
    namespaces = HomeNamespaces()
    namespaces.labels = {"shop": dict(OPTED_IN)}
    directory = PeerDirectory()
    directory.by_virtual_node[east.virtual_node] = east
    state = LiveState(home, directory, HomeCapacity(), namespaces, binder, AvoidList(300))
    veto = PlannerVeto(namespaces, AvoidList(300), refusals)
    pod = make_pod()
    assert veto(pod, east) is None  # nothing known of the pod yet

    filter_nodes(state, pod, [EAST], json.dumps(pod_dict(hostNetwork=True)).encode())

    assert veto(pod, east) == (
        'peer east enforces Pod Security "baseline" (PeerCluster spec.podSecurity) and would refuse the pod: '
        "host namespaces (hostNetwork=true)"
    )
    east.pod_security = Level.PRIVILEGED  # the peer's owner accepts anything now
    assert veto(pod, east) is None


def test_filter_tells_the_state_which_peers_pod_security_refuses_the_pod() -> None:
    state = levels(Level.RESTRICTED, Level.BASELINE, Level.PRIVILEGED)
    body = json.dumps(pod_dict(hostNetwork=True)).encode()
    filter_nodes(state, make_pod(), [EAST, WEST, NORTH], body)
    assert sorted(state.refusals) == [("web-1", "east"), ("web-1", "west")]
