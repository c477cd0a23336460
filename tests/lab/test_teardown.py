"""A second lab instance, brought up and down, leaves no namespace, container, cgroup, mount or process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.layout import Layout
from lab.state import LabState

from ..conftest import REPO

pytestmark = pytest.mark.lab

INSTANCE = 7


def _leftovers(layout: Layout, pids: list[int]) -> list[str]:
    found = []
    netns = Path("/run/netns")
    found += [f"netns {p.name}" for p in netns.iterdir() if p.name.startswith(f"{layout.prefix}-")] if netns.exists() else []
    found += [f"link {p.name}" for p in Path("/sys/class/net").iterdir() if p.name.startswith(layout.prefix)]
    found += [f"cgroup {h}" for h in Path("/sys/fs/cgroup").glob(f"*/{layout.cgroup_name}")]
    found += [f"pid {pid}" for pid in pids if Path(f"/proc/{pid}").exists()]
    state_dir = str(layout.state_dir)
    found += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines() if state_dir in line]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if state_dir + "/" in cmdline and int(proc.name) != os.getpid():
                found.append(f"process {proc.name}: {cmdline[:120]}")
    return found


def test_down_leaves_nothing_behind(lab: LabState) -> None:
    layout = Layout(INSTANCE)
    lab_cmd = [sys.executable, "-m", "lab", "--instance", str(INSTANCE)]
    try:
        subprocess.run([*lab_cmd, "up", "--hosts", "solo:rack-a@gateways"], cwd=REPO, check=True, timeout=300)
        state = LabState.load(INSTANCE)
        pids = [b.pid for b in state.brokers if b.pid] + [h.pid for h in state.hosts if h.pid]
        assert len(pids) == 4
        assert _leftovers(layout, []) != [], "the instance should be visible while it is up"
    finally:
        subprocess.run([*lab_cmd, "down"], cwd=REPO, check=True, timeout=300)
    # Stopped processes may linger a moment as zombies until PID 1 reaps them.
    deadline = time.monotonic() + 10
    while _leftovers(layout, pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(layout, pids) == []
    assert not layout.state_file.exists()
