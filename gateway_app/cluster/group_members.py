"""Who is in a consumer group right now, asked of the group's coordinator.

librdkafka (2.16) remembers a group's coordinator per client and keeps sending ConsumerGroupDescribe
to it after the group's __consumer_offsets partition has moved: a preferred-leader election (Kafka's
auto leader rebalance runs every 5 minutes by default) or the coordinator's broker shutting down. The
old coordinator answers NOT_COORDINATOR, or the request times out, on every later call (for as long
as we watched: a minute). A new client looks the coordinator up again, so after any failure the
next call goes through a new client.

Measured on the lab (one classic group, described every 0.5 s): after a preferred-leader election
moved the coordinator while the old one stayed up, a long-lived client failed for the 20 s watched and
a new client answered at once; from the coordinator's broker stopping, a long-lived client failed for
the whole minute watched (through the broker's return), a client renewed after the failure answered
0.5 s later. tests/e2e/test_cluster_coordinator_moves.py does both moves under two gateway nodes.
"""

from __future__ import annotations

from typing import Mapping

from confluent_kafka.admin import AdminClient

from .stop_aware import Stopping, StopRequested, answer


class GroupMembers:
    """`client_ids()` of the group's live members; raises what the client raised if the
    coordinator cannot be asked, after replacing the client so that the next call looks it up anew;
    StopRequested, the client kept, as soon as `stopping` is set."""

    def __init__(self, kafka_config: Mapping[str, str], group: str, stopping: Stopping,
                 request_timeout_s: float = 5.0) -> None:
        self._kafka_config = dict(kafka_config)
        self.group = group
        self._stopping = stopping
        self.request_timeout_s = request_timeout_s
        self._admin = AdminClient(self._kafka_config)

    def client_ids(self) -> frozenset[str]:
        try:
            future = self._admin.describe_consumer_groups([self.group], request_timeout=self.request_timeout_s)[self.group]
            description = answer(future, self._stopping, self.request_timeout_s)
        except StopRequested:
            raise
        except Exception:
            self._admin = AdminClient(self._kafka_config)
            raise
        return frozenset(member.client_id for member in description.members)
