"""Monitoring checks against the real Prometheus of the `external_lb` scenario, run from the lab's client namespace.

    panels  while a producer and a consumer run through HAProxy (and one oversized frame, one request for an
            unknown broker and one connection that never sends a request provoke a malformed-frame, an
            upstream-error and a connection-refused count), every panel of the generated dashboard must draw: at
            least one of its queries returns data from Prometheus (a panel's other queries may count events that
            did not happen, such as handovers refused); every target carries its labels
    alerts  each --fire NAME:LABEL=VALUE alert must be firing, no sooner than its rule's `for:` and no later than
            `for:` plus two scrape and two evaluation intervals (+ slack), counted from --since (when the gateway's
            stop began), plus --stop-s (how long the stop took: a draining node leaves the cluster and its load
            balancers at once but answers scrapes until it exits); each --quiet alert must not be firing. Prints
            each alert's time to fire.

Prints one JSON line with its findings and exits non-zero when a promise is broken.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

RATE_INTERVAL = "30s"
SLACK_S = 10.0


def prometheus(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


# how monitoring/dashboard.py marks a panel that draws data in one load-balancing mode only
MODE_ONLY = {"internal": "Internal load balancing only", "external": "External load balancing (HAProxy) only"}


def panel_queries(dashboard: Path, mode: str) -> list[tuple[str, str]]:
    """Every (panel title, query) that can draw data in this load-balancing mode."""
    board = json.loads(dashboard.read_text())
    other = [text for name, text in MODE_ONLY.items() if name != mode]
    return [(panel["title"], target["expr"]) for panel in board["panels"]
            if not any(panel.get("description", "").startswith(text) for text in other)
            for target in panel.get("targets", [])]


class Traffic:
    """A producer and a consumer through the load balancer until stopped (bounded by max_s)."""

    def __init__(self, bootstrap: str, max_s: float) -> None:
        self.bootstrap, self.deadline = bootstrap, time.monotonic() + max_s
        self.topic = f"monitoring-{uuid.uuid4().hex[:8]}"
        self.stop = threading.Event()
        self.acked = self.consumed = 0
        self.admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: a dropped client cancels its futures
        self.admin.create_topics([NewTopic(self.topic, 3, 3)])[self.topic].result(timeout=30)
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def _produce(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})

        def acked(error, _message) -> None:
            if error is None:
                self.acked += 1

        while self.running():
            for _ in range(20):
                producer.produce(self.topic, b"x" * 512, on_delivery=acked)
            producer.poll(0.1)
        producer.flush(30)

    def _consume(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.topic,
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([self.topic])
        while self.running():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                self.consumed += 1
        consumer.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        self.admin.delete_topics([self.topic])[self.topic].result(timeout=30)


def provoke_malformed_frame(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall((2**31 - 1).to_bytes(4, "big"))  # oversized: the gateway closes the connection
        sock.recv(1)


def provoke_upstream_error(host: str, port: int) -> None:
    """An ApiVersions request on the port of a broker id the cluster does not have: no address, an upstream error."""
    client_id = b"monitoring-check"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(len(body).to_bytes(4, "big") + body)
        sock.recv(1)


def provoke_first_request_timeout(host: str, port: int, hold_s: float) -> None:
    """A connection that sends nothing: the gateway closes it after GATEWAY_FIRST_REQUEST_TIMEOUT_S (a refusal)."""

    def hold() -> None:
        with socket.create_connection((host, port), timeout=hold_s) as sock:
            try:
                sock.recv(1)  # returns (b"" or a reset) once the gateway has closed it
            except OSError:
                pass

    threading.Thread(target=hold, daemon=True).start()


def check_panels(args: argparse.Namespace) -> dict[str, Any]:
    host, port = args.bootstrap.rsplit(":", 1)
    traffic = Traffic(args.bootstrap, max_s=args.max_seconds)
    try:
        provoke_first_request_timeout(host, int(port), args.max_seconds)
        provoke_malformed_frame(host, int(port))
        provoke_upstream_error(host, int(port) + 9)
        targets = prometheus(args.prometheus, "/api/v1/targets", state="active")["activeTargets"]
        labels = {t["labels"]["job"]: t["labels"] for t in targets}
        for t in targets:
            wanted = {"kafka-gateway": ("node", "rack", "cluster"), "haproxy": ("lb", "cluster")}.get(t["labels"]["job"], ())
            assert all(t["labels"].get(k) for k in wanted), f"target without {wanted}: {t['labels']}"
        assert {"kafka-gateway", "haproxy"} <= set(labels), f"scraped jobs: {sorted(labels)}"
        results: dict[str, str] = {}
        waiting: dict[str, list[str]] = {}
        for title, expr in panel_queries(args.dashboard, args.mode):
            waiting.setdefault(title, []).append(expr)
        deadline = time.monotonic() + args.max_seconds - 10
        while waiting and time.monotonic() < deadline and traffic.running():
            for title, exprs in sorted(waiting.items()):
                for expr in exprs:
                    query = expr.replace("$cluster", ".*").replace("$__rate_interval", RATE_INTERVAL)
                    series = prometheus(args.prometheus, "/api/v1/query", query=query)["result"]
                    if series:
                        results[title] = f"{len(series)} series: {expr}"
                        del waiting[title]
                        break
            time.sleep(2)
    finally:
        traffic.finish()
    report = {"panels_with_data": len(results), "mode": args.mode, "acked": traffic.acked, "consumed": traffic.consumed,
              "without_data": sorted(waiting)}
    assert not waiting, json.dumps(report)
    assert traffic.acked > 0 and traffic.consumed > 0, json.dumps(report)
    return report


def check_alerts(args: argparse.Namespace) -> dict[str, Any]:
    rules = {r["name"]: r for g in prometheus(args.prometheus, "/api/v1/rules", type="alert")["groups"]
             for r in g["rules"]}
    wanted = [(spec.split(":", 1)[0], dict(kv.split("=", 1) for kv in spec.split(":", 1)[1].split(",")))
              for spec in args.fire]
    quiet = [(spec.split(":", 1)[0], dict(kv.split("=", 1) for kv in spec.split(":", 1)[1].split(",")))
             for spec in args.quiet]
    fired: dict[str, float] = {}
    late_s = 2 * args.scrape_s + 2 * args.evaluation_s + SLACK_S + args.stop_s
    latest = max(rules[name]["duration"] for name, _ in wanted) + late_s
    while len(fired) < len(wanted) and time.time() < args.since + latest + 5:
        alerts = prometheus(args.prometheus, "/api/v1/alerts")["alerts"]
        now = time.time()
        for name, labels in wanted:
            key = f"{name}{labels}"
            if key not in fired and any(a["labels"].get("alertname") == name and a["state"] == "firing"
                                        and all(a["labels"].get(k) == v for k, v in labels.items()) for a in alerts):
                fired[key] = round(now - args.since, 1)
        time.sleep(0.5)
    report: dict[str, Any] = {"time_to_fire_s": fired, "for_s": {n: rules[n]["duration"] for n, _ in wanted}}
    for name, labels in wanted:
        key, window = f"{name}{labels}", rules[name]["duration"]
        assert key in fired, f"{key} did not fire within {latest:.0f} s: {json.dumps(report)}"
        assert window <= fired[key] <= window + late_s, json.dumps(report)
    alerts = prometheus(args.prometheus, "/api/v1/alerts")["alerts"]
    for name, labels in quiet:
        assert not any(a["labels"].get("alertname") == name and all(a["labels"].get(k) == v for k, v in labels.items())
                       for a in alerts), f"{name}{labels} is {json.dumps(alerts)}"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=["panels", "alerts"])
    parser.add_argument("--prometheus", required=True, help="http://host:9090")
    parser.add_argument("--bootstrap", default="", help="panels: load balancer host:port")
    parser.add_argument("--dashboard", type=Path, help="panels: the generated dashboard JSON")
    parser.add_argument("--mode", choices=sorted(MODE_ONLY), default="external",
                        help="panels: the gateways' load-balancing mode (the other mode's panels are left out)")
    parser.add_argument("--max-seconds", type=float, default=150)
    parser.add_argument("--since", type=float, default=0.0, help="alerts: epoch seconds when the fault began")
    parser.add_argument("--stop-s", type=float, default=0.0, help="alerts: how long the fault took to complete")
    parser.add_argument("--fire", action="append", default=[], help="alerts: NAME:LABEL=VALUE[,LABEL=VALUE]")
    parser.add_argument("--quiet", action="append", default=[], help="alerts: NAME:LABEL=VALUE that must not fire")
    parser.add_argument("--scrape-s", type=float, default=15)
    parser.add_argument("--evaluation-s", type=float, default=15)
    args = parser.parse_args(argv)
    try:
        report = check_panels(args) if args.check == "panels" else check_alerts(args)
    except AssertionError as error:
        print(json.dumps({"check": args.check, "ok": False, "failure": str(error)}))
        return 1
    print(json.dumps({"check": args.check, "ok": True, **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
