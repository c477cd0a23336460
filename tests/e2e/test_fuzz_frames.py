"""Malformed frames thrown at a running node while a well-behaved client keeps producing.

Hypothesis generates hostile byte streams (garbage, negative and oversized sizes, valid headers
with random API keys/versions and junk bodies, truncated frames); each goes over a fresh TCP
connection to a random gateway port. The node must close those connections, count them, and
never die; the producer running at the same time (client netns, idempotent, acks=all) must see
no error and lose nothing.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.dataplane_support import REPO, BackgroundProducer, node_fixture, unique

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17300, 17390
MAX_FRAME = 1024 * 1024
PRODUCE_SECONDS = 30  # the producer's bound: it is stopped once the attack is over
MIN_PRODUCE_S = 8
FUZZ_RSS_BOUND_MIB = 300  # a node's peak resident memory through the fuzz command (see bench/fuzz.py)

node = node_fixture(PORT_START, HTTP_PORT, GATEWAY_MAX_FRAME_BYTES=str(MAX_FRAME))


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


request_header = st.builds(
    lambda key, version, corr, client: struct.pack(">hhih", key, version, corr, len(client)) + client,
    st.integers(-5, 100), st.integers(-2, 20), st.integers(-2**31, 2**31 - 1), st.binary(max_size=20))

hostile = st.one_of(
    st.binary(min_size=1, max_size=200),                                            # garbage
    st.integers(-2**31, -1).map(lambda n: struct.pack(">i", n)),                    # negative size
    st.integers(MAX_FRAME + 1, 2**31 - 1).map(lambda n: struct.pack(">i", n) + b"x" * 64),  # oversized
    st.binary(max_size=9).map(frame),                                               # too short for a header
    st.tuples(request_header, st.binary(max_size=300)).map(lambda hb: frame(hb[0] + hb[1])),  # junk bodies
    st.tuples(request_header, st.binary(max_size=50)).map(lambda hb: frame(hb[0] + hb[1])[:-3]),  # truncated
)


def throw(address: str, port: int, data: bytes) -> None:
    with socket.create_connection((address, port), timeout=2) as sock:
        sock.settimeout(1.0)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (socket.timeout, ConnectionError):
            pass


def test_node_survives_malformed_frames_while_client_works(lab, node):
    topic = unique("fuzz")
    ports = [PORT_START, PORT_START + 1, PORT_START + 2, PORT_START + 3]
    deadline = time.monotonic() + PRODUCE_SECONDS - 5

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=hostile, port=st.sampled_from(ports))
    def attack(data: bytes, port: int) -> None:
        if time.monotonic() < deadline:
            throw(node.address, port, data)
            assert node.alive(), node.log()[-2000:]

    with BackgroundProducer(lab, node.bootstrap, topic, PRODUCE_SECONDS) as producer:
        started = time.monotonic()
        time.sleep(3)  # the topic exists and the producer is flowing before the attack starts
        attacking = time.monotonic()
        attack()
        print(f"\nthe attack took {time.monotonic() - attacking:.1f} s")
        # the client still works after the last frame; then it stops sending (at least MIN_PRODUCE_S in all, for
        # its 500 records on a loaded machine: the attack itself takes a few seconds)
        time.sleep(max(1.0, started + MIN_PRODUCE_S - time.monotonic()))
        producer.stop_sending()
        result = producer.result()
    assert result["acked"] > 500 and result["missing"] == 0 and result["error_count"] == 0, result
    assert node.alive()
    status, body = node.http("/health/ready")
    assert status == 200, body
    malformed = node.metric("gateway_malformed_frames_total")
    assert malformed > 50, node.http("/metrics")[1]
    for reason in ("oversized", "negative_size", "short_header"):
        assert node.metric("gateway_malformed_frames_total", reason=reason) > 0, reason
    print(f"{malformed:.0f} malformed frames closed; producer {result}")


def test_a_short_run_of_the_fuzz_command_leaves_the_node_ready_and_its_memory_bounded(lab, tmp_path):
    """The short profile of `python -m bench.fuzz` (the README's million-frame run): a bystander connection is
    answered throughout, the node ends ready, and its peak RSS stays within the stated bound."""
    out = tmp_path / "fuzz.json"
    done = subprocess.run([sys.executable, "-m", "bench.fuzz", "--frames", "3000", "--minutes", "4",
                           "--max-rss-mib", str(FUZZ_RSS_BOUND_MIB), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    result = json.loads(out.read_text())
    assert result["frames"] == 3000 and result["ready"] and result["bystander_answered"] > 0, result
