"""The lab's one bridge and the network namespaces hung off it (brokers, the client, a client per rack)."""

from __future__ import annotations

import os
from pathlib import Path

from .layout import RACK_CLIENT_NET_PREFIX, RACKS, Layout
from .shell import run


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def bridge_up(layout: Layout) -> None:
    """The bridge with the controller's addresses: .1 on both networks, .2-.9 for gateway processes, and .1 in each
    rack client network (so gateway processes on the controller answer the rack clients)."""
    if not _link_exists(layout.bridge):
        run(["ip", "link", "add", layout.bridge, "type", "bridge"])
    addresses = [f"{layout.controller_host_ip}/24", f"{layout.controller_kafka_ip}/24"]
    addresses += [f"{ip}/24" for ip in layout.gateway_addresses]
    addresses += [f"{layout.rack_controller_ip(rack)}/{RACK_CLIENT_NET_PREFIX}" for rack in RACKS]
    present = run(["ip", "-o", "-4", "addr", "show", "dev", layout.bridge]).stdout
    for cidr in addresses:
        if f" {cidr} " not in present:
            run(["ip", "addr", "add", cidr, "dev", layout.bridge])
    run(["ip", "link", "set", layout.bridge, "up"])


def bridge_down(layout: Layout) -> None:
    if _link_exists(layout.bridge):
        run(["ip", "link", "del", layout.bridge])


def netns_up(layout: Layout, name: str, veth_host: str, cidr: str, routes: list[str]) -> None:
    """A namespace with one veth on the bridge, one address and only the routes it is given (no default)."""
    if not netns_exists(name):
        run(["ip", "netns", "add", name])
    if not _link_exists(veth_host):
        peer = f"{veth_host}p"
        run(["ip", "link", "add", veth_host, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", name])
        run(["ip", "-n", name, "link", "set", peer, "name", "eth0"])
        run(["ip", "link", "set", veth_host, "master", layout.bridge])
        run(["ip", "link", "set", veth_host, "up"])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    if f" {cidr} " not in run(["ip", "-n", name, "-o", "-4", "addr", "show", "dev", "eth0"]).stdout:
        run(["ip", "-n", name, "addr", "add", cidr, "dev", "eth0"])
    run(["ip", "-n", name, "link", "set", "eth0", "up"])
    for route in routes:
        run(["ip", "-n", name, "route", "replace", route, "dev", "eth0"])


def netns_down(name: str, veth_host: str) -> None:
    if _link_exists(veth_host):
        run(["ip", "link", "del", veth_host])
    if netns_exists(name):
        _kill_netns_processes(name)
        run(["ip", "netns", "del", name])


def _kill_netns_processes(name: str) -> None:
    """Nothing may outlive its namespace: stop what still runs in it (by PID, as `ip netns pids` lists them)."""
    from .shell import stop_pids

    stop_pids([int(pid) for pid in run(["ip", "netns", "pids", name], check=False).stdout.split()
               if int(pid) != os.getpid()], timeout=10)


def netns_names(layout: Layout) -> list[str]:
    root = Path("/run/netns")
    return sorted(p.name for p in root.iterdir() if p.name.startswith(f"{layout.prefix}-")) if root.exists() else []


def client_veth(layout: Layout) -> str:
    return f"{layout.prefix}cl"


def rack_client_veth(layout: Layout, rack: str) -> str:
    return f"{layout.prefix}r{RACKS.index(rack)}"


def broker_veth(layout: Layout, broker_id: int) -> str:
    return f"{layout.prefix}k{broker_id}"
