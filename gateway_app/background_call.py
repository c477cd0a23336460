"""A blocking call on a daemon thread of its own, its outcome in a concurrent Future.

For the calls into the backing Kafka that a stopping node gives up on: the membership thread's (cluster/stop_aware.py)
and the broker directory's DescribeCluster. A daemon thread, because a call given up on must not hold up the
process's exit: the workers of a ThreadPoolExecutor, asyncio's default executor (asyncio.to_thread) among them, are
joined when the event loop or the interpreter shuts down, so a DescribeCluster in flight to an unreachable Kafka held
a stopping node's exit for up to its timeout (GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S + 1 s).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")


def in_background(call: Callable[[], T], name: str) -> Future[T]:
    """Start `call` on a daemon thread named `name`; its result or exception lands in the returned Future."""
    future: Future[T] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(call())
        except BaseException as error:  # whatever the call raised is its answer, for the waiter to raise
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
