"""The extender's HTTPS: only a client certificate from the configured CA gets in, HTTP/2 and
HTTP/1.1 are both spoken (ALPN), and rotated files take effect without a restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from spillover_lab import pki

from extender.config import ConfigError, load
from extender.server.answers import Answer
from extender.server.http_server import JsonPostServer
from extender.server.tls import ReloadingTLS, TLSFiles


async def slow(body: bytes) -> Answer:
    await asyncio.sleep(0.1)
    return 200, b'{"slow":' + body + b"}"


def fast(body: bytes) -> Answer:
    return 200, b'{"fast":' + body + b"}"


def big(body: bytes) -> Answer:
    return 200, json.dumps({"names": [f"node-{i:05d}" for i in range(20_000)]}).encode()


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A CA with a serving and a client certificate; a second CA; an expired and a misnamed client."""
    ca = pki.make_ca(tmp_path, "ca", "extender-clients")
    pki.make_leaf(tmp_path, "serving", ca, "spillover-extender", server=True, sans=("127.0.0.1",))
    pki.make_leaf(tmp_path, "scheduler", ca, "system:kube-scheduler")
    pki.make_leaf(tmp_path, "expired", ca, "system:kube-scheduler", expired=True)
    pki.make_leaf(tmp_path, "tenant", ca, "tenant")
    other = pki.make_ca(tmp_path, "other-ca", "someone-else")
    pki.make_leaf(tmp_path, "stranger", other, "system:kube-scheduler")
    pki.make_leaf(tmp_path, "other-serving", other, "spillover-extender", server=True, sans=("127.0.0.1",))
    return tmp_path


def files(certs: Path, names: tuple[str, ...] = ()) -> TLSFiles:
    return TLSFiles(
        str(certs / "serving.crt"),
        str(certs / "serving.key"),
        client_ca=str(certs / "ca.crt"),
        client_names=names,
        alpn=("h2", "http/1.1"),
    )


async def started(tls: ReloadingTLS) -> JsonPostServer:
    server = JsonPostServer({"/slow": slow, "/fast": fast, "/big": big}, max_body=64)
    await server.start("127.0.0.1", 0, tls=tls)
    return server


@pytest.fixture
async def server(certs: Path) -> AsyncIterator[JsonPostServer]:
    srv = await started(ReloadingTLS(files(certs, ("system:kube-scheduler",)), "extender"))
    yield srv
    await srv.close()


def client_context(certs: Path, identity: str | None, alpn: str, ca: str = "ca") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / f"{ca}.crt"))
    context.check_hostname = False  # connecting by IP; the chain is still verified
    if identity:
        context.load_cert_chain(str(certs / f"{identity}.crt"), str(certs / f"{identity}.key"))
    context.set_alpn_protocols([alpn])
    return context


class H2Client:
    """Just enough of an HTTP/2 client (as Go's transport behaves: one connection, many streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.writer.write(self.conn.data_to_send())
        self.goaway = False

    @classmethod
    async def connect(cls, port: int, context: ssl.SSLContext) -> H2Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="")
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "h2"
        return cls(reader, writer)

    async def calls(self, requests: list[tuple[str, bytes]], method: bytes = b"POST") -> list[Answer]:
        ids = []
        for path, body in requests:
            sid = self.conn.get_next_available_stream_id()
            headers = [(b":method", method), (b":path", path.encode()), (b":scheme", b"https"), (b":authority", b"x")]
            self.conn.send_headers(sid, headers, end_stream=not body)
            if body:
                self.conn.send_data(sid, body, end_stream=True)
            ids.append(sid)
        self.writer.write(self.conn.data_to_send())
        status: dict[int, int] = {}
        bodies: dict[int, bytearray] = {sid: bytearray() for sid in ids}
        done: set[int] = set()
        while len(done) < len(ids):
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                raise ConnectionError("server closed the connection")
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done.add(event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = True
            self.writer.write(self.conn.data_to_send())
        return [(status[sid], bytes(bodies[sid])) for sid in ids]

    async def closed_by_server(self) -> bool:
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                return True
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = True


async def h1_call(port: int, context: ssl.SSLContext, path: str, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="")
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().split("\r\n")
        length = int(next(line.split(":")[1] for line in lines if line.lower().startswith("content-length")))
        return int(head.split()[1]), await reader.readexactly(length)
    finally:
        writer.close()


async def refused(port: int, context: ssl.SSLContext) -> bool:
    """True when the server will not talk: the handshake fails, or (TLS 1.3, where the client
    finishes first) the connection is closed before an answer."""
    try:
        await h1_call(port, context, "/fast", b"1")
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return True
    return False


async def test_http2_multiplexes_calls_on_one_connection_and_answers_each_when_ready(
    server: JsonPostServer, certs: Path
) -> None:
    client = await H2Client.connect(server.port, client_context(certs, "scheduler", "h2"))
    answers = await client.calls([("/slow", b"1"), ("/fast", b"2"), ("/fast", b"3")])
    assert [json.loads(body) for _, body in answers] == [{"slow": 1}, {"fast": 2}, {"fast": 3}]
    assert len(server.connections) == 1
    answers = await client.calls([("/fast", str(i).encode()) for i in range(50)])
    assert [json.loads(body)["fast"] for _, body in answers] == list(range(50))
    client.writer.close()


async def test_http2_sends_a_response_larger_than_the_flow_control_window(
    server: JsonPostServer, certs: Path
) -> None:
    client = await H2Client.connect(server.port, client_context(certs, "scheduler", "h2"))
    ((status, body),) = await client.calls([("/big", b"")])
    assert status == 200 and len(json.loads(body)["names"]) == 20_000 and len(body) > 65_535
    client.writer.close()


async def test_http2_refusals_name_the_problem(server: JsonPostServer, certs: Path) -> None:
    client = await H2Client.connect(server.port, client_context(certs, "scheduler", "h2"))
    (missing, too_big) = await client.calls([("/nope", b"{}"), ("/fast", b"x" * 100)])
    assert missing[0] == 404 and "/nope" in json.loads(missing[1])["error"]
    assert too_big[0] == 413 and "larger than 64 bytes" in json.loads(too_big[1])["error"]
    ((status, body),) = await client.calls([("/fast", b"")], method=b"GET")
    assert status == 405 and "use POST" in json.loads(body)["error"]
    ((status, body),) = await client.calls([("/fast", b"7")])
    assert (status, json.loads(body)) == (200, {"fast": 7}), "the connection survives refused calls"
    client.writer.close()


async def test_http11_over_tls_is_still_served(server: JsonPostServer, certs: Path) -> None:
    status, body = await h1_call(server.port, client_context(certs, "scheduler", "http/1.1"), "/fast", b"5")
    assert (status, json.loads(body)) == (200, {"fast": 5})


@pytest.mark.parametrize(
    "identity, why",
    [
        (None, "no client certificate"),
        ("stranger", "signed by another CA"),
        ("expired", "expired"),
        ("tenant", "signed by the CA but not an allowed name"),
    ],
)
async def test_a_client_without_an_acceptable_certificate_is_refused(
    server: JsonPostServer, certs: Path, identity: str | None, why: str
) -> None:
    assert await refused(server.port, client_context(certs, identity, "http/1.1")), why


def live_copy(certs: Path, folder: Path) -> Path:
    """The serving certificate, key and client CA in a folder of their own, to be rewritten."""
    folder.mkdir()
    for name in ("serving.crt", "serving.key", "ca.crt"):
        shutil.copy(certs / name, folder / name)
    return folder


async def test_rotated_files_take_effect_for_new_connections_and_old_ones_are_drained(certs: Path) -> None:
    live = live_copy(certs, certs / "live")
    tls = ReloadingTLS(files(live), "extender")
    server = await started(tls)
    try:
        old = await H2Client.connect(server.port, client_context(certs, "scheduler", "h2"))
        assert (await old.calls([("/fast", b"1")]))[0][0] == 200
        assert not tls.reload(), "nothing changed yet"
        # The admin moves to the other CA: new serving certificate, new client CA.
        shutil.copy(certs / "other-serving.crt", live / "serving.crt")
        shutil.copy(certs / "other-serving.key", live / "serving.key")
        shutil.copy(certs / "other-ca.crt", live / "ca.crt")
        assert tls.reload()
        assert await old.closed_by_server() and old.goaway, "the old connection got a GOAWAY and was closed"
        new = await H2Client.connect(server.port, client_context(certs, "stranger", "h2", ca="other-ca"))
        assert (await new.calls([("/fast", b"2")]))[0][0] == 200
        assert await refused(server.port, client_context(certs, "scheduler", "http/1.1", ca="other-ca")), (
            "a certificate of the CA that was removed no longer gets in"
        )
        new.writer.close()
    finally:
        await server.close()


async def test_a_broken_file_keeps_the_previous_certificate(certs: Path, tmp_path: Path) -> None:
    live = live_copy(certs, tmp_path / "broken")
    tls = ReloadingTLS(files(live), "extender")
    server = await started(tls)
    try:
        (live / "serving.crt").write_text("not a certificate")
        with pytest.raises(ValueError, match=r"serving\.crt"):
            tls.reload()
        status, _ = await h1_call(server.port, client_context(certs, "scheduler", "http/1.1"), "/fast", b"1")
        assert status == 200
    finally:
        await server.close()


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"extender_tls_cert_file": "c.pem"}, "go together"),
        ({"extender_client_ca_file": "ca.pem"}, "needs extender-tls-cert-file"),
        ({"extender_tls_cert_file": "c.pem", "extender_tls_key_file": "k.pem"}, "without checking who calls"),
        ({"bind_address": "0.0.0.0"}, "plain HTTP"),
        ({"extender_client_names": "system:kube-scheduler"}, "needs extender-client-ca-file"),
    ],
)
def test_settings_that_would_expose_the_extender_are_refused_with_what_to_do(
    flags: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(None, flags)


def test_plain_http_on_loopback_and_https_with_a_client_ca_are_accepted() -> None:
    assert load(None, {"bind_address": "0.0.0.0", "extender_bind_address": "127.0.0.1"}).extender_address == (
        "127.0.0.1"
    )
    config = load(
        None,
        {
            "bind_address": "0.0.0.0",
            "extender_tls_cert_file": "c.pem",
            "extender_tls_key_file": "k.pem",
            "extender_client_ca_file": "ca.pem",
        },
    )
    assert config.extender_address == "0.0.0.0"


def test_https_and_the_refusals_hold_on_uvloop_as_in_production(certs: Path) -> None:
    import uvloop

    async def exchange() -> tuple[int, int, bool]:
        server = await started(ReloadingTLS(files(certs, ("system:kube-scheduler",)), "extender"))
        try:
            client = await H2Client.connect(server.port, client_context(certs, "scheduler", "h2"))
            ((h2_status, _),) = await client.calls([("/slow", b"1")])
            client.writer.close()
            h1_status, _ = await h1_call(server.port, client_context(certs, "scheduler", "http/1.1"), "/fast", b"1")
            stranger = await refused(server.port, client_context(certs, "stranger", "http/1.1"))
            return h2_status, h1_status, stranger
        finally:
            await server.close()

    assert uvloop.run(exchange()) == (200, 200, True)


async def test_every_accepted_connection_is_counted_by_protocol_and_a_misnamed_client_as_refused(certs: Path) -> None:
    seen: list[str] = []
    server = JsonPostServer({"/fast": fast}, max_body=64, on_connection=seen.append)
    await server.start("127.0.0.1", 0, tls=ReloadingTLS(files(certs, ("system:kube-scheduler",)), "extender"))
    try:
        client = await H2Client.connect(server.port, client_context(certs, "scheduler", "h2"))
        await client.calls([("/fast", b"1"), ("/fast", b"2")])
        client.writer.close()
        await h1_call(server.port, client_context(certs, "scheduler", "http/1.1"), "/fast", b"3")
        assert await refused(server.port, client_context(certs, "tenant", "http/1.1"))
    finally:
        await server.close()
    assert seen == ["h2", "http/1.1 (TLS)", "refused"]
