"""What a running lab is: written by ``lab up``, read by the tests, molecule and ``lab status``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .layout import DEFAULT_RELEASE, SASL_PORT, Layout


@dataclass
class Broker:
    id: int
    address: str
    port: int
    rack: str
    netns: str
    pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass
class RackClient:
    """A client namespace in one rack: its address is in the rack's client network, which the gateway's
    GATEWAY_CLIENT_RACK_NETWORKS (the inventory's gateway_client_networks) names."""

    rack: str
    netns: str
    address: str
    network: str


@dataclass
class Host:
    name: str
    address: str
    rack: str | None
    groups: list[str]
    machine: str
    release: str = DEFAULT_RELEASE
    pid: int | None = None


@dataclass
class LabState:
    instance: int
    bridge: str
    client_netns: str
    client_address: str
    controller_address: str
    gateway_addresses: list[str]
    ssh_key: str
    kafka_home: str
    cluster_id: str
    brokers: list[Broker] = field(default_factory=list)
    hosts: list[Host] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # The Apache Kafka release the brokers and the Java tools (java_classpath) run; "" in a state written before the
    # lab had the setting.
    kafka_version: str = ""
    # One client namespace per rack; [] in a state written before the lab had them (`lab up` adds them).
    rack_clients: list[RackClient] = field(default_factory=list)

    # --- persistence -------------------------------------------------------------------------------------------
    @classmethod
    def path(cls, instance: int = 0) -> Path:
        return Layout(instance).state_file

    @classmethod
    def load(cls, instance: int | None = None) -> "LabState":
        """The running lab's state; instance defaults to $KGW_LAB_INSTANCE or 0."""
        if instance is None:
            instance = int(os.environ.get("KGW_LAB_INSTANCE", "0"))
        raw = json.loads(cls.path(instance).read_text())
        raw["brokers"] = [Broker(**b) for b in raw.get("brokers", [])]
        raw["hosts"] = [Host(**h) for h in raw.get("hosts", [])]
        raw["rack_clients"] = [RackClient(**c) for c in raw.get("rack_clients", [])]
        return cls(**raw)

    @classmethod
    def exists(cls, instance: int = 0) -> bool:
        return cls.path(instance).exists()

    def save(self) -> None:
        path = self.path(self.instance)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    # --- what tests ask for ------------------------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        return Layout(self.instance)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(b.endpoint for b in self.brokers)

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The brokers' SASL_PLAINTEXT (PLAIN) listener; users and passwords in lab.layout.SASL_USERS."""
        return ",".join(f"{b.address}:{SASL_PORT}" for b in self.brokers)

    def broker(self, broker_id: int) -> Broker:
        return next(b for b in self.brokers if b.id == broker_id)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def hosts_in(self, group: str) -> list[Host]:
        return [h for h in self.hosts if group in h.groups]

    def client_cmd(self, argv: list[str], rack: str | None = None) -> list[str]:
        """argv run inside the client namespace, or the one of `rack`: neither can route to any broker."""
        netns = self.rack_client(rack).netns if rack else self.client_netns
        return ["ip", "netns", "exec", netns, *argv]

    def rack_client(self, rack: str) -> RackClient:
        return next(c for c in self.rack_clients if c.rack == rack)

    @property
    def client_networks(self) -> dict[str, list[str]]:
        """Rack -> its client networks: the inventory's gateway_client_networks."""
        return {c.rack: [c.network] for c in self.rack_clients}

    def ssh_cmd(self, host: str, command: str) -> list[str]:
        return ["ssh", *self.ssh_options(), f"root@{self.host(host).address}", command]

    @property
    def ssh_known_hosts(self) -> str:
        """Every lab host's own host key under its address (written by the lab as hosts boot and go)."""
        return str(Path(self.ssh_key).parent / "known_hosts")

    def ssh_options(self) -> list[str]:
        return [
            "-i", self.ssh_key, "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.ssh_known_hosts}",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        ]

    @property
    def java_classpath(self) -> str:
        return f"{self.kafka_home}/libs/*"
