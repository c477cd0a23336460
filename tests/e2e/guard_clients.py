"""Clients of the request-guard tests (tests/e2e/test_request_guard.py), run inside the lab's client netns.

`python -m tests.e2e.guard_clients SCENARIO --bootstrap HOST:PORT [...]` prints one JSON line (the flood
prints two: one when it is stalled, one when it is done). Scenarios: exchange (frames, answers), flood (a
client that never reads), partial (connections that stop mid-frame), libraries (real clients). The frames are built by the test module (it
reads Kafka's message definitions) and handed over as hex on stdin, so this side only moves bytes.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from typing import Any, Callable

TIMEOUT_S = 10.0


def _address(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


def _read_frame(sock: socket.socket) -> dict[str, Any]:
    """One response frame, or how the connection ended instead."""
    data = bytearray()
    wanted = 4
    try:
        while len(data) < wanted:
            chunk = sock.recv(wanted - len(data))
            if not chunk:
                return {"closed": "eof", "partial": len(data)}
            data += chunk
            if wanted == 4 and len(data) == 4:
                wanted = 4 + struct.unpack(">i", bytes(data))[0]
    except socket.timeout:
        return {"timeout": True, "partial": len(data)}
    except OSError as error:  # reset: the gateway aborts a connection it refuses
        return {"closed": type(error).__name__, "partial": len(data)}
    return {"response": bytes(data[4:]).hex()}


def exchange(args: argparse.Namespace) -> dict[str, Any]:
    """stdin: {"connections": [[{"frame": hex, "answer": bool}, ...], ...]}. Each connection is fresh; each
    frame is sent whole and, if an answer is expected, one response frame is read (or how the connection
    ended). After the last frame of a connection, `end` says whether the gateway closed it within
    --seconds (a connection still open shows as a timeout)."""
    plan = json.load(sys.stdin)
    results = []
    for frames in plan["connections"]:
        steps: list[dict[str, Any]] = []
        with socket.create_connection(_address(args.bootstrap), timeout=TIMEOUT_S) as sock:
            for step in frames:
                try:
                    sock.sendall(bytes.fromhex(step["frame"]))
                except OSError as error:
                    steps.append({"closed": type(error).__name__, "partial": 0})
                    break
                if step.get("answer", True):
                    steps.append(_read_frame(sock))
                    if "response" not in steps[-1]:
                        break
            else:
                sock.settimeout(args.seconds)
                steps.append({"end": _read_frame(sock)})
        results.append(steps)
    return {"connections": results}


def flood(args: argparse.Namespace) -> dict[str, Any]:
    """Send --count copies of the frame on stdin (hex) on one connection and never read. Report (one line)
    once all is sent or no byte more was taken for --seconds (the kernel buffers what the gateway leaves
    unread, so the client stalls only once those are full), hold the connection --hold seconds longer, report again."""
    frame = bytes.fromhex(sys.stdin.read().strip())
    blob = memoryview(frame * args.count)
    sock = socket.create_connection(_address(args.bootstrap), timeout=TIMEOUT_S)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    started = last_progress = time.monotonic()
    sent, error = 0, None
    while sent < len(blob) and time.monotonic() - last_progress < args.seconds:
        try:
            sent += sock.send(blob[sent:sent + 65536])
            last_progress = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
        except OSError as failure:
            error = type(failure).__name__
            break
    stalled = {"phase": "stalled", "sent": sent, "total": len(blob), "error": error,
               "stalled_after_s": round(last_progress - started, 2)}
    print(json.dumps(stalled, sort_keys=True), flush=True)
    deadline = time.monotonic() + args.hold
    while error is None and time.monotonic() < deadline:  # still unread: does the gateway keep the connection?
        try:
            sent += sock.send(b"")
        except OSError as failure:
            error = type(failure).__name__
        time.sleep(0.2)
    sock.close()
    return {"phase": "done", "sent": sent, "error": error}


def partial(args: argparse.Namespace) -> dict[str, Any]:
    """Open --count connections one after the other; on each send the first --bytes bytes of the frame on
    stdin (hex) and stop there, mid-frame. Then watch them all for --seconds: `closed_after_s` says when the
    gateway closed each (counted from the end of its sending), null if it was still open."""
    frame = bytes.fromhex(sys.stdin.read().strip())[:args.bytes]
    opened = []
    for _ in range(args.count):
        sock = socket.create_connection(_address(args.bootstrap), timeout=TIMEOUT_S)
        error = None
        try:
            sock.sendall(frame)
        except OSError as failure:  # closed while we were still sending
            error = type(failure).__name__
        opened.append({"sock": sock, "sent_at": time.monotonic(), "error": error, "closed_after_s": None})
        if error is not None:
            opened[-1]["closed_after_s"] = 0.0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and any(c["closed_after_s"] is None for c in opened):
        for connection in opened:
            if connection["closed_after_s"] is None:
                connection["sock"].settimeout(0.05)
                ended = _read_frame(connection["sock"])
                if "closed" in ended or "response" in ended:
                    connection["closed_after_s"] = round(time.monotonic() - connection["sent_at"], 2)
    for connection in opened:
        connection.pop("sock").close()
        connection.pop("sent_at")
    return {"connections": opened}


def libraries(args: argparse.Namespace) -> dict[str, Any]:
    """Produce and consume one message with kafka-python and one with confluent-kafka, both at defaults."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KafkaTopicPartition

    result: dict[str, Any] = {}
    producer = KafkaProducer(bootstrap_servers=args.bootstrap)
    metadata = producer.send(args.topic, b"from-kafka-python").get(timeout=30)
    producer.close(timeout=10)
    result["kafka_python_produced"] = metadata.offset

    delivered: list[Any] = []
    confluent = Producer({"bootstrap.servers": args.bootstrap})
    confluent.produce(args.topic, b"from-confluent", on_delivery=lambda error, message: delivered.append(
        error.name() if error else message.offset()))
    confluent.flush(30)
    result["confluent_produced"] = delivered

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=20000)
    consumer.assign([KafkaTopicPartition(args.topic, 0)])
    seen = []
    for record in consumer:
        seen.append(record.value.decode())
        if len(seen) == 2:
            break
    consumer.close()
    result["kafka_python_consumed"] = sorted(seen)

    reader = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group})
    reader.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    seen, deadline = [], time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is not None:
            seen.append(message.error().name() if message.error() else message.value().decode())
    reader.close()
    result["confluent_consumed"] = sorted(seen)
    return result


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "exchange": exchange, "flood": flood, "partial": partial, "libraries": libraries,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="")
    parser.add_argument("--group", default="guard")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--bytes", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(SCENARIOS[args.scenario](args), sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
