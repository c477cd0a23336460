"""KIP-951 node endpoints rewritten without changing the size of the tag section that holds them.

A Fetch response whose record sets are moved kernel to kernel (fetch_stream.py) has its size prefix written before
its top-level tag section, at the very end, is read: the section must keep its size. The endpoints are rewritten as
node_endpoints.py rewrites them; when that makes the section shorter, one padding field fills the difference, under
a tag no Kafka message uses (KIP-482: a reader skips a tag it does not know; Java's generated readers keep it
aside as an unknown tagged field, librdkafka's skip it). When the rewritten endpoints would not fit, they are left
out and the padding takes their place: the client, told NOT_LEADER_OR_FOLLOWER without endpoints, refreshes its
metadata instead, as it did before KIP-951. Tags stay in ascending order, the padding's last.
"""

from __future__ import annotations

from enum import Enum

from .context import RewriteContext
from .node_endpoints import endpoints_tag, rewritten_tag
from .schema_walk import read_tags, write_tags

# The largest tag of a one-byte and of a two-byte varint: no Kafka message uses either (their tags count up from 0;
# tests/unit/test_endpoints_in_place.py checks every message of the Kafka release the specs come from).
PADDING_TAGS = (127, 16383)


class Outcome(Enum):
    UNCHANGED = "unchanged"  # no endpoints in the section: written as it came
    REWRITTEN = "rewritten"  # the rewritten endpoints have the size of the broker's
    PADDED = "padded"  # shorter: padding fills the difference
    DROPPED = "dropped"  # longer: left out, padding in their place


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def padded(tags: list[tuple[int, bytes | memoryview]], size: int) -> bytes | None:
    """The tag section of `tags` plus one padding field, exactly `size` bytes long; None if no padding fits."""
    for pad_tag in PADDING_TAGS:
        if any(tag >= pad_tag for tag, _ in tags):
            continue  # the padding must come last
        # count, the fields, the padding's tag and length varints and its bytes
        fixed = _varint_size(len(tags) + 1) + sum(_varint_size(t) + _varint_size(len(v)) + len(v) for t, v in tags)
        room = size - fixed - _varint_size(pad_tag)
        for length_size in range(1, 6):
            length = room - length_size
            if length >= 0 and _varint_size(length) == length_size:
                section = write_tags([*tags, (pad_tag, bytes(length))])
                assert len(section) == size
                return section
    return None


def rewrite_in_place(api_key: int, api_version: int, section: bytes, ctx: RewriteContext) -> tuple[bytes, Outcome]:
    """The top-level tag section of a Produce/Fetch response (v10+/v16+) with its node endpoints rewritten, the same
    size as `section`, and what was done. Raises IndexError/WireError for a section Kafka's reader would refuse."""
    tag = endpoints_tag(api_key, api_version)
    if tag is None or section == b"\0":
        return section, Outcome.UNCHANGED
    view = memoryview(section)
    tags, end = read_tags(view, 0)
    if end != len(section):
        raise IndexError(f"{len(section) - end} bytes after the tag section")
    found = [index for index, (item_tag, _) in enumerate(tags) if item_tag == tag]
    if not found:
        return section, Outcome.UNCHANGED
    index = found[0]
    rewritten = [*tags[:index], (tag, rewritten_tag(api_key, api_version, tags[index][1], ctx)), *tags[index + 1:]]
    candidate = write_tags(rewritten)
    if len(candidate) == len(section):
        return candidate, Outcome.REWRITTEN
    if len(candidate) < len(section):
        filled = padded(rewritten, len(section))
        if filled is not None:
            return filled, Outcome.PADDED
    filled = padded([*tags[:index], *tags[index + 1:]], len(section))
    if filled is None:  # cannot happen: the endpoints' field took at least 3 bytes, any padding of 2+ fits
        raise ValueError(f"no padding fills a tag section of {len(section)} bytes")
    return filled, Outcome.DROPPED

