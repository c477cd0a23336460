"""results/suite-timings/pacct-summary.py: acct v3 records read and summed by ancestry, and /proc/stat's busy time.

The records are packed here the way the kernel writes them (struct acct_v3): turning accounting on in a test would
change the whole machine's state under whatever else runs.
"""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "results" / "suite-timings" / "pacct-summary.py"
spec = importlib.util.spec_from_file_location("pacct_summary", SCRIPT)
pacct = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pacct)


def comp(value: int) -> int:
    """`value` as acct's comp_t (13-bit mantissa, base-8 exponent), exactly when it fits."""
    exponent = 0
    while value >= 1 << 13:
        assert value % 8 == 0, "not exactly representable"
        value //= 8
        exponent += 1
    return exponent << 13 | value


def record(pid: int, ppid: int, comm: str, cpu_ticks: tuple[int, int] = (0, 0), elapsed_ticks: float = 100.0,
           version: int = 3) -> bytes:
    utime, stime = cpu_ticks
    return pacct.RECORD.pack(0, version, 0, 0, 0, 0, pid, ppid, 0, elapsed_ticks, comp(utime), comp(stime),
                             0, 0, 0, 0, 0, 0, comm.encode())


def test_comp_t_is_a_13_bit_mantissa_with_a_base_8_exponent():
    assert pacct.comp_t(100) == 100.0
    assert pacct.comp_t(1 << 13 | 5) == 40.0  # 5 × 8
    assert pacct.comp_t(2 << 13 | 0x1FFF) == 0x1FFF * 64
    assert pacct.RECORD.size == 64  # sizeof(struct acct_v3)


def test_records_are_read_with_their_parent_cpu_and_lifetime(tmp_path):
    path = tmp_path / "pacct"
    path.write_bytes(record(10, 1, "python3", (150, 50), 2500.0) + record(11, 10, "kcat", (8192 * 8, 0)))
    processes = pacct.read(str(path))
    assert processes[10] == {"comm": "python3", "ppid": 1, "cpu_s": 2.0, "elapsed_s": 25.0}
    assert processes[11]["cpu_s"] == 655.36  # a comp_t with an exponent
    path.write_bytes(record(12, 1, "old", version=2))
    with pytest.raises(SystemExit, match="not acct v3"):
        pacct.read(str(path))


PROCESSES = {
    1: {"comm": "pytest", "ppid": 0, "elapsed_s": 900.0},
    2: {"comm": "systemd-nspawn", "ppid": 1, "elapsed_s": 800.0},
    3: {"comm": "python3", "ppid": 2, "elapsed_s": 5.0},  # Ansible's module run on the host ...
    4: {"comm": "python", "ppid": 3, "elapsed_s": 4.0},  # ... and the pip it started
    5: {"comm": "kafka-gateway", "ppid": 2, "elapsed_s": 300.0},
    6: {"comm": "ansible-playboo", "ppid": 1, "elapsed_s": 60.0},
    7: {"comm": "ansible-playboo", "ppid": 6, "elapsed_s": 0.5},  # a forked worker
    8: {"comm": "molecule", "ppid": 1, "elapsed_s": 120.0},
    9: {"comm": "ssh", "ppid": 8, "elapsed_s": 1.0},
    10: {"comm": "java", "ppid": 1, "elapsed_s": 600.0},
    11: {"comm": "java", "ppid": 1, "elapsed_s": 12.0},
    12: {"comm": "C2 CompilerThre", "ppid": 1, "elapsed_s": 3.0},
    13: {"comm": "kafka-gateway", "ppid": 1, "elapsed_s": 30.0},
    14: {"comm": "python3.11", "ppid": 1, "elapsed_s": 30.0},
    15: {"comm": "haproxy", "ppid": 1, "elapsed_s": 30.0},
}


@pytest.mark.parametrize(("pid", "expected"), [
    (2, "host: other"), (3, "host: other"), (4, "host: pip and other tools run by Ansible"), (5, "host: gateway"),
    (6, "ansible: playbook runs"), (7, "ansible: forked workers"), (8, "ansible: other (molecule, inventory, ssh)"),
    (9, "ansible: other (molecule, inventory, ssh)"), (10, "broker JVM"), (11, "client JVM"), (12, "client JVM"),
    (13, "gateway (controller)"), (14, "python (pytest, clients, lab tool)"), (15, "other: haproxy"),
])
def test_each_process_is_put_in_a_category_by_its_name_and_ancestry(pid, expected):
    assert pacct.category(pid, PROCESSES) == expected


def test_a_parent_loop_in_the_records_ends(tmp_path):
    looping = {1: {"comm": "a", "ppid": 2, "elapsed_s": 1.0}, 2: {"comm": "b", "ppid": 1, "elapsed_s": 1.0}}
    assert pacct.category(1, looping) == "other: a"  # a pid reused within the file must not hang the walk


def test_summary_sums_cpu_and_processes_per_category(tmp_path):
    path = tmp_path / "pacct"
    path.write_bytes(record(2, 1, "systemd-nspawn") + record(5, 2, "kafka-gateway", (300, 100))
                     + record(6, 1, "ansible-playboo", (50, 0)) + record(7, 6, "ansible-playboo", (3, 1))
                     + record(8, 6, "ansible-playboo", (3, 1)))
    result = pacct.summary(str(path))
    assert result["processes"] == 5 and result["cpu_s"] == 4.6  # 4.58, to one decimal
    assert result["by_category"]["host: gateway"] == {"cpu_s": 4.0, "processes": 1}
    assert result["by_category"]["ansible: forked workers"] == {"cpu_s": 0.1, "processes": 2}
    assert result["by_category"]["ansible: playbook runs"] == {"cpu_s": 0.5, "processes": 1}


def test_machine_seconds_are_busy_and_idle_core_seconds_between_two_proc_stat_lines(tmp_path):
    before, after = tmp_path / "s0", tmp_path / "s1"
    # user nice system idle iowait irq softirq steal guest guest_nice, in USER_HZ ticks
    before.write_text("cpu  1000 10 500 9000 100 0 50 0 0 0\n")
    after.write_text("cpu  3000 10 1500 12000 200 0 150 40 0 0\n")
    assert pacct.machine_seconds(str(before), str(after)) == {"busy_core_s": 31.4, "idle_core_s": 31.0}
