"""Headless Chromium (Debian's `chromium` package) driven over the DevTools protocol.

Enough to look at a page as a person would: open it at a laptop's screen size, measure what is
laid out (getBoundingClientRect), and take a screenshot. No browser download, no driver: the
protocol is JSON over a WebSocket, spoken here with aiohttp. `make test` installs the package
(hack/ci/install-browser).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

STARTUP_SECONDS = 30.0


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no headless Chromium on PATH: run hack/ci/install-browser (apt-get install chromium)")


class Chromium:
    def __init__(self, width: int = 1366, height: int = 768) -> None:
        self.width = width
        self.height = height
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self._profile = Path(tempfile.mkdtemp(prefix="spillover-chromium-"))
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Chromium:
        self._proc = await asyncio.create_subprocess_exec(
            chromium_path(),
            "--headless",
            "--no-sandbox",  # root in CI and containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        port = await self._devtools_port()
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        await self.send("Page.enable")
        return self

    async def _devtools_port(self) -> int:
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self._proc is not None and self._proc.returncode is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode} before it listened")
            await asyncio.sleep(0.1)
        raise TimeoutError(f"chromium did not open its DevTools port within {STARTUP_SECONDS:g}s")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._ws is not None
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params or {}})
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), 30)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._events.append(message)

    async def open(self, url: str) -> None:
        self._events.clear()
        await self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading in 30s")
            await self.send("Runtime.evaluate", {"expression": "1"})  # pumps events
            await asyncio.sleep(0.05)

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise RuntimeError(f"page script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def screenshot(self) -> bytes:
        """The whole page as PNG, at the emulated width."""
        metrics = await self.send("Page.getLayoutMetrics")
        height = int(metrics["cssContentSize"]["height"])
        shot = await self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1},
            },
        )
        return base64.b64decode(shot["data"])

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)
