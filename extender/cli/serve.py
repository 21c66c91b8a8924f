"""`spillover serve`: the extender, the webhook, metrics and the controllers, in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from extender.config import Config, ConfigError, load


def _setup_logging(level: str) -> None:
    from extender.server.logs import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop roughly halves the per-request cost of the HTTP servers and clients on the
    scheduling path (the extender sits inside kube-scheduler's serial scheduling cycle)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(main)
        return
    uvloop.run(main)


def run(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name in Config.__struct_fields__ if hasattr(args, name)}
    try:
        config = load(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        print("error: --tls-cert-file and --tls-key-file go together", file=sys.stderr)
        return 2
    if config.kubelet_client_ca_file and not config.tls_cert_file:
        print(
            "error: --kubelet-client-ca-file needs --tls-cert-file and --tls-key-file (the kubelet API is HTTPS)",
            file=sys.stderr,
        )
        return 2
    if config.kubelet_client_ca_file and (config.kubelet_address or config.bind_address) in ("0.0.0.0", "::"):
        print(
            "error: --kubelet-address is needed with --bind-address 0.0.0.0: kube-apiserver must be told an address "
            "it can dial (in a cluster, the pod IP: --kubelet-address=$(POD_IP))",
            file=sys.stderr,
        )
        return 2
    _setup_logging(config.log_level)
    from extender.app import serve_forever
    from extender.kube.client import KubeconfigError

    try:
        _run(serve_forever(config))
    except KubeconfigError as exc:
        print(f"error: {exc}; pass --kubeconfig FILE or run in a cluster", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc} (is another process using the port? choose others with --*-port)", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the scheduler extender, the admission webhook and metrics; run the controllers",
        description="Flags override the --config file; the file uses the same names (e.g. extender-port: 8888).",
    )
    p.add_argument("--config", default=None, help="YAML settings file")
    p.add_argument("--kubeconfig", default=None, help="home cluster kubeconfig (default: in-cluster or $KUBECONFIG)")
    p.add_argument("--bind-address", dest="bind_address", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument("--extender-port", dest="extender_port", type=int, default=None, help="extender HTTP port (8888)")
    p.add_argument("--webhook-port", dest="webhook_port", type=int, default=None, help="webhook HTTPS port (8443)")
    p.add_argument(
        "--metrics-port",
        dest="metrics_port",
        type=int,
        default=None,
        help="/metrics, /healthz, /readyz and the status page (9090)",
    )
    p.add_argument("--tls-cert-file", dest="tls_cert_file", default=None, help="webhook serving certificate (PEM)")
    p.add_argument("--tls-key-file", dest="tls_key_file", default=None, help="webhook serving key (PEM)")
    p.add_argument(
        "--kubelet-client-ca-file",
        dest="kubelet_client_ca_file",
        default=None,
        help="serve the virtual nodes' kubelet API (kubectl logs on spilled pods) to clients whose certificate "
        "this CA signed: the CA of kube-apiserver's --kubelet-client-certificate",
    )
    p.add_argument(
        "--kubelet-client-allowed-names",
        dest="kubelet_client_allowed_names",
        default=None,
        help="comma-separated common names the kubelet API accepts on client certificates (default: any the "
        "CA signed; kubeadm's apiserver uses kube-apiserver-kubelet-client)",
    )
    p.add_argument("--kubelet-port", dest="kubelet_port", type=int, default=None, help="kubelet API HTTPS port (10250)")
    p.add_argument(
        "--kubelet-address",
        dest="kubelet_address",
        default=None,
        help="the address kube-apiserver dials for the kubelet API, written on the virtual nodes "
        "(default: --bind-address; in a cluster, the pod IP)",
    )
    p.add_argument(
        "--scheduler-name",
        dest="scheduler_name",
        default=None,
        help="set spec.schedulerName of opted-in pods (for a second scheduler)",
    )
    p.add_argument(
        "--peer-timeout", dest="peer_timeout", type=float, default=None, help="seconds for any one call to a peer (5)"
    )
    p.add_argument(
        "--reservation-ttl",
        dest="reservation_ttl",
        type=float,
        default=None,
        help="seconds capacity stays reserved for a pod being placed (30)",
    )
    p.add_argument(
        "--remote-pending-timeout",
        dest="remote_pending_timeout",
        type=float,
        default=None,
        help="seconds a delegate may stay unschedulable in its peer before it is withdrawn (60)",
    )
    p.add_argument(
        "--orphan-sweep-seconds",
        dest="orphan_sweep_seconds",
        type=float,
        default=None,
        help="seconds between sweeps of each peer for objects whose home pod is gone (60)",
    )
    p.add_argument(
        "--cluster-id",
        dest="cluster_id",
        default=None,
        help="this home's id on what Spillover creates in peers, so homes can share a peer "
        "(a label value; default: the UID of the home's kube-system namespace)",
    )
    p.add_argument(
        "--leader-elect",
        dest="leader_elect",
        action="store_true",
        default=None,
        help="run the controllers only while holding the spillover-controller Lease",
    )
    p.add_argument("--log-level", dest="log_level", default=None, help="DEBUG, INFO (default), WARNING")
    p.set_defaults(func=run)
