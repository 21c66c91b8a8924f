"""A tiny synchronous HTTPS client for the lab tool itself (readiness, nodes), stdlib only."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {body[:500]}")


class Api:
    def __init__(self, server: str, pki: Path, identity: str = "admin") -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / f"{identity}.crt"), str(pki / f"{identity}.key"))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, err.read().decode(errors="replace")) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw.decode(errors="replace")

    def ready(self) -> bool:
        try:
            answer: object = self.request("GET", "/readyz", timeout=2.0)
            return answer == "ok"
        except (OSError, ApiError):
            return False

    def wait_ready(self, deadline: float, what: str, alive: Any = None) -> None:
        """Poll /readyz until ``deadline`` (monotonic); ``alive()`` False aborts early."""
        while time.monotonic() < deadline:
            if self.ready():
                return
            if alive is not None and not alive():
                raise RuntimeError(f"{what} exited before becoming ready")
            time.sleep(0.25)
        raise TimeoutError(f"{what} was not ready at {self.server}/readyz in time")
