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

from prometheus_client import Gauge

from ..metrics import Tally
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
        self.undersized = Tally()  # pipes the kernel refused their size (the user's pipe pages are spent)

    def report_to(self, in_use: Gauge, undersized: Tally) -> None:
        """Count into a node's metrics from now on: the pipes under way (read at each scrape), and every pipe refused
        its size (in the node's tally, with those refused before)."""
        in_use.set_function(lambda: self.in_use)
        undersized.value += self.undersized.value
        self.undersized = undersized

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
            self.undersized.value += 1
            if self.undersized.value == 1:
                log.warning("a splice pipe was refused %d bytes (fs.pipe-user-pages-soft or fs.pipe-max-size): "
                            "frames move in smaller pieces while many move at once", self._size)
        return read_end, write_end


PIPES = Pipes()  # the node's: one event loop, one pool


class SplicedSide:
    """One direction of a plaintext pair read by the pair itself: the socket frames come from (the source) and the one
    they go to (the destination), both duplicates of the transports' descriptors (asyncio and uvloop refuse
    `add_reader` on a transport's own), the source's transport paused for good. Between frames, what the source sends
    is read and handed to the pair (`_deliver`); a frame the pair detached is moved on by `_pump`: the bytes its reader
    read go out with send, its unread runs source -> pipe -> destination with os.splice. BrokerReading and
    ClientReading say what differs: the pair's calls, and what a frame's end needs."""

    def __init__(self, source: asyncio.Transport, destination: asyncio.Transport, tally: Callable[[int], None],
                 low_water: LowWater, pipes: Pipes) -> None:
        self._destination_transport = destination
        self._loop = asyncio.get_running_loop()
        self._source = socket.socket(fileno=os.dup(source.get_extra_info("socket").fileno()))
        self._destination = socket.socket(fileno=os.dup(destination.get_extra_info("socket").fileno()))
        self._source.setblocking(False)
        self._destination.setblocking(False)
        self._pipes = pipes
        self._pipe: tuple[int, int] | None = None  # (read end, write end), taken for a frame, given back after it
        self._in_pipe = 0
        self._frame: FetchResponseReader | WholeFrame | ProduceRequestReader | None = None  # the frame being moved
        self._pending = bytearray()  # bytes of it read into user space, to write before anything else of it
        self._after = b""  # bytes read past its end, for the pair's FrameStream once it is out
        self._tally = tally  # bytes moved without entering user space
        self._low_water = low_water  # the source's SO_RCVLOWAT: wake for a run's worth, not each segment
        self._reading = self._writing = False
        self._paused = False  # the pair stopped this direction (the destination takes too little, a limit, ...)
        self.closed = False
        source.pause_reading()  # for good: from now on the source's bytes are read here
        self._want_read(True)

    @property
    def busy(self) -> bool:
        """A spliced frame is under way (the pair's stream this way is not at a boundary)."""
        return self._frame is not None

    # --- what differs between the two directions -------------------------------------------------

    def _read_size(self) -> int:
        raise NotImplementedError

    def _deliver(self, data: bytes) -> None:
        raise NotImplementedError  # bytes read between frames, to the pair's FrameStream

    def _source_lost(self, reason: str) -> None:
        raise NotImplementedError

    def _destination_lost(self, reason: str) -> None:
        raise NotImplementedError

    def _bad_frame(self, error: Exception) -> None:
        raise NotImplementedError

    def _frame_done(self) -> None:
        raise NotImplementedError

    def _ends(self, frame) -> bool:
        """Is what is pending the frame's last bytes (sent without MSG_MORE)?"""
        return frame.done

    def _tail(self, frame) -> bool:
        """After the reader is done: add to _pending what the pair writes last; False once there is nothing."""
        return False

    def _wrote(self) -> None:
        """Bytes went to the destination."""

    def _blocked(self, on_destination: bool) -> None:
        """A socket would block: the destination (full) or the source (empty)."""

    # --- interest in the two sockets ------------------------------------------------------------

    def _want_read(self, wanted: bool) -> None:
        wanted = wanted and not self._paused and not self.closed
        if wanted != self._reading:
            self._reading = wanted
            if wanted:
                self._loop.add_reader(self._source.fileno(), self._on_readable)
            else:
                self._loop.remove_reader(self._source.fileno())

    def _want_write(self, wanted: bool) -> None:
        wanted = wanted and not self.closed
        if wanted != self._writing:
            self._writing = wanted
            if wanted:
                self._loop.add_writer(self._destination.fileno(), self._pump)
            else:
                self._loop.remove_writer(self._destination.fileno())

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
        for sock in (self._source, self._destination):
            sock.close()  # a duplicate: the transports' own descriptors stay theirs
        self._give_pipe()

    def _give_pipe(self) -> None:
        if self._pipe is not None:
            self._pipes.give(self._pipe, empty=not self._in_pipe)
            self._pipe, self._in_pipe = None, 0

    # --- moving ----------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        if self._frame is not None:
            self._pump()
            return
        try:
            data = self._source.recv(self._read_size())
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._source_lost(repr(error))
            return
        if not data:
            self._source_lost("closed")
            return
        self._deliver(data)

    def start(self, reader: FetchResponseReader | WholeFrame | ProduceRequestReader, head: bytes) -> None:
        """A frame starts with `head` (its first bytes, and maybe more past its end): move it. The source stays
        watched: the rest of the frame is read from it."""
        self._frame = reader
        if self._pipe is None:
            self._pipe = self._pipes.take()
        self._low_water.follow(0)  # set for the frame before it, which may have been read in the same chunk
        remaining = 4 + int.from_bytes(head[:4], "big")
        self._after = head[remaining:]
        try:
            self._pending += b"".join(reader.feed(head[:remaining]))
        except Exception as error:  # a frame that does not match its schema, or names what it may not
            self._bad_frame(error)
            return
        self._pump()

    def _pump(self) -> None:
        """Move the frame on as far as the sockets let us; then wait for the one that stopped us."""
        frame = self._frame
        if frame is None or self.closed:
            self._want_write(False)
            return
        budget = TURN_BYTES
        try:
            while True:
                if budget <= 0:  # the rest at the next wakeup (the sockets are level-triggered), after the others
                    return self._wait(write=bool(self._pending or self._in_pipe))
                if self._pending or self._in_pipe:
                    if self._destination_transport.get_write_buffer_size():
                        return self._wait(write=True)  # what the transport holds goes first
                    if self._pending:
                        # Headers with more of the frame to follow go out with what follows (MSG_MORE): a send
                        # costs the receiver's whole TCP delivery, whatever its size. The frame's end is pushed.
                        sent = self._destination.send(self._pending, 0 if self._ends(frame) else socket.MSG_MORE)
                        del self._pending[:sent]
                    else:
                        moved = os.splice(self._pipe[0], self._destination.fileno(), self._in_pipe,
                                          flags=_SPLICE_FLAGS)
                        self._in_pipe -= moved
                        budget -= moved
                        self._tally(moved)
                    self._wrote()
                elif frame.records_left:
                    if self._paused:
                        return self._wait(write=False)
                    moved = os.splice(self._source.fileno(), self._pipe[1], min(frame.records_left, PIPE_SIZE),
                                      flags=_SPLICE_FLAGS)
                    if not moved:
                        return self._source_lost("closed")
                    frame.moved(moved)
                    self._in_pipe += moved
                elif not frame.done:
                    if self._paused:
                        return self._wait(write=False)
                    data = self._source.recv(frame.want())
                    if not data:
                        return self._source_lost("closed")
                    self._pending += b"".join(frame.feed(data))
                elif not self._tail(frame):
                    return self._finish()
        except BlockingIOError:  # the destination's socket is full, or the source's empty: wait for that one
            on_destination = bool(self._pending or self._in_pipe)
            self._blocked(on_destination)
            self._wait(write=on_destination)
        except OSError as error:
            if self._pending or self._in_pipe:  # writing: the destination went away
                self._destination_lost(repr(error))
            else:
                self._source_lost(repr(error))
        except Exception as error:  # a frame that does not match its schema, or names what it may not
            self._bad_frame(error)

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
        self._frame_done()
        if after and not self.closed:
            self._deliver(after)
        if self._frame is None:
            self._want_read(True)


class BrokerReading(SplicedSide):
    """The broker side of one plaintext pair, read by the pair: Fetch responses spliced (see the module's docstring)."""

    def __init__(self, pair: Owner, upstream: asyncio.Transport, client: asyncio.Transport,
                 tally: Callable[[int], None], low_water: LowWater, pipes: Pipes = PIPES) -> None:
        self._pair = pair
        super().__init__(upstream, client, tally, low_water, pipes)

    def _read_size(self) -> int:
        return self._pair.response_read_size()

    def _deliver(self, data: bytes) -> None:
        self._pair.from_upstream(data)

    def _source_lost(self, reason: str) -> None:
        self._pair.broker_lost(reason)

    def _destination_lost(self, reason: str) -> None:
        self._pair.close()  # the client went away, as its transport would say

    def _bad_frame(self, error: Exception) -> None:
        self._pair.bad_response(repr(error))

    def _frame_done(self) -> None:
        self._pair.spliced_frame_done()

    def _ends(self, frame) -> bool:
        return frame.done and frame.tags is None

    def _tail(self, frame) -> bool:
        if frame.tags is None:
            return False
        self._pending += self._pair.endpoints_in_place(frame.tags)  # the frame's last bytes, rewritten in place
        frame.tags = None
        return True

    def _wrote(self) -> None:
        self._pair.write_paused_since = None

    def _blocked(self, on_destination: bool) -> None:
        if on_destination and self._pair.write_paused_since is None:
            self._pair.write_paused_since = time.monotonic()  # the deadline for clients that stop reading


class ClientReading(SplicedSide):
    """The client side of one plaintext pair, read by the pair once it splices Produce requests (see the module's
    docstring)."""

    def __init__(self, pair: RequestOwner, client: asyncio.Transport, upstream: asyncio.Transport,
                 tally: Callable[[int], None], low_water: LowWater, pipes: Pipes = PIPES) -> None:
        self._pair = pair
        super().__init__(client, upstream, tally, low_water, pipes)

    def _read_size(self) -> int:
        return self._pair.request_read_size()

    def _deliver(self, data: bytes) -> None:
        self._pair.from_client(data)

    def _source_lost(self, reason: str) -> None:
        self._pair.client_lost()

    def _destination_lost(self, reason: str) -> None:
        self._pair.broker_lost(reason)

    def _bad_frame(self, error: Exception) -> None:
        self._pair.bad_request(error)

    def _frame_done(self) -> None:
        self._pair.spliced_request_done()
