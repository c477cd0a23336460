"""Helpers of the data-plane e2e tests: a real gateway node process (lab/gateway_process.py), and clients run in
the client netns.

Each test module runs its own node on one of the lab's gateway addresses with a port range of its
own (so modules, and other helpers' tests on port 6969, never collide), started by PID and stopped
with SIGTERM, which also proves the drain-and-exit-0 path every time.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kio.serial import entity_reader

from gateway_app.protocol.kio_adapter import encode
from lab.frames import exchange
from lab.gateway_process import PYTHON, REPO, GatewayNode, unique  # noqa: F401  (the tests' imports)


def running_node(lab: Any, tmp_path_factory: Any, port_start: int, http_port: int, **env: str) -> Iterator[GatewayNode]:
    """One gateway node on the last lab gateway address for a module; it must exit 0 on SIGTERM at the end."""
    log_dir = tmp_path_factory.mktemp(f"gateway-{port_start}")
    gateway = GatewayNode(lab, lab.gateway_addresses[-1], port_start, http_port, log_dir, **env).start()
    yield gateway
    assert gateway.stop() == 0, gateway.log()[-2000:]
    assert not gateway.log_problems(), gateway.log()[-4000:]  # whatever the clients sent, no traceback, no crash


def node_fixture(port_start: int, http_port: int, **env: str) -> Callable[..., Any]:
    """A module-scoped `node` fixture around running_node."""

    @pytest.fixture(scope="module")
    def node(lab: Any, tmp_path_factory: Any) -> Iterator[GatewayNode]:
        yield from running_node(lab, tmp_path_factory, port_start, http_port, **env)

    return node


def kafka_exchange(address: str, port: int, header: Any, body: Any, response_type: type,
                   response_header_bytes: int = 4, timeout_s: float = 5.0) -> Any:
    """One raw request/response with kio types over a fresh TCP connection (no client library in between)."""
    payload = encode(header) + encode(body)
    frame = exchange(address, port, struct.pack(">i", len(payload)) + payload, timeout_s)
    return entity_reader(response_type)(frame[response_header_bytes:], 0)[0]


def run_client(lab: Any, scenario: str, *args: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """Run a scenario of tests/e2e/dataplane_clients.py inside the client netns; returns its JSON result."""
    argv = lab.client_cmd([PYTHON, "-m", "tests.e2e.dataplane_clients", scenario, *args])
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(f"{scenario} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class BackgroundProducer:
    """The `produce-for` scenario running in the client netns while a test disturbs the system."""

    def __init__(self, lab: Any, bootstrap: str, topic: str, seconds: float, count: int = 200_000) -> None:
        self.seconds = seconds
        self.process = subprocess.Popen(
            lab.client_cmd([PYTHON, "-m", "tests.e2e.dataplane_clients", "produce-for", "--bootstrap", bootstrap,
                            "--topic", topic, "--seconds", str(seconds), "--count", str(count)]),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop_sending(self) -> None:
        """End the sending before --seconds: the producer flushes, reads its topic back and reports as usual."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def result(self) -> dict[str, Any]:
        try:
            out, _ = self.process.communicate(timeout=self.seconds + 240)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return json.loads(out.strip().splitlines()[-1])

    def __enter__(self) -> "BackgroundProducer":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_in_client_netns(lab: Any, argv: list[str], timeout_s: float = 120.0,
                        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab.client_cmd(argv), cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
                          input=stdin)


def build_franz_go(out_dir: Path) -> str:
    """The Go client program (tests/clients/go: franz-go at its newest, its defaults), built from its committed
    go.mod/go.sum into out_dir; Go's build cache makes a rebuild about a second. Go 1.26+ is needed (the machine's
    /usr/local/go where Debian's is older)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    binary = out_dir / "franzgo"
    built = subprocess.run([go, "build", "-mod=readonly", "-o", str(binary), "."], cwd=REPO / "tests" / "clients" / "go",
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    return str(binary)


def run_franz_go(lab: Any, binary: str, bootstrap: str, topic: str, count: int = 500) -> dict[str, Any]:
    """Run it from the client namespace: create, produce, consume in a group, administer; what it counted."""
    done = run_in_client_netns(lab, [binary, "-bootstrap", bootstrap, "-topic", topic, "-group", f"go-{topic}",
                                     "-count", str(count), "-timeout", "90s"], timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

