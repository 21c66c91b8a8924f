"""Thousands of generated bodies at every endpoint: no 5xx, ever, and every 4xx says why."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.scheduling.memory import InMemoryState, node_capacity, peer
from extender.server.metrics import Metrics
from extender.server.webhook_app import make_webhook_app
from extender.webhook.mutate import WebhookConfig
from extender.wire.core import Taint
from tests.unit.served import served_extender

FIXTURES = Path(__file__).parent.parent / "fixtures"
VALID = {
    "/filter": "extender/filter_args.json",
    "/prioritize": "extender/prioritize_args.json",
    "/preempt": "extender/preempt_args.json",
    "/bind": "extender/bind_args.json",
    "/mutate": "admission/pod_create.json",
}
EXAMPLES = 400

Client = TestClient[web.Request, web.Application]

WORDS = [
    "500m",
    "1Gi",
    "1e99999",
    "-1",
    "0",
    "Pod",
    "CREATE",
    "UPDATE",
    "spillover-east",
    "spillover-west",
    "spillover-gone",
    "home-1",
    "nowhere",
    "In",
    "NotIn",
    "Exists",
    "Gt",
    "NoSchedule",
    "NoExecute",
    "spillover.io/policy",
    "spillover.io/clusters",
    "spillover.io/prefer",
    "spillover.io/max-cost",
    "spillover.io/spillable",
    "remote-first",
    "remote-only",
    "local-only",
    "west=3,east=1",
    "cpu",
    "memory",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(WORDS),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    """A different value of the same JSON type: gets past decoding and into the logic."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=-(2**63), max_value=2**63)
    if isinstance(value, str):
        return st.one_of(st.text(max_size=20), st.sampled_from(WORDS))
    if isinstance(value, dict):
        return st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(WORDS)), st.sampled_from(WORDS), max_size=4
        )
    if isinstance(value, list):
        return st.lists(st.sampled_from(WORDS), max_size=3)
    return json_values


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """The valid body with one value somewhere (usually deep inside) replaced by something else, or removed."""
    body = copy.deepcopy(original)
    parent: Any = None
    key: Any = None
    node = body
    depth = draw(st.integers(min_value=1, max_value=8))
    while isinstance(node, dict | list) and node and depth > 0:
        parent, key = node, draw(st.sampled_from(list(node.keys()) if isinstance(node, dict) else range(len(node))))
        node = node[key]
        depth -= 1
    if parent is None:
        return draw(json_values)
    action = draw(st.sampled_from(["replace", "remove", "wrong-type", "same-type", "same-type"]))
    if action == "remove" and isinstance(parent, dict):
        del parent[key]
    elif action == "same-type":
        parent[key] = draw(_same_type(node))
    elif action == "wrong-type":
        parent[key] = draw(scalars if isinstance(node, dict | list) else st.lists(scalars, max_size=2))
    else:
        parent[key] = draw(json_values)
    return body


POD_AT: dict[str, tuple[str, ...]] = {
    "/filter": ("Pod",),
    "/prioritize": ("Pod",),
    "/preempt": ("Pod",),
    "/bind": (),
    "/mutate": ("request", "object"),
}


def inside(valid: Any, at: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Mutations confined to the pod, so the body still decodes and the logic sees odd pods."""
    sub = valid
    for key in at:
        sub = sub[key]

    def put(changed: Any) -> Any:
        body = copy.deepcopy(valid)
        target = body
        for key in at[:-1]:
            target = target[key]
        if at:
            target[at[-1]] = changed
        return body

    return mutated(sub).flatmap(lambda m: st.one_of(st.just(m), mutated(m))).map(put) if at else mutated(valid)


def bodies(path: str) -> st.SearchStrategy[bytes]:
    """Mostly near-valid bodies (where the interesting bugs hide), some garbage and truncations."""
    valid = json.loads((FIXTURES / VALID[path]).read_bytes())
    once = mutated(valid)
    near_valid = st.one_of(once, once, once.flatmap(mutated), inside(valid, POD_AT[path]), st.just(valid))
    encoded = st.one_of(near_valid, near_valid, near_valid, json_values).map(lambda v: json.dumps(v).encode())
    whole = json.dumps(valid).encode()
    truncated = st.integers(0, len(whole) - 1).map(lambda n: whole[:n])
    return st.one_of(encoded, encoded, encoded, st.binary(max_size=64), truncated)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def clients(loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, Client | aiohttp.ClientSession]]:
    nodes = [
        node_capacity("east-0"),
        node_capacity("east-1", taints=[Taint(key="gpu", effect="NoSchedule")], labels={"zone": "a"}),
        node_capacity("east-2", taints=[Taint(key="node.kubernetes.io/not-ready", effect="NoSchedule")]),
    ]
    fake = InMemoryState(
        [peer("east", nodes=nodes), peer("west", cost=2.0, allowed_namespaces={"matchLabels": {"team": "web"}})],
        home_nodes=["home-1", "home-2"],
        namespaces={"shop": {"team": "web", "spillover.io/enabled": "true"}},
    )
    metrics = Metrics()
    served = served_extender(fake, metrics)
    extender = loop.run_until_complete(served.__aenter__())
    webhook = TestClient(TestServer(make_webhook_app(WebhookConfig(scheduler_name="spill"), metrics)), loop=loop)
    loop.run_until_complete(webhook.start_server())
    yield {path: (webhook if path == "/mutate" else extender) for path in VALID}
    loop.run_until_complete(served.__aexit__(None, None, None))
    loop.run_until_complete(webhook.close())


async def _post(client: Client | aiohttp.ClientSession, path: str, payload: bytes) -> tuple[int, bytes]:
    response = await client.post(path, data=payload, headers={"Content-Type": "application/json"})
    return response.status, await response.read()


def _check(status: int, answer: bytes) -> None:
    assert status < 500, answer
    decoded = json.loads(answer)
    if status >= 400:
        assert status == 400
        assert isinstance(decoded["error"], str) and decoded["error"]


@pytest.mark.parametrize("path", list(VALID))
def test_generated_bodies_never_get_a_5xx_and_every_4xx_carries_a_message(
    path: str, clients: dict[str, Client | aiohttp.ClientSession], loop: asyncio.AbstractEventLoop
) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=bodies(path))
    def run(payload: bytes) -> None:
        _check(*loop.run_until_complete(_post(clients[path], path, payload)))

    run()


@pytest.mark.parametrize("path", list(VALID))
def test_the_valid_fixture_body_is_answered_200(
    path: str, clients: dict[str, Client | aiohttp.ClientSession], loop: asyncio.AbstractEventLoop
) -> None:
    status, answer = loop.run_until_complete(_post(clients[path], path, (FIXTURES / VALID[path]).read_bytes()))
    assert status == 200, answer
    json.loads(answer)
