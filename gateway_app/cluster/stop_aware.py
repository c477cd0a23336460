"""Waiting on the backing Kafka from the membership thread without holding up the node's stop.

The membership thread's admin requests wait seconds for an answer (10 s to find or make the members topic,
5 s to describe the group), and while Kafka cannot be reached they wait all of it. A node told to stop
(SIGTERM: systemd during a rolling restart, or while Kafka is down) sat that wait out: 10 s of its stop
went into a DescribeCluster that could not be answered. So every such wait goes through `answer`, which
waits on the request's future in slices of WAIT_SLICE_S and gives up with StopRequested as soon as the stop
event is set. Nobody stopping, the request's own timeout still ends it: librdkafka reports it as the
future's error (which names what it waited for), and ANSWER_GRACE_S past it `answer` stops waiting itself.
A blocking call without a future (AdminClient.list_topics, Producer.flush) is run on a daemon thread of its
own by `in_membership_background` and waited on the same way.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Callable, Protocol, TypeVar

from ..background_call import in_background

T = TypeVar("T")

WAIT_SLICE_S = 0.1  # how soon a stop is noticed; a future's result(timeout) costs next to nothing per slice
ANSWER_GRACE_S = 1.0  # past a request's own timeout, for librdkafka to report it (its error says more than ours)


class Stopping(Protocol):
    """How the thread is asked to stop (a threading.Event); its waits are the thread's only sleeps."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float) -> bool: ...


class StopRequested(Exception):
    """The node is stopping: a wait on Kafka was given up, the request's outcome left unread."""


def answer(future: Future[T], stopping: Stopping, request_timeout_s: float) -> T:
    """The future's result (or its exception), waited for in slices; StopRequested once `stopping` is set;
    TimeoutError when not even the request's own timeout has ended it after ANSWER_GRACE_S more."""
    deadline = time.monotonic() + request_timeout_s + ANSWER_GRACE_S
    while not stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from Kafka within {request_timeout_s + ANSWER_GRACE_S:.1f}s")
        try:
            return future.result(timeout=min(WAIT_SLICE_S, left))
        except TimeoutError:  # concurrent.futures.TimeoutError is TimeoutError since Python 3.11
            if future.done():  # the call itself raised a TimeoutError: that is its answer
                raise
    raise StopRequested("the node is stopping")


def in_membership_background(call: Callable[[], T]) -> Future[T]:
    """A blocking call of the membership thread, on a daemon thread of its own (background_call.py), for `answer`."""
    return in_background(call, "gateway-membership-call")
