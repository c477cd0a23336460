"""Cut-through frame splitting for one direction of a connection.

Bytes arrive in arbitrary chunks. At each frame boundary the stream asks `decide` (with as few
bytes of the frame as it needs) whether the frame passes through or must be collected whole.
Passing frames are forwarded chunk by chunk as they arrive — a 50 MiB produce request is never
buffered — and only frames whose response needs rewriting are assembled in memory: their chunks are
kept as they came and joined once, so a multi-MiB Fetch response is copied once and never zero-filled.

Nothing is written frame by frame: consecutive passing bytes of one chunk (pipelined frames, or a frame's head
and the rest of it) are one slice, and the owner's rewritten frames join the same output (`emit`); all of it
goes out in one write (`sink_lines`, a writev) at the end of the chunk, or earlier when the owner must write
out of turn (`flush()`). N pipelined frames read at once cost one write, not N.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Callable

from ..close_reasons import CloseReason
from ..protocol.headers import SIZE, MalformedFrame, frame_size

HEAD_LIMIT = 70_000  # enough for any request header plus Produce's transactional id and acks


class Decision(Enum):
    PASS = "pass"
    COLLECT = "collect"
    NEED_MORE = "need_more"
    DETACH = "detach"  # the owner takes the frame, and the bytes after it, from here on (take_detached)


# decide(prefix incl. the 4-byte size, frame size) -> Decision; raises MalformedFrame.
Decide = Callable[[memoryview, int], Decision]
Sink = Callable[[bytes | bytearray | memoryview], None]
# on_frame(a collected frame incl. its size) -> True when it is to go out unchanged: the stream writes it with
# the bytes that pass around it (a Produce response whose KIP-951 check found nothing to rewrite). Otherwise
# the owner has dealt with it: emit() its rewritten form, or written it elsewhere after a flush().
OnFrame = Callable[[bytes | memoryview], bool | None]


class FrameStream:
    def __init__(self, limit: int, min_head: int, decide: Decide, sink: Sink,
                 on_frame: OnFrame, frames_as_views: bool = False,
                 sink_lines: Callable[[list[bytes | memoryview]], None] | None = None) -> None:
        self._limit = limit
        self._min_head = min_head  # bytes after the size field that decide() always gets (if the frame has them)
        self._decide = decide
        self._sink = sink
        self._sink_lines = sink_lines or (lambda chunks: [sink(chunk) for chunk in chunks])
        self._on_frame = on_frame
        # A frame whole in one chunk reaches on_frame as a view of that chunk, not a copy; such an on_frame
        # calls flush() before it writes anything itself, so that the frames passed before it go first.
        self._frames_as_views = frames_as_views
        self._passthrough = 0  # bytes of the current frame still to forward untouched
        self._parts: list[bytes | memoryview] | None = None  # chunks of the frame being collected
        self._collect_left = 0  # bytes of that frame still to come
        self._head = bytearray()  # start of a frame split across chunks
        self._data: bytes | None = None  # the chunk being fed (written as it is when all of it passes)
        self._view: memoryview | None = None
        self._span = 0  # where in it the bytes that pass and are not yet written begin
        self._span_end = 0
        self._out: list[bytes | memoryview] = []  # what goes out before that span: earlier spans, emitted frames
        self._detached: bytes | None = None  # a detached frame's first bytes and all that followed in its chunk
        self.started: float | None = None  # when the frame still incomplete at the end of the last chunk began

    def take_detached(self) -> bytes | None:
        """The bytes from the start of the frame the owner detached (Decision.DETACH) to the end of the chunk it
        was in, once: the owner moves the frame itself and feeds the stream again from the frame's end."""
        detached, self._detached = self._detached, None
        return detached

    def at_boundary(self) -> bool:
        return not self._passthrough and self._parts is None and not self._head

    def head_missing(self) -> int:
        """Bytes of the current frame's head still to come before decide() has all it is to be given of it; 0 when
        no frame's head is being held."""
        return self._wanted(self._head) - len(self._head) if self._head else 0

    def pending(self) -> int:
        """Bytes still to come before the current frame is complete; 0 at a boundary or before its size is known."""
        if self._passthrough:
            return self._passthrough
        if self._parts is not None:
            return self._collect_left
        if len(self._head) >= 4:
            return max(0, 4 + SIZE.unpack_from(self._head)[0] - len(self._head))
        return 0

    def feed(self, data: bytes) -> None:
        self._data, view = data, memoryview(data)
        self._view = view
        pos, end = 0, len(view)
        self._span = self._span_end = 0
        try:
            while pos < end:
                if self._passthrough:
                    take = min(self._passthrough, end - pos)
                    self._pass(pos, pos + take)
                    self._passthrough -= take
                    pos += take
                elif self._parts is not None:
                    take = min(self._collect_left, end - pos)
                    self._parts.append(view[pos:pos + take])  # keeps `data` alive; copied once, at the join
                    self._collect_left -= take
                    pos += take
                    if not self._collect_left:
                        parts, self._parts = self._parts, None
                        self._deliver(b"".join(parts))
                else:
                    pos = self._boundary(view, pos, end)
        finally:
            self.flush()  # also when a frame is refused: what passed before it goes out first, as it came
            self._data = self._view = None
        if self._passthrough or self._parts is not None or self._head:
            if self.started is None:
                self.started = time.monotonic()
        else:
            self.started = None

    def _deliver(self, frame: bytes) -> None:
        """A collected frame (a copy, not a view) to the owner, after what passed before it; written as it is when
        the owner says it goes out unchanged."""
        self.flush()
        if self._on_frame(frame):
            self._sink(frame)

    def _pass(self, start: int, stop: int) -> None:
        """Bytes [start, stop) of the chunk pass: joined to the pending slice when they follow it."""
        if start != self._span_end:
            self._close_span()
            self._span = start
        self._span_end = stop

    def _close_span(self) -> None:
        if self._span_end > self._span:
            view, span, self._span = self._view, self._span, self._span_end
            self._out.append(self._data if span == 0 and self._span_end == len(view) else view[span:self._span_end])

    def emit(self, chunks: list[bytes | memoryview]) -> None:
        """The owner's rewritten frame, in its place: after what passed before it, written with it."""
        self._close_span()
        self._out += chunks

    def flush(self) -> None:
        """Write what is held back so far (the owner calls it before writing anything of its own)."""
        self._close_span()
        if self._out:
            out, self._out = self._out, []
            if len(out) == 1:
                self._sink(out[0])
            else:
                self._sink_lines(out)

    def _boundary(self, view: memoryview, pos: int, end: int) -> int:
        """Decide the frame starting here; returns the new position in `view`."""
        if not self._head and end - pos >= 4:
            # Fast path, the usual case: the chunk holds the frame's whole head (or the whole frame).
            size = frame_size(view[pos:pos + 4], self._limit)
            take = 4 + (size if size < HEAD_LIMIT else HEAD_LIMIT)
            if end - pos >= take:
                prefix = view[pos:pos + take]
                decision = self._decide(prefix, size)
                if decision is Decision.PASS:
                    self._pass(pos, pos + take)
                    self._passthrough = 4 + size - take
                elif decision is Decision.DETACH:
                    self._detached = bytes(view[pos:end])
                    return end
                elif decision is Decision.COLLECT:
                    if take == 4 + size:
                        if self._frames_as_views:  # on_frame flushes before it writes anything itself
                            if self._on_frame(prefix):  # unchanged: it passes with its neighbours
                                self._pass(pos, pos + take)
                        else:
                            self.flush()
                            if self._on_frame(bytes(prefix)):
                                self._pass(pos, pos + take)
                    else:
                        self._parts = [prefix]
                        self._collect_left = 4 + size - take
                else:  # the whole head is here and still cannot be parsed
                    raise MalformedFrame(CloseReason.BAD_HEADER, "frame header cannot be parsed")
                return pos + take
        if self._head:
            wanted = self._wanted(self._head)
            take = min(wanted - len(self._head), end - pos)
            self._head += view[pos:pos + take]
            pos += take
            prefix = memoryview(self._head).toreadonly()  # kio's native readers insist on read-only buffers
        else:
            take = min(self._wanted(view[pos:end]), end - pos)
            prefix = view[pos:pos + take]
            pos += take
        if len(prefix) < 4:
            self._stash(prefix)
            return pos
        size = frame_size(prefix, self._limit)
        complete = len(prefix) == 4 + size
        decision = Decision.NEED_MORE
        if complete or len(prefix) >= 4 + min(self._min_head, size):
            decision = self._decide(prefix, size)
        if decision is Decision.NEED_MORE:
            if complete or len(prefix) >= HEAD_LIMIT:
                raise MalformedFrame(CloseReason.BAD_HEADER, "frame header cannot be parsed")
            self._stash(prefix)
            return pos
        consumed = len(prefix)
        if decision is Decision.DETACH:
            self._detached = bytes(prefix) + bytes(view[pos:end])
            self._head = bytearray()
            return end
        if decision is Decision.PASS:
            if self._head:  # the head came in pieces: written on its own
                self.flush()
                self._sink(bytes(prefix))
            else:
                self._pass(pos - consumed, pos)
            self._passthrough = 4 + size - consumed
        else:
            if complete:
                self._head = bytearray()
                self._deliver(bytes(prefix))
                return pos
            self._parts = [bytes(prefix)]  # the head buffer is reused; the frame's start must not be
            self._collect_left = 4 + size - consumed
        self._head = bytearray()
        return pos

    def _wanted(self, available: bytes | bytearray | memoryview) -> int:
        """How many bytes of the frame to hold before deciding: the whole head, capped by the frame."""
        if len(available) < 4:
            return 4
        size = SIZE.unpack_from(available)[0]
        return 4 + max(0, min(size, HEAD_LIMIT))

    def _stash(self, prefix: memoryview) -> None:
        if prefix.obj is not self._head:
            self._head = bytearray(prefix)
