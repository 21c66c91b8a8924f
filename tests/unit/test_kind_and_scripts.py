"""What can be checked here of what CI cannot run: hack/kind's cluster configurations decode with
kind's own config types (a Go test against sigs.k8s.io/kind, from the module proxy), and every
shell script of the repository passes shellcheck (hack/kind/up needs Docker, which CI lacks)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shell_scripts() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(REPO):
        # hidden folders (.git, .lab, caches) hold no scripts of ours, but .ci does
        dirs[:] = [d for d in dirs if (not d.startswith(".") or d == ".ci") and d != "__pycache__"]
        for name in files:
            path = Path(folder) / name
            try:
                head = path.read_bytes()[:200]
            except OSError:
                continue
            if head.startswith(b"#!/usr/bin/env bash") or b"# shellcheck shell=bash" in head:
                found.append(path)
    return sorted(found)


def test_the_kind_configurations_decode_strictly_with_kinds_own_types() -> None:
    go = shutil.which("go")
    assert go, "Go is needed (as for the lab): https://go.dev/doc/install"
    out = subprocess.run(
        [go, "test", "-count=1", "./..."],
        cwd=REPO / "hack" / "kind" / "configtest",
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, GOFLAGS="-mod=mod"),
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout


def test_every_shell_script_passes_shellcheck() -> None:
    scripts = shell_scripts()
    assert {"hack/kind/up", "hack/kind/down", "hack/install/self-signed-certs", "hack/image/build"} <= {
        str(p.relative_to(REPO)) for p in scripts
    }
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is needed: `hack/need shellcheck shellcheck` (make test runs it)"
    out = subprocess.run(
        [shellcheck, "-x", *(str(p.relative_to(REPO)) for p in scripts)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
