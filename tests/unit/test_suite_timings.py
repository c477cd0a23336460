"""Where the suite's time goes: the pytest recorder (tests/timings.py), the Ansible task_times callback and the
harness's attribution of each playbook run to a molecule phase (tests/e2e/test_ansible_molecule.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_ansible_molecule import phase_times, tasks_by_phase

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv/bin"


def test_kgw_timings_writes_each_test_each_module_and_the_molecule_figures(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests import timings\n\n\ndef pytest_configure(config):\n"
                                          "    timings.register(config)\n")
    (tmp_path / "test_one.py").write_text(
        "import time\n\n\ndef test_slow(record_property):\n    time.sleep(0.3)\n"
        "    record_property('molecule', {'scenario': 'x', 'seconds': 1.0, 'phases': [], 'tasks': []})\n\n\n"
        "def test_fails():\n    assert False\n")
    out = tmp_path / "timings.json"
    env = {**os.environ, "KGW_TIMINGS": str(out), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                   env=env, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    tests = {nodeid.split("::")[-1]: entry for nodeid, entry in result["tests"].items()}
    assert tests["test_slow"]["outcome"] == "passed" and tests["test_slow"]["seconds"] >= 0.3
    assert tests["test_fails"]["outcome"] == "failed"
    (module,) = result["modules"].values()
    assert module["tests"] == 2 and module["seconds"] >= 0.3
    assert result["molecule"] == [{"scenario": "x", "seconds": 1.0, "phases": [], "tasks": []}]
    assert len(result["load_at_end"]) == 3 and result["commit"]


def test_without_kgw_timings_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests import timings\n\n\ndef pytest_configure(config):\n"
                                          "    timings.register(config)\n")
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "KGW_TIMINGS"} | {"PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                   env=env, capture_output=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == []


def test_the_task_times_callback_records_each_task_and_a_nested_run_one_level_deeper(tmp_path: Path) -> None:
    inner = tmp_path / "inner.yml"
    inner.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                     "    - name: Inner task\n      ansible.builtin.debug:\n        msg: inner\n")
    outer = tmp_path / "outer.yml"
    outer.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                     "    - name: Wait a little\n      ansible.builtin.wait_for:\n        timeout: 1\n"
                     f"    - name: Run another playbook\n      ansible.builtin.command: {VENV_BIN}/ansible-playbook -i localhost, -c local"
                     f" -e ansible_python_interpreter={sys.executable} {inner}\n")
    times = tmp_path / "times.jsonl"
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "KGW_TASK_TIMES": str(times),
           "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "molecule/shared/callback_plugins"),
           "ANSIBLE_CALLBACKS_ENABLED": "task_times", "ANSIBLE_LOCALHOST_WARNING": "false"}
    env.pop("KGW_TASK_TIMES_DEPTH", None)
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(outer)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {run["playbook"]: run for run in map(json.loads, times.read_text().splitlines())}
    assert (runs["outer.yml"]["depth"], runs["inner.yml"]["depth"]) == (0, 1)
    assert [task["task"] for task in runs["inner.yml"]["tasks"]] == ["Inner task"]
    waited = {task["task"]: task["seconds"] for task in runs["outer.yml"]["tasks"]}
    assert 1.0 <= waited["Wait a little"] < 10 and waited["Run another playbook"] > 0


def test_each_playbook_run_is_summed_under_the_phase_it_started_in(tmp_path: Path) -> None:
    log = ("    1.0 INFO     [s > converge] Executing\n   10.0 INFO     [s > converge] Executed: Successful\n"
           "   10.0 INFO     [s > idempotence] Executing\n   15.5 INFO     [s > idempotence] Executed: Successful\n")
    phases = phase_times(log)
    assert phases == [("converge", 1.0, 9.0), ("idempotence", 10.0, 5.5)]
    began = time.time() - 100
    runs = [{"playbook": "converge.yml", "depth": 0, "began": began + 1.2, "tasks": [{"task": "t", "role": "", "seconds": 2.0}]},
            {"playbook": "converge.yml", "depth": 0, "began": began + 10.1, "tasks": [{"task": "t", "role": "", "seconds": 1.5},
                                                                                      {"task": "t", "role": "", "seconds": 0.5}]},
            {"playbook": "deploy.yml", "depth": 1, "began": began + 11, "tasks": [{"task": "t", "role": "", "seconds": 9.0}]}]
    path = tmp_path / "times.jsonl"
    path.write_text("".join(json.dumps(run) + "\n" for run in runs))
    assert sorted(tasks_by_phase(phases, began, path), key=lambda t: t["phase"]) == [
        {"phase": "converge", "task": "t", "role": "", "runs": 1, "seconds": 2.0},
        {"phase": "idempotence", "task": "t", "role": "", "runs": 2, "seconds": 2.0}]
