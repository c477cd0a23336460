"""TLS termination for clients: confluent-kafka with security.protocol=SSL and a client certificate.

Certificates are made in the test with openssl: a CA, a server certificate for the gateway's
address, and a client certificate; the node requires client certificates signed by that CA.
"""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.dataplane_support import PYTHON, GatewayNode, run_client, run_in_client_netns, running_node, unique

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17400, 17490


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(directory: Path, server_ip: str) -> dict[str, str]:
    paths = {"ca.key": str(directory / "ca.key"), "ca.pem": str(directory / "ca.pem")}
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kgw-test-ca",
            "-keyout", paths["ca.key"], "-out", paths["ca.pem"])
    paths["server.pem"], paths["server.key"] = sign(directory, "server", paths, server_ip, san=f"IP:{server_ip}")
    paths["client.pem"], paths["client.key"] = sign(directory, "client", paths, "kgw-test-client")
    return paths


def sign(directory: Path, who: str, ca: dict[str, str], cn: str, san: str | None = None) -> tuple[str, str]:
    """A new key and a certificate for it signed by `ca` (its ca.pem and ca.key): (certificate, key) paths."""
    key, csr, pem = (str(directory / f"{who}.{ext}") for ext in ("key", "csr", "pem"))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", key, "-out", csr)
    extra: list[str] = []
    if san:
        (directory / f"{who}-san.cnf").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", str(directory / f"{who}-san.cnf")]
    openssl("x509", "-req", "-days", "2", "-in", csr, "-CA", ca["ca.pem"], "-CAkey", ca["ca.key"], "-CAcreateserial",
            "-out", pem, *extra)
    return pem, key


@pytest.fixture(scope="module")
def pki(lab, tmp_path_factory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"), lab.gateway_addresses[-1])


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> str:
    """A CA the gateway's certificate is not signed by: a client that trusts only it refuses the gateway."""
    directory = tmp_path_factory.mktemp("other-ca")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kgw-other-ca",
            "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem"))
    return str(directory / "ca.pem")


@pytest.fixture(scope="module")
def node(lab, pki, tmp_path_factory):
    yield from running_node(lab, tmp_path_factory, PORT_START, HTTP_PORT, GATEWAY_SSL_CERT_FILE=pki["server.pem"],
                            GATEWAY_SSL_KEY_FILE=pki["server.key"], GATEWAY_SSL_CA_FILE=pki["ca.pem"],
                            GATEWAY_SSL_CLIENT_AUTH="required")


def test_confluent_kafka_over_tls_with_client_certificate(lab, node, pki):
    tls = ["--config", "security.protocol=SSL", "--config", f"ssl.ca.location={pki['ca.pem']}",
           "--config", f"ssl.certificate.location={pki['client.pem']}", "--config", f"ssl.key.location={pki['client.key']}"]
    result = run_client(lab, "idempotent", "--bootstrap", node.bootstrap, "--topic", unique("tls"), "--count", "1000", *tls)
    assert result == {"acked": 1000, "consumed": 1000, "distinct": 1000, "missing": 0}
    assert node.metric("gateway_bytes_total", api="fetch", direction="response") > 0
    assert node.metric("gateway_spliced_bytes_total") == 0, "TLS keeps the copying path"
    assert node.metric("gateway_spliced_produce_bytes_total") == 0, "for Produce requests too"


def api_versions_request() -> bytes:
    payload = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    return struct.pack(">i", len(payload)) + payload


def test_client_without_certificate_is_refused(lab, node, pki):
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    with socket.create_connection((node.address, PORT_START), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname=node.address) as tls:
                tls.sendall(api_versions_request())
                if not tls.recv(4):  # TLS 1.3 reports the missing certificate at the first read
                    raise ConnectionError("closed")


def test_client_with_certificate_gets_api_versions(lab, node, pki):
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    context.load_cert_chain(pki["client.pem"], pki["client.key"])
    with socket.create_connection((node.address, PORT_START), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=node.address) as tls:
            tls.sendall(api_versions_request())
            size = struct.unpack(">i", tls.recv(4))[0]
            assert size > 10


def test_upstream_tls_from_kafka_settings(lab, node, pki, tmp_path):
    """A second node whose 'brokers' are the TLS node: its upstream side (data plane, and its own
    control-plane clients) must speak TLS with a client certificate, configured only through KAFKA_*.
    Clients talk plain Kafka to the second node; the first relays to the real brokers."""
    chained = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 50, HTTP_PORT + 50, tmp_path,
                          KAFKA_BOOTSTRAP_SERVERS=node.bootstrap, KAFKA_SECURITY_PROTOCOL="SSL",
                          KAFKA_SSL_CA_LOCATION=pki["ca.pem"], KAFKA_SSL_CERTIFICATE_LOCATION=pki["client.pem"],
                          KAFKA_SSL_KEY_LOCATION=pki["client.key"]).start()
    try:
        result = run_client(lab, "idempotent", "--bootstrap", chained.bootstrap, "--topic", unique("tls-up"),
                            "--count", "500")
        assert result == {"acked": 500, "consumed": 500, "distinct": 500, "missing": 0}
        assert chained.metric("gateway_upstream_errors_total") == 0
        assert chained.metric("gateway_spliced_bytes_total") == 0, "TLS to the brokers keeps the copying path"
        assert chained.metric("gateway_spliced_produce_bytes_total") == 0
    finally:
        assert chained.stop() == 0


# A bad handshake from the client namespace, by a real TLS stack (Python's ssl, OpenSSL) or by plain Kafka bytes;
# prints the client's own address:port so the test can find the gateway's log line for exactly this connection.
BAD_HANDSHAKE = """
import socket, ssl, struct, sys
address, port, mode, cafile, client_pem, client_key = sys.argv[1:7]
raw = socket.create_connection((address, int(port)), timeout=10)
print("%s:%d" % raw.getsockname(), flush=True)
if mode == "plain":
    payload = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    raw.sendall(struct.pack(">i", len(payload)) + payload)
    raw.recv(100)
else:
    context = ssl.create_default_context(cafile=cafile)
    if client_pem != "-":
        context.load_cert_chain(client_pem, client_key)
    try:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            tls.sendall(b"x")
            tls.recv(4)
    except (ssl.SSLError, OSError) as error:
        print("client saw:", error, flush=True)
"""


@pytest.mark.parametrize(("mode", "reason"), [
    ("plain", None),  # OpenSSL names plain bytes by what they look like; any reason, but counted and logged
    ("untrusted-ca", "tlsv1_alert_unknown_ca"),  # the client refuses the gateway's certificate
    ("no-client-certificate", None),  # the gateway requires one (reason depends on the TLS version)
])
def test_failed_handshake_is_logged_with_peer_and_reason_and_counted(lab, node, pki, other_ca, mode, reason):
    before = node.metric("gateway_tls_handshake_failures_total")
    cafile = other_ca if mode == "untrusted-ca" else pki["ca.pem"]
    cert, key = (pki["client.pem"], pki["client.key"]) if mode == "untrusted-ca" else ("-", "-")
    done = run_in_client_netns(lab, [PYTHON, "-c", BAD_HANDSHAKE, node.address, str(PORT_START), mode, cafile, cert, key],
                               timeout_s=60)
    assert done.returncode == 0, done.stderr
    client = done.stdout.splitlines()[0]
    assert client.startswith(lab.client_address + ":")
    line = wait_for_line(node, f"TLS handshake failed: client {client} on port {PORT_START}: ")
    logged_reason = line.split(f"on port {PORT_START}: ", 1)[1].split(" ", 1)[0]
    if reason is not None:
        assert logged_reason == reason, line
    assert node.metric("gateway_tls_handshake_failures_total", reason=logged_reason) >= 1
    assert node.metric("gateway_tls_handshake_failures_total") == before + 1
    assert node.alive()


def wait_for_line(node: GatewayNode, start: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [line for line in node.log().splitlines() if start in line]
        if found:
            assert len(found) == 1, found  # one line per failed handshake
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no log line with {start!r}: {node.log()[-2000:]}")


def presented_certificate(node: GatewayNode, pki: dict[str, str]) -> bytes:
    """The certificate a new handshake with the node presents (DER)."""
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    context.load_cert_chain(pki["client.pem"], pki["client.key"])
    with socket.create_connection((node.address, PORT_START), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=node.address) as tls:
            return tls.getpeercert(binary_form=True)


def api_versions_answered(tls: ssl.SSLSocket) -> bool:
    tls.sendall(api_versions_request())
    size = struct.unpack(">i", tls.recv(4))[0]
    body = b""
    while len(body) < size:
        body += tls.recv(size - len(body))
    return size > 10


def sighup_and_wait(node: GatewayNode, result: str, expected: float) -> None:
    assert node.process is not None
    node.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while node.metric("gateway_tls_reloads_total", result=result) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node.metric("gateway_tls_reloads_total", result=result) == expected, node.log()[-2000:]


def test_sighup_takes_a_renewed_certificate_and_keeps_open_connections(lab, node, pki, tmp_path):
    """Last in this module: it replaces the node's certificate (by one of the same CA, so the tests above would
    still pass). A renewal on disk + SIGHUP: new handshakes present the renewed certificate, a connection made
    before keeps working; then a key of another certificate is refused and the renewed certificate stays."""
    old = presented_certificate(node, pki)
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    context.load_cert_chain(pki["client.pem"], pki["client.key"])
    with socket.create_connection((node.address, PORT_START), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=node.address) as established:
            assert api_versions_answered(established)
            renewed_pem, renewed_key = sign(tmp_path, "renewed", pki, node.address, san=f"IP:{node.address}")
            Path(pki["server.pem"]).write_bytes(Path(renewed_pem).read_bytes())
            Path(pki["server.key"]).write_bytes(Path(renewed_key).read_bytes())
            sighup_and_wait(node, "ok", 1)
            new = presented_certificate(node, pki)
            assert new != old
            assert new == ssl.PEM_cert_to_DER_cert(Path(renewed_pem).read_text())
            assert api_versions_answered(established)  # the connection made before the reload carries on

    Path(pki["server.key"]).write_bytes(Path(pki["client.key"]).read_bytes())  # a key of another certificate
    sighup_and_wait(node, "failed", 1)
    assert presented_certificate(node, pki) == new
    assert "TLS reload failed, keeping the current certificate" in node.log()
    assert node.metric("gateway_tls_reloads_total", result="ok") == 1
    assert node.alive()

