"""Bringing a lab instance up and down, and changing it while it runs (hosts, brokers)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import hosts, kafka, kafka_versions, net, rootfs
from .layout import BROKER_IDS, DEBIAN_RELEASES, DEFAULT_RELEASE, RACKS, Layout
from .shell import pid_alive, say, stop_pids
from .state import Host, LabState, RackClient


@dataclass(frozen=True)
class HostSpec:
    """NAME[:RACK][@GROUP[+GROUP]][%RELEASE] as given on the command line, e.g. ``gw1:rack-a@gateways`` or
    ``gw2:rack-b@gateways%trixie`` (the Debian release the host boots; bookworm by default)."""

    name: str
    rack: str | None
    groups: tuple[str, ...]
    release: str = DEFAULT_RELEASE

    @classmethod
    def parse(cls, text: str) -> "HostSpec":
        text, _, release = text.partition("%")
        text, _, groups = text.partition("@")
        name, _, rack = text.partition(":")
        if not name.isidentifier() and not name.replace("-", "").isalnum():
            raise ValueError(f"bad host name {name!r}")
        release = release or DEFAULT_RELEASE
        if release not in DEBIAN_RELEASES:
            raise ValueError(f"host {name}: unknown Debian release {release!r}, the lab knows {', '.join(DEBIAN_RELEASES)}")
        return cls(name, rack or None, tuple(g for g in groups.split("+") if g), release)


DEFAULT_HOSTS = ("gw1:rack-a@gateways", "gw2:rack-b@gateways", "gw3:rack-c@gateways")


class Timer:
    def __init__(self, state: LabState) -> None:
        self.state = state

    def __call__(self, phase: str):
        timer = self

        class _Phase:
            def __enter__(self):
                self.start = time.monotonic()

            def __exit__(self, *exc):
                timer.state.timings[phase] = round(time.monotonic() - self.start, 1)

        return _Phase()


def _new_state(layout: Layout, kafka_version: str) -> LabState:
    return LabState(
        instance=layout.instance, bridge=layout.bridge, client_netns=layout.client_netns,
        client_address=layout.client_ip, controller_address=layout.controller_host_ip,
        gateway_addresses=layout.gateway_addresses, ssh_key=str(layout.ssh_key),
        kafka_home=str(kafka.kafka_home(kafka_version)), cluster_id=kafka.new_cluster_id(), kafka_version=kafka_version,
    )


class KafkaVersionMismatch(RuntimeError):
    """The instance runs another Kafka: its brokers' storage was formatted by that release."""


def up(layout: Layout, host_specs: Iterable[HostSpec], kafka_version: str | None = None) -> LabState:
    """Idempotent: what already runs is kept, what is missing is started. kafka_version: see lab.kafka_versions."""
    kafka_version = kafka_versions.selected(kafka_version)
    if LabState.exists(layout.instance):
        state = LabState.load(layout.instance)
        if state.kafka_version != kafka_version:
            raise KafkaVersionMismatch(
                f"lab instance {layout.instance} runs Kafka {state.kafka_version or 'of an older checkout'}, not "
                f"{kafka_version}: take it down first (python -m lab --instance {layout.instance} down)")
    else:
        state = _new_state(layout, kafka_version)
    state.timings = {}
    timed = Timer(state)
    with timed("jars"):
        kafka.ensure_jars(kafka_version)
    host_specs = list(host_specs)
    with timed("rootfs"):
        for release in sorted({spec.release for spec in host_specs} or {DEFAULT_RELEASE}):
            rootfs.ensure_rootfs(release)
    with timed("network"):
        net.bridge_up(layout)
        for broker_id in BROKER_IDS:
            net.netns_up(
                layout, layout.broker_netns(broker_id), net.broker_veth(layout, broker_id),
                f"{layout.broker_ip(broker_id)}/24", routes=[str(layout.host_net)],
            )
        # The client namespace gets the host network only: no route to any broker.
        net.netns_up(layout, layout.client_netns, net.client_veth(layout), f"{layout.client_ip}/24", routes=[])
        state.rack_clients = rack_clients_up(layout)
        hosts.ensure_ssh_key(layout)
    state.save()
    with timed("brokers"):
        start_brokers(layout, state)
    with timed("hosts"):
        booted = add_hosts(layout, state, host_specs)
        for host in state.hosts:
            if host not in booted and host.pid and pid_alive(host.pid):
                hosts.ensure_rack_client_route(layout, state, host)
    state.save()
    return state


def rack_clients_up(layout: Layout) -> list[RackClient]:
    """A client namespace per rack, in the rack's own client network, routed on-link to the host network only (where
    the gateway hosts and the controller's gateway addresses are): like the client namespace, no route to any broker."""
    clients = []
    for rack in RACKS:
        network = layout.rack_client_net(rack)
        client = RackClient(rack, layout.rack_client_netns(rack), layout.rack_client_ip(rack), str(network))
        net.netns_up(layout, client.netns, net.rack_client_veth(layout, rack), f"{client.address}/{network.prefixlen}",
                     routes=[str(layout.host_net)])
        clients.append(client)
    return clients


def start_brokers(layout: Layout, state: LabState, only: Iterable[int] = BROKER_IDS) -> None:
    running = {b.id: b for b in state.brokers if b.pid and pid_alive(b.pid)}
    fresh = [broker_id for broker_id in only if broker_id not in running]
    changed = [broker_id for broker_id in only if broker_id in running and not kafka.config_is_current(layout, broker_id)]
    # The brokers not running are formatted side by side (a JVM each, about 1.5 s) and started together; the quorum
    # forms once they are all up, whatever order they start in.
    with ThreadPoolExecutor(max(1, len(fresh))) as pool:
        list(pool.map(lambda broker_id: kafka.prepare_broker(layout, broker_id, state.cluster_id, state.kafka_version),
                      fresh))
    for broker_id in fresh:
        _start_broker(layout, state, broker_id)
    for broker_id in changed:  # one at a time, so the quorum and every partition's ISR survive
        say(f"broker {broker_id}: configuration changed, restarting it")
        stop_broker(state, broker_id)
        kafka.prepare_broker(layout, broker_id, state.cluster_id, state.kafka_version)
        _start_broker(layout, state, broker_id)
        kafka.wait_for_brokers(state.bootstrap_servers, expected=len(BROKER_IDS))
    racks = kafka.wait_for_brokers(state.bootstrap_servers, expected=len(BROKER_IDS))
    say("brokers ready: " + ", ".join(f"{i}@{racks[i]}" for i in sorted(racks)))


def _start_broker(layout: Layout, state: LabState, broker_id: int) -> None:
    broker = kafka.start_broker(layout, broker_id, state.kafka_version)
    say(f"broker {broker_id} ({broker.rack}) starting at {broker.endpoint} in netns {broker.netns}, pid {broker.pid}")
    state.brokers = sorted([b for b in state.brokers if b.id != broker_id] + [broker], key=lambda b: b.id)
    state.save()


def stop_broker(state: LabState, broker_id: int) -> None:
    broker = state.broker(broker_id)
    say(f"stopping broker {broker_id} (pid {broker.pid})")
    kafka.stop_broker(broker)
    state.save()


def stop_all_brokers(state: LabState) -> None:
    """Signal every broker at once: stopped one by one, the last ones wait for a controller quorum that is gone."""
    running = [b for b in state.brokers if b.pid and pid_alive(b.pid)]
    say("stopping brokers " + ", ".join(f"{b.id} (pid {b.pid})" for b in running))
    stop_pids([broker.pid for broker in running], timeout=kafka.STOP_TIMEOUT_S)
    for broker in running:
        broker.pid = None
    state.save()


def add_hosts(layout: Layout, state: LabState, specs: Iterable[HostSpec]) -> list[Host]:
    booted: list[Host] = []
    for spec in specs:
        existing = next((h for h in state.hosts if h.name == spec.name), None)
        if existing and existing.pid and pid_alive(existing.pid):
            continue
        if existing:
            state.hosts.remove(existing)
        used = {h.address for h in state.hosts}
        address = next(a for a in (layout.nspawn_host_ip(i) for i in range(200)) if a not in used)
        root = rootfs.ensure_rootfs(spec.release)
        host = Host(spec.name, address, spec.rack, list(spec.groups), layout.machine_name(spec.name), spec.release)
        state.hosts.append(host)
        hosts.boot(layout, state, root, host)
        say(f"host {host.name} booting {host.release} at {host.address} (rack {host.rack or '-'}, groups {host.groups}), "
            f"pid {host.pid}")
        booted.append(host)
        state.save()
    hosts.write_known_hosts(layout, state)
    for host in booted:
        hosts.wait_for_ssh(state, host)
        hosts.stamp(layout, host, "answers ssh")
        say(f"host {host.name} up: ssh root@{host.address}")
    return booted


def remove_hosts(layout: Layout, state: LabState, names: Iterable[str]) -> None:
    """Shut the named hosts down together and forget them."""
    going = [state.host(name) for name in dict.fromkeys(names)]
    if not going:
        return
    say("shutting down hosts " + ", ".join(f"{host.name} (pid {host.pid})" for host in going))
    hosts.shutdown(layout, going)
    for host in going:
        state.hosts.remove(host)
    state.save()
    hosts.write_known_hosts(layout, state)


def down(layout: Layout) -> None:
    """Stop everything of this instance: hosts, brokers, namespaces, the bridge, cgroups, state."""
    state = LabState.load(layout.instance) if LabState.exists(layout.instance) else None
    if state:
        remove_hosts(layout, state, [host.name for host in state.hosts])
        stop_all_brokers(state)
    for broker_id in BROKER_IDS:
        net.netns_down(layout.broker_netns(broker_id), net.broker_veth(layout, broker_id))
    net.netns_down(layout.client_netns, net.client_veth(layout))
    for rack in RACKS:
        net.netns_down(layout.rack_client_netns(rack), net.rack_client_veth(layout, rack))
    net.bridge_down(layout)
    hosts.remove_instance_cgroups(layout)
    if layout.state_dir.exists():
        import shutil

        # Keep the logs of a failed run around for whoever reads them next; everything else goes.
        for child in layout.state_dir.iterdir():
            if child.name not in ("logs", "ssh"):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    say(f"lab instance {layout.instance} is down")
