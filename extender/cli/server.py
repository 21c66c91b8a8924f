"""Reading the running server's JSON endpoints (on its metrics port) for `plan` and `explain`."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

ENV = "SPILLOVER_SERVER"
DEFAULT = "http://127.0.0.1:9090"


class ServerError(RuntimeError):
    """The server could not be read; the message says where it looked and what to do."""


def add_server_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=None,
        help=f"the server's metrics address (default: ${ENV}, else {DEFAULT}; "
        'in the lab, eval "$(hack/lab/env)" sets it; in a cluster, '
        "kubectl -n spillover-system port-forward deploy/spillover 9090)",
    )


def server_url(flag: str | None) -> tuple[str, str]:
    """The base URL and where it came from (for the error message)."""
    if flag:
        return flag.rstrip("/"), "--server"
    if os.environ.get(ENV):
        return os.environ[ENV].rstrip("/"), f"${ENV}"
    return DEFAULT, f"the default (no --server, no ${ENV})"


def read_server(flag: str | None, path: str) -> Any:
    base, source = server_url(flag)
    url = base + path
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise ServerError(f"{url}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise ServerError(
            f"cannot read {url} ({source}): {exc}; is `spillover serve` running there? "
            f'Pass --server URL or set ${ENV} (in the lab: eval "$(hack/lab/env)")'
        ) from exc
