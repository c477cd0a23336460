"""bench.metadata_shapes' pure parts: the strace and perf summaries it reads, the threads' context switches, shapes."""

import argparse
import os
import threading

import pytest

from bench.metadata_shapes import context_switches, dso_shares, shape, strace_counts

# `strace -c -f -p PID` of a gateway node under a 1x1 Metadata load on the lab (strace 6.1)
STRACE = """strace: Process 31065 attached
strace: Process 31065 detached
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 27.75    0.081160          10      8110           epoll_pwait
 23.81    0.069647          17      4055           writev
 23.07    0.067480          16      4055           write
 12.50    0.036565           9      4055           recvfrom
 12.40    0.036266           8      4055           read
  0.42    0.001233          23        52         2 futex
  0.05    0.000147           9        15           getpid
------ ----------- ----------- --------- --------- ----------------
100.00    0.292498          11     24397         2 total
"""

# `perf report --sort dso -g none --stdio` of the same node (perf 6.1), header lines cut
PERF = """# Samples: 3K of event 'cpu-clock:ppp'
#
# Overhead  Shared Object
# ........  ......................................
#
    55.14%  [kernel.kallsyms]
    36.89%  libpython3.11.so.1.0
     4.08%  loop.cpython-311-x86_64-linux-gnu.so
     3.00%  libc.so.6
     0.31%  _struct.cpython-311-x86_64-linux-gnu.so
     0.23%  [vdso]
"""


def test_strace_counts_are_the_calls_column_by_syscall_without_the_total():
    counts = strace_counts(STRACE)
    assert counts == {"epoll_pwait": 8110, "writev": 4055, "write": 4055, "recvfrom": 4055, "read": 4055,
                      "futex": 52, "getpid": 15}


def test_dso_shares_fold_binaries_into_kernel_interpreter_event_loop_libc_and_other():
    assert dso_shares(PERF) == {"kernel": 55.14, "interpreter": 36.89, "event loop": 4.08, "libc": 3.0,
                                "other": 0.54}


def test_context_switches_sum_every_thread_of_the_process():
    before = context_switches(os.getpid())
    slept, release = threading.Event(), threading.Event()

    def sleeper() -> None:
        for _ in range(50):
            threading.Event().wait(0.001)  # 50 voluntary switches of this thread
        slept.set()
        release.wait(10)  # alive while the main thread counts

    thread = threading.Thread(target=sleeper)
    thread.start()
    try:
        assert slept.wait(10)
        voluntary, involuntary = context_switches(os.getpid())
    finally:
        release.set()
        thread.join()
    assert voluntary >= before[0] + 50  # the other thread's waits count, not the main thread's alone
    assert involuntary >= before[1]


def test_a_shape_is_connections_x_depth_within_bounds():
    assert shape("4x16") == (4, 16)
    for bad in ("4", "4x", "x16", "0x1", "1x257", "ax2"):
        with pytest.raises(argparse.ArgumentTypeError):
            shape(bad)
