"""Where the CPU goes while a lab test runs: every process's utime+stime sampled twice a second until SIGTERM,
summed per category (lab host processes by their cgroup, brokers and client JVMs, Ansible and molecule, ...), written
as JSON to argv[1]. Processes that live under half a second are missed: their CPU is the "unattributed" part of
/proc/stat's busy time. Used as:
    python3 results/suite-timings/cpu-sample.py OUT.json & S=$!; <the test>; kill -TERM $S; wait $S
"""
import os, re, signal, sys, time, json
HZ = os.sysconf("SC_CLK_TCK")
stop = False
signal.signal(signal.SIGTERM, lambda *a: globals().__setitem__("stop", True))
seen, cat_of, totals = {}, {}, {}
def category(pid):
    try:
        cg = open(f"/proc/{pid}/cgroup").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    m = re.search(r"kgw-lab-\d+/([\w-]+)", cg)
    if m:
        host = m.group(1)
        if "pip" in cmd: return "host: pip"
        if "venv" in cmd and "-m venv" in cmd: return "host: venv"
        if "gateway" in cmd and "python" in cmd: return "host: gateway"
        return "host: other"
    if "java" in cmd.split(" ")[0]:
        return "broker JVM" if "kafka.Kafka " in cmd else "client JVM"
    if "ansible" in cmd or "molecule" in cmd: return "ansible/molecule controller"
    if "pytest" in cmd: return "pytest"
    if "gateway_app" in cmd or "kafka-gateway" in cmd: return "gateway (controller)"
    if "python" in cmd: return "python other"
    if not cmd: return "kernel/other"
    return "other: " + os.path.basename(cmd.split(" ")[0])[:20]
def cpu_total():
    f = open("/proc/stat").readline().split()[1:9]
    v = list(map(int, f)); return sum(v), v[3] + v[4]
t0, i0 = cpu_total(); start = time.time()
while not stop:
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        pid = int(d)
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(f[11]) + int(f[12])
        if pid not in cat_of:
            cat_of[pid] = category(pid) or "gone"
            prev = 0 if time.time() - start > 1 else ticks  # processes alive at the start: only what they use from now
        else:
            prev = seen[pid]
        totals[cat_of[pid]] = totals.get(cat_of[pid], 0) + ticks - prev
        seen[pid] = ticks
    time.sleep(0.5)
t1, i1 = cpu_total()
busy = ((t1 - t0) - (i1 - i0)) / HZ
out = {"seconds": round(time.time() - start, 1), "busy_core_s": round(busy, 1), "idle_frac": round((i1 - i0) / (t1 - t0), 3),
       "by_category_core_s": {k: round(v / HZ, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}}
out["unattributed_core_s"] = round(busy - sum(out["by_category_core_s"].values()), 1)
json.dump(out, open(sys.argv[1], "w"), indent=1); print(json.dumps(out, indent=1))
