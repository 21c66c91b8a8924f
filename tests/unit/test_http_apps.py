from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from extender.scheduling.memory import InMemoryState, peer
from extender.scheduling.state import BindError
from extender.server.logs import JsonFormatter
from extender.server.metrics import Metrics
from extender.server.webhook_app import make_webhook_app
from extender.webhook.mutate import WebhookConfig
from tests.unit.served import served_extender

FIXTURES = Path(__file__).parent.parent / "fixtures"


def body(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, labels)
    return value


@pytest.fixture
def fake() -> InMemoryState:
    return InMemoryState([peer("east", cost=1.0), peer("west", cost=2.0)], home_nodes=["home-1", "home-2"])


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


async def serve(app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def extender(fake: InMemoryState, metrics: Metrics) -> AsyncIterator[aiohttp.ClientSession]:
    async with served_extender(fake, metrics) as client:
        yield client


@pytest.fixture
async def webhook(metrics: Metrics) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await serve(make_webhook_app(WebhookConfig(), metrics))
    yield client
    await client.close()


Client = TestClient[web.Request, web.Application]
Extender = aiohttp.ClientSession


async def test_filter_with_a_scheduler_body_answers_a_filter_result(extender: Extender, metrics: Metrics) -> None:
    response = await extender.post("/filter", json=body("extender/filter_args.json"))
    assert response.status == 200
    assert response.content_type == "application/json"
    result = await response.json()
    assert result["NodeNames"] == ["home-1", "home-2"]
    assert set(result["FailedAndUnresolvableNodes"]) == {"spillover-east", "spillover-west"}
    assert metrics.registry.get_sample_value("spillover_filter_decisions_total", {"outcome": "home"}) == 1
    assert (
        metrics.registry.get_sample_value("spillover_extender_requests_total", {"verb": "filter", "code": "200"}) == 1
    )


async def test_filter_with_only_a_virtual_node_passes_it_when_the_peer_fits(extender: Extender) -> None:
    response = await extender.post("/filter", json=body("extender/filter_args_virtual_only.json"))
    assert (await response.json())["NodeNames"] == ["spillover-east"]


async def test_prioritize_answers_a_host_priority_list(extender: Extender) -> None:
    response = await extender.post("/prioritize", json=body("extender/prioritize_args.json"))
    assert response.status == 200
    scores = {hp["Host"]: hp["Score"] for hp in await response.json()}
    assert set(scores) == {"spillover-east", "spillover-west"}
    assert all(0 <= s <= 10 for s in scores.values())


async def test_preempt_drops_virtual_nodes(extender: Extender) -> None:
    response = await extender.post("/preempt", json=body("extender/preempt_args.json"))
    assert response.status == 200
    assert await response.json() == {
        "NodeNameToMetaVictims": {"home-1": {"Pods": [{"UID": "a1b2c3d4-0000-4000-8000-000000000001"}]}}
    }


async def test_bind_calls_the_state_and_answers_an_empty_error(extender: Extender, fake: InMemoryState) -> None:
    response = await extender.post("/bind", json=body("extender/bind_args.json"))
    assert response.status == 200
    assert await response.json() == {}
    assert fake.bound == [("shop", "web-7d4b9c6f5d-x8k2p", "6b1f0c2e-3d4a-4e8b-9a71-2f5c8d9e0a13", "spillover-east")]


async def test_a_bind_error_is_a_200_with_error_set_so_the_scheduler_retries(
    extender: Extender, fake: InMemoryState
) -> None:
    fake.bind_error = BindError("peer east refused the delegate: quota exceeded")
    response = await extender.post("/bind", json=body("extender/bind_args.json"))
    assert response.status == 200
    assert await response.json() == {"Error": "peer east refused the delegate: quota exceeded"}


async def test_an_unexpected_bind_failure_is_still_a_200_with_error(extender: Extender, fake: InMemoryState) -> None:
    fake.bind_error = RuntimeError("boom")
    response = await extender.post("/bind", json=body("extender/bind_args.json"))
    assert response.status == 200
    assert "boom" in (await response.json())["Error"]


async def test_a_bind_to_a_home_node_the_cache_has_not_seen_yet_binds_once_the_apiserver_has_it(
    extender: Extender, fake: InMemoryState
) -> None:
    fake.late_nodes.add("home-3")  # joined a moment ago: the scheduler's watch saw it first
    payload = {"PodName": "p", "PodNamespace": "n", "PodUID": "u", "Node": "home-3"}

    response = await extender.post("/bind", json=payload)

    assert response.status == 200 and not (await response.json()).get("Error")
    assert fake.bound == [("n", "p", "u", "home-3")]


@pytest.mark.parametrize(
    ("path", "payload", "message"),
    [
        ("/filter", b"{not json", "body is not valid extender arguments: JSON is malformed"),
        ("/filter", b'{"Pod": {}, "NodeNames": 5}', "Expected `array`, got `int` - at `$.NodeNames`"),
        ("/filter", b'{"NodeNames": []}', "missing required field `Pod`"),
        ("/filter", b'{"Pod": {}, "Nodes": {"items": []}}', "nodeCacheCapable: true"),
        ("/prioritize", b'{"Pod": null, "NodeNames": []}', "Expected `object`, got `null` - at `$.Pod`"),
        ("/preempt", b'{"Pod": {}, "NodeNameToMetaVictims": {"n": {"Pods": 1}}}', "$.NodeNameToMetaVictims"),
        ("/preempt", b'{"Pod": {}, "NodeNameToMetaVictims": {"mystery": null}}', "unknown node names"),
        ("/bind", b'{"PodName": "p", "PodNamespace": "n", "PodUID": "u"}', "missing required field `Node`"),
        ("/bind", b'{"PodName": "p", "PodNamespace": "n", "PodUID": "u", "Node": "nowhere"}', "unknown node"),
        ("/bind", b'{"PodName": "", "PodNamespace": "n", "PodUID": "u", "Node": "home-1"}', "PodName is empty"),
    ],
)
async def test_bad_bodies_are_400_with_a_message_naming_the_problem(
    extender: Extender, path: str, payload: bytes, message: str
) -> None:
    response = await extender.post(path, data=payload)
    assert response.status == 400
    assert message in (await response.json())["error"]


async def test_wrong_method_is_405(extender: Extender) -> None:
    assert (await extender.get("/filter")).status == 405


async def test_bad_requests_are_counted_by_code(extender: Extender, metrics: Metrics) -> None:
    await extender.post("/bind", data=b"[]")
    assert metrics.registry.get_sample_value("spillover_extender_requests_total", {"verb": "bind", "code": "400"}) == 1


async def test_webhook_patches_a_pod_create(webhook: Client, metrics: Metrics) -> None:
    review = body("admission/pod_create.json")
    response = await webhook.post("/mutate", json=review)
    assert response.status == 200
    answer = await response.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == review["request"]["uid"]
    assert answer["response"]["allowed"] is True
    ops = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert {op["path"] for op in ops} == {
        "/spec/tolerations/-",
        "/spec/containers/0/resources/requests/spillover.io~1spillable",
        "/spec/containers/0/resources/limits",
    }
    assert metrics.registry.get_sample_value("spillover_webhook_requests_total", {"result": "patched"}) == 1


async def test_webhook_denies_a_bad_hint_with_the_message(webhook: Client) -> None:
    review = body("admission/pod_create.json")
    review["request"]["object"]["metadata"]["annotations"] = {"spillover.io/policy": "sometimes"}
    answer = await (await webhook.post("/mutate", json=review)).json()
    assert answer["response"]["allowed"] is False
    assert "spillover.io/policy='sometimes' is invalid" in answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"nope", "body is not an AdmissionReview"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "u"}}', "is not served"),
        (b'{"apiVersion": "admission.k8s.io/v1"}', "has no request"),
        (b'{"apiVersion": "admission.k8s.io/v1", "request": {"uid": ""}}', "has no uid"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "request": {"uid": "u", "operation": "CREATE",'
            b' "kind": {"kind": "Pod"}, "object": {"metadata": []}}}',
            "not a readable Pod",
        ),
    ],
)
async def test_webhook_bad_reviews_are_400_with_a_message(
    webhook: Client, metrics: Metrics, payload: bytes, message: str
) -> None:
    response = await webhook.post("/mutate", data=payload)
    assert response.status == 400
    assert message in (await response.json())["error"]
    assert metrics.registry.get_sample_value("spillover_webhook_requests_total", {"result": "bad_request"}) == 1


async def test_metrics_handler_serves_the_prometheus_text_format(extender: Extender, metrics: Metrics) -> None:
    await extender.post("/filter", json=body("extender/filter_args.json"))
    app = web.Application()
    app.router.add_get("/metrics", metrics.handler)
    client = await serve(app)
    try:
        response = await client.get("/metrics")
        text = await response.text()
    finally:
        await client.close()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    assert 'spillover_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert "spillover_extender_request_duration_seconds_bucket" in text


async def test_each_call_logs_one_json_line_with_pod_verb_decision_and_duration(
    extender: Extender, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="spillover.requests"):
        await extender.post("/filter", json=body("extender/filter_args.json"))
    records = [r for r in caplog.records if r.name == "spillover.requests"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["verb"] == "filter"
    assert line["pod_namespace"] == "shop" and line["pod_name"] == "web-7d4b9c6f5d-x8k2p"
    assert line["pod_uid"] == "6b1f0c2e-3d4a-4e8b-9a71-2f5c8d9e0a13"
    assert line["decision"] == "home: 2 passed, 0 failed, 2 unresolvable"
    assert line["duration_ms"] >= 0 and line["level"] == "debug"


async def test_home_placements_are_not_logged_at_info_to_keep_the_hot_path_cheap(
    extender: Extender, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="spillover.requests"):
        await extender.post("/filter", json=body("extender/filter_args.json"))
    assert not [r for r in caplog.records if r.name == "spillover.requests"]


def test_json_formatter_keeps_extra_fields_and_exceptions() -> None:
    logger = logging.getLogger("test.json")
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logger.makeRecord(
            "test.json", logging.ERROR, "f", 1, "x=%s", (1,), sys.exc_info(), extra={"peer": "east"}
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "x=1" and line["peer"] == "east" and "ValueError: bad" in line["exception"]


def test_metrics_objects_have_their_own_registries() -> None:
    first, second = Metrics(), Metrics()
    first.observe_extender("filter", 200, 0.001)
    assert (
        second.registry.get_sample_value("spillover_extender_requests_total", {"verb": "filter", "code": "200"}) is None
    )
