"""Operating spilled pods in the real lab: `kubectl logs -f` through the home apiserver, which calls
Spillover's kubelet API, which streams the delegate's log from the peer (kwok serves it there);
`spillover explain` against the running server; the status page in headless Chromium.

One Deployment of two remote-only pods serves every test here (created once: a spill takes a few
seconds, the rest is reading).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest_asyncio
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.browser import Chromium
from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import create_deployment, delete_deployment, ensure_namespace, unique, wait_bound

SHOP = "shop"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Spilled:
    lab: lablib.State
    app: str
    pods: dict[str, str]
    """pod name -> virtual node"""

    def kubectl(self, *args: str) -> list[str]:
        return [str(Path(self.lab.data["bin_dir"]) / "kubectl"), f"--kubeconfig={self.lab.kubeconfig('home')}", *args]

    def peer_log(self, node: str) -> Path:
        return self.lab.root / node.removeprefix("spillover-") / "container.log"


@pytest_asyncio.fixture(scope="module")
async def spilled(spillover: lablib.State, clusters: dict[str, Cluster]) -> AsyncIterator[Spilled]:
    home = clusters["home"]
    await ensure_namespace(home, SHOP, enabled=True)
    app = unique("ops")
    await create_deployment(home, SHOP, app, 2, "500m", {"spillover.io/policy": "remote-only"})
    bound = await wait_bound(home, SHOP, app, 2, timeout=90)
    assert all(node.startswith("spillover-") for node in bound.values()), bound

    async def running() -> bool:
        pods = (await home.core.list_namespaced_pod(SHOP, label_selector=f"app={app}")).items
        return all(p.status.phase == "Running" for p in pods)

    await eventually(running, 60, f"pods of {app} Running")
    try:
        yield Spilled(spillover, app, bound)
    finally:
        await delete_deployment(home, SHOP, app)


async def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_logs_follows_a_spilled_pods_log_from_its_peer(spilled: Spilled) -> None:
    pod, node = next(iter(spilled.pods.items()))
    proc = await asyncio.create_subprocess_exec(
        *spilled.kubectl("-n", SHOP, "logs", "-f", pod), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first == b"lab container started\n", first
        marker = f"written after kubectl logs -f started {uuid.uuid4().hex[:8]}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        with spilled.peer_log(node).open("a") as log:
            log.write(f"{stamp} stdout F {marker}\n")

        async def seen() -> bool:
            assert proc.stdout is not None
            while True:
                line = await proc.stdout.readline()
                if not line or marker.encode() in line:
                    return bool(line)

        assert await asyncio.wait_for(seen(), 30), "the follow stream ended before the new line came"
    finally:
        proc.terminate()
        await proc.wait()

    code, out, err = await _run(spilled.kubectl("-n", SHOP, "logs", pod, "--tail=1", "--timestamps"))
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith(stamp[:10]) and marker in out, out
    code, out, err = await _run(spilled.kubectl("-n", SHOP, "logs", pod, "--limit-bytes=5"))
    assert (code, out) == (0, "lab c"), err


async def test_kubectl_logs_names_a_container_the_pod_lacks(spilled: Spilled) -> None:
    pod = next(iter(spilled.pods))
    code, _, err = await _run(spilled.kubectl("-n", SHOP, "logs", pod, "-c", "nope"))
    assert code != 0 and "container nope is not valid for pod" in err, err


async def test_explain_tells_where_a_spilled_pod_runs_and_why(spilled: Spilled) -> None:
    pod, node = next(iter(spilled.pods.items()))
    env = {**os.environ, "SPILLOVER_SERVER": sp.metrics_url(spilled.lab)}
    code, out, err = await _run([sys.executable, "-m", "extender", "explain", f"{SHOP}/{pod}", "-o", "json"], env)
    assert code == 0, err
    data = json.loads(out)
    peer = node.removeprefix("spillover-")
    assert data["hints"]["policy"] == "remote-only"
    assert data["spilled"]["peer"] == peer and data["spilled"]["status"] == "Running"
    assert data["spilled"]["peerNode"].startswith(f"{peer}-node-")
    assert data["spend"]["namespacePerHour"] > 0
    assert {row["peer"] for row in data["peers"]} == {"east", "west"}
    code, table, err = await _run([sys.executable, "-m", "extender", "explain", pod, "-n", SHOP], env)
    assert code == 0, err
    assert f"DELEGATE   {data['spilled']['delegate']} in peer {peer}" in table


async def test_the_status_page_shows_true_bars_and_fits_a_laptop_screen(spilled: Spilled) -> None:
    url = sp.metrics_url(spilled.lab) + "/"

    async def spilled_shown() -> bool:
        async with aiohttp.ClientSession() as session, session.get(url + "status.json") as resp:
            data = await resp.json()
        shown: int = sum(p["spilledPods"] for p in data.get("peers", ()))
        return shown >= 2

    await eventually(spilled_shown, 30, "the spilled pods on the status page")
    async with Chromium(width=1366, height=768) as browser:
        await browser.open(url)
        page = await browser.evaluate(
            """(() => {
              const bars = [...document.querySelectorAll('.res')].map(r => ({
                resource: r.dataset.resource, allocatable: +r.dataset.allocatable,
                width: r.querySelector('.bar').clientWidth,
                parts: [...r.querySelectorAll('.bar span')].map(s => ({
                  part: s.dataset.part, value: +s.dataset.value, width: s.getBoundingClientRect().width}))}));
              return {bars, scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                      text: document.body.innerText,
                      chart: !!document.querySelector('svg polyline, svg text')};
            })()"""
        )
        shot = await browser.screenshot()
    (spilled.lab.root / "status-page.png").write_bytes(shot)
    if os.environ.get("SPILLOVER_UPDATE_SCREENSHOT"):
        (REPO / "docs" / "status-page.png").write_bytes(shot)
    assert page["scrollWidth"] <= page["innerWidth"], "the page scrolls sideways on a 1366 px wide screen"
    assert len(page["bars"]) == 6, "a bar per resource (cpu, memory, pods) for each of east and west"
    for bar in page["bars"]:
        assert sum(p["width"] for p in bar["parts"]) <= bar["width"] + 1
        for part in bar["parts"]:
            expected = bar["width"] * part["value"] / bar["allocatable"] if bar["allocatable"] else 0
            assert abs(part["width"] - expected) <= 1.5, (bar["resource"], part, bar)
    used_cpu = [p for b in page["bars"] if b["resource"] == "cpu" for p in b["parts"] if p["part"] == "used"]
    assert any(p["value"] >= 0.5 and p["width"] > 5 for p in used_cpu), "the spilled pods' CPU shows as used"
    shown = ("east", "west", "Spilled pods, last hour", "Spend per hour", SHOP, "Last decisions", "Scale-up advice")
    for words in shown:
        assert words in page["text"], words
    assert page["chart"]
