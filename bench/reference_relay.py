"""A reference relay for the benchmark: HAProxy in TCP mode, put in front of a second gateway node.

What does one extra hop cost on this machine when nothing in it is Python? Clients bootstrap at
HAProxy, which forwards every port to the same port of a gateway node that advertises HAProxy's
address, so every byte crosses a C relay (one thread, splice when the kernel allows it, no Kafka
parsing) and then the gateway. HAProxy's CPU per GB relayed, and the chain's throughput against the
gateway alone, are the floor a pure byte pipe sets here: a target no L4 relay reaches on these two
cores is not one a Kafka-aware gateway can reach either.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 10.0


def haproxy_config(listen: str, target: str, first_port: int, port_count: int) -> str:
    """TCP relay of ports first_port.. on `listen` to the same ports on `target` (no port on the server line)."""
    last_port = first_port + port_count - 1
    return "\n".join([
        "global",
        "    nbthread 1",  # one core, like the gateway's one event loop
        "    maxconn 4096",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 1h",
        "    timeout server 1h",
        "    option splice-auto",
        "frontend kafka",
        f"    bind {listen}:{first_port}-{last_port}",
        "    default_backend gateway",
        "backend gateway",
        f"    server gateway {target}",
        "",
    ])


@contextmanager
def haproxy_relay(listen: str, target: str, first_port: int, port_count: int, log_dir: Path):
    """Runs HAProxy for the block; yields its PID. Stopped by PID on exit."""
    binary = shutil.which("haproxy")
    if binary is None:
        raise RuntimeError("--reference-relay needs HAProxy on this machine (scripts/bootstrap installs it)")
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        config = Path(tmp) / "haproxy.cfg"
        config.write_text(haproxy_config(listen, target, first_port, port_count))
        log = open(log_dir / "bench-haproxy.log", "ab")
        proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)
        try:
            _wait_listening(proc, listen, first_port)
            yield proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


def _wait_listening(proc: subprocess.Popen, host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy did not start listening on {host}:{port}") from None
            time.sleep(0.1)
