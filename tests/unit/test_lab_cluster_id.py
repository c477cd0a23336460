"""lab.kafka.new_cluster_id: what `kafka-storage format -t` accepts."""

from __future__ import annotations

import base64
import uuid

import pytest

from lab import kafka


def test_a_cluster_id_is_a_base64url_uuid_that_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # the first UUID drawn encodes to "-…", which the storage tool would read as an option: it is drawn again
    dash_first = uuid.UUID(bytes=bytes([0xFB]) + bytes(15))
    drawn = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    cluster_id = kafka.new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
    assert len(cluster_id) == 22 and not cluster_id.startswith("-")
