"""SIGHUP certificate reload on a live listener, under uvloop (the node's default loop) and asyncio: new handshakes
present the new certificate, an established connection keeps its session and keeps working, and material that fails
the check (a key of another certificate, an expired certificate, a missing file) is refused with the old one kept.
The node's handler reloads both of its contexts: the listeners' and the one it presents to its peers."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import pytest
import uvloop

from gateway_app.app import Node
from gateway_app.config import load_settings
from gateway_app.proxy.tls import client_context, reload_client_certificate
from gateway_app.tls_check import TlsMaterialError
from lab.pki import LabCA

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


@pytest.fixture
def pki(tmp_path: Path):
    ca = LabCA(tmp_path / "ca")
    material = {"old": ca.issue("old", ["127.0.0.1"], node=True), "new": ca.issue("new", ["127.0.0.1"], node=True),
                "expired": ca.issue("expired", ["127.0.0.1"], expired=True)}
    live = tmp_path / "live"
    live.mkdir()
    return ca, material, live


def tls_settings(live: Path):
    return load_settings({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "GATEWAY_CLUSTER_SECRET": "unit-test-secret-0123456789",
                          "GATEWAY_SSL_CERT_FILE": str(live / "server.pem"), "GATEWAY_SSL_KEY_FILE": str(live / "server.key")})


def install(live: Path, cert: Path, key: Path) -> None:
    """What the role does: replace the files in place."""
    shutil.copy(cert, live / "server.pem")
    shutil.copy(key, live / "server.key")


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_reload_changes_new_handshakes_only(pki, loop_name: str) -> None:
    ca, material, live = pki
    install(live, material["old"].cert, material["old"].key)
    settings = tls_settings(live)
    trust = ssl.create_default_context(cafile=str(ca.cert_path))

    async def scenario() -> None:
        context = client_context(settings)
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust)
            return reader, writer, writer.get_extra_info("ssl_object").getpeercert(binary_form=True)

        async def echoes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bool:
            writer.write(data)
            return await asyncio.wait_for(reader.readexactly(len(data)), 5) == data

        established = await connect()
        assert established[2] == der(material["old"].cert)
        assert await echoes(established[0], established[1], b"before")

        install(live, material["new"].cert, material["new"].key)
        reload_client_certificate([context], settings)
        renewed = await connect()
        assert renewed[2] == der(material["new"].cert)
        assert await echoes(established[0], established[1], b"after the reload, same connection")
        assert established[1].get_extra_info("ssl_object").getpeercert(binary_form=True) == der(material["old"].cert)

        for cert, key in ((material["old"].cert, material["new"].key),       # key of another certificate
                          (material["expired"].cert, material["expired"].key)):
            install(live, cert, key)
            with pytest.raises(TlsMaterialError, match=str(live / "server.pem")):
                reload_client_certificate([context], settings)
            assert (await connect())[2] == der(material["new"].cert)
        (live / "server.key").unlink()
        with pytest.raises(OSError):
            reload_client_certificate([context], settings)
        assert (await connect())[2] == der(material["new"].cert)

        for _, writer, _ in (established, renewed):
            writer.close()
        server.close()
        await server.wait_closed()

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(scenario())


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[bytes, bytes | None]:
    """A TLS handshake in memory: (the certificate the server presented, the one the client presented or None)."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    client_side = client.wrap_bio(client_in, client_out, server_side=False, server_hostname="127.0.0.1")
    done: set[str] = set()
    for _ in range(10):
        for name, side in (("client", client_side), ("server", server_side)):
            if name not in done:
                try:
                    side.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    assert done == {"client", "server"}
    return client_side.getpeercert(binary_form=True), server_side.getpeercert(binary_form=True)


def test_the_nodes_sighup_handler_reloads_the_listeners_and_the_peer_probes_certificate(pki) -> None:
    ca, material, live = pki
    install(live, material["old"].cert, material["old"].key)
    node = Node(tls_settings(live))  # internal load balancing (the default): handover probes present a certificate
    assert node.handover is not None and node.handover.probe_tls is not None
    trust = ssl.create_default_context(cafile=str(ca.cert_path))
    peer = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_path))  # a peer's listener
    peer.load_cert_chain(material["old"].cert, material["old"].key)
    peer.verify_mode = ssl.CERT_OPTIONAL

    install(live, material["new"].cert, material["new"].key)
    node.reload_tls()
    assert handshake(node.gateway.client_ssl, trust)[0] == der(material["new"].cert)
    assert handshake(peer, node.handover.probe_tls)[1] == der(material["new"].cert)
    assert node.metrics.tls_reloads.labels("ok")._value.get() == 1

    install(live, material["expired"].cert, material["expired"].key)
    node.reload_tls()
    assert handshake(node.gateway.client_ssl, trust)[0] == der(material["new"].cert)
    assert handshake(peer, node.handover.probe_tls)[1] == der(material["new"].cert)
    assert node.metrics.tls_reloads.labels("failed")._value.get() == 1
