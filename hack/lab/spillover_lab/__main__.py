"""`python -m spillover_lab build|up|install|down|status|env` (wrapped by hack/lab/<command>)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import build, lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/lab", description="The Spillover multi-cluster lab.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser(
        "build", help="build (or find cached) kube-apiserver, kube-scheduler, kube-controller-manager, kubectl, kwok"
    )
    p_up = sub.add_parser("up", help="start the clusters of a profile (reuses a lab that is already up)")
    p_up.add_argument("--profile", type=Path, default=lab.DEFAULT_PROFILE)
    p_install = sub.add_parser(
        "install", help="install Spillover in the running lab from manifests/<mode> (switching modes if need be)"
    )
    p_install.add_argument("--mode", choices=("own-scheduler", "extender"), default="own-scheduler")
    sub.add_parser("down", help="stop exactly the processes `up` started")
    sub.add_parser("status", help="list the lab's processes and whether they run")
    sub.add_parser("env", help="print shell exports: PATH with kubectl and one KUBECONFIG_<NAME> per cluster")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            build.ensure_built()
        elif args.cmd == "up":
            state = lab.up(args.profile)
            _print_usage(state)
        elif args.cmd == "install":
            from . import spillover

            state = lab.State(lab.lab_root())
            if not state.data["clusters"]:
                print("error: no lab is up; run hack/lab/up first", file=sys.stderr)
                return 1
            spillover.ensure_running(state, args.mode)
            print(f"Spillover runs in the {args.mode} mode; metrics and status: {spillover.metrics_url(state)}/")
        elif args.cmd == "down":
            lab.down()
        elif args.cmd == "status":
            rows = lab.status()
            if not rows:
                print("no lab is recorded as running (start one with hack/lab/up)")
                return 1
            print(f"{'CLUSTER':8} {'PROCESS':24} {'PID':>7}  {'STATE':8} LOG")
            for r in rows:
                print(
                    f"{r['cluster']:8} {r['process']:24} {r['pid']:>7}  "
                    f"{'running' if r['running'] else 'STOPPED':8} {r['log']}"
                )
            return 0 if all(r["running"] for r in rows) else 1
        elif args.cmd == "env":
            state = lab.State(lab.lab_root())
            if not state.data["clusters"]:
                print("# no lab is up; run hack/lab/up", file=sys.stderr)
                return 1
            print(f'export PATH="{state.data["bin_dir"]}:$PATH"')
            for name in state.cluster_names():
                print(f"export KUBECONFIG_{name.upper()}={state.kubeconfig(name)}")
            print(env_server(state))
    except (build.BuildError, lab.LabError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def env_server(state: lab.State) -> str:
    """`spillover plan` and `spillover explain` read the running server at $SPILLOVER_SERVER: in the
    lab that is the home cluster's metrics port, picked at random when the lab started."""
    for name in state.cluster_names():
        port = state.ports(name).get("metrics")
        if port:
            return f"export SPILLOVER_SERVER=http://127.0.0.1:{port}"
    return "# no cluster of this lab runs Spillover: SPILLOVER_SERVER not set"


def _print_usage(state: lab.State) -> None:
    print()
    for name in state.cluster_names():
        print(f"  {name:6} kubectl --kubeconfig {state.kubeconfig(name)} get nodes")
    print(f'  kubectl is in {state.data["bin_dir"]} (eval "$(hack/lab/env)" puts it on PATH)')


if __name__ == "__main__":
    sys.exit(main())
