"""Where a run's CPU went, every process counted: BSD process accounting (acct v3 records, as `accton FILE` writes
them) summed per category. Unlike cpu-sample.py, which samples /proc and misses what lives under half a second,
every process that exits while accounting is on has a record, Ansible's forked workers and the hosts' pip runs
included. Records carry no command line, only the name the process had when it exited and its parent at that time,
so a category comes from the process's ancestry within the file:
  - on a lab host: any ancestor is systemd-nspawn (pip, the gateway, the rest);
  - Ansible: forked workers (an ansible-playbook whose parent is one) apart from the playbook runs themselves;
  - JVMs: named java or after one of the JVM's own threads; a broker when it lived 240 s or more, else a client.
The machine's busy and idle core-seconds over the run come from /proc/stat's first line, saved before and after
(--stat), to show what the records do not hold (kernel threads, interrupts). `accton` is in Debian's `acct`
package (the kernel needs CONFIG_BSD_PROCESS_ACCT_V3). Used as:
    touch F; head -1 /proc/stat > S0; accton F; <the run>; accton off; head -1 /proc/stat > S1
    python3 results/suite-timings/pacct-summary.py F --stat S0 S1 --note "what ran" --out OUT.json
"""
import argparse
import collections
import json
import struct

RECORD = struct.Struct("=BBHIIIIIIfHHHHHHHH16s")  # struct acct_v3, 64 bytes
AHZ = 100
JVM_THREADS = ("java", "Monitor Deflati", "Reference Handl", "Common-Cleaner", "VM Thread", "VM Periodic",
               "GC Thread", "C1 CompilerThre", "C2 CompilerThre", "Signal Dispatch", "Finalizer", "Service Thread",
               "Notification Th", "process reaper", "SIGTERM handler", "DestroyJavaVM", "Attach Listener",
               "Sweeper thread", "Cleaner-", "kafka-", "main", "Thread-")
BROKER_MIN_S = 240


def comp_t(value: int) -> float:
    """acct's 16-bit float: a 13-bit mantissa and a base-8 exponent in the top 3 bits."""
    return float((value & 0x1FFF) << (3 * (value >> 13)))


def read(path: str) -> dict[int, dict]:
    processes = {}
    data = open(path, "rb").read()
    for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
        (_flag, version, _tty, _exit, _uid, _gid, pid, ppid, _btime, etime, utime, stime,
         *_rest, comm) = RECORD.unpack_from(data, offset)
        if version & 0x0F != 3:
            raise SystemExit(f"{path}: record at {offset} is not acct v3")
        processes[pid] = {"comm": comm.rstrip(b"\0").decode(errors="replace"), "ppid": ppid,
                          "cpu_s": (comp_t(utime) + comp_t(stime)) / AHZ, "elapsed_s": etime / AHZ}
    return processes


def category(pid: int, processes: dict[int, dict]) -> str:
    process = processes[pid]
    comm, chain, parent = process["comm"], [], process["ppid"]
    while parent in processes and len(chain) < 64:
        chain.append(processes[parent]["comm"])
        parent = processes[parent]["ppid"]
    if "systemd-nspawn" in chain or comm == "systemd-nspawn":
        if chain and chain[0] == "python3" and comm == "python":
            return "host: pip and other tools run by Ansible"
        if comm == "kafka-gateway":
            return "host: gateway"
        return "host: other"
    if comm.startswith("ansible-playboo"):
        return "ansible: forked workers" if chain[:1] == ["ansible-playboo"] else "ansible: playbook runs"
    if comm.startswith("ansible") or comm == "molecule" or "molecule" in chain:
        return "ansible: other (molecule, inventory, ssh)"
    if comm == "kafka-gateway":  # before the JVMs: its name starts like a Kafka thread's ("kafka-")
        return "gateway (controller)"
    if comm.startswith(JVM_THREADS) or " " in comm:
        return "broker JVM" if process["elapsed_s"] >= BROKER_MIN_S else "client JVM"
    if comm.startswith("python"):
        return "python (pytest, clients, lab tool)"
    return "other: " + comm


def summary(path: str) -> dict:
    processes = read(path)
    cpu, count = collections.Counter(), collections.Counter()
    for pid, process in processes.items():
        name = category(pid, processes)
        cpu[name] += process["cpu_s"]
        count[name] += 1
    top = {name: {"cpu_s": round(seconds, 1), "processes": count[name]} for name, seconds in cpu.most_common(25)}
    rest = sum(cpu.values()) - sum(v["cpu_s"] for v in top.values())
    return {"file": path, "processes": len(processes), "cpu_s": round(sum(cpu.values()), 1),
            "by_category": top, "other_categories_cpu_s": round(rest, 1)}


def machine_seconds(before: str, after: str) -> dict:
    """Busy and idle core-seconds between two saved first lines of /proc/stat (USER_HZ ticks)."""
    first, last = ([int(v) for v in open(path).read().split()[1:]] for path in (before, after))
    delta = [b - a for a, b in zip(first, last)]
    idle = delta[3] + delta[4]  # idle and iowait
    return {"busy_core_s": round((sum(delta[:8]) - idle) / AHZ, 1), "idle_core_s": round(idle / AHZ, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pacct")
    parser.add_argument("--stat", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--note", default="")
    parser.add_argument("--out")
    args = parser.parse_args()
    result = {"note": args.note, **summary(args.pacct)}
    if args.stat:
        result["machine"] = machine_seconds(*args.stat)
    text = json.dumps(result, indent=1)
    if args.out:
        open(args.out, "w").write(text + "\n")
    print(text)
