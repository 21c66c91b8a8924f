"""`spillover plan` (and explain) find the running server: --server, else $SPILLOVER_SERVER, which
the lab's env script exports (the lab's metrics port is picked at random)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from spillover_lab import lab
from spillover_lab.__main__ import env_server

from extender.cli.main import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_lab_env_exports_the_servers_address(tmp_path: Path) -> None:
    state = lab.State(tmp_path)
    state.data["clusters"] = {"home": {"ports": {"metrics": 41234}}, "east": {"ports": {"metrics": 0}}}
    assert env_server(state) == "export SPILLOVER_SERVER=http://127.0.0.1:41234"


def test_plan_reads_the_server_named_by_the_environment_and_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    monkeypatch.setenv("SPILLOVER_SERVER", f"http://127.0.0.1:{port}")
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert f"cannot read http://127.0.0.1:{port}/plan.json ($SPILLOVER_SERVER)" in err
    assert 'eval "$(hack/lab/env)"' in err


def test_plan_prints_the_servers_plan(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Plan(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"pending": 0, "solved": False, "advice": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Plan)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("SPILLOVER_SERVER", f"http://127.0.0.1:{server.server_address[1]}")
        assert main(["plan"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert "pending spill candidates: 0" in capsys.readouterr().out
