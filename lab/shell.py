"""Small process helpers: run a command loudly, stop a process by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence


def say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, check: bool = True, quiet: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run argv; on failure raise with its output so the cause is on screen, not in a log."""
    result = subprocess.run(list(argv), text=True, capture_output=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    if not quiet and result.stderr.strip() and result.returncode != 0:
        say(result.stderr.strip())
    return result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours still answers kill(0); reap it if it is our child.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_pid(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Signal one process, wait for it to go, and kill it if it will not."""
    stop_pids([pid], sig=sig, timeout=timeout)


def stop_pids(pids: Sequence[int], *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Signal every process at once, wait for them all to go, and kill those that will not: N clean shutdowns
    (containers powering off, each service's own stop) take the time of the slowest, not their sum."""
    signalled = []
    for pid in pids:
        if not pid_alive(pid):
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        signalled.append(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        signalled = [pid for pid in signalled if pid_alive(pid)]
        if not signalled:
            return
        time.sleep(0.1)
    for pid in signalled:
        say(f"pid {pid} ignored signal {sig} for {timeout:.0f}s, killing it")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        while pid_alive(pid):
            time.sleep(0.05)


def wait_until(predicate, *, timeout: float, interval: float = 0.5, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
