"""Fetch responses and Produce requests' records moved kernel to kernel on a plaintext pair (GATEWAY_SPLICE).

A consumer's bytes are record sets the gateway never reads. On a pair with no TLS on either side, the pair reads the
broker's socket itself instead of through its transport (which is paused for good: asyncio and uvloop refuse
`add_reader` on a transport's fd, so the broker's socket is dup()'d and the duplicate registered), and a Fetch
response, met at a frame boundary, is walked as it arrives (protocol/fetch_stream.py): its headers are read and
written to the client's socket (also through a duplicate), its record sets go broker -> pipe -> client with
os.splice and never enter user space, and its KIP-951 node endpoints are rewritten at the end without changing the
frame's size (protocol/endpoints_in_place.py). Every other response is read here and handed to the pair's
FrameStream as the transport would have.

Writes of the pair's own (every other response, refusals) go through the client's transport, so a spliced frame
starts only once the transport has written everything before it, and the transport writes nothing until it ends
(the pair's response stream is not at a boundary meanwhile). Flow control is the sockets': a client that does not
read fills the pipe, and the broker's socket is no longer read.

The other way, `ClientReading` does the same for Produce requests: from the first Produce request the pair chose to
splice (proxy/connection.py decides at the request's head, once the request guard has passed every name in it) the
pair reads the client's socket itself, a little at a time at a frame boundary, and the request is walked as it
arrives (protocol/produce_stream.py): its header and each topic and partition header are read and written to the
broker's socket, its records go client -> pipe -> broker with os.splice. Writes of the pair's own to the broker (every
other request) go through the broker's transport, which has written everything before a spliced request starts and
writes nothing until it ends.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import time
from typing import Callable, Protocol

from ..protocol.api_keys import FETCH
from ..protocol.fetch_stream import FIRST_FLEXIBLE_FETCH, FetchResponseReader
from ..protocol.policy import needs_rewrite
from ..protocol.produce_stream import ProduceRequestReader

log = logging.getLogger(__name__)

PIPE_SIZE = 1024 * 1024  # F_SETPIPE_SZ; Linux's default pipe-max-size for an unprivileged process
READ_SIZE = 256 * 1024  # what the event loop's transports read at once
REQUEST_HEAD_READ = 1024  # read at a request's start once requests are spliced: a Produce head is ~100 bytes
TURN_BYTES = 4 * 1024 * 1024  # moved per wakeup at most: a fast pair must not keep the loop from the others
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class Owner(Protocol):
    """What the splice asks of its connection pair (proxy/connection.py)."""

    write_paused_since: float | None  # since when the client has not taken what we write (its deadline)

    def response_read_size(self) -> int: ...

    def from_upstream(self, data: bytes) -> None: ...

    def spliced_frame_done(self) -> None: ...

    def endpoints_in_place(self, tags: bytes) -> bytes: ...

    def broker_lost(self, reason: str) -> None: ...

    def bad_response(self, reason: str) -> None: ...

    def close(self) -> None: ...


class LowWater(Protocol):
    def follow(self, pending: int) -> None: ...


class RequestOwner(Protocol):
    """What the splice of Produce requests asks of its connection pair (proxy/connection.py)."""

    def request_read_size(self) -> int: ...

    def from_client(self, data: bytes) -> None: ...

    def spliced_request_done(self) -> None: ...

    def client_lost(self) -> None: ...

    def broker_lost(self, reason: str) -> None: ...

    def bad_request(self, error: Exception) -> None: ...


class WholeFrame:
    """A Fetch response of a version with nothing to rewrite (before KIP-951): after its first bytes, the rest of
    the frame is one record set to move. The same interface as FetchResponseReader."""

    __slots__ = ("remaining", "records_left", "tags", "done")

    def __init__(self) -> None:
        self.remaining: int | None = None
        self.records_left = 0
        self.tags: bytes | None = None
        self.done = False

    def want(self) -> int:
        return 0 if self.records_left or self.done else 4

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        if self.remaining is None:
            self.remaining = 4 + int.from_bytes(data[:4], "big") if len(data) >= 4 else None
            if self.remaining is None:
                raise ValueError("a whole frame is started from its size")
        if len(data) > self.remaining:
            raise ValueError(f"fed {len(data)} bytes, the frame has {self.remaining} left")
        self.remaining -= len(data)
        self.records_left = self.remaining
        self.done = not self.remaining
        return [bytes(data)]

    def moved(self, count: int) -> None:
        self.records_left -= count
        self.remaining -= count
        self.done = not self.remaining


def reader_for(api_version: int) -> FetchResponseReader | WholeFrame:
    """A walk of the response where KIP-951 endpoints may need rewriting (v16+), else the whole frame moved."""
    if api_version >= FIRST_FLEXIBLE_FETCH and needs_rewrite(FETCH, api_version):
        return FetchResponseReader(api_version)
    return WholeFrame()


class Pipes:
    """The pipes spliced frames pass through, shared by the node's pairs: a pair holds one only while a frame is under
    way, and gives it back empty.

    Linux counts a pipe's capacity against its user's fs.pipe-user-pages-soft (64 MiB by default): with a pipe per
    pair, an unprivileged node's 65th 1 MiB pipe is refused its size and every pipe after it holds 8 KiB (measured
    on this project's kernel), so each consumer past the 64th would splice 8 KiB a call. Held per frame, the pipes
    number the frames moving at once; up to `idle_kept` empty ones wait for the next."""

    def __init__(self, size: int = PIPE_SIZE, idle_kept: int = 16) -> None:
        self._size = size
        self._idle_kept = idle_kept
        self._idle: list[tuple[int, int]] = []
        self.in_use = 0
        self.undersized = 0  # pipes the kernel refused their size (the user's pipe pages are spent)

    def take(self) -> tuple[int, int]:
        pipe = self._idle.pop() if self._idle else self._new()
        self.in_use += 1
        return pipe

    def give(self, pipe: tuple[int, int], empty: bool) -> None:
        """Back to the pool; a pipe still holding bytes (its pair closed mid-frame) is closed, never reused."""
        self.in_use -= 1
        if empty and len(self._idle) < self._idle_kept:
            self._idle.append(pipe)
        else:
            for end in pipe:
                os.close(end)

    def _new(self) -> tuple[int, int]:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, self._size)
        except OSError:  # EPERM past the user's pipe pages, or above pipe-max-size: smaller moves, still correct
            self.undersized += 1
            if self.undersized == 1:
                log.warning("a splice pipe was refused %d bytes (fs.pipe-user-pages-soft or fs.pipe-max-size): "
                            "frames move in smaller pieces while many move at once", self._size)
        return read_end, write_end


PIPES = Pipes()  # the node's: one event loop, one pool


class BrokerReading:
    """The broker side of one plaintext pair, read by the pair (see the module's docstring)."""

    def __init__(self, pair: Owner, upstream: asyncio.Transport, client: asyncio.Transport,
                 tally: Callable[[int], None], low_water: LowWater, pipes: Pipes = PIPES) -> None:
        self._pair = pair
        self._client_transport = client
        self._loop = asyncio.get_running_loop()
        self._broker = socket.socket(fileno=os.dup(upstream.get_extra_info("socket").fileno()))
        self._client = socket.socket(fileno=os.dup(client.get_extra_info("socket").fileno()))
        self._broker.setblocking(False)
        self._client.setblocking(False)
        self._pipes = pipes
        self._pipe: tuple[int, int] | None = None  # (read end, write end), taken for a frame, given back after it
        self._in_pipe = 0
        self._frame: FetchResponseReader | WholeFrame | None = None  # the Fetch response being moved
        self._pending = bytearray()  # bytes of it read into user space, to write before anything else of it
        self._after = b""  # bytes read past its end, for the pair's FrameStream once it is out
        self._tally = tally  # bytes moved without entering user space
        self._low_water = low_water  # the broker socket's SO_RCVLOWAT: wake for a record set's worth, not each segment
        self._reading = self._writing = False
        self._paused = False  # the client reads slower than we write (its transport's high water)
        self.closed = False
        upstream.pause_reading()  # for good: from now on the broker's bytes are read here
        self._want_read(True)

    @property
    def busy(self) -> bool:
        """A spliced frame is under way (the pair's response stream is not at a boundary)."""
        return self._frame is not None

    # --- interest in the two sockets ------------------------------------------------------------

    def _want_read(self, wanted: bool) -> None:
        wanted = wanted and not self._paused and not self.closed
        if wanted != self._reading:
            self._reading = wanted
            if wanted:
                self._loop.add_reader(self._broker.fileno(), self._on_broker)
            else:
                self._loop.remove_reader(self._broker.fileno())

    def _want_write(self, wanted: bool) -> None:
        wanted = wanted and not self.closed
        if wanted != self._writing:
            self._writing = wanted
            if wanted:
                self._loop.add_writer(self._client.fileno(), self._pump)
            else:
                self._loop.remove_writer(self._client.fileno())

    def pause(self) -> None:
        self._paused = True
        self._want_read(False)

    def resume(self) -> None:
        self._paused = False
        if self._frame is None:
            self._want_read(True)
        else:
            self._pump()

    def close(self) -> None:
        if self.closed:
            return
        self._want_read(False)
        self._want_write(False)
        self.closed = True
        for sock in (self._broker, self._client):
            sock.close()  # a duplicate: the transports' own descriptors stay theirs
        self._give_pipe()

    def _give_pipe(self) -> None:
        if self._pipe is not None:
            self._pipes.give(self._pipe, empty=not self._in_pipe)
            self._pipe, self._in_pipe = None, 0

    # --- reading -----------------------------------------------------------------------------

    def _on_broker(self) -> None:
        if self._frame is not None:
            self._pump()
            return
        pair = self._pair
        try:
            data = self._broker.recv(pair.response_read_size())
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            pair.broker_lost(repr(error))
            return
        if not data:
            pair.broker_lost("closed")
            return
        pair.from_upstream(data)

    def start(self, reader: FetchResponseReader | WholeFrame, head: bytes) -> None:
        """A Fetch response starts with `head` (its first bytes, and maybe more past its end): move it."""
        self._frame = reader
        if self._pipe is None:
            self._pipe = self._pipes.take()
        self._low_water.follow(0)  # set for the frame before it, which may have been read in the same chunk
        remaining = 4 + int.from_bytes(head[:4], "big")
        self._after = head[remaining:]
        self._want_read(False)
        try:
            self._pending += b"".join(reader.feed(head[:remaining]))
        except Exception as error:  # a response that does not match its schema
            self._pair.bad_response(repr(error))
            return
        self._pump()

    def _pump(self) -> None:
        """Move the frame on as far as the sockets let us; then wait for the one that stopped us."""
        frame = self._frame
        if frame is None or self.closed:
            self._want_write(False)
            return
        pair = self._pair
        budget = TURN_BYTES
        try:
            while True:
                if budget <= 0:  # the rest at the next wakeup (the sockets are level-triggered), after the others
                    return self._wait(write=bool(self._pending or self._in_pipe))
                if self._pending or self._in_pipe:
                    if self._client_transport.get_write_buffer_size():
                        return self._wait(write=True)  # what the transport holds goes first
                    if self._pending:
                        # Headers with more of the frame to follow go out with what follows (MSG_MORE): a send
                        # costs the receiver's whole TCP delivery, whatever its size. The frame's end is pushed.
                        last = frame.done and frame.tags is None
                        sent = self._client.send(self._pending, 0 if last else socket.MSG_MORE)
                        del self._pending[:sent]
                    else:
                        moved = os.splice(self._pipe[0], self._client.fileno(), self._in_pipe, flags=_SPLICE_FLAGS)
                        self._in_pipe -= moved
                        budget -= moved
                        self._tally(moved)
                    pair.write_paused_since = None
                elif frame.records_left:
                    if self._paused:
                        return self._wait(write=False)
                    moved = os.splice(self._broker.fileno(), self._pipe[1],
                                      min(frame.records_left, PIPE_SIZE), flags=_SPLICE_FLAGS)
                    if not moved:
                        return pair.broker_lost("closed")
                    frame.moved(moved)
                    self._in_pipe += moved
                elif not frame.done:
                    if self._paused:
                        return self._wait(write=False)
                    data = self._broker.recv(frame.want())
                    if not data:
                        return pair.broker_lost("closed")
                    self._pending += b"".join(frame.feed(data))
                elif frame.tags is not None:  # the frame's last bytes: its tag section, rewritten in place
                    self._pending += pair.endpoints_in_place(frame.tags)
                    frame.tags = None
                else:
                    return self._finish()
        except BlockingIOError:  # the client's socket is full, or the broker's empty: wait for that one
            blocked_on_client = bool(self._pending or self._in_pipe)
            if blocked_on_client and pair.write_paused_since is None:
                pair.write_paused_since = time.monotonic()  # the deadline for clients that stop reading
            self._wait(write=blocked_on_client)
        except OSError as error:
            if self._pending or self._in_pipe:  # writing to the client: it went away, as its transport would say
                pair.close()
            else:
                pair.broker_lost(repr(error))
        except Exception as error:  # a response that does not match its schema
            pair.bad_response(repr(error))

    def _wait(self, write: bool) -> None:
        if not write:
            self._low_water.follow(self._frame.records_left if self._frame is not None else 0)
        self._want_write(write)
        self._want_read(not write)

    def _finish(self) -> None:
        self._frame = None
        self._give_pipe()  # empty: the frame's every byte is out
        self._low_water.follow(0)
        self._want_write(False)
        after, self._after = self._after, b""
        self._pair.spliced_frame_done()
        if after and not self.closed:
            self._pair.from_upstream(after)
        if self._frame is None:
            self._want_read(True)


class ClientReading:
    """The client side of one plaintext pair, read by the pair once it splices Produce requests (see the module's
    docstring). A mirror of BrokerReading: the client's socket read here, the broker's written here while a request
    is under way."""

    def __init__(self, pair: RequestOwner, client: asyncio.Transport, upstream: asyncio.Transport,
                 tally: Callable[[int], None], low_water: LowWater, pipes: Pipes = PIPES) -> None:
        self._pair = pair
        self._upstream_transport = upstream
        self._loop = asyncio.get_running_loop()
        self._client = socket.socket(fileno=os.dup(client.get_extra_info("socket").fileno()))
        self._broker = socket.socket(fileno=os.dup(upstream.get_extra_info("socket").fileno()))
        self._client.setblocking(False)
        self._broker.setblocking(False)
        self._pipes = pipes
        self._pipe: tuple[int, int] | None = None
        self._in_pipe = 0
        self._frame: ProduceRequestReader | None = None  # the Produce request being moved
        self._pending = bytearray()  # bytes of it read into user space, to write before anything else of it
        self._after = b""  # bytes read past its end, for the pair's FrameStream once it is out
        self._tally = tally
        self._low_water = low_water  # the client socket's SO_RCVLOWAT: wake for a record batch's worth
        self._reading = self._writing = False
        self._paused = False  # the pair's reasons to stop reading the client (in-flight cap, handover, ...)
        self.closed = False
        client.pause_reading()  # for good: from now on the client's bytes are read here
        self._want_read(True)

    @property
    def busy(self) -> bool:
        """A spliced request is under way (the pair's request stream is not at a boundary)."""
        return self._frame is not None

    def _want_read(self, wanted: bool) -> None:
        wanted = wanted and not self._paused and not self.closed
        if wanted != self._reading:
            self._reading = wanted
            if wanted:
                self._loop.add_reader(self._client.fileno(), self._on_client)
            else:
                self._loop.remove_reader(self._client.fileno())

    def _want_write(self, wanted: bool) -> None:
        wanted = wanted and not self.closed
        if wanted != self._writing:
            self._writing = wanted
            if wanted:
                self._loop.add_writer(self._broker.fileno(), self._pump)
            else:
                self._loop.remove_writer(self._broker.fileno())

    def pause(self) -> None:
        self._paused = True
        self._want_read(False)

    def resume(self) -> None:
        self._paused = False
        if self._frame is None:
            self._want_read(True)
        else:
            self._pump()

    def close(self) -> None:
        if self.closed:
            return
        self._want_read(False)
        self._want_write(False)
        self.closed = True
        for sock in (self._client, self._broker):
            sock.close()  # a duplicate: the transports' own descriptors stay theirs
        if self._pipe is not None:
            self._pipes.give(self._pipe, empty=not self._in_pipe)
            self._pipe, self._in_pipe = None, 0

    def _on_client(self) -> None:
        if self._frame is not None:
            self._pump()
            return
        pair = self._pair
        try:
            data = self._client.recv(pair.request_read_size())
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pair.client_lost()
            return
        if not data:
            pair.client_lost()
            return
        pair.from_client(data)

    def start(self, reader: ProduceRequestReader, head: bytes) -> None:
        """A Produce request starts with `head` (its first bytes, and maybe more past its end): move it."""
        self._frame = reader
        if self._pipe is None:
            self._pipe = self._pipes.take()
        remaining = 4 + int.from_bytes(head[:4], "big")
        self._after = head[remaining:]
        try:  # the client's socket stays watched: the rest of the request is read from it (an epoll_ctl saved)
            self._pending += b"".join(reader.feed(head[:remaining]))
        except Exception as error:  # bytes Kafka refuses, or a reserved name
            self._pair.bad_request(error)
            return
        self._pump()

    def _pump(self) -> None:
        """Move the request on as far as the sockets let us; then wait for the one that stopped us."""
        frame = self._frame
        if frame is None or self.closed:
            self._want_write(False)
            return
        budget = TURN_BYTES
        try:
            while True:
                if budget <= 0:
                    return self._wait(write=bool(self._pending or self._in_pipe))
                if self._pending or self._in_pipe:
                    if self._upstream_transport.get_write_buffer_size():
                        return self._wait(write=True)  # what the transport holds goes first
                    if self._pending:
                        sent = self._broker.send(self._pending, 0 if frame.done else socket.MSG_MORE)
                        del self._pending[:sent]
                    else:
                        moved = os.splice(self._pipe[0], self._broker.fileno(), self._in_pipe, flags=_SPLICE_FLAGS)
                        self._in_pipe -= moved
                        budget -= moved
                        self._tally(moved)
                elif frame.records_left:
                    if self._paused:
                        return self._wait(write=False)
                    moved = os.splice(self._client.fileno(), self._pipe[1], min(frame.records_left, PIPE_SIZE),
                                      flags=_SPLICE_FLAGS)
                    if not moved:
                        return self._pair.client_lost()
                    frame.moved(moved)
                    self._in_pipe += moved
                elif not frame.done:
                    if self._paused:
                        return self._wait(write=False)
                    data = self._client.recv(frame.want())
                    if not data:
                        return self._pair.client_lost()
                    self._pending += b"".join(frame.feed(data))
                else:
                    return self._finish()
        except BlockingIOError:  # the broker's socket is full, or the client's empty: wait for that one
            self._wait(write=bool(self._pending or self._in_pipe))
        except OSError as error:
            if self._pending or self._in_pipe:  # writing to the broker: it went away
                self._pair.broker_lost(repr(error))
            else:
                self._pair.client_lost()
        except Exception as error:  # bytes Kafka refuses, or a reserved name
            self._pair.bad_request(error)

    def _wait(self, write: bool) -> None:
        if not write:
            self._low_water.follow(self._frame.records_left if self._frame is not None else 0)
        self._want_write(write)
        self._want_read(not write)

    def _finish(self) -> None:
        self._frame = None
        self._pipes.give(self._pipe, empty=True)  # the request's every byte is out
        self._pipe = None
        self._low_water.follow(0)
        self._want_write(False)
        after, self._after = self._after, b""
        self._pair.spliced_request_done()
        if after and not self.closed:
            self._pair.from_client(after)
        if self._frame is None:
            self._want_read(True)
