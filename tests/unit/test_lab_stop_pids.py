"""lab.shell.stop_pids: processes that each take a while to stop cleanly are signalled together, so stopping them
costs the slowest one's time, not the sum (the lab's hosts powering off in a molecule destroy or `lab down`)."""

from __future__ import annotations

import subprocess
import time

from lab.shell import pid_alive, stop_pids

# stops one second after SIGTERM, as a container powering off would, and says so on stdout
SLOW_TO_STOP = "trap 'sleep 1; echo stopped; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
# ignores SIGTERM altogether
DEAF = "trap '' TERM; echo ready; while :; do sleep 0.05; done"


def start(script: str) -> subprocess.Popen:
    proc = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"  # the trap is set
    return proc


def test_three_slow_stops_take_the_time_of_one_and_each_stopped_cleanly() -> None:
    procs = [start(SLOW_TO_STOP) for _ in range(3)]
    began = time.monotonic()
    stop_pids([p.pid for p in procs], timeout=10)
    took = time.monotonic() - began
    assert not any(pid_alive(p.pid) for p in procs)
    assert [p.stdout.read() for p in procs] == ["stopped\n"] * 3  # each ran its own stop, none was killed
    assert took < 2.5, f"{took:.1f} s: stopped one after another"


def test_a_process_that_ignores_the_signal_is_killed_at_the_timeout_and_the_others_stop_cleanly() -> None:
    deaf, slow = start(DEAF), start(SLOW_TO_STOP)
    began = time.monotonic()
    stop_pids([deaf.pid, slow.pid], timeout=2)
    took = time.monotonic() - began
    assert not pid_alive(deaf.pid) and not pid_alive(slow.pid)  # (pid_alive reaps them: no returncode to read)
    assert slow.stdout.read() == "stopped\n" and deaf.stdout.read() == ""
    assert 2 <= took < 4, took


def test_gone_and_unknown_pids_are_skipped() -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    stop_pids([done.pid], timeout=1)  # already reaped: nothing to signal, no error
    stop_pids([], timeout=1)
