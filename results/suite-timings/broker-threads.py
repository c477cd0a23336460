"""Per-thread CPU of lab instance N's brokers across a command, thread names with their numbers folded (kafka-1-raft-io
-> kafka-N-raft-io):
    flock /run/kgw-lab0.lock python3 results/suite-timings/broker-threads.py 0 -- .venv/bin/python -m pytest -q FILE
Output: the command's own, then one JSON document (broker-threads-cluster_gateway.json)."""
import collections, json, os, re, subprocess, sys
HZ = os.sysconf("SC_CLK_TCK")
inst = int(sys.argv[1]); cmd = sys.argv[sys.argv.index("--") + 1:]
def brokers():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try: c = open(f"/proc/{d}/cmdline", "rb").read().decode(errors="replace")
            except OSError: continue
            if "kafka.Kafka" in c and f"/kgw-lab/{inst}/" in c: out.append(int(d))
    return out
def threads(pids):
    t = collections.Counter()
    for p in pids:
        try: tids = os.listdir(f"/proc/{p}/task")
        except OSError: continue
        for tid in tids:
            try:
                s = open(f"/proc/{p}/task/{tid}/stat").read()
                name = s[s.index("(")+1:s.rindex(")")]
                f = s.rsplit(")", 1)[1].split()
                key = re.sub(r"\d+", "N", name)
                t[(p, tid, key)] = (int(f[11]) + int(f[12])) / HZ
            except (OSError, ValueError): pass
    return t
before = threads(brokers())
rc = subprocess.call(cmd)
pids = brokers(); after = threads(pids)
agg = collections.Counter()
for k, v in after.items():
    agg[k[2]] += v - before.get(k, 0)
print(json.dumps({"rc": rc, "total": round(sum(agg.values()), 1), "by_thread": {k: round(v, 2) for k, v in agg.most_common(25)}}, indent=1))
