"""CPU of one lab instance's Kafka brokers, from /proc/<pid>/stat (utime+stime of every thread), three ways:

    broker-cpu.py idle SECONDS           each broker's CPU over SECONDS on a lab nobody uses
    broker-cpu.py restart ID [ID ...]    `python -m lab broker restart ID` one after the other: wall time, the new
                                         JVM's CPU when the lab calls it ready, the other brokers' CPU meanwhile
    broker-cpu.py threads                each broker's CPU since it started, per thread name (the top 14)
    broker-cpu.py traffic -- CMD ...     run CMD (its output to stderr); the instance's broker JVMs' CPU while it runs (restarted brokers
                                         too), against the machine's busy CPU

Brokers are the PIDs the lab's state.json records, and for `traffic` every JVM whose cmdline runs kafka.Kafka with a
server.properties under this instance's state directory (so another instance's brokers are never counted). Nothing is
killed. Prints JSON; the instance is $KGW_LAB_INSTANCE (default 0). The caller holds the instance's lock.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")
INSTANCE = int(os.environ.get("KGW_LAB_INSTANCE", "0"))
STATE_DIR = Path(f"/var/lib/kgw-lab/{INSTANCE}")
PYTHON = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python")


def ticks(pid):
    """utime+stime of the whole process (all threads), in clock ticks; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def threads_by_name(pid, top=8):
    """CPU seconds per thread name (numbers stripped, so 'GC Thread#0..n' add up) since the JVM started."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip().rstrip("0123456789#-")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / HZ
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])[:top]}


def brokers():
    state = json.loads((STATE_DIR / "state.json").read_text())
    return {b["id"]: b["pid"] for b in state["brokers"]}


def idle(seconds):
    pids = brokers()
    before = {i: ticks(p) for i, p in pids.items()}
    time.sleep(seconds)
    after = {i: ticks(p) for i, p in pids.items()}
    per_broker = {i: round((after[i] - before[i]) / HZ, 2) for i in pids}
    return {"mode": "idle", "seconds": seconds, "cpu_s_per_broker": per_broker,
            "cpu_s_all_brokers": round(sum(per_broker.values()), 2),
            "cpu_s_since_start_by_thread_broker1": threads_by_name(pids[min(pids)])}


def restart(ids):
    runs = []
    for broker_id in ids:
        old = brokers()
        others = {i: ticks(p) for i, p in old.items() if i != broker_id}
        start = time.monotonic()
        subprocess.run([PYTHON, "-m", "lab", "--instance", str(INSTANCE), "broker", "restart", str(broker_id)],
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - start
        new_pid = brokers()[broker_id]
        runs.append({"broker": broker_id, "wall_s": round(wall, 1), "new_jvm_cpu_s_at_ready": round(ticks(new_pid) / HZ, 2),
                     "other_brokers_cpu_s": round(sum(ticks(old[i]) - t for i, t in others.items()) / HZ, 2),
                     "new_jvm_cpu_by_thread": threads_by_name(new_pid)})
    return {"mode": "restart", "runs": runs,
            "mean_new_jvm_cpu_s_at_ready": round(sum(r["new_jvm_cpu_s_at_ready"] for r in runs) / len(runs), 2),
            "mean_wall_s": round(sum(r["wall_s"] for r in runs) / len(runs), 1)}


def is_instance_broker(pid):
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmd and any(arg.startswith(str(STATE_DIR).encode() + b"/") for arg in cmd)


def machine_ticks():
    values = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:9]))
    return sum(values), values[3] + values[4]


def traffic(cmd):
    seen, total, started = {}, 0, time.monotonic()
    total0, idle0 = machine_ticks()
    proc = subprocess.Popen(cmd, stdout=sys.stderr)  # stdout is for the JSON
    while True:
        done = proc.poll() is not None
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid not in seen:
                if not is_instance_broker(pid):
                    seen[pid] = None
                    continue
                # brokers running before CMD count from now; ones CMD restarts from their first tick
                seen[pid] = ticks(pid) if time.monotonic() - started < 1 else 0
            if seen[pid] is None:
                continue
            now = ticks(pid)
            if now is not None:
                total += now - seen[pid]
                seen[pid] = now
        if done:
            break
        time.sleep(0.5)
    total1, idle1 = machine_ticks()
    return {"mode": "traffic", "cmd": " ".join(cmd), "rc": proc.returncode,
            "wall_s": round(time.monotonic() - started, 1),
            "machine_busy_core_s": round(((total1 - total0) - (idle1 - idle0)) / HZ, 1),
            "instance_broker_jvm_cpu_s": round(total / HZ, 1),
            "broker_jvms_seen": sum(1 for v in seen.values() if v is not None)}


def main(argv):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if argv[0] == "idle":
        result = idle(float(argv[1]))
    elif argv[0] == "restart":
        result = restart([int(a) for a in argv[1:]])
    elif argv[0] == "threads":
        result = {"mode": "threads", "cpu_s_since_start_by_thread": {i: threads_by_name(p, 14) for i, p in brokers().items()}}
    elif argv[0] == "traffic" and argv[1] == "--":
        result = traffic(argv[2:])
    else:
        sys.exit(__doc__)
    result["instance"] = INSTANCE
    result["broker_cmdline"] = " ".join(Path(f"/proc/{min(brokers().values())}/cmdline").read_bytes()
                                        .decode().split("\0")).strip()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
