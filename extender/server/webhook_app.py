"""HTTP face of the mutating admission webhook: POST /mutate with an AdmissionReview v1.

A review we cannot read is answered 400 with the reason; the apiserver then applies the
webhook's failurePolicy. Denials of bad hints are 200 responses with ``allowed: false``: that is
how the apiserver learns the message it shows to the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from extender.server.logs import log_request
from extender.server.metrics import Metrics
from extender.webhook.mutate import BadReview, WebhookConfig, mutate
from extender.wire.admission import API_VERSION, AdmissionRequest, AdmissionResponse, review_decoder, review_response

log = logging.getLogger("spillover.webhook")

MAX_BODY = 16 * 2**20
"""The apiserver caps objects at about 1.5 MiB; a review holds at most two of them."""


def _result(response: AdmissionResponse) -> str:
    if not response.allowed:
        return "denied"
    return "patched" if response.patch is not None else "allowed"


def _pod_identity(request: AdmissionRequest) -> tuple[str, str]:
    """Namespace and name for logs; at CREATE the name may still be a generateName prefix."""
    return request.namespace, request.name


class _Handler:
    def __init__(self, config: WebhookConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics

    def _refuse(self, started: float, message: str) -> web.Response:
        seconds = time.perf_counter() - started
        self.metrics.observe_webhook("bad_request", seconds)
        log_request("mutate", "", "", "", "bad request: " + message, seconds, level=logging.WARNING)
        return web.json_response({"error": message}, status=400)

    async def mutate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            review = review_decoder.decode(await request.read())
        except msgspec.MsgspecError as exc:
            return self._refuse(started, f"body is not an AdmissionReview: {exc}")
        if review.api_version != API_VERSION:
            return self._refuse(started, f"apiVersion {review.api_version!r} is not served; send {API_VERSION}")
        if review.request is None:
            return self._refuse(started, "AdmissionReview has no request")
        if not review.request.uid:
            return self._refuse(started, "AdmissionReview request has no uid")
        try:
            response = mutate(review.request, self.config)
        except BadReview as exc:
            return self._refuse(started, str(exc))
        body = review_response(response)
        seconds = time.perf_counter() - started
        result = _result(response)
        self.metrics.observe_webhook(result, seconds)
        namespace, name = _pod_identity(review.request)
        decision = result if response.status is None else f"{result}: {response.status.message}"
        log_request("mutate", namespace, name, review.request.uid, decision, seconds)
        return web.Response(body=body, content_type="application/json")


def make_webhook_app(
    config: WebhookConfig, metrics: Metrics, draining: Callable[[], bool] = lambda: False
) -> web.Application:
    """``draining``: while it says True (shutting down), every answer closes its connection, so
    the apiserver's next call opens one to a replica that stays."""

    @web.middleware
    async def close_when_draining(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if draining():
            response.force_close()
        return response

    app = web.Application(client_max_size=MAX_BODY, middlewares=[close_when_draining])
    app.router.add_post("/mutate", _Handler(config, metrics).mutate)
    return app
