"""The README's proof that the lab works: a message produced and consumed with kcat.

Without a bootstrap address the message goes straight to the brokers from a lab host. With one (a gateway), kcat
runs in the client namespace, which has no route to any broker: the brokers it lists and the round trip can only
work through the gateway.
"""

from __future__ import annotations

import shlex
import subprocess
import uuid
from typing import Callable

from .state import LabState

TOPIC = "lab-demo"


def demo(state: LabState, bootstrap: str | None = None) -> int:
    if bootstrap is None:
        host = state.hosts[0]
        where = f"{host.name} ({host.address}) straight to the brokers"
        brokers = state.bootstrap_servers

        def run(command: str) -> list[str]:
            return state.ssh_cmd(host.name, command)
    else:
        where = f"the client namespace {state.client_netns} through {bootstrap}"
        brokers = bootstrap

        def run(command: str) -> list[str]:
            return state.client_cmd(["sh", "-c", command])

        listing = subprocess.run(run(f"kcat -b {brokers} -L -t {TOPIC} -m 10"), check=True,
                                 capture_output=True, text=True).stdout
        print("demo: brokers as the client sees them:")
        print("\n".join(f"  {line.strip()}" for line in listing.splitlines() if line.strip().startswith("broker ")))
    return round_trip(run, brokers, where)


def round_trip(run: Callable[[str], list[str]], brokers: str, where: str) -> int:
    message = f"hello {uuid.uuid4().hex[:8]}"
    print(f"demo: producing {message!r} to {TOPIC} from {where} with kcat")
    subprocess.run(run(f"echo {shlex.quote(message)} | kcat -q -b {brokers} -t {TOPIC} -P -X acks=all"), check=True)
    consumed = subprocess.run(
        run(f"kcat -q -b {brokers} -t {TOPIC} -C -o -20 -e -X fetch.wait.max.ms=100"),
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    if message not in consumed:
        print(f"demo: FAILED, consumed {consumed!r}")
        return 1
    print(f"demo: consumed {message!r} back")
    return 0
