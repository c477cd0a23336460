"""Metadata answers reused: a broker that answers the same Metadata request with the same bytes is rewritten once.

Clients ask Metadata over and over (every metadata.max.age.ms, after every error, at every start) and the brokers
nearly always answer with the same bytes. The rewrite of an answer (broker_lists.py, then hiding.py) depends on
nothing but those bytes, the version, the node's routes and its reserved names. So the rewritten body is kept by
(version, request body), and an answer whose body equals the one kept, under the same routes version and reserved
names, is written as that rewrite behind its own correlation id (the response header is never kept). The broker is
still asked every time, and what a client is told is what the broker told it, rewritten: two connections share a
rewrite only when the brokers sent them byte-identical bodies.

But for one field: a KRaft broker names a random live broker as `controller_id` in each answer (the lab's three
brokers give three bodies in turn), and the rewrite never touches it. So it is left out of the comparison and the
answer's own controller id is written into the kept rewrite: every other byte must be equal, so it sits at the same
offset in both.

What the rewrite did besides the bytes happens again on every reuse: reserved topics hidden are counted, and a broker
without a gateway port is asked for again (which counts it). Requests that name reserved topics are never kept (their
answer denies them, see hiding.py). Every reuse is counted (gateway_metadata_answers_reused_total).

Bounded: at most `max_entries` answers and `max_bytes` of kept requests, bodies and rewrites, the least recently used
dropped first; an answer (with its request) over `max_bytes // 16` is not kept. An entry is replaced when the routes version (the directory's
brokers, the topology's mapping epoch: proxy/routes.py) or the body differs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import cache
from typing import Callable, Hashable

from ..broker_addresses import BrokerInfo
from ..metrics import Tally
from .api_keys import METADATA
from .context import Chunks, RewriteContext
from .kio_adapter import load_response_schema
from .reserved import ReservedNames
from .schema_walk import Skip, skip_to_field

MAX_ENTRIES = 512
MAX_BYTES = 16 * 1024 * 1024

Rewrite = Callable[[memoryview, int, RewriteContext], Chunks]
CONTROLLER = "controller_id"
_NO_CONTROLLER = bytes(4)


@cache
def _to_controller(api_version: int) -> Skip | None:
    """Skip to a Metadata response's controller_id (v1+), None before it existed."""
    schema = load_response_schema(METADATA, api_version)
    return skip_to_field(schema, CONTROLLER) if any(f.name == CONTROLLER for f in fields(schema)) else None


@dataclass(frozen=True, slots=True)
class _Kept:
    body: bytes  # the broker's body, as it came, its controller id zeroed
    rewritten: bytes
    controller_at: int | None  # where the controller id is in `body`
    rewritten_controller_at: int | None  # and in `rewritten`
    routes_version: Hashable
    reserved: ReservedNames  # the names it was rewritten for (compared by identity)
    hidden: int  # reserved topics it left out
    missing: tuple[int, ...]  # brokers without a gateway port, left out of its broker list
    request_size: int  # its key holds the request's body

    @property
    def size(self) -> int:
        return self.request_size + len(self.body) + len(self.rewritten)


class _Recording:
    """The connection's RewriteContext, noting what a rewrite did besides its bytes."""

    __slots__ = ("_ctx", "reserved", "names_reserved", "hidden_count", "missing")

    def __init__(self, ctx: RewriteContext) -> None:
        self._ctx = ctx
        self.reserved = ctx.reserved
        self.names_reserved = ctx.names_reserved
        self.hidden_count = 0
        self.missing: list[int] = []

    def report(self, broker: BrokerInfo) -> tuple[str, int] | None:
        endpoint = self._ctx.report(broker)
        if endpoint is None:
            self.missing.append(broker.broker_id)
        return endpoint

    def endpoint(self, broker_id: int) -> tuple[str, int] | None:
        endpoint = self._ctx.endpoint(broker_id)
        if endpoint is None:
            self.missing.append(broker_id)
        return endpoint

    def coordinator_available(self, broker_id: int) -> bool:
        return self._ctx.coordinator_available(broker_id)

    def hidden(self, count: int) -> None:
        self.hidden_count += count
        self._ctx.hidden(count)

    def redacted(self, count: int) -> None:
        self._ctx.redacted(count)


class MetadataAnswers:
    """The rewritten Metadata answers of one node (see the module docstring). `routes_version()` changes whenever what
    the rewrite learns or the endpoints it is given may have; `reused` counts the answers written from a kept one."""

    def __init__(self, rewrite: Rewrite, routes_version: Callable[[], Hashable], reused: Tally,
                 max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._rewrite = rewrite
        self._routes_version = routes_version
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[int, bytes], _Kept] = OrderedDict()
        self.bytes = 0
        self.reused = reused

    def __len__(self) -> int:
        return len(self._kept)

    def rewrite(self, request: bytes | None, body: memoryview, api_version: int, ctx: RewriteContext) -> Chunks:
        """The rewritten body of a Metadata answer to `request` (its body; None: not to be kept)."""
        if request is None or ctx.names_reserved:
            return self._rewrite(body, api_version, ctx)
        version = self._routes_version()
        key = (api_version, request)
        kept = self._kept.get(key)
        if kept is not None and len(body) == len(kept.body) and kept.routes_version == version \
                and kept.reserved is ctx.reserved:
            came = bytearray(body)  # a memoryview compares item by item; a bytearray with memcmp
            at = kept.controller_at
            if at is not None:
                controller, came[at:at + 4] = bytes(came[at:at + 4]), _NO_CONTROLLER
            if came == kept.body:
                return self._reuse(key, kept, None if at is None else controller, ctx)
        recording = _Recording(ctx)
        rewritten = b"".join(self._rewrite(body, api_version, recording))  # type: ignore[arg-type]
        self._keep(key, body, rewritten, api_version, recording)
        return (rewritten,)

    def _reuse(self, key: tuple[int, bytes], kept: _Kept, controller: bytes | None, ctx: RewriteContext) -> Chunks:
        self._kept.move_to_end(key)
        self.reused.value += 1
        if kept.hidden:
            ctx.hidden(kept.hidden)
        for broker_id in kept.missing:
            ctx.endpoint(broker_id)  # counted (and logged once) as the rewrite did
        if controller is None:
            return (kept.rewritten,)
        at = kept.rewritten_controller_at
        return (kept.rewritten[:at], controller, kept.rewritten[at + 4:])

    def _keep(self, key: tuple[int, bytes], body: memoryview, rewritten: bytes, api_version: int,
              recording: _Recording) -> None:
        came = bytearray(body)
        to_controller = _to_controller(api_version)
        at = rewritten_at = None
        if to_controller is not None:
            at, rewritten_at = to_controller(body, 0), to_controller(memoryview(rewritten), 0)
            came[at:at + 4] = _NO_CONTROLLER
        # the routes version after the rewrite: what it reported is known from then on
        kept = _Kept(bytes(came), rewritten, at, rewritten_at, self._routes_version(), recording.reserved,
                     recording.hidden_count, tuple(recording.missing), len(key[1]))
        old = self._kept.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        if kept.size > self.max_bytes // 16:
            return
        self._kept[key] = kept
        self.bytes += kept.size
        while len(self._kept) > self.max_entries or self.bytes > self.max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self.bytes -= dropped.size
