"""Cluster membership against the lab's real brokers: separate processes, one per gateway node.

Run as a script this file is the member process: it joins the cluster with
gateway_app.cluster.membership and prints one JSON line per view change (wall-clock stamped), until
SIGTERM (clean leave) or SIGKILL (death).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway_app.member import Member
from gateway_app.cluster.membership import Membership
from lab.layout import CLUSTER_SECRET
from tests.e2e.cluster_support import cluster_id, wait_until  # noqa: F401  (cluster_id is a fixture)

REPO = Path(__file__).resolve().parents[2]

SESSION_TIMEOUT_S = 10.0  # the product default


async def member_process(node_id: str, rack: str, host: str, cluster_id: str, bootstrap: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_change(view: tuple[Member, ...]) -> None:
        print(json.dumps({"t": time.time(), "view": [[m.node_id, m.rack, m.advertised_host] for m in view]}), flush=True)

    me = Member(node_id, host, rack, 6969, 10)
    membership = Membership(me, cluster_id, {"bootstrap.servers": bootstrap}, SESSION_TIMEOUT_S, on_change, loop,
                            secret=CLUSTER_SECRET)
    membership.start()
    await stop.wait()
    await loop.run_in_executor(None, membership.stop)
    print(json.dumps({"t": time.time(), "stopped": True}), flush=True)


class MemberProc:
    """A member process and the views it printed, read by a thread."""

    def __init__(self, node_id: str, rack: str, host: str, cluster_id: str, bootstrap: str) -> None:
        self.node_id = node_id
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.test_cluster_membership", node_id, rack, host, cluster_id, bootstrap],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def view_ids(self) -> list[str] | None:
        views = [e["view"] for e in self.events if "view" in e]
        return [m[0] for m in views[-1]] if views else None

    def first_time_without(self, node_id: str, after: float) -> float | None:
        for event in self.events:
            if "view" in event and event["t"] >= after and node_id not in [m[0] for m in event["view"]]:
                return event["t"]
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_three_racks_one_view_then_kill_and_clean_leave(lab, cluster_id):
    addresses = lab.gateway_addresses
    nodes = [
        MemberProc(f"gw-{rack}", rack, addresses[i], cluster_id, lab.bootstrap_servers)
        for i, rack in enumerate(["rack-a", "rack-b", "rack-c"])
    ]
    everyone = sorted(n.node_id for n in nodes)
    try:
        wait_until(lambda: all(n.view_ids() == everyone for n in nodes), 40, "all three nodes to see all three")
        views = {tuple(tuple(m) for m in [e for e in n.events if "view" in e][-1]["view"]) for n in nodes}
        assert len(views) == 1, views
        assert {m[1] for m in next(iter(views))} == {"rack-a", "rack-b", "rack-c"}

        victim, survivors = nodes[2], nodes[:2]
        killed_at = time.time()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(5)
        wait_until(lambda: all(n.view_ids() == everyone[:2] for n in survivors), SESSION_TIMEOUT_S + 5, "the dead node to drop out")
        dead_removal = max(n.first_time_without(victim.node_id, killed_at) - killed_at for n in survivors)
        print(f"\nkill -9 -> out of every view after {dead_removal:.2f}s (bound {SESSION_TIMEOUT_S}s)")
        assert dead_removal <= SESSION_TIMEOUT_S

        leaver, last = survivors
        left_at = time.time()
        leaver.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: last.view_ids() == [last.node_id], 5, "the clean leaver to drop out")
        clean_removal = last.first_time_without(leaver.node_id, left_at) - left_at
        print(f"clean leave -> out of the view after {clean_removal:.2f}s")
        assert clean_removal <= 1.5
        assert leaver.proc.wait(10) == 0
    finally:
        for node in nodes:
            node.stop()


if __name__ == "__main__":
    asyncio.run(member_process(*sys.argv[1:6]))
