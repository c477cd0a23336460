"""A node told to stop while its backing Kafka is unreachable exits promptly: nothing on its way out waits out a
DescribeCluster that cannot be answered (GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S, 10 s by default). No lab: the Kafka is
a loopback port nothing listens on, the node listens on a loopback address of its own.

Mutations tried: the directory's describe back on asyncio.to_thread makes the first test wait ~10 s for the loop's
close; app.py awaiting the start-up refresh without the stop makes the second wait ~10 s before the node exits.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway_app.proxy.directory import BrokerDirectory

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "127.0.0.1:9"
DESCRIBE_TIMEOUT_S = 10.0  # the default GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S
PROMPT_S = 5.0  # far above a stop that waits for nothing, far below one that waits out the describe


def test_a_describe_in_flight_does_not_hold_up_the_loops_close():
    async def refresh_then_stop() -> None:
        directory = BrokerDirectory({}, (("127.0.0.1", 9),), DESCRIBE_TIMEOUT_S)
        directory._admin_properties.update({"bootstrap.servers": UNREACHABLE, "log_level": "0"})
        refreshing = asyncio.ensure_future(directory.refresh())
        await asyncio.sleep(0.3)
        assert not refreshing.done()  # in flight when the loop closes (asyncio.run cancels it, then closes)

    started = time.monotonic()
    asyncio.run(refresh_then_stop())
    assert time.monotonic() - started < PROMPT_S


def test_a_node_stopped_while_starting_against_an_unreachable_kafka_exits_at_once(tmp_path):
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.1"  # a loopback address of its own: no port clash
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "KAFKA_"))}
    env.update({"GATEWAY_BIND_HOST": host, "GATEWAY_ADVERTISED_HOST": host, "GATEWAY_PORT_START": "6969",
                "GATEWAY_HTTP_PORT": "8888", "GATEWAY_NODE_ID": "unit", "GATEWAY_CLUSTER_ID": "unit",
                "GATEWAY_CLUSTER_SECRET": "unit-test-secret-0123456789", "KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE})
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        node = subprocess.Popen([sys.executable, "-m", "gateway_app"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not live(host) and time.monotonic() < deadline:  # HTTP is up before the first DescribeCluster
            assert node.poll() is None, log.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
        assert live(host), log.read_text(errors="replace")[-2000:]
        stopping = time.monotonic()
        node.send_signal(signal.SIGTERM)
        assert node.wait(DESCRIBE_TIMEOUT_S * 3) == 0
        took = time.monotonic() - stopping
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert took < PROMPT_S, text[-3000:]


def live(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:8888/health/live", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
