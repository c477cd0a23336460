"""One client connection and its broker connection.

A pair knows the node only through `Routes` (proxy/routes.py: the broker its port stands for, how to
dial it, the addresses the rewriters advertise), its `Rules` (limits, reserved names) and `Incidents`
(what is counted and logged), and tells its owner (proxy/server.py) that it opened and ended through
the on_open / on_close callbacks.

Requests flow client -> broker untouched; each one that expects a response leaves an in-flight
entry (correlation id, API, version, whether the response needs rewriting). Kafka answers in
order on a connection, so the response at the head of the queue is always the oldest entry's.
Responses that need no rewrite stream through as they arrive; the others are assembled, rewritten
and written in the same callback, which keeps pipelined responses in order.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import fcntl
import logging
import socket
import struct
import termios
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..client_networks import ClientNetworks
from ..close_reasons import CloseReason
from ..protocol.api_keys import API_VERSIONS, FETCH, METADATA, PRODUCE
from ..protocol.api_versions import unsupported_version_body
from ..protocol.api_versions_request import client_software, names_node, names_software, without_node
from ..protocol.endpoints_in_place import rewrite_in_place
from ..protocol.fetch_rack import carries_rack, with_rack
from ..protocol.headers import (
    CORRELATION, SIZE, MalformedFrame, read_request_header, response_body_offset, response_header_is_flexible,
)
from ..protocol.message_specs import UnknownMessage
from ..protocol.metadata_request import forbid_auto_creation
from ..protocol.produce_stream import FIRST_FLEXIBLE_PRODUCE, ProduceRequestReader
from ..protocol.policy import api_versions_known, relay_handling
from ..protocol.refusal import Unanswerable, refusal_body
from ..protocol.reserved import Reserved, ReservedNames, request_checker
from ..protocol.wire import I16, WireError, compact_length
from ..protocol.rewriting import REWRITERS
from ..metrics import ApiMetrics, Metrics, Tally
from ..broker_addresses import BrokerInfo
from .framing import HEAD_LIMIT, Decision, FrameStream
from .splice import READ_SIZE, REQUEST_HEAD_READ, BrokerReading, ClientReading, reader_for
from .incidents import Incidents
from .routes import Routes, UpstreamError

log = logging.getLogger(__name__)

# Why a client's reading is paused (several can hold at once; reading resumes when none does).
PAUSED_CONNECTING, PAUSED_BROKER, PAUSED_IN_FLIGHT, PAUSED_HANDOVER, PAUSED_CLIENT_NOT_READING = 1, 2, 4, 8, 16
WRITE_HIGH_WATER = 4 * 1024 * 1024
LOW_WATER_MIN = 32 * 1024  # a frame's rest below this is not worth a setsockopt
LOW_WATER_MAX = 256 * 1024  # what the event loop reads at once
# The first read of a Fetch response on a spliced pair. One that comes whole in it (an empty answer, a few small
# records: what a consumer keeping up gets) is relayed like any other response, one read and one write; splicing
# it cost two epoll_ctl, two sends and a walk of its headers (py-spy under EndToEndLatency). A larger one has at
# most this much read into user space before its record sets are spliced.
FETCH_FIRST_READ = 16 * 1024
# Produce requests at least this large have their records spliced on a plaintext pair (proxy/splice.py). Below it
# copying costs the node less CPU: measured with bench/produce_relay.py (results/bench-produce-relay.json), splicing
# cost 1.33x the copy's CPU per GB at 128 kB requests, 1.5x at 256 kB, 1.0x at 384 kB, 0.75x at 512 kB, 0.67x at 1 MB.
PRODUCE_SPLICE_MIN_BYTES = 512_000

_setsockopt = ctypes.CDLL(None, use_errno=True).setsockopt


@dataclass(slots=True)
class InFlight:
    correlation_id: int
    api_key: int
    api_version: int
    rewrite: bool
    started: float
    api: ApiMetrics
    refusal: bytes | None = None  # the gateway's own answer (a refused request), written in turn
    names_reserved: bool = False  # a Metadata request that asked for reserved topics by name
    request_body: bytes | None = None  # a Metadata request's body: its answer's rewrite may be reused (Routes)


class ReadLowWater:
    """SO_RCVLOWAT of one plain-TCP socket, following the frame being relayed.

    While the rest of a large frame is on its way, the kernel is told to wake us only once that much
    (at most LOW_WATER_MAX) has arrived: a 128 KiB produce request is then one read and one write
    instead of one per few arriving segments. At a frame boundary it is back to 1 byte, so nothing
    ever waits for bytes that are not coming. Not used under TLS, where socket bytes are not frame bytes.
    Linux's SO_RCVLOWAT for TCP also wakes at EOF/errors and grows the receive buffer to fit the mark.
    """

    __slots__ = ("fd", "mark", "_value")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mark = 1
        self._value = ctypes.c_int(1)

    @classmethod
    def of(cls, transport: asyncio.Transport, tls: bool) -> "ReadLowWater | None":
        sock = None if tls else transport.get_extra_info("socket")
        return cls(sock.fileno()) if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) else None

    def follow(self, pending: int) -> None:
        mark = 1 if pending < LOW_WATER_MIN else min(pending, LOW_WATER_MAX)
        if mark != self.mark:
            self.mark = mark
            self._value.value = mark
            _setsockopt(self.fd, socket.SOL_SOCKET, socket.SO_RCVLOWAT, ctypes.byref(self._value), 4)


def unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes that have arrived on the transport's socket and that the event loop has not read yet (FIONREAD);
    0 when it has no socket to ask."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except OSError:  # closed under us: nothing more will be read from it either
        return 0
    return count[0]


class _Truncated(Exception):
    """The bytes at hand end before a request's last topic or group name (or do not match its schema)."""


class AssemblyBudget:
    """Bytes of requests the node's connections hold whole at once (GATEWAY_MAX_ASSEMBLED_BYTES_TOTAL)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


@dataclass(frozen=True, slots=True)
class Rules:
    """What every client connection of the node enforces (from the settings, see Gateway)."""

    max_frame_bytes: int
    max_in_flight: int
    max_assembled_bytes: int
    reserved: ReservedNames  # the gateway cluster's own topic and group
    client_tls: bool = False  # socket bytes are not frame bytes (no ReadLowWater)
    assembly: AssemblyBudget = AssemblyBudget(2**62)  # shared by all connections of a node
    client_networks: ClientNetworks = ClientNetworks()  # a client's rack, from its source address
    rack_software: frozenset[str] = frozenset()  # client software given that rack (it follows preferred replicas)
    splice: bool = False  # Fetch responses and Produce records of plaintext pairs are spliced (GATEWAY_SPLICE)


def produce_expects_response(frame: memoryview, body_offset: int, api_version: int) -> bool:
    """acks=0 produce requests get no response, so they must not wait in the queue."""
    if api_version >= FIRST_FLEXIBLE_PRODUCE:  # transactional_id: a nullable compact string
        length, size = compact_length(frame, body_offset)
    else:
        (length,), size = I16.unpack_from(frame, body_offset), 2
    offset = body_offset + size + max(length, 0)
    if offset + 2 > len(frame):
        raise IndexError("produce header runs past the bytes at hand")
    (acks,) = I16.unpack_from(frame, offset)
    return acks != 0


class ClientRewriteContext:
    """The RewriteContext (protocol/context.py) as one client connection sees it: the node's routes, plus
    this connection's own record of the coordinator lookups it was refused (once per connection and
    reset window, see gateway_app/cluster/topology.py)."""

    __slots__ = ("_routes", "_metrics", "_refused", "reserved", "names_reserved")

    def __init__(self, routes: Routes, reserved: ReservedNames, metrics: Metrics) -> None:
        self._routes = routes
        self._metrics = metrics
        self.reserved = reserved
        self.names_reserved = False  # set per response: did its request name reserved topics?
        self._refused: dict[int, float] = {}  # broker id -> the reset window it was refused in

    def report(self, broker: BrokerInfo) -> tuple[str, int] | None:
        return self._routes.report(broker)

    def endpoint(self, broker_id: int) -> tuple[str, int] | None:
        return self._routes.endpoint(broker_id)

    def coordinator_available(self, broker_id: int) -> bool:
        return self._routes.coordinator_available(broker_id, self._refused)

    def hidden(self, count: int) -> None:
        self._metrics.reserved_hidden.inc(count)

    def redacted(self, count: int) -> None:
        self._metrics.configs_redacted.inc(count)


def _always(pair: "ConnectionPair") -> bool:
    return True


def _nothing(pair: "ConnectionPair") -> None:
    return None


class ConnectionPair:
    """One client connection on `port` and, from its first request on, its broker connection.

    It depends on the node only through `routes` (where to connect, what to advertise), `rules` (limits,
    reserved names), `incidents` (what is counted and logged) and two callbacks of its owner: `on_open`
    admits it when the client is accepted (False: over a connection limit, it closes at once) and
    `on_close` is told once when it ends.
    """

    def __init__(self, routes: Routes, rules: Rules, incidents: Incidents, port: int, peer: str | None,
                 on_open: Callable[["ConnectionPair"], bool] = _always,
                 on_close: Callable[["ConnectionPair"], None] = _nothing) -> None:
        self.routes = routes
        self.rules = rules
        self.incidents = incidents
        self.metrics = incidents.metrics
        self._on_open = on_open
        self._on_close = on_close
        self.rewrite_context = ClientRewriteContext(routes, rules.reserved, incidents.metrics)
        self.port = port
        self.broker_id = routes.broker_for_port(port)
        self.peer = peer
        self.source = ""  # the client's address, connection limits count by it (set by register)
        self.client_rack: str | None = None  # decided once, at admission, from the source address
        self._rack_given = False  # Fetch requests get client_rack: once its ApiVersions named software that follows
        self._rack_assigned: Tally | None = None  # counts this connection's Fetch requests given client_rack
        self._fetch_bytes: Tally | None = None  # by (client rack, broker rack), resolved at the first response
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.upstream_label = "bootstrap"
        self.in_flight: deque[InFlight] = deque()
        self.closed = False
        self.handing_over = False  # proxy/handover.py: closes at its first quiet moment, as in a drain
        self.reading_stopped = False  # no new requests are read (a handover that found no quiet moment)
        self.closing_when_idle = False  # the node drains (server.drain): close at the first quiet moment
        self._early: list[bytes] = []  # checked client frames that arrived before the broker connection
        self._refusals = 0  # refusals queued in in_flight behind responses still to come from the broker
        self.accepted = time.monotonic()
        self.last_request: float | None = None  # None until the first complete request
        self.write_paused_since: float | None = None  # the client reads nothing of what we write
        self._connecting = False
        self._paused = 0  # why the client's reading is paused: bits of PAUSED_*
        self._in_flight_cap = rules.max_in_flight
        self._assembled_limit = rules.max_assembled_bytes
        self._assembling = 0  # bytes of the request being collected, taken from rules.assembly
        self._client_low_water: ReadLowWater | None = None
        self._upstream_low_water: ReadLowWater | None = None
        self._broker_reading: BrokerReading | None = None  # plaintext both ways, GATEWAY_SPLICE: read by us
        self._spliced_version = 0  # the version of the Fetch response being spliced
        self._client_reading: ClientReading | None = None  # from the first Produce request spliced on: read by us
        self._spliced_request_version = 0  # the version of the Produce request being spliced
        limit = rules.max_frame_bytes
        self.requests = FrameStream(limit, 8, self._decide_request, self._to_upstream, self._collected_request)
        self.responses = FrameStream(limit, 4, self._decide_response, self._to_client, self._rewrite_response,
                                     frames_as_views=True, sink_lines=self._lines_to_client)

    # --- lifecycle -------------------------------------------------------------------------

    def client_connected(self, transport: asyncio.Transport) -> None:
        self.client = transport
        if not self._on_open(self):  # over a connection limit: counted and logged there
            self.closed = True
            transport.abort()
            return
        self.client_rack = self.rules.client_networks.rack_of(self.source)
        if self.client_rack is not None:
            self._rack_assigned = self.metrics.racks.rack_assigned(self.client_rack)
        self._client_low_water = ReadLowWater.of(transport, self.rules.client_tls)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def _connect_on_first_request(self) -> None:
        """The broker connection is opened by the first request, not at accept: a silent socket costs
        the broker nothing. Reading pauses until it is up (what arrived so far waits in _early)."""
        self._connecting = True
        self._pause_client(PAUSED_CONNECTING)
        asyncio.ensure_future(self._connect_upstream())

    async def _connect_upstream(self) -> None:
        try:
            upstream, label = await self.routes.dial(self.broker_id, self.peer, lambda: UpstreamProtocol(self))
        except UpstreamError as error:
            self.incidents.upstream_failed(self, error)
            self.close()
            return
        except Exception as error:  # never let a connect problem escape into the loop
            self.incidents.upstream_failed(self, UpstreamError(CloseReason.CONNECT_FAILED, repr(error)))
            self.close()
            return
        if self.closed:  # the client left while we were connecting
            upstream.close()
            return
        self.upstream, self.upstream_label = upstream, label
        self._upstream_low_water = ReadLowWater.of(upstream, self.routes.upstream_ssl is not None)
        if self.rules.splice and not self.rules.client_tls and self._upstream_low_water is not None \
                and self._client_low_water is not None:  # both plain TCP sockets
            self._broker_reading = BrokerReading(self, upstream, self.client, self.metrics.spliced_bytes.inc,
                                                 self._upstream_low_water)
        self.metrics.upstream_connections_active.labels(label).inc()
        upstream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        early, self._early = self._early, []
        if early:
            upstream.writelines(early)
        self._resume_client(PAUSED_CONNECTING)

    def idle(self) -> bool:
        """No request waiting for its response and no frame half-received: safe to close."""
        return not self.in_flight and self._requests_at_boundary() and self._responses_at_boundary()

    def _requests_at_boundary(self) -> bool:
        return self.requests.at_boundary() and not (self._client_reading is not None and self._client_reading.busy)

    def _responses_at_boundary(self) -> bool:
        return self.responses.at_boundary() and not (self._broker_reading is not None and self._broker_reading.busy)

    def close_when_idle(self) -> bool:
        """Drain: close this connection at the first moment nothing is in flight either way and the client has
        sent nothing we have not read — now if it is so, else as the response that leaves nothing in flight is
        written. Requests keep being read and answered meanwhile. Returns whether it closed now.

        A request the client wrote after the last one we answered and that is already in our socket would be lost
        with the connection (a producer without retries is told NetworkException), so it is read and answered
        first; only one still on the wire as we close can meet the closed connection."""
        self.closing_when_idle = True
        return self._close_if_quiet()

    def quiet(self) -> bool:
        """Idle, and nothing the client sent waits unread in our socket (or we read nothing more): a close now
        loses only a request still on the wire."""
        if not self.idle():
            return False
        return self.reading_stopped or self.client is None or not unread_bytes(self.client)

    def _close_if_quiet(self) -> bool:
        if self.closed or not self.quiet():
            return False  # a request waiting unread is read and answered first
        self.close()
        return True

    def hand_over(self) -> bool:
        """A handover (proxy/handover.py): close at the first quiet moment, as the drain does, reading and answering
        requests meanwhile. Stopping reading first would lose every request the client wrote before it saw the close
        (a producer without retries is told NetworkException for each; one with retries logs a warning and sends it
        again). Returns whether it closed now."""
        self.handing_over = True
        return self.close_when_idle()

    def stop_reading(self) -> None:
        """Take no new requests (a handover that found no quiet moment): reading stops at the next request
        boundary, so what is in flight completes and idle() becomes true; requests the client sends meanwhile stay
        unread, and are lost with the connection."""
        self.reading_stopped = True
        if self._requests_at_boundary():
            self._pause_client(PAUSED_HANDOVER)

    def close(self) -> None:
        if self.closed:
            return
        self._let_go()
        for transport in (self.client, self.upstream):
            if transport is not None:
                transport.close()
        self._on_close(self)

    def abort(self) -> None:
        self._let_go()
        for transport in (self.client, self.upstream):
            if transport is not None:
                transport.abort()
        self._on_close(self)

    def _let_go(self) -> None:
        """Closed: what the pair holds besides its transports goes, its assembly budget and the sockets it reads."""
        self.closed = True
        self._release_assembly()
        for reading in (self._broker_reading, self._client_reading):
            if reading is not None:
                reading.close()

    # --- client -> broker --------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        # Frames are checked as they arrive, even before the broker connection is up (the first request
        # opens it, and pausing does not stop the rest of a read already under way): a bad frame is
        # refused and counted whether or not its sender hangs up before the broker answers our connect.
        try:
            self.requests.feed(data)
        except MalformedFrame as error:
            self.incidents.malformed(self, error)
            self.abort()
            return
        detached = self.requests.take_detached()
        if detached is not None and not self.closed:
            self._splice_request(detached)
            return  # the rest is the splice's (spliced_request_done)
        if self._client_low_water is not None and not self.closed:
            self._client_low_water.follow(self.requests.pending())
        if self.reading_stopped and self.requests.at_boundary():
            self._pause_client(PAUSED_HANDOVER)  # never resumed: the connection closes once idle

    def _decide_request(self, prefix: memoryview, size: int) -> Decision:
        frame = prefix[4:]
        incomplete = len(frame) < size
        try:
            api_key, api_version, correlation_id, body_offset = read_request_header(frame)
        except MalformedFrame:
            if incomplete:
                return Decision.NEED_MORE
            raise
        if api_key == API_VERSIONS and api_version > api_versions_known():
            return self._collect_request(size)  # answered here, as a broker answers it (_collected_request)
        if api_key == API_VERSIONS and names_node(api_version) and self.broker_id is None:
            return self._collect_request(size)  # the node it may name is cleared first (_collected_request)
        is_allowed, rewrite = relay_handling(api_key, api_version)
        if not is_allowed:
            raise MalformedFrame(CloseReason.API_NOT_ALLOWED, f"api key {api_key} v{api_version} is not relayed")
        if api_key == FETCH and self._rack_given and carries_rack(api_version) and self._collect_for_rack(size):
            return Decision.COLLECT  # rack_id filled in if the client named none (_collected_request)
        if api_key == API_VERSIONS and self.client_rack is not None:
            if names_software(api_version) and self._collect_for_rack(size):
                return Decision.COLLECT  # the client software it names decides _rack_given (_collected_request)
            self._give_rack(False)  # software that does not name itself is not known to follow
        try:
            expects_response = self._expects_response(frame, api_key, api_version, body_offset)
            self._check_names(frame, api_key, api_version, body_offset)
        except _Truncated:
            if incomplete and len(prefix) < min(4 + size, HEAD_LIMIT):
                return Decision.NEED_MORE  # the stream gives the whole head before the frame is held whole
            return self._collect_request(size)  # names past the head: decided on the whole frame
        except Reserved:
            return self._collect_request(size)  # refused; the refusal echoes the request
        request_body = None  # the key of a reusable rewrite of its answer (Routes.metadata_answers)
        if api_key == METADATA and not incomplete and body_offset is not None:
            request_body = bytes(frame[body_offset:])
        self._admit(api_key, api_version, correlation_id, size, rewrite, expects_response, request_body=request_body)
        if api_key == PRODUCE and size >= PRODUCE_SPLICE_MIN_BYTES and self._broker_reading is not None:
            self._spliced_request_version = api_version  # every name checked: its records move unread
            return Decision.DETACH
        return Decision.PASS

    def _collect_request(self, size: int) -> Decision:
        if size > self._assembled_limit:
            raise MalformedFrame(CloseReason.OVERSIZED_ASSEMBLY, f"request of {size} bytes must be checked whole; "
                                 f"GATEWAY_MAX_ASSEMBLED_BYTES is {self._assembled_limit}")
        if not self.rules.assembly.take(size):
            raise MalformedFrame(CloseReason.NODE_ASSEMBLY_BUDGET, f"request of {size} bytes to check whole; the node "
                                 f"holds {self.rules.assembly.used} of GATEWAY_MAX_ASSEMBLED_BYTES_TOTAL "
                                 f"({self.rules.assembly.limit})")
        self._assembling = size
        return Decision.COLLECT

    def _collect_for_rack(self, size: int) -> bool:
        """Hold a request whole for the rack (a Fetch to give it the client's rack, an ApiVersions to read the client's
        software), within the same limits as any request held whole; one beyond them is relayed as the client sent it
        (the rack is an optimisation, not a check)."""
        if size > self._assembled_limit or not self.rules.assembly.take(size):
            return False
        self._assembling = size
        return True

    def _release_assembly(self) -> None:
        if self._assembling:
            self.rules.assembly.give(self._assembling)
            self._assembling = 0

    def _collected_request(self, frame: bytes) -> None:
        """A request assembled whole (see _decide_request): relay it, or answer it with its refusal."""
        self._release_assembly()
        view = memoryview(frame)[4:]
        api_key, api_version, correlation_id, body_offset = read_request_header(view)
        if api_key == API_VERSIONS and api_version > api_versions_known():
            # KIP-511: a version above ours is answered in v0 with UNSUPPORTED_VERSION and the versions of
            # ApiVersions we know, and the client asks again at one of them (as a broker does).
            self._answer(api_key, api_version, correlation_id, unsupported_version_body(), False)
            return
        _, rewrite = relay_handling(api_key, api_version)
        try:
            expects_response = self._expects_response(view, api_key, api_version, body_offset)
            self._check_names(view, api_key, api_version, body_offset)
        except _Truncated as error:
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"api key {api_key} v{api_version}: {error}") from None
        except Reserved as hit:
            if api_key != METADATA:
                self._refuse(view, api_key, api_version, correlation_id, body_offset, hit.kind)
                return
            # Metadata is answered by the broker (its broker list is needed); the reserved topics asked for
            # come back as TOPIC_AUTHORIZATION_FAILED (protocol/hiding.py), as from a broker that denies them,
            # and the request may not create them (allow_auto_topic_creation cleared).
            edited = bytearray(frame)
            try:
                forbid_auto_creation(edited, 4 + body_offset, api_version)
            except Exception as error:
                raise MalformedFrame(CloseReason.BAD_REQUEST, f"metadata request: {error!r}") from None
            self._admit(api_key, api_version, correlation_id, len(view), rewrite, True, names_reserved=True)
            self._to_upstream(edited)
            return
        if api_key == API_VERSIONS and names_node(api_version) and self.broker_id is None:
            frame = self._without_node(frame, body_offset, api_version)
            view = memoryview(frame)[4:]
        if api_key == API_VERSIONS and self.client_rack is not None:
            self._decide_rack(frame, body_offset, api_version)
        if api_key == FETCH and self._rack_given:
            frame = self._with_client_rack(frame, body_offset, api_version)
            view = memoryview(frame)[4:]  # its size changed: the byte count below is of what is relayed
        self._admit(api_key, api_version, correlation_id, len(view), rewrite, expects_response)
        self._to_upstream(frame)

    def _without_node(self, frame: bytes, body_offset: int | None, api_version: int) -> bytes:
        """KIP-1242 on the bootstrap port, which stands for no node (protocol/api_versions_request.py)."""
        if body_offset is None:
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"api versions v{api_version}: no body")
        try:
            cleared = without_node(frame, 4 + body_offset, api_version)
        except (WireError, IndexError, struct.error) as error:
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"api versions v{api_version}: {error}") from None
        if cleared is None:
            return frame
        self.metrics.bootstrap_nodes_cleared.inc()
        return cleared

    def _decide_rack(self, frame: bytes, body_offset: int | None, api_version: int) -> None:
        """A broker answers a Fetch that names a rack with a preferred read replica (and no records), and a client
        that does not follow it fetches from the leader without progress: the rack is given only to software
        known to follow one (GATEWAY_CLIENT_RACK_SOFTWARE), decided by each ApiVersions the client sends."""
        if body_offset is None or self.client_rack is None:
            return
        try:
            software = client_software(frame, 4 + body_offset, api_version)
        except (WireError, IndexError, struct.error) as error:
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"api versions v{api_version}: {error}") from None
        self._give_rack(software in self.rules.rack_software)

    def _give_rack(self, given: bool) -> None:
        self._rack_given = given
        if not given and self.client_rack is not None:
            self.metrics.racks.rack_withheld(self.client_rack).value += 1

    def _with_client_rack(self, frame: bytes, body_offset: int | None, api_version: int) -> bytes:
        """KIP-392 (protocol/fetch_rack.py): the Fetch request naming the client's rack, unless it named one."""
        if body_offset is None or self.client_rack is None or self._rack_assigned is None:
            return frame
        try:
            filled = with_rack(frame, 4 + body_offset, api_version, self.client_rack)
        except (WireError, IndexError, struct.error) as error:
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"fetch v{api_version}: {error}") from None
        if filled is None:
            return frame
        self._rack_assigned.value += 1
        return filled

    @staticmethod
    def _expects_response(frame: memoryview, api_key: int, api_version: int, body_offset: int | None) -> bool:
        if api_key != PRODUCE or body_offset is None:
            return True
        try:
            return produce_expects_response(frame, body_offset, api_version)
        except (IndexError, struct.error) as error:  # the bytes at hand end inside the produce header
            raise _Truncated(f"produce header: {error!r}") from None
        except WireError as error:
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"produce header: {error}") from None

    def _check_names(self, frame: memoryview, api_key: int, api_version: int, body_offset: int | None) -> None:
        """Raises Reserved if the request names a reserved topic or group, _Truncated if the bytes at
        hand end before its last name, MalformedFrame for bytes Kafka itself would refuse."""
        try:
            check = request_checker(api_key, api_version)
        except UnknownMessage:
            raise MalformedFrame(CloseReason.API_NOT_ALLOWED, f"api key {api_key} v{api_version} is not known") from None
        if check is None:
            return
        try:
            check(frame, body_offset, self.rules.reserved)
        except WireError as error:  # Kafka's reader refuses these bytes too (TagSizeMismatch among them)
            raise MalformedFrame(CloseReason.BAD_REQUEST, f"api key {api_key} v{api_version}: {error}") from None
        except (IndexError, struct.error) as error:
            raise _Truncated(repr(error)) from None

    def _admit(self, api_key: int, api_version: int, correlation_id: int, size: int, rewrite: bool,
               expects_response: bool, names_reserved: bool = False, request_body: bytes | None = None) -> None:
        api = self.metrics.api(api_key)
        api.requests += 1
        api.request_bytes += 4 + size
        self.last_request = now = time.monotonic()
        if self.upstream is None and not self._connecting:
            self._connect_on_first_request()
        if expects_response:
            self.in_flight.append(InFlight(correlation_id, api_key, api_version, rewrite, now, api,
                                           names_reserved=names_reserved, request_body=request_body))
            self._cap_in_flight()

    def _cap_in_flight(self) -> None:
        if len(self.in_flight) >= self._in_flight_cap and not self._paused & PAUSED_IN_FLIGHT:
            self.metrics.in_flight_paused.inc()
            self._pause_client(PAUSED_IN_FLIGHT)

    def _uncap_in_flight(self) -> None:
        if self._paused & PAUSED_IN_FLIGHT and len(self.in_flight) <= self._in_flight_cap // 2:
            self._resume_client(PAUSED_IN_FLIGHT)

    def _refuse(self, request: memoryview, api_key: int, api_version: int, correlation_id: int,
                body_offset: int, kind: str) -> None:
        """Answer a request naming a reserved topic/group with the API's authorization error, in turn."""
        self.incidents.refused_reserved(self, api_key, kind)
        self.last_request = time.monotonic()
        if not self._expects_response(request, api_key, api_version, body_offset):
            return  # acks=0: nothing to answer
        try:
            body = refusal_body(api_key, api_version, request[body_offset:], kind)
        except Unanswerable as error:
            raise MalformedFrame(CloseReason.UNANSWERABLE, f"api key {api_key} v{api_version} refusal: {error}") from None
        self._answer(api_key, api_version, correlation_id, body, response_header_is_flexible(api_key, api_version))

    def _answer(self, api_key: int, api_version: int, correlation_id: int, body: bytes, flexible_header: bool) -> None:
        """Write the gateway's own response to a request in its turn: at once if nothing is in flight, else
        queued behind the broker's responses. It counts against the in-flight cap like a relayed request."""
        self.last_request = time.monotonic()
        header = CORRELATION.pack(correlation_id) + (b"\0" if flexible_header else b"")
        response = SIZE.pack(len(header) + len(body)) + header + body
        if not self.in_flight and self._responses_at_boundary():
            self.client.write(response)
            return
        api = self.metrics.api(api_key)
        self.in_flight.append(InFlight(correlation_id, api_key, api_version, False, time.monotonic(), api, response))
        self._refusals += 1
        self._cap_in_flight()

    def _write_refusals(self) -> None:
        """Refusals at the head of the queue: every response before them has been written."""
        self.responses.flush()  # the responses passed before them, held back to be written together
        while self.in_flight and self.in_flight[0].refusal is not None:
            self.client.write(self.in_flight.popleft().refusal)
            self._refusals -= 1
        self._uncap_in_flight()

    def _to_upstream(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.upstream is None:
            self._early.append(bytes(chunk))
            return
        self.upstream.write(chunk)

    # --- the splice's calls, client -> broker (proxy/splice.py) ----------------------------------

    def _splice_request(self, head: bytes) -> None:
        """A Produce request the guard passed at its head (see _decide_request): its records go kernel to kernel.
        The pair reads the client's socket itself from the first one on (ClientReading)."""
        if self._client_reading is None:
            self._client_reading = ClientReading(self, self.client, self.upstream, self.metrics.spliced_produce_bytes.inc,
                                                 self._client_low_water)
            if self._paused:
                self._client_reading.pause()
        self.requests.started = time.monotonic()  # the frame deadline counts while it is moved
        self._client_reading.start(ProduceRequestReader(self._spliced_request_version, self.rules.reserved), head)

    def request_read_size(self) -> int:
        """How much of the client's socket to read at once: a little where a request starts, or the rest of its head
        (a large Produce request's records are to be spliced, not read)."""
        if self.requests.at_boundary():
            return REQUEST_HEAD_READ
        return self.requests.head_missing() or READ_SIZE

    def spliced_request_done(self) -> None:
        if self.closed:
            return
        self.requests.started = None
        if self.reading_stopped:
            self._pause_client(PAUSED_HANDOVER)  # never resumed: the connection closes once idle
        if self.closing_when_idle:
            self._close_if_quiet()

    def client_lost(self) -> None:
        self.close()  # as the client's transport says when it reads the end

    def bad_request(self, error: Exception) -> None:
        """A spliced Produce request that Kafka would refuse, or naming a topic id learnt as reserved since its head
        was checked: part of it is at the broker already, so the pair closes (the broker drops the partial frame)."""
        if self.closed:
            return
        if isinstance(error, Reserved):
            self.incidents.refused_reserved(self, PRODUCE, error.kind)
        else:
            self.incidents.malformed(self, MalformedFrame(CloseReason.BAD_REQUEST,
                                                          f"produce v{self._spliced_request_version}: {error}"))
        self.abort()

    # --- broker -> client --------------------------------------------------------------------

    def from_upstream(self, data: bytes) -> None:
        try:
            self.responses.feed(data)
            detached = self.responses.take_detached()
            if detached is not None and not self.closed:
                self._broker_reading.start(reader_for(self._spliced_version), detached)
                return  # the rest is the splice's (spliced_frame_done)
            if self._refusals and self.responses.at_boundary():
                self._write_refusals()
        except UpstreamError as error:
            self.incidents.upstream_failed(self, error)
            self.abort()
            return
        except MalformedFrame as error:
            self.incidents.upstream_failed(self, UpstreamError(error.reason, str(error)))
            self.abort()
            return
        if self._upstream_low_water is not None and not self.closed:
            self._upstream_low_water.follow(self.responses.pending())
        if self.closing_when_idle:
            self._close_if_quiet()

    # --- the splice's calls (proxy/splice.py) ---------------------------------------------------

    def response_read_size(self) -> int:
        """How much of the broker's socket to read at once: a little when a Fetch response comes next, whose
        record sets are to be spliced, not read (unless the response is small enough to come whole in that read)."""
        if self.in_flight and self.in_flight[0].api_key == FETCH and self.responses.at_boundary():
            return FETCH_FIRST_READ
        return READ_SIZE

    def spliced_frame_done(self) -> None:
        if self.closed:
            return
        if self._refusals:
            self._write_refusals()
        if self.closing_when_idle:
            self._close_if_quiet()

    def endpoints_in_place(self, tags: bytes) -> bytes:
        """The spliced Fetch response's top-level tag section, its KIP-951 node endpoints rewritten in place."""
        self.rewrite_context.names_reserved = False
        section, outcome = rewrite_in_place(FETCH, self._spliced_version, tags, self.rewrite_context)
        if outcome.value != "unchanged":
            self.metrics.endpoints_in_place.labels(outcome.value).inc()
            self.metrics.api(FETCH).rewritten += 1
        return section

    def broker_lost(self, reason: str) -> None:
        if not self.closed:
            self.incidents.upstream_failed(self, UpstreamError(CloseReason.BROKER_CLOSED, reason))
        self.close()

    def bad_response(self, reason: str) -> None:
        if not self.closed:
            self.incidents.upstream_failed(self, UpstreamError(CloseReason.UNDECODABLE_RESPONSE,
                                                               f"fetch v{self._spliced_version}: {reason}"))
        self.abort()

    def _decide_response(self, prefix: memoryview, size: int) -> Decision:
        (correlation_id,) = CORRELATION.unpack_from(prefix, 4)
        if self._refusals:
            self._write_refusals()
        if not self.in_flight:
            raise UpstreamError(CloseReason.UNEXPECTED_RESPONSE, f"response {correlation_id} with nothing in flight")
        entry = self.in_flight[0]
        if entry.correlation_id != correlation_id:
            raise UpstreamError(CloseReason.CORRELATION_MISMATCH, f"expected {entry.correlation_id}, got {correlation_id}")
        if entry.api_key == FETCH and self._broker_reading is not None and len(prefix) < 4 + size:
            self.in_flight.popleft()
            self._account(entry, size)
            self._spliced_version = entry.api_version
            return Decision.DETACH
        if entry.rewrite:
            if size > self._assembled_limit and entry.api_key not in (PRODUCE, FETCH):
                raise UpstreamError(CloseReason.OVERSIZED_REWRITE, f"response of {size} bytes to decode exceeds "
                                    f"GATEWAY_MAX_ASSEMBLED_BYTES ({self._assembled_limit})")
            return Decision.COLLECT
        self.in_flight.popleft()
        self._account(entry, size)
        return Decision.PASS

    def _account(self, entry: InFlight, size: int) -> None:
        self._uncap_in_flight()
        api = entry.api
        api.observe_latency(time.monotonic() - entry.started)
        api.response_bytes += 4 + size
        if entry.api_key == FETCH:
            fetch_bytes = self._fetch_bytes
            if fetch_bytes is None:
                fetch_bytes = self._fetch_bytes = self.metrics.racks.fetch_response_bytes(
                    self.client_rack, self.routes.broker_rack(self.broker_id))
            fetch_bytes.value += 4 + size

    def _rewrite_response(self, frame: bytes | memoryview) -> bool:
        """Rewrites a collected response; True when it goes out unchanged (the stream writes it, with its
        neighbours). A frame may be a view of the chunk read: what is written keeps it alive, nothing else does."""
        entry = self.in_flight.popleft()
        self._account(entry, len(frame) - 4)
        view = memoryview(frame)
        try:
            body_start = 4 + response_body_offset(view[4:], entry.api_key, entry.api_version)
            self.rewrite_context.names_reserved = entry.names_reserved
            if entry.api_key == METADATA:
                result = self.routes.metadata_answers.rewrite(entry.request_body, view[body_start:], entry.api_version,
                                                              self.rewrite_context)
            else:
                result = REWRITERS[entry.api_key](view[body_start:], entry.api_version, self.rewrite_context)
        except Exception as error:
            raise UpstreamError(CloseReason.UNDECODABLE_RESPONSE,
                                f"api key {entry.api_key} v{entry.api_version}: {error!r}") from None
        if result is None:
            return True
        chunks = [result] if isinstance(result, bytes) else list(result)
        body_size = sum(len(chunk) for chunk in chunks)
        self.responses.emit([(body_start - 4 + body_size).to_bytes(4, "big"), view[4:body_start], *chunks])
        entry.api.rewritten += 1
        return False

    def _to_client(self, chunk: bytes | bytearray | memoryview) -> None:
        self.client.write(chunk)

    def _lines_to_client(self, chunks: list[bytes | memoryview]) -> None:
        self.client.writelines(chunks)

    # --- flow control ------------------------------------------------------------------------

    def _pause_client(self, reason: int) -> None:
        if not self._paused and self.client is not None and not self.closed:
            if self._client_reading is not None:
                self._client_reading.pause()
            else:
                self.client.pause_reading()
        self._paused |= reason

    def _resume_client(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.client is not None and not self.closed:
            if self._client_reading is not None:
                self._client_reading.resume()
            else:
                self.client.resume_reading()
            if self.requests.started is not None:  # the frame deadline counts the time we read
                self.requests.started = time.monotonic()

    def reading_paused(self) -> bool:
        """Is the node (not the client) the reason no more of the current request arrives?"""
        return bool(self._paused)

    def pause_client(self) -> None:  # the broker reads slower than the client sends
        self._pause_client(PAUSED_BROKER)

    def resume_client(self) -> None:
        self._resume_client(PAUSED_BROKER)

    def pause_upstream(self) -> None:
        """The client reads slower than we write to it: stop reading the broker's answers, and the client's
        requests too (the gateway's own answers, refusals among them, would otherwise pile up unread)."""
        self.write_paused_since = time.monotonic()
        if self._broker_reading is not None:
            self._broker_reading.pause()
        elif self.upstream is not None and not self.closed:
            self.upstream.pause_reading()
        self._pause_client(PAUSED_CLIENT_NOT_READING)

    def resume_upstream(self) -> None:
        self.write_paused_since = None
        if self._broker_reading is not None:
            self._broker_reading.resume()
        elif self.upstream is not None and not self.closed:
            self.upstream.resume_reading()
        self._resume_client(PAUSED_CLIENT_NOT_READING)


class ClientProtocol(asyncio.Protocol):
    def __init__(self, pair: ConnectionPair) -> None:
        self.pair = pair

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pair.client_connected(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.pair.from_client(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pair.close()

    def pause_writing(self) -> None:  # the client reads slower than the broker answers
        self.pair.pause_upstream()

    def resume_writing(self) -> None:
        self.pair.resume_upstream()


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, pair: ConnectionPair) -> None:
        self.pair = pair

    def data_received(self, data: bytes) -> None:
        self.pair.from_upstream(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.pair.closed:
            error = UpstreamError(CloseReason.BROKER_CLOSED, repr(exc) if exc else "closed")
            self.pair.incidents.upstream_failed(self.pair, error)
        self.pair.close()

    def pause_writing(self) -> None:  # the broker reads slower than the client sends
        self.pair.pause_client()

    def resume_writing(self) -> None:
        self.pair.resume_client()
