"""The README's proof that the lab works: a message produced and consumed with kcat on a lab host."""

from __future__ import annotations

import subprocess
import uuid

from .state import LabState


def demo(state: LabState) -> int:
    host = state.hosts[0]
    topic = "lab-demo"
    message = f"hello from {host.name} {uuid.uuid4().hex[:8]}"
    brokers = state.bootstrap_servers
    print(f"demo: producing {message!r} to {topic} from {host.name} ({host.address}) with kcat")
    subprocess.run(state.ssh_cmd(host.name, f"echo '{message}' | kcat -q -b {brokers} -t {topic} -P -X acks=all"),
                   check=True)
    consumed = subprocess.run(
        state.ssh_cmd(host.name, f"kcat -q -b {brokers} -t {topic} -C -o -20 -e -X fetch.wait.max.ms=100"),
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    if message not in consumed:
        print(f"demo: FAILED, consumed {consumed!r}")
        return 1
    print(f"demo: consumed {message!r} back on {host.name}")
    return 0
