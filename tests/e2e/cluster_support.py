"""Helpers of the gateway-cluster e2e tests: fresh cluster ids, gateway node processes, raw Metadata."""

from __future__ import annotations

import asyncio
import struct
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import ElectionType
from confluent_kafka.admin import AdminClient

from lab import frames, gateway_process
from lab.gateway_process import CLUSTER_HTTP_PORT as HTTP_PORT, CLUSTER_PORT_START as PORT_START
from lab.gateway_process import ClusterNode  # noqa: F401  (the tests import it from here)
from lab.polling import wait_until  # noqa: F401  (re-exported to the tests)

REPO = Path(__file__).resolve().parents[2]
OFFSETS_TOPIC = "__consumer_offsets"


@pytest.fixture
def cluster_id(lab):
    """A fresh gateway cluster id per test; its members topic and group are deleted afterwards."""
    cid = f"t-{uuid.uuid4().hex[:8]}"
    yield cid
    forget_cluster(lab, cid)


def forget_cluster(lab, cid: str) -> None:
    """Delete a test cluster's members topic and group."""
    gateway_process.forget_cluster(lab.bootstrap_servers, cid)


def offsets_partitions(lab) -> dict:
    """__consumer_offsets's partition metadata by partition. Kafka creates the topic on the first group
    lookup, so on a lab where no group was looked up yet this looks one up and waits for the topic."""
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})

    def partitions() -> dict | None:
        topic = admin.list_topics(OFFSETS_TOPIC, timeout=10).topics.get(OFFSETS_TOPIC)
        return topic.partitions if topic is not None and topic.error is None and topic.partitions else None

    if partitions() is None:
        admin.describe_consumer_groups(["kgw-test-offsets-topic"], request_timeout=10)["kgw-test-offsets-topic"].exception()
        wait_until(lambda: partitions() is not None, 30, f"{OFFSETS_TOPIC} to exist", 0.5)
    return partitions()


def offsets_leaders(lab) -> dict[int, int]:
    """Leader broker of each __consumer_offsets partition: the coordinator of the groups mapped to it."""
    return {p: m.leader for p, m in offsets_partitions(lab).items()}


def elect_preferred_leaders(lab) -> None:
    """Every partition back to its preferred replica, as Kafka's auto leader rebalance does every 5 minutes:
    until then a broker that has restarted leads nothing, and coordinates no group."""
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})  # a new client: none of its requests timed out
    admin.elect_leaders(ElectionType.PREFERRED, None).result()  # partitions that cannot move yet are reported, not raised


def offsets_partition(group: str, partitions: int) -> int:
    """The __consumer_offsets partition whose leader coordinates `group`: Kafka's
    Utils.abs(group.hashCode()) % partitions, with Java's String.hashCode over UTF-16 code units."""
    code = 0
    for unit in struct.unpack(f">{len(group.encode('utf-16-be')) // 2}H", group.encode("utf-16-be")):
        code = (31 * code + unit) & 0xFFFFFFFF
    signed = code - (1 << 32) if code >= 1 << 31 else code
    return (0 if signed == -(1 << 31) else abs(signed)) % partitions


def metadata_brokers(host: str, port: int = PORT_START, timeout_s: float = 3.0) -> dict[int, tuple[str, int, str | None]]:
    """Ask one gateway node for Metadata v12 on a fresh connection: broker id -> (host, port, rack)."""
    return frames.metadata_brokers(host, port, timeout_s, "cluster-test")


def http_get(host: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{host}:{HTTP_PORT}{path}", timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class PortForwarder:
    """A plain TCP load balancer for the external-LB test: each connection to listen_host:port goes to
    the next backend in turn on the same port (what the HAProxy role does, without health checks)."""

    def __init__(self, listen_host: str, ports: range, backends: list[str]) -> None:
        self.listen_host, self.ports, self.backends = listen_host, ports, backends
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()  # both ends of every open connection
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "PortForwarder":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            # the connections still open end here, on their loop, rather than as pending coroutines that the
            # garbage collector finds later in another test after the loop is gone: closing both ends of each ends
            # its pipes as a peer's close would
            for writer in self._writers:
                writer.close()
            forwards = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            await asyncio.wait_for(asyncio.gather(*forwards, return_exceptions=True), 5)
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        for port in self.ports:
            self._servers.append(await asyncio.start_server(
                lambda r, w, port=port: self._forward(r, w, port), self.listen_host, port, reuse_address=True))

    async def _forward(self, client_reader, client_writer, port: int) -> None:
        backend = self.backends[self._next % len(self.backends)]
        self._next += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(backend, port)
        except OSError:
            client_writer.close()
            return
        ends = {client_writer, upstream_writer}
        self._writers |= ends
        try:
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        finally:
            self._writers -= ends


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
