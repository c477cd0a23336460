"""``python -m bench.idle_connections``: a deployed gateway node's memory and threads, idle and with N idle clients.

Measures the node on a lab host (deployed by the gateway role, i.e. under its systemd unit): VmRSS and Threads of
the service's main process and the unit's cgroup memory (MemoryCurrent), first idle, then while ``--connections``
client sockets from the client namespace are held open to its bootstrap port — once silent (nothing sent), once
after one ApiVersions request each (answered; the connection then idles) — and again after they are closed.
Prints the figures as JSON, with the per-connection increase. Used to size the unit's MemoryMax= and TasksMax=.

    .venv/bin/python -m bench.idle_connections --host gw1 --connections 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from lab.state import LabState

# Runs in the client namespace: open N connections, optionally send one ApiVersions each and read its answer,
# say "open", hold them until stdin closes.
HOLDER = r"""
import resource, socket, struct, sys
address, port, count, request = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "request"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
payload = struct.pack(">hhih", 18, 0, 1, 5) + b"bench"
held = []
for _ in range(count):
    sock = socket.create_connection((address, port), timeout=30)
    if request:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        sock.recv(size, socket.MSG_WAITALL)
    held.append(sock)
print("open", flush=True)
sys.stdin.read()
"""


def sample(lab: LabState, host: str) -> dict[str, int]:
    script = ("pid=$(systemctl show -p MainPID --value kafka-gateway); "
              "grep -E '^(VmRSS|Threads):' /proc/$pid/status; "
              "echo MemoryCurrent: $(systemctl show -p MemoryCurrent --value kafka-gateway); "
              "echo Sockets: $(ls -l /proc/$pid/fd | grep -c socket)")
    out = subprocess.run(lab.ssh_cmd(host, script), capture_output=True, text=True, check=True, timeout=30).stdout
    values = dict(line.split(":", 1) for line in out.strip().splitlines())
    memory_current = values["MemoryCurrent"].strip()
    return {"rss_kib": int(values["VmRSS"].split()[0]), "threads": int(values["Threads"]),
            "cgroup_memory_kib": int(memory_current) // 1024 if memory_current.isdigit() else -1,
            "sockets": int(values["Sockets"])}


def with_connections(lab: LabState, address: str, port: int, count: int, mode: str, host: str, settle_s: float) -> dict:
    holder = subprocess.Popen(lab.client_cmd([sys.executable, "-c", HOLDER, address, str(port), str(count), mode]),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open", "the client could not open its connections"
        time.sleep(settle_s)
        return sample(lab, host)
    finally:
        holder.stdin.close()
        holder.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="gw1", help="lab host running the deployed gateway")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--port", type=int, default=6969)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between opening and sampling")
    args = parser.parse_args()
    lab = LabState.load(int(os.environ.get("KGW_LAB_INSTANCE", "0")))
    address = lab.host(args.host).address
    report: dict = {"host": args.host, "connections": args.connections, "idle": sample(lab, args.host)}
    for mode in ("silent", "request"):
        loaded = with_connections(lab, address, args.port, args.connections, mode, args.host, args.settle)
        time.sleep(args.settle)
        after = sample(lab, args.host)
        per_connection = (loaded["rss_kib"] - report["idle"]["rss_kib"]) / args.connections
        report[mode] = {"loaded": loaded, "after_close": after, "rss_kib_per_connection": round(per_connection, 2)}
    report["load_average"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
