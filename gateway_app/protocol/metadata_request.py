"""A Metadata request that names reserved topics may not create them.

Metadata is relayed to the broker even when it names reserved topics (the client needs the broker list;
hiding.py answers those topics as denied). But from v4 the request carries allow_auto_topic_creation, and
a broker with auto-creation on would create a reserved-prefix name the guard refuses everywhere else. So
the flag is cleared in the (already assembled) request before it is relayed.
"""

from __future__ import annotations

from .api_keys import METADATA
from .codec import decode_until
from .message_specs import REQUEST, spec

FIRST_WITH_AUTO_CREATION = 4
BUDGET = 4096  # topics a Metadata request naming reserved topics may ask for


def forbid_auto_creation(frame: bytearray, body_offset: int, api_version: int) -> None:
    """Clear allow_auto_topic_creation in place (a no-op before v4)."""
    if api_version < FIRST_WITH_AUTO_CREATION:
        return
    offset = decode_until(spec(REQUEST, METADATA, api_version), "allow_auto_topic_creation",
                          memoryview(frame), body_offset, BUDGET)
    frame[offset] = 0
