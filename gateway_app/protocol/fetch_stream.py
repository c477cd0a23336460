"""A flexible Fetch response (v12+) read as its bytes arrive, its record sets left unread.

A Fetch response is mostly record sets, each a compact length and bytes the gateway never looks at; what it must
read is around them: the partition headers that say how long each set is, and the top-level tag section at the end,
where KIP-951 node endpoints live (Fetch v16+). `FetchResponseReader` is fed the frame from its first byte (the size
prefix); it hands back the bytes it has read through, in order, and stops at each record set with `records_left`
set: the owner moves that many bytes from the broker to the client without reading them (`moved`), and feeds it
again. The top-level tag section is kept back as `tags` once the frame is complete, for the owner to rewrite in
place (fetch_endpoints_in_place.py) and write last.

Versions before 12 are not flexible, and before 16 nothing in them is rewritten: their owner moves the whole frame.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from functools import cache
from typing import Callable

from kio.serial.errors import DecodeError

from .api_keys import FETCH
from .kio_adapter import EntityTupleField, classify_field, load_response_schema
from .schema_walk import WalkError, skip_after_field, skip_tagged_fields, skip_to_field
from .wire import WireError, uvarint

FIRST_FLEXIBLE_FETCH = 12
HEAD_READ = 256  # bytes read at once while looking for the next record set (a partition header is ~40)

_HEADER, _TOPIC, _PARTITION, _PARTITION_END, _TOPIC_END, _RESPONSE_END, _DONE = range(7)
# What a walk of a buffer that ends early raises (kio's readers among it): only an error once the whole frame is at
# hand (WalkError and WireError are ValueErrors).
_SHORT = (IndexError, struct.error, ValueError, DecodeError)


def _items(entity: type, name: str) -> type:
    """The entity type of the array field `name`."""
    (field,) = [f for f in fields(entity) if f.name == name]
    kind = classify_field(field)
    assert isinstance(kind, EntityTupleField)
    return kind.type_


@cache
def _walks(api_version: int) -> tuple[Callable, ...]:
    response = load_response_schema(FETCH, api_version)
    if api_version < FIRST_FLEXIBLE_FETCH or not response.__flexible__:
        raise ValueError(f"fetch v{api_version} is not flexible")
    topic = _items(response, "responses")
    partition = _items(topic, "partitions")
    return (skip_to_field(response, "responses"), skip_to_field(topic, "partitions"),
            skip_to_field(partition, "records"), skip_after_field(partition, "records"),
            skip_after_field(topic, "partitions"), skip_after_field(response, "responses", tags=False))


def _count(b: memoryview, o: int) -> tuple[int, int]:
    """A compact array count (the arrays of a Fetch response are never null) and the offset after it."""
    value, size = uvarint(b, o)
    if value < 1:
        raise WireError(f"array count {value - 1}")
    return value - 1, o + size


class FetchResponseReader:
    """One Fetch response frame, v12 or later. Raises WalkError for bytes that do not match the schema (found out
    at the latest when the whole frame has been fed)."""

    __slots__ = ("_walks", "_buffer", "_state", "_topics", "_partitions", "remaining", "records_left", "tags",
                 "record_bytes")

    def __init__(self, api_version: int) -> None:
        self._walks = _walks(api_version)
        self._buffer = bytearray()  # bytes fed and not yet handed back (a header's worth, or the tail)
        self._state = _HEADER
        self._topics = self._partitions = 0  # still to come at the current level
        self.remaining: int | None = None  # frame bytes neither fed nor moved; None until the size is read
        self.records_left = 0  # bytes of the current record set still at the source: move them, unread
        self.tags: bytes | None = None  # the top-level tag section, once the frame is complete
        self.record_bytes = 0  # bytes of the record sets met so far (moved or fed)

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def want(self) -> int:
        """How many bytes to read into user space and feed next: 0 while a record set is to be moved and once the
        frame is complete. The tail is read whole; elsewhere a little at a time, so that few record bytes are read."""
        if self.records_left or self._state == _DONE:
            return 0
        if self.remaining is None:
            return 4 - len(self._buffer)  # the size first: it bounds every read after it
        if self._state == _RESPONSE_END:
            return self.remaining
        return min(self.remaining, max(HEAD_READ, len(self._buffer)))

    def moved(self, count: int) -> None:
        """`count` bytes of the current record set went from the source to the client without being fed."""
        if count > self.records_left:
            raise ValueError(f"moved {count} record bytes, {self.records_left} were left")
        self.records_left -= count
        self.remaining -= count

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """The bytes read through so far, in frame order, for the client (the top-level tag section excepted)."""
        if self.records_left:
            raise ValueError("a record set is to be moved before more is fed")
        if self._state == _DONE or (self.remaining is not None and len(data) > self.remaining):
            raise ValueError(f"fed {len(data)} bytes, the frame has {self.remaining or 0} left")
        self._buffer += data
        if self.remaining is None:
            if len(self._buffer) < 4:
                return []
            (size,) = struct.unpack_from(">i", self._buffer)
            if size < 0 or len(self._buffer) > 4 + size:
                raise WalkError(f"frame of {size} bytes fed {len(self._buffer) - 4}")
            self.remaining = 4 + size - len(self._buffer)
        else:
            self.remaining -= len(data)
        offset = 0
        while self._state != _DONE and not self.records_left:
            try:
                offset = self._step(offset)
            except _SHORT as error:
                if self.remaining == 0:  # the whole frame is at hand, and it does not parse
                    raise WalkError(f"fetch response: {error!r}") from None
                break
        out = [bytes(self._buffer[:offset])] if offset else []
        if self._state == _DONE:
            self._buffer = bytearray()
        elif offset:
            del self._buffer[:offset]
        return out

    def _step(self, o: int) -> int:
        """Read one piece of the buffer at offset o; returns the offset after it (and after the record bytes at hand
        when it ends at a record set). Raises one of _SHORT, and changes nothing, when the buffer ends first."""
        b = memoryview(self._buffer).toreadonly()  # kio's native readers insist on read-only buffers
        try:
            to_responses, to_partitions, to_records, after_records, after_partitions, after_responses = self._walks
            state = self._state
            if state == _HEADER:  # size, correlation id, header tags, top-level fields, the topic count
                topics, o = _count(b, to_responses(b, skip_tagged_fields(b, 8)))
                self._topics, self._state = topics, _TOPIC if topics else _RESPONSE_END
            elif state == _TOPIC:
                partitions, o = _count(b, to_partitions(b, o))
                self._partitions, self._state = partitions, _PARTITION if partitions else _TOPIC_END
            elif state == _PARTITION:
                o = to_records(b, o)
                length, size = uvarint(b, o)  # past the end of b, this raises: o is within it after
                o += size
                length = max(length - 1, 0)  # null records (0) carry none
                at_hand = min(length, len(b) - o)
                o += at_hand
                self.records_left = length - at_hand
                self.record_bytes += length
                self._state = _PARTITION_END
            elif state == _PARTITION_END:
                o = _within(b, after_records(b, o))
                self._partitions -= 1
                self._state = _PARTITION if self._partitions else _TOPIC_END
            elif state == _TOPIC_END:
                o = _within(b, after_partitions(b, o))
                self._topics -= 1
                self._state = _TOPIC if self._topics else _RESPONSE_END
            else:  # _RESPONSE_END: the untagged fields after the topics, then the tag section, kept back
                if self.remaining:
                    raise IndexError("the tag section is read whole")
                start = _within(b, after_responses(b, o))
                end = skip_tagged_fields(b, start)
                if end != len(b):
                    raise WalkError(f"{len(b) - end} bytes after the tag section")
                self.tags = bytes(b[start:end])
                self._state = _DONE
                return start
        finally:
            b.release()
        return o


def _within(b: memoryview, o: int) -> int:
    """o, if the walk that ended there stayed inside b: the walks skip a length's bytes without reading them."""
    if o > len(b):
        raise IndexError("the piece runs past the bytes at hand")
    return o
