"""Hostile and careless clients for the trust-boundary tests, run inside the lab's client netns.

`python -m tests.e2e.trust_clients SCENARIO --bootstrap HOST:PORT [...]` prints one JSON line. Every loop
is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import socket
import struct
import sys
import time
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from lab import frames
from lab.frames import recv_exactly

TIMEOUT_S = 30.0


def reserved(args: argparse.Namespace) -> dict[str, Any]:
    """What an ordinary client gets when it touches the gateway cluster's own topic and group."""
    base = {"bootstrap.servers": args.bootstrap}
    result: dict[str, Any] = {}

    errors: list[str] = []
    producer = Producer({**base, "message.timeout.ms": 20000,
                         "error_cb": lambda error: errors.append(error.name())})
    producer.produce(args.topic, key=b"gw1", value=b'{"advertised_host": "198.18.0.250"}',
                     on_delivery=lambda error, _: errors.append(error.name() if error else "DELIVERED"))
    producer.flush(25)
    result["produce"] = sorted(set(errors))

    admin = AdminClient(base)
    admin.create_topics([NewTopic(args.ordinary_topic, 1, 3)], request_timeout=15)[args.ordinary_topic].result(20)
    group_errors: list[str] = []
    consumer = Consumer({**base, "group.id": args.group, "session.timeout.ms": 6000,
                         "error_cb": lambda error: group_errors.append(error.name())})
    consumer.subscribe([args.ordinary_topic])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "GROUP_AUTHORIZATION_FAILED" not in group_errors:
        message = consumer.poll(0.5)
        if message is not None and message.error():
            group_errors.append(message.error().name())
    consumer.close()
    result["join"] = sorted(set(group_errors))

    try:
        admin.delete_topics([args.topic], request_timeout=15)[args.topic].result(20)
        result["delete_topic"] = "DELETED"
    except KafkaException as error:
        result["delete_topic"] = error.args[0].name()
    try:
        admin.delete_consumer_groups([args.group], request_timeout=15)[args.group].result(20)
        result["delete_group"] = "DELETED"
    except KafkaException as error:
        result["delete_group"] = error.args[0].name()
    result["listed_topics"] = sorted(admin.list_topics(timeout=15).topics)
    groups = admin.list_consumer_groups(request_timeout=15).result(20)
    result["listed_groups"] = sorted(g.group_id for g in groups.valid)
    config = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")], request_timeout=15)
    entries = next(iter(config.values())).result(20)
    result["broker_config"] = {name: entry.value for name, entry in entries.items()
                               if "listener" in name or "quorum" in name}
    result["broker_config_values"] = " ".join(str(entry.value) for entry in entries.values())
    return result


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def silent(args: argparse.Namespace) -> dict[str, Any]:
    """Open --count sockets that never send a byte; report how many the gateway closed within --seconds."""
    _raise_fd_limit(args.count + 100)
    host, port = args.bootstrap.rsplit(":", 1)
    sockets = []
    opened_at = time.monotonic()
    for _ in range(args.count):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.setblocking(False)
        sockets.append(sock)
    opened_s = time.monotonic() - opened_at
    closed: dict[int, float] = {}
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and len(closed) < len(sockets):
        for index, sock in enumerate(sockets):
            if index in closed:
                continue
            try:
                if sock.recv(1) == b"":
                    closed[index] = time.monotonic() - opened_at
            except BlockingIOError:
                pass
            except OSError:  # reset by the gateway
                closed[index] = time.monotonic() - opened_at
        time.sleep(0.2)
    for sock in sockets:
        sock.close()
    return {"opened": len(sockets), "opened_s": round(opened_s, 2), "closed": len(closed),
            "last_closed_s": round(max(closed.values()), 2) if closed else None}


def hold(args: argparse.Namespace) -> dict[str, Any]:
    """Open --count connections, each sending one Metadata request, and report how many stayed open
    (answered) and how many the gateway closed at once (refused). They are held until stdin is closed (the test
    has looked at the gateway), at most --seconds."""
    _raise_fd_limit(args.count + 100)
    host, port = args.bootstrap.rsplit(":", 1)
    answered = refused = 0
    sockets = []
    for correlation in range(args.count):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sockets.append(sock)
        try:
            sock.sendall(metadata_request(correlation))
            size = struct.unpack(">i", recv_exactly(sock, 4))[0]
            recv_exactly(sock, size)
            answered += 1
        except OSError:
            refused += 1
    select.select([sys.stdin], [], [], args.seconds)  # readable at its end: the test is done looking
    for sock in sockets:
        sock.close()
    return {"answered": answered, "refused": refused}


def metadata_request(correlation_id: int) -> bytes:
    return frames.metadata_request(correlation_id, "trust", all_topics=True)


def pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """Send --count Metadata requests in one burst without reading, then read every response: all must
    come back, in order."""
    host, port = args.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"".join(metadata_request(n) for n in range(args.count)))
        order = []
        for _ in range(args.count):
            size = struct.unpack(">i", recv_exactly(sock, 4))[0]
            order.append(struct.unpack(">i", recv_exactly(sock, size)[:4])[0])
    return {"responses": len(order), "in_order": order == list(range(args.count))}


def no_reading(args: argparse.Namespace) -> dict[str, Any]:
    """Pipeline Metadata requests and never read; report when the gateway gave up on this client."""
    host, port = args.bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    burst = b"".join(metadata_request(n) for n in range(200))
    started = time.monotonic()
    sent = 0
    closed_after = None
    deadline = started + args.seconds
    while time.monotonic() < deadline:
        try:
            sent += sock.send(burst)
        except BlockingIOError:
            pass
        except OSError:
            closed_after = time.monotonic() - started
            break
        time.sleep(0.05)
    sock.close()
    return {"sent_bytes": sent, "closed_after_s": None if closed_after is None else round(closed_after, 1)}


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "reserved": reserved, "silent": silent, "hold": hold, "pipeline": pipeline, "no-reading": no_reading,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="")
    parser.add_argument("--group", default="")
    parser.add_argument("--ordinary-topic", default="")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    print(json.dumps(SCENARIOS[parser.parse_args().scenario](parser.parse_args()), sort_keys=True))


if __name__ == "__main__":
    main()
