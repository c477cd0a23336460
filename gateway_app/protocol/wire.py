"""Kafka's primitive encodings, read and written exactly as Kafka's Java code reads and writes them.

The request guard must read a client's bytes the way the broker will: where the two parsers disagree
(a varint Kafka would refuse, a length whose arithmetic wraps), a name can slip past one of them.
Kafka's `ByteUtils.readUnsignedVarint` reads at most five bytes into a Java int: a fifth byte with its
high bit set is refused, and bits above 31 are lost. `uvarint` does the same.
"""

from __future__ import annotations

import struct

I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
I32 = struct.Struct(">i")


class WireError(ValueError):
    """Bytes Kafka's own reader refuses (not merely bytes that end too early: those raise IndexError)."""


def int32(value: int) -> int:
    """A Python int wrapped to a Java int, as Kafka's arithmetic on lengths wraps."""
    return (value + 0x80000000) % 0x100000000 - 0x80000000


def uvarint(buffer: memoryview | bytes, offset: int) -> tuple[int, int]:
    """(value as a Java int, bytes read) of an unsigned varint; IndexError if the bytes end first."""
    value = 0
    for index in range(5):
        byte = buffer[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return int32(value), index + 1
    raise WireError("varint is too long: the most significant bit in the 5th byte is set")


def compact_length(buffer: memoryview | bytes, offset: int) -> tuple[int, int]:
    """A compact length (the varint minus one, in Java int arithmetic; -1 is null) and its size."""
    byte = buffer[offset]
    if byte < 0x80:
        return byte - 1, 1
    value, size = uvarint(buffer, offset)
    return int32(value - 1), size


def write_uvarint(out: bytearray, value: int) -> None:
    value &= 0xFFFFFFFF
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
