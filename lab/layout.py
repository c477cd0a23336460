"""Names, addresses and paths of one lab instance, derived from its number alone.

Instance ``n`` (0..127) owns the bridge ``kgw{n}br``, the host network 198.18.{2n}.0/24, the Kafka network
198.18.{2n+1}.0/24 and the rack client networks 198.19.{n}.0/24 (a /26 per rack: rack-a .0, rack-b .64, rack-c .128)
— all inside 198.18.0.0/15, the range set aside for this kind of lab: the first two fill 198.18.0.0/16, the third
198.19.0.0/16, so no two instances share an address. Every network shares the instance's bridge; what keeps the
client namespaces away from the brokers is routing: they have no route to the Kafka network.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

# Lab hosts boot from a Debian root file system per release: bookworm (Python 3.11) by default, trixie (Python 3.13)
# for a mixed fleet ("NAME%trixie"); each is built once with debootstrap and cached.
DEBIAN_RELEASES = ("bookworm", "trixie")
DEFAULT_RELEASE = "bookworm"
RACKS = ("rack-a", "rack-b", "rack-c")
RACK_CLIENT_NET_PREFIX = 26  # four per instance's /24: one for each rack, one spare
BROKER_IDS = (1, 2, 3)


def broker_rack(broker_id: int) -> str:
    """The rack of a lab broker (`broker.rack`): one broker per rack."""
    return RACKS[BROKER_IDS.index(broker_id)]


BROKER_PORT = 9092
CONTROLLER_PORT = 9093
# A second client listener with SASL/PLAIN, for proving SASL end to end: the gateway's own connections
# authenticate as "gateway", clients' SASL handshakes are relayed untouched. Lab-only secrets.
SASL_PORT = 9094
SASL_USERS = {"gateway": "gateway-lab-secret", "alice": "alice-lab-secret"}
# GATEWAY_CLUSTER_SECRET of every gateway node the tests, bench and soak start (inventory/lab has the same).
CLUSTER_SECRET = "lab-cluster-secret-0123456789"

# Downloads (jars, root file system) outlive labs and clones; KGW_LAB_CACHE moves them, e.g. to time a cold start.
CACHE_DIR = Path(os.environ.get("KGW_LAB_CACHE", "/var/cache/kgw-lab"))
STATE_ROOT = Path("/var/lib/kgw-lab")
REPO_DIR = Path(__file__).resolve().parent.parent

# Packages every lab host gets: what Ansible needs to manage it, and what the roles install from "local" repos on
# real bare metal (haproxy, prometheus/promtool) — the hosts have no internet, as in a locked-down data centre.
ROOTFS_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-venv", "python3-apt",
    "iproute2", "procps", "ca-certificates", "curl", "kcat", "haproxy", "prometheus", "sudo", "less",
)
# Units Debian enables on install that a fresh host must not run until a role asks for them.
ROOTFS_DISABLED_UNITS = (
    "haproxy.service", "prometheus.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "e2scrub_all.timer", "fstrim.timer",
)


@dataclass(frozen=True)
class Layout:
    instance: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.instance < 128:
            raise ValueError("lab instance must be 0..127 (two /24s each in 198.18.0.0/16, one in 198.19.0.0/16)")

    # --- names -------------------------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"kgw{self.instance}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def broker_netns(self, broker_id: int) -> str:
        return f"{self.prefix}-kafka{broker_id}"

    @property
    def client_netns(self) -> str:
        return f"{self.prefix}-client"

    def rack_client_netns(self, rack: str) -> str:
        """The client namespace of one rack (`kgw0-rack-a`): its address is in that rack's client network."""
        return f"{self.prefix}-{rack}"

    def machine_name(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    # --- addresses ---------------------------------------------------------------------------------------------
    @property
    def host_net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"198.18.{2 * self.instance}.0/24")

    @property
    def kafka_net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"198.18.{2 * self.instance + 1}.0/24")

    def host_ip(self, last_octet: int) -> str:
        return str(self.host_net.network_address + last_octet)

    @property
    def controller_host_ip(self) -> str:
        """The machine running the lab, on the host network (Ansible's controller)."""
        return self.host_ip(1)

    @property
    def controller_kafka_ip(self) -> str:
        return str(self.kafka_net.network_address + 1)

    @property
    def gateway_addresses(self) -> list[str]:
        """Addresses on the controller for gateway processes that tests run without a host around them."""
        return [self.host_ip(i) for i in range(2, 10)]

    @property
    def client_ip(self) -> str:
        return self.host_ip(250)

    @property
    def rack_client_block(self) -> ipaddress.IPv4Network:
        """Every rack client network of the instance: the hosts route it on-link, so their answers find the clients."""
        return ipaddress.IPv4Network(f"198.19.{self.instance}.0/24")

    def rack_client_net(self, rack: str) -> ipaddress.IPv4Network:
        """One rack's client network: the rack's entry in the inventory's `gateway_client_networks`."""
        return list(self.rack_client_block.subnets(new_prefix=RACK_CLIENT_NET_PREFIX))[RACKS.index(rack)]

    def rack_controller_ip(self, rack: str) -> str:
        """The controller's address in a rack client network (.1): the bridge's route to that network."""
        return str(self.rack_client_net(rack).network_address + 1)

    def rack_client_ip(self, rack: str) -> str:
        return str(self.rack_client_net(rack).network_address + 10)

    @property
    def client_networks(self) -> dict[str, list[str]]:
        """The inventory's `gateway_client_networks`: each rack and the client networks in it."""
        return {rack: [str(self.rack_client_net(rack))] for rack in RACKS}

    def broker_ip(self, broker_id: int) -> str:
        return str(self.kafka_net.network_address + 10 + broker_id)

    def nspawn_host_ip(self, index: int) -> str:
        """Address of the index-th lab host (0-based): .11 upwards."""
        if not 0 <= index < 200:
            raise ValueError("at most 200 lab hosts")
        return self.host_ip(11 + index)

    # --- paths -------------------------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / str(self.instance)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "ssh" / "known_hosts"

    @property
    def cgroup_name(self) -> str:
        return f"kgw-lab-{self.instance}"
