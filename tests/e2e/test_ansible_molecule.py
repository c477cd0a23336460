"""The molecule scenarios, run by pytest so the README's single test command covers the Ansible side.

Each scenario boots its own lab hosts (create), deploys with the project's site playbook (converge), and removes
them again (destroy); see molecule/<scenario>/ for what each one proves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lab.state import LabState

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv/bin"
SCENARIO_TIMEOUT_S = 1200


@pytest.mark.lab
# the scenario's own bound, not the suite's 900 s default (pyproject.toml), which `default` reached on a busy
# machine. The margin covers the lab fixture when this test brings the lab up (87 s once on a loaded machine, which
# let pytest's timer fire first while the harness below still waited for molecule's whole run)
@pytest.mark.timeout(SCENARIO_TIMEOUT_S + 300)
@pytest.mark.parametrize("scenario", ["default", "external_lb", "rolling_restart", "tls"])
def test_molecule_scenario(lab: LabState, scenario: str, tmp_path: Path, record_property) -> None:
    log = tmp_path / f"molecule-{scenario}.log"
    task_times = tmp_path / "task-times.jsonl"  # molecule/shared/callback_plugins/task_times.py appends to it
    # unbuffered: molecule and ansible-playbook write each line as it happens, so the stamps below are the lines' times
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1",
           "PYTHONUNBUFFERED": "1", "KGW_TASK_TIMES": str(task_times), **mitogen_strategy()}
    with log.open("w", buffering=1) as out:
        proc = subprocess.Popen([str(VENV_BIN / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        # at the bound, molecule and its ansible-playbook children together (they hold the pipe open)
        timer = threading.Timer(SCENARIO_TIMEOUT_S, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        began = time.monotonic()
        began_wall = time.time()
        try:
            for line in proc.stdout:  # each line stamped with the seconds since the start: where the suite's time goes
                out.write(f"{time.monotonic() - began:7.1f} {line}")
        except BaseException:  # pytest's own timeout or ^C: molecule's process group must not run on unwatched
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            timer.cancel()
            proc.wait()
    took = time.monotonic() - began
    text = log.read_text()
    phases = phase_times(text)
    print(f"\nmolecule {scenario}: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, _, seconds in phases))
    # tests/conftest.py writes these to $KGW_TIMINGS (docs/testing.md's timing tables)
    record_property("molecule", {"scenario": scenario, "seconds": round(took, 1),
                                 "phases": [{"phase": phase, "seconds": round(seconds, 1)} for phase, _, seconds in phases],
                                 "tasks": tasks_by_phase(phases, began_wall, task_times)})
    assert took < SCENARIO_TIMEOUT_S, f"molecule test -s {scenario} killed after {SCENARIO_TIMEOUT_S} s; last lines:\n" + \
        "\n".join(text.splitlines()[-80:])
    assert proc.returncode == 0, f"molecule test -s {scenario} failed; last lines:\n" + "\n".join(text.splitlines()[-80:])
    for action in ("converge", "verify", "destroy"):
        assert f"{action}: Executed: Successful" in text


def mitogen_strategy() -> dict[str, str]:
    """Mitogen's linear strategy for the scenarios' playbook runs (and the playbooks their verify steps run), unless
    KGW_MOLECULE_STRATEGY=linear asks for Ansible's own. Mitogen keeps one Python interpreter per host instead of
    starting one per task over SSH: about a third off idempotence and a quarter off verify (docs/testing.md). A
    test dependency only: ansible.cfg and the operator's playbooks do not use it."""
    if os.environ.get("KGW_MOLECULE_STRATEGY", "mitogen_linear") != "mitogen_linear":
        return {}
    import ansible_mitogen  # the `test` extra's mitogen

    return {"ANSIBLE_STRATEGY_PLUGINS": str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear"}


def phase_times(text: str) -> list[tuple[str, float, float]]:
    """(phase, start, seconds) of each phase, in order, start in seconds since molecule began, from the stamped
    log's "[scenario > phase] Executing" / "Executed" lines."""
    started: dict[str, float] = {}
    times = []
    for stamp, phase, what in re.findall(r"^\s*([\d.]+) INFO\s+\[\S+ > (\w+)\] (Executing|Executed)", text, re.M):
        if what == "Executing":
            started[phase] = float(stamp)
        elif phase in started:
            start = started.pop(phase)
            times.append((phase, start, float(stamp) - start))
    return times


def tasks_by_phase(phases: list[tuple[str, float, float]], began_wall: float, task_times: Path) -> list[dict]:
    """Each task of the phases' own playbook runs (not of a playbook that one of their tasks ran), summed per phase
    and task name: [{"phase", "task", "role", "runs", "seconds"}], a run attributed to the phase it started in."""
    runs = [json.loads(line) for line in task_times.read_text().splitlines()] if task_times.exists() else []
    totals: dict[tuple[str, str, str], list] = {}
    for run in runs:
        if run["depth"] != 0:
            continue
        offset = run["began"] - began_wall
        phase = next((name for name, start, seconds in phases if start - 1 <= offset <= start + seconds), "?")
        for task in run["tasks"]:
            entry = totals.setdefault((phase, task["task"], task["role"]), [0, 0.0])
            entry[0] += 1
            entry[1] += task["seconds"]
    return [{"phase": phase, "task": task, "role": role, "runs": count, "seconds": round(seconds, 1)}
            for (phase, task, role), (count, seconds) in totals.items()]
