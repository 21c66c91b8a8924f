"""`make lab`'s last step: run Spillover in the lab and show a Deployment spilling over.

Home has 8 CPUs; the demo Deployment asks for 12 x 1 CPU in namespace `shop`, so 8 run at home
and 4 spill to east (the cheaper peer). Everything is left running to explore.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from spillover_lab import lab as lablib
from spillover_lab import spillover as sp
from spillover_lab.api import ApiError

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 12,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "resources": {"requests": {"cpu": "1", "memory": "128Mi"}}}
                ]
            },
        },
    },
}


def kubectl(state: lablib.State, cluster: str, *args: str) -> None:
    exe = Path(state.data["bin_dir"]) / "kubectl"
    print(f"\n$ kubectl --kubeconfig {state.kubeconfig(cluster)} {' '.join(args)}", flush=True)
    subprocess.run([str(exe), "--kubeconfig", str(state.kubeconfig(cluster)), *args], check=False)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("own-scheduler", "extender"), default=sp.DEFAULT_MODE)
    args = parser.parse_args()
    state = lablib.State(lablib.lab_root())
    if not state.data["clusters"]:
        print("error: no lab is up; run hack/lab/up first (make lab does both)", file=sys.stderr)
        return 1
    sp.ensure_running(state, args.mode)
    api = sp.home_api(state)
    sp.label_namespace(api, "shop")
    deadline = time.monotonic() + 30
    while True:
        try:
            api.request("GET", "/api/v1/namespaces/shop/serviceaccounts/default")
            break
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        api.request("POST", "/apis/apps/v1/namespaces/shop/deployments", DEPLOYMENT)
        print("[demo] created Deployment shop/web: 12 replicas x 1 CPU; home has 8 CPUs", flush=True)
    except ApiError as exc:
        if exc.status != 409:
            raise
        print("[demo] Deployment shop/web already exists", flush=True)
    deadline = time.monotonic() + 120
    running = 0
    while time.monotonic() < deadline:
        pods = api.request("GET", "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")["items"]
        running = sum(1 for p in pods if p.get("status", {}).get("phase") == "Running")
        if running >= 12:
            break
        time.sleep(0.5)
    print(f"[demo] {running}/12 pods Running", flush=True)
    kubectl(state, "home", "get", "nodes")
    kubectl(state, "home", "get", "pods", "-n", "shop", "-o", "wide")
    kubectl(state, "east", "get", "pods", "-A", "-l", "app.kubernetes.io/managed-by=spillover", "-o", "wide")
    kubectl(state, "home", "get", "peerclusters")
    print(f"\n[demo] status page: {sp.metrics_url(state)}/   metrics: {sp.metrics_url(state)}/metrics")
    print('[demo] explore with: eval "$(hack/lab/env)"; kubectl --kubeconfig $KUBECONFIG_HOME get pods -n shop')
    print("[demo] stop everything with: make lab-down")
    return 0 if running >= 12 else 1


if __name__ == "__main__":
    sys.exit(main())
