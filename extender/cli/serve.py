"""`spillover serve`: the extender, the webhook, metrics and the controllers, in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from extender.config import Config, ConfigError, load, settings


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


def config_from(args: argparse.Namespace) -> Config:
    """The --config file under the flags given; raises ConfigError naming what is wrong."""
    overrides = {setting.field: getattr(args, setting.field, None) for setting in settings()}
    config = load(args.config, overrides)
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        raise ConfigError("--tls-cert-file and --tls-key-file go together")
    if config.kubelet_client_ca_file and not config.tls_cert_file:
        raise ConfigError(
            "--kubelet-client-ca-file needs --tls-cert-file and --tls-key-file (the kubelet API is HTTPS)"
        )
    if config.kubelet_client_ca_file and (config.kubelet_address or config.bind_address) in ("0.0.0.0", "::"):
        raise ConfigError(
            "--kubelet-address is needed with --bind-address 0.0.0.0: kube-apiserver must be told an address "
            "it can dial (in a cluster, the pod IP: --kubelet-address=$(POD_IP))"
        )
    return config


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
    p.add_argument("--config", default=None, help="YAML settings file (keys as the flags below, without --)")
    for setting in settings():
        flag, help_text = f"--{setting.key}", setting.help
        if setting.default not in (None, "", False):
            help_text += f" (default {setting.default})"
        if setting.kind is bool:
            p.add_argument(
                flag, dest=setting.field, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            p.add_argument(flag, dest=setting.field, type=setting.kind, default=None, help=help_text)
    p.set_defaults(func=run)
