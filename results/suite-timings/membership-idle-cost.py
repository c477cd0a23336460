"""Lab 0's brokers' CPU over a window (60 s by default): first with no gateway node, then with a cluster of three idle
nodes (their membership: group heartbeats, the member-record reader's fetches, DescribeGroups twice a second).
    flock /run/kgw-lab0.lock .venv/bin/python results/suite-timings/membership-idle-cost.py [SECONDS]
(lab 0 up). Output: one JSON line (membership-idle-cost.json)."""
import json, os, sys, time, uuid, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lab.state import LabState
from lab.gateway_process import ClusterNode
HZ = os.sysconf("SC_CLK_TCK")
def broker_cpu():
    t = 0.0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try: c = open(f"/proc/{d}/cmdline", "rb").read().decode(errors="replace")
            except OSError: continue
            if "kafka.Kafka" in c and "/kgw-lab/0/" in c:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
                t += (int(f[11]) + int(f[12])) / HZ
    return t
lab = LabState.load(0)
W = float(sys.argv[1]) if len(sys.argv) > 1 else 60
a = broker_cpu(); time.sleep(W); idle = broker_cpu() - a
tmp = Path(tempfile.mkdtemp())
cid = f"t-{uuid.uuid4().hex[:8]}"
nodes = [ClusterNode(lab, cid, f"gw-{r}", r, addr, tmp) for r, addr in zip(["rack-a", "rack-b", "rack-c"], lab.gateway_addresses[:3])]
try:
    for n in nodes: n.wait_ready(120)
    time.sleep(10)
    a = broker_cpu(); time.sleep(W); busy = broker_cpu() - a
finally:
    for n in nodes: n.kill()
print(json.dumps({"window_s": W, "brokers_cpu_s_no_nodes": round(idle, 2), "brokers_cpu_s_three_idle_nodes": round(busy, 2)}))
