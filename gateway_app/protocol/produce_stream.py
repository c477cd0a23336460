"""A Produce request read as its bytes arrive from the client, its record batches left unread.

A Produce request is mostly record batches, each a length and bytes the gateway never looks at; what it must read is
around them: the request header, the transactional id and acks, each topic's name (v3-12) or id (v13) and each
partition's header, which says how long its records are. `ProduceRequestReader` is fed the frame from its first byte
(the size prefix); it hands back the bytes it has read through, in order, and stops at each run of bytes it does not
read with `records_left` set: the owner moves that many bytes from the client to the broker without reading them
(`moved`), and feeds it again. Those runs are the partitions' records, the values of unknown tagged fields (Produce
defines none) and, from the request's last records on, the rest of the frame (only tag sections, which can name
nothing, and bytes Kafka leaves unread: the broker refuses a malformed one itself), so at most one piece of the frame
is ever held: a header, a name, a varint, never more than a string Kafka accepts (32767 bytes) and a few more.

Every byte is the client's, so each is read the way Kafka's generated reader reads it (wire.py): a string longer than
32767 bytes, a null where the field is not nullable, an array count larger than the bytes left in the frame, a varint
of more than five bytes, a tagged field of negative size, or any length that runs past the frame's end is a WireError
as soon as it is read, never waited for. Each topic name and id is checked against the reserved names as it is read
(Reserved), before the bytes that carry it are handed back: the connection decides at the request's head, where the
request guard has checked every name already (proxy/connection.py), and this check sees the same bytes again, so a
topic id learnt as reserved meanwhile still stops the request.
"""

from __future__ import annotations

from typing import Generator

from .reserved import MAX_STRING, Reserved, ReservedNames, TOPIC
from .wire import I16, I32, WireError, int32, uvarint

FIRST_FLEXIBLE_PRODUCE = 9
FIRST_TOPIC_ID_PRODUCE = 13
HEAD_READ = 256  # bytes read at once while looking for the next run (a partition header is 5-9 bytes)
VARINT_MAX = 5

_Walk = Generator[None, None, None]


class ProduceRequestReader:
    """One Produce request frame, v3 or later. Raises WireError for bytes Kafka refuses or that run past the frame,
    Reserved for a reserved topic name or id."""

    __slots__ = ("_flexible", "_by_id", "_reserved", "_buffer", "_o", "_short", "_walk", "remaining", "records_left",
                 "record_bytes", "done")

    def __init__(self, api_version: int, reserved: ReservedNames) -> None:
        if api_version < 3:
            raise ValueError(f"produce v{api_version} is not relayed")
        self._flexible = api_version >= FIRST_FLEXIBLE_PRODUCE
        self._by_id = api_version >= FIRST_TOPIC_ID_PRODUCE
        self._reserved = reserved
        self._buffer = bytearray()  # bytes fed and not yet handed back
        self._o = 0  # how far into _buffer the walk has read
        self._short = 4  # bytes the walk needs beyond _buffer before it can go on
        self.remaining: int | None = None  # frame bytes neither fed nor moved; None until the size is read
        self.records_left = 0  # bytes of the current unread run still at the source: move them
        self.record_bytes = 0  # bytes of the partitions' records met so far (moved or fed)
        self.done = False
        self._walk = self._frame()

    def want(self) -> int:
        """How many bytes to read into user space and feed next: 0 while a run is to be moved and once the frame is
        complete; else what the next piece needs, at least HEAD_READ, never past the frame."""
        if self.records_left or self.done:
            return 0
        if self.remaining is None:
            return self._short
        return min(self.remaining, max(HEAD_READ, self._short))

    def moved(self, count: int) -> None:
        """`count` bytes of the current run went from the source to the broker without being fed."""
        if count > self.records_left:
            raise ValueError(f"moved {count} bytes, {self.records_left} were left")
        self.records_left -= count
        self.remaining -= count
        if not self.records_left and not self.remaining:
            self._run()  # the frame may end with that run (the records of a v3-8 request's last partition)

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """The bytes read through so far, in frame order, for the broker."""
        if self.records_left:
            raise ValueError("a run is to be moved before more is fed")
        if self.done or (self.remaining is not None and len(data) > self.remaining):
            raise ValueError(f"fed {len(data)} bytes, the frame has {self.remaining or 0} left")
        self._buffer += data
        if self.remaining is not None:
            self.remaining -= len(data)
        self._run()
        out = [bytes(self._buffer[:self._o])] if self._o else []
        del self._buffer[:self._o]
        self._o = 0
        return out

    def _run(self) -> None:
        try:
            next(self._walk)
        except StopIteration:
            self.done = True

    # --- reading pieces: each waits (yields) until the bytes it needs are at hand ------------------------

    def _have(self, count: int) -> _Walk:
        """Wait until `count` bytes past the walk's offset are at hand; WireError if the frame cannot hold them."""
        while len(self._buffer) - self._o < count:
            missing = count - (len(self._buffer) - self._o)
            if self.remaining is not None and missing > self.remaining:
                raise WireError(f"a field of {count} bytes runs past the end of the frame")
            self._short = missing
            yield

    def _fixed(self, width: int) -> Generator[None, None, int]:
        """The offset of a fixed-width value, read past."""
        yield from self._have(width)
        o = self._o
        self._o += width
        return o

    def _int16(self) -> Generator[None, None, int]:
        return I16.unpack_from(self._buffer, (yield from self._fixed(2)))[0]

    def _int32(self) -> Generator[None, None, int]:
        return I32.unpack_from(self._buffer, (yield from self._fixed(4)))[0]

    def _varint(self) -> Generator[None, None, int]:
        """An unsigned varint as Kafka reads it (at most five bytes, into a Java int)."""
        count = 1
        while True:
            yield from self._have(count)
            try:
                value, size = uvarint(self._buffer, self._o)
            except IndexError:
                count += 1  # its last byte has the high bit set: one more byte (uvarint refuses a sixth)
                continue
            self._o += size
            return value

    def _length(self, wide: bool) -> Generator[None, None, int]:
        """A length: compact (the varint minus one) when flexible, else int16 (strings) or int32 (arrays, bytes)."""
        if self._flexible:
            return int32((yield from self._varint()) - 1)
        return (yield from self._int32()) if wide else (yield from self._int16())

    def _string(self, name: str, nullable: bool, topic: bool) -> _Walk:
        length = yield from self._length(wide=False)
        if length < 0:
            if not nullable:
                raise WireError(f"non-nullable field {name} was serialized as null")
            return
        if length > MAX_STRING:
            raise WireError(f"string field {name} had invalid length {length}")
        o = yield from self._fixed(length)
        if topic and length and self._reserved.matches(bytes(self._buffer[o:o + length])):
            raise Reserved(TOPIC)

    def _topic_id(self) -> _Walk:
        o = yield from self._fixed(16)
        if not self._reserved.ids_known or bytes(self._buffer[o:o + 16]) in self._reserved.topic_ids:
            raise Reserved(TOPIC)

    def _count(self, name: str) -> Generator[None, None, int]:
        """An array's item count: never null here, and never more items than bytes left (as Kafka refuses)."""
        count = yield from self._length(wide=True)
        if count < 0:
            raise WireError(f"non-nullable field {name} was serialized as null")
        left = len(self._buffer) - self._o + (self.remaining or 0)
        if count > left:
            raise WireError(f"tried to allocate a collection of size {count}, but there are only {left} bytes remaining")
        return count

    def _skip(self, length: int, records: bool = False) -> _Walk:
        """A run of `length` bytes not read: what is at hand is passed on, the rest is the owner's to move."""
        at_hand = min(length, len(self._buffer) - self._o)
        if length - at_hand > self.remaining:
            raise WireError(f"a run of {length} bytes runs past the end of the frame")
        self._o += at_hand
        if records:
            self.record_bytes += length
        if length > at_hand:
            self.records_left = length - at_hand
            self._short = 0  # what the piece after the run needs is known once the walk reaches it
            yield  # feed hands back what was read through; the owner moves the run, then feeds again

    def _tags(self) -> _Walk:
        """A tag section: Produce requests define no tagged field, so every value is a run skipped by its size."""
        if not self._flexible:
            return
        count = yield from self._varint()
        if count < 0:
            raise WireError("negative tagged field count")
        for _ in range(count):
            yield from self._varint()  # the tag
            size = yield from self._varint()
            if size < 0:
                raise WireError("tagged field of negative size")
            yield from self._skip(size)

    # --- the request, field by field (Kafka's ProduceRequest.json, v3 on) -------------------------------

    def _frame(self) -> _Walk:
        size = yield from self._int32()
        if size < 0:
            raise WireError(f"frame size {size}")
        if len(self._buffer) > 4 + size:
            raise ValueError(f"fed {len(self._buffer) - 4} bytes of a {size}-byte frame")
        self.remaining = 4 + size - len(self._buffer)
        yield from self._fixed(8)  # api key, api version, correlation id: the connection has read them
        client_id = yield from self._int16()  # a legacy nullable string in every header version
        if client_id > 0:
            yield from self._fixed(client_id)
        yield from self._tags()  # header v2
        yield from self._string("transactionalId", nullable=True, topic=False)
        yield from self._fixed(2 + 4)  # acks, timeout
        topics = yield from self._count("topicData")
        for topic in range(topics):
            if self._by_id:
                yield from self._topic_id()
            else:
                yield from self._string("name", nullable=False, topic=True)
            partitions = yield from self._count("partitionData")
            for partition in range(partitions):
                yield from self._fixed(4)  # index
                length = yield from self._length(wide=True)
                if topic == topics - 1 and partition == partitions - 1:
                    # The request's last records: they and all after them (tag sections, which can name nothing in a
                    # Produce request, and bytes Kafka leaves unread) move as one run. Kafka refuses a malformed tag
                    # section there itself; reading it would cost a read and a write per request.
                    rest = len(self._buffer) - self._o + self.remaining
                    if length > rest:
                        raise WireError(f"records of {length} bytes run past the end of the frame")
                    self.record_bytes += max(length, 0)
                    yield from self._skip(rest)
                    return
                if length > 0:  # null (negative) records carry none
                    yield from self._skip(length, records=True)
                yield from self._tags()
            yield from self._tags()
        yield from self._tags()
        # Bytes after the last field: Kafka's reader leaves them unread, so they are moved unread.
        yield from self._skip(len(self._buffer) - self._o + self.remaining)
