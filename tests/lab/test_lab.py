"""The lab itself: real brokers in three racks, real systemd hosts, a client that cannot reach brokers."""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from lab.kafka import RACK_AWARE_SELECTOR
from lab.layout import RACKS, SASL_PORT
from lab.state import LabState

from ..conftest import REPO

pytestmark = pytest.mark.lab


def test_metadata_lists_three_brokers_in_three_racks(lab: LabState) -> None:
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    cluster = admin.describe_cluster(request_timeout=10).result(timeout=15)

    assert sorted(metadata.brokers) == [1, 2, 3]
    assert {(b.host, b.port) for b in metadata.brokers.values()} == {(b.address, b.port) for b in lab.brokers}
    assert {node.id: node.rack for node in cluster.nodes} == {1: "rack-a", 2: "rack-b", 3: "rack-c"}


def test_produce_and_consume_from_a_lab_host(lab: LabState) -> None:
    host = lab.hosts[0].name
    topic = f"lab-roundtrip-{uuid.uuid4().hex[:8]}"
    sent = [f"{topic}-{i}" for i in range(200)]
    produce = subprocess.run(
        lab.ssh_cmd(host, f"kcat -q -b {lab.bootstrap_servers} -t {topic} -P -X acks=all"),
        input="\n".join(sent) + "\n", text=True, capture_output=True, timeout=60,
    )
    assert produce.returncode == 0, produce.stderr
    consume = subprocess.run(
        lab.ssh_cmd(host, f"kcat -q -b {lab.bootstrap_servers} -t {topic} -C -o beginning -e -c {len(sent)}"),
        text=True, capture_output=True, timeout=60,
    )
    assert consume.returncode == 0, consume.stderr
    assert sorted(consume.stdout.split()) == sorted(sent)


CONNECT_PROBE = """
import json, socket, sys
results = {}
for host, port in json.loads(sys.argv[1]):
    s = socket.socket()
    s.settimeout(3)
    results[f"{host}:{port}"] = s.connect_ex((host, port))
    s.close()
print(json.dumps(results))
"""


@pytest.mark.parametrize("rack", [None, *RACKS], ids=["client", *RACKS])
def test_client_namespaces_reach_the_gateway_hosts_and_no_broker(lab: LabState, rack: str | None) -> None:
    broker_targets = [(b.address, port) for b in lab.brokers for port in (b.port, SASL_PORT)]
    host_targets = [(h.address, 22) for h in lab.hosts_in("gateways")]
    probe = subprocess.run(
        lab.client_cmd([sys.executable, "-c", CONNECT_PROBE, json.dumps(broker_targets + host_targets)], rack=rack),
        capture_output=True, text=True, check=True, timeout=30,
    )
    results = json.loads(probe.stdout)
    for endpoint in (f"{host}:{port}" for host, port in broker_targets):
        assert results[endpoint] == errno.ENETUNREACH, f"client reached broker {endpoint}"
    # The same probe does reach the gateway side of the lab, so the failures above are the routing, not the probe.
    assert {f"{host}:{port}": results[f"{host}:{port}"] for host, port in host_targets} == \
        {f"{host}:{port}": 0 for host, port in host_targets}


@pytest.mark.parametrize("rack", RACKS)
def test_a_rack_client_reaches_a_gateway_address_from_its_rack_network(lab: LabState, rack: str) -> None:
    """What a gateway process on the controller sees: a connection from inside the rack's client network, which is
    the rack's entry in the inventory's gateway_client_networks."""
    with socket.create_server((lab.gateway_addresses[-1], 0)) as server:
        server.settimeout(30)
        port = server.getsockname()[1]
        probe = subprocess.Popen(lab.client_cmd([sys.executable, "-c", CONNECT_PROBE,
                                                 json.dumps([[lab.gateway_addresses[-1], port]])], rack=rack),
                                 stdout=subprocess.PIPE, text=True)
        connection, (peer, _) = server.accept()
        connection.close()
        assert json.loads(probe.communicate(timeout=30)[0]) == {f"{lab.gateway_addresses[-1]}:{port}": 0}
    assert peer == lab.rack_client(rack).address
    assert ipaddress.ip_address(peer) in ipaddress.ip_network(lab.rack_client(rack).network)
    assert lab.client_networks[rack] == [lab.rack_client(rack).network]
    other_networks = [n for r, nets in lab.client_networks.items() if r != rack for n in nets]
    assert not any(ipaddress.ip_address(peer) in ipaddress.ip_network(n) for n in other_networks)


def test_lab_inventory_names_the_rack_client_networks(lab: LabState) -> None:
    tree = json.loads(subprocess.run([sys.executable, "-m", "lab", "inventory"], cwd=REPO, check=True,
                                     capture_output=True, text=True).stdout)
    assert tree["all"]["vars"]["gateway_client_networks"] == {r: [lab.rack_client(r).network] for r in RACKS}


def test_brokers_choose_the_replica_in_the_consumers_rack(lab: LabState) -> None:
    """KIP-392 needs it on the brokers: without the selector a Fetch's rack_id changes nothing."""
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    for broker in lab.brokers:  # one BROKER resource per call, as the admin client wants
        resource = ConfigResource(ConfigResource.Type.BROKER, str(broker.id))
        configs = admin.describe_configs([resource], request_timeout=15)[resource].result(timeout=20)
        assert configs["replica.selector.class"].value == RACK_AWARE_SELECTOR, broker


def _ansible(lab: LabState, tmp_path, module: str, args: str = "") -> dict[str, dict]:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(subprocess.run([sys.executable, "-m", "lab", "inventory"], cwd=REPO, check=True,
                                        capture_output=True, text=True).stdout)
    argv = [str(REPO / ".venv/bin/ansible"), "-i", str(inventory), "all", "-m", module, "-o"]
    if args:
        argv += ["-a", args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                         env={"ANSIBLE_HOST_KEY_CHECKING": "False", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert out.returncode == 0, out.stdout + out.stderr
    results = {}
    for line in out.stdout.splitlines():
        host, _, rest = line.partition(" | ")
        status, _, payload = rest.partition(" => ")
        results[host] = {"status": status, **json.loads(payload)}
    return results


def test_ansible_reaches_every_host_and_finds_systemd(lab: LabState, tmp_path) -> None:
    names = {h.name for h in lab.hosts}
    pings = _ansible(lab, tmp_path, "ansible.builtin.ping")
    assert set(pings) == names
    assert all(r["status"] == "SUCCESS" and r["ping"] == "pong" for r in pings.values())
    facts = _ansible(lab, tmp_path, "ansible.builtin.setup", "filter=ansible_service_mgr")
    assert {h: r["ansible_facts"]["ansible_service_mgr"] for h, r in facts.items()} == {n: "systemd" for n in names}


def test_host_has_its_rack_address_and_no_internet_route(lab: LabState) -> None:
    host = lab.hosts[0]
    routes = subprocess.run(lab.ssh_cmd(host.name, "ip -4 route show default; hostname; systemctl is-system-running"),
                            capture_output=True, text=True, timeout=30)
    lines = routes.stdout.split()
    assert "default" not in lines, "lab hosts must have no default route (no internet)"
    assert host.name in lines
    assert "running" in lines
