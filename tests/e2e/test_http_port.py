"""The HTTP port is an operator's port: its own bind address, /cluster without the backing brokers' addresses
unless an operator asks (token or allowed network), and request size/time/connection limits, each refusal
counted. Requests come from the client namespace (an ordinary client of the lab) and from the controller."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.e2e.dataplane_support import PYTHON, run_in_client_netns, running_node

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17700, 17790
TOKEN = "operator-token-5f1c0e7a9b3d"

# GET a path from wherever this runs; prints status and body as JSON
FETCH = """
import json, sys, urllib.error, urllib.request
url, token = sys.argv[1], sys.argv[2]
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.dumps([response.status, response.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
"""


@pytest.fixture(scope="module")
def node(lab, tmp_path_factory):
    # the Kafka listeners on one controller address, the HTTP port on another; the controller's own addresses
    # (198.18.2n.1-9) are the operator's network, the client namespace (.250) is not
    operator_net = lab.gateway_addresses[0].rsplit(".", 1)[0] + ".0/28"
    yield from running_node(lab, tmp_path_factory, PORT_START, HTTP_PORT, GATEWAY_HTTP_BIND_HOST=lab.gateway_addresses[-3],
                            GATEWAY_HTTP_ADMIN_TOKEN=TOKEN, GATEWAY_HTTP_ADMIN_NETWORKS=operator_net)


def from_client(lab, node, path: str, token: str = "") -> tuple[int, str]:
    done = run_in_client_netns(lab, [PYTHON, "-c", FETCH, f"http://{node.http_address}:{HTTP_PORT}{path}", token])
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout)
    return status, body


def broker_addresses(lab) -> list[str]:
    return [b.address for b in lab.brokers]


def test_http_port_binds_its_own_address(lab, node):
    assert node.http_address != node.address
    assert node.http("/health/live")[0] == 200
    with pytest.raises(OSError):
        socket.create_connection((node.address, HTTP_PORT), timeout=3).close()


def test_cluster_from_a_client_withholds_broker_addresses(lab, node):
    before = node.metric("gateway_http_refused_total", reason="brokers_withheld")
    status, body = from_client(lab, node, "/cluster")
    view = json.loads(body)
    assert status == 200 and view["backing_cluster"]["addresses_withheld"] is True
    assert view["backing_cluster"]["brokers"] == {str(b.id): {"rack": b.rack} for b in lab.brokers}
    assert not [address for address in broker_addresses(lab) if address in body], body
    assert view["mapping"]  # the gateway's own view is still there
    assert node.metric("gateway_http_refused_total", reason="brokers_withheld") == before + 1


def test_cluster_with_the_operator_token_names_the_brokers(lab, node):
    before = node.metric("gateway_http_admin_views_total", via="token")
    status, body = from_client(lab, node, "/cluster", TOKEN)
    brokers = json.loads(body)["backing_cluster"]["brokers"]
    assert status == 200
    assert {k: (v["host"], v["port"]) for k, v in brokers.items()} == {str(b.id): (b.address, b.port) for b in lab.brokers}
    assert node.metric("gateway_http_admin_views_total", via="token") == before + 1


def test_cluster_with_a_wrong_token_is_refused_logged_and_counted(lab, node):
    before = node.metric("gateway_http_refused_total", reason="bad_token")
    status, body = from_client(lab, node, "/cluster", "not-the-operator-token")
    assert status == 403 and not [address for address in broker_addresses(lab) if address in body]
    assert node.metric("gateway_http_refused_total", reason="bad_token") == before + 1
    assert f"HTTP refused (bad_token): /cluster from {lab.client_address}" in node.log()
    assert "not-the-operator-token" not in node.log() and TOKEN not in node.log()


def test_cluster_from_the_operator_network_names_the_brokers(lab, node):
    before = node.metric("gateway_http_admin_views_total", via="network")
    status, body = node.http("/cluster")  # from the controller's address, inside GATEWAY_HTTP_ADMIN_NETWORKS
    assert status == 200 and all(address in body for address in broker_addresses(lab))
    assert node.metric("gateway_http_admin_views_total", via="network") == before + 1


def raw_request(node, data: bytes, timeout_s: float = 10.0) -> bytes:
    with socket.create_connection((node.http_address, HTTP_PORT), timeout=timeout_s) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_oversized_request_line_and_headers_are_refused_and_counted(lab, node):
    before = node.metric("gateway_http_refused_total", reason="bad_request")
    long_path = raw_request(node, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    long_header = raw_request(node, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10000 + b"\r\n\r\n")
    assert long_path.split(b" ", 2)[1] == b"400" and long_header.split(b" ", 2)[1] == b"400"
    assert node.metric("gateway_http_refused_total", reason="bad_request") == before + 2
    assert "Traceback" not in node.log()


def test_other_methods_are_refused_and_counted(lab, node):
    before = node.metric("gateway_http_refused_total", reason="method_not_allowed")
    assert raw_request(node, b"POST /cluster HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert node.metric("gateway_http_refused_total", reason="method_not_allowed") == before + 1


def test_a_silent_or_slow_connection_is_closed_at_the_deadline_and_counted(lab, node):
    before = node.metric("gateway_http_refused_total", reason="timeout")
    with socket.create_connection((node.http_address, HTTP_PORT), timeout=15) as silent, \
            socket.create_connection((node.http_address, HTTP_PORT), timeout=15) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
        assert silent.recv(1) == b"" and slow.recv(1) == b""
        assert time.monotonic() - started < 10
    assert node.metric("gateway_http_refused_total", reason="timeout") == before + 2


HOLD = """
import socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
held = [socket.create_connection((address, port), timeout=5) for _ in range(40)]
time.sleep(1.0)
closed = 0
for sock in held:
    sock.setblocking(False)
    try:
        closed += sock.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed, flush=True)
time.sleep(3.0)
"""


def test_a_client_cannot_fill_the_port_and_readiness_still_answers(lab, node):
    """40 idle sockets from the client network: 4 admitted, the rest refused, and the operator's check still answered."""
    before = node.metric("gateway_http_refused_total", reason="too_many_from_source")
    holder = subprocess.Popen(lab.client_cmd([PYTHON, "-c", HOLD, node.http_address, str(HTTP_PORT)]),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert int(holder.stdout.readline()) == 40 - 4
        with urllib.request.urlopen(f"http://{node.http_address}:{HTTP_PORT}/health/ready", timeout=5) as response:
            assert response.status == 200  # from the operator's network, while the client holds its sockets
    finally:
        holder.wait(timeout=30)
    assert node.metric("gateway_http_refused_total", reason="too_many_from_source") == before + 36


def test_connections_beyond_the_cap_are_refused_and_counted(lab, node):
    before = node.metric("gateway_http_refused_total", reason="too_many_connections")
    held = [socket.create_connection((node.http_address, HTTP_PORT), timeout=5) for _ in range(40)]
    try:
        time.sleep(1.5)  # well inside the 5 s deadline of the admitted ones (a metrics scrape now would be refused too)
        readable, _, _ = select.select(held, [], [], 0.2)  # closed by the gateway: EOF or reset is readable
        assert len(readable) == 40 - 32
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert node.metric("gateway_http_refused_total", reason="too_many_connections") == before + 8
    time.sleep(0.5)
    with urllib.request.urlopen(f"http://{node.http_address}:{HTTP_PORT}/health/live", timeout=5) as response:
        assert response.status == 200  # the held connections are gone: the port serves again
