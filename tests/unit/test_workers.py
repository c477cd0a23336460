"""The whole suite on two workers (tests/workers.py, scripts/test): which lab instance each uses, the order the files
are handed out in, and when scripts/test asks for workers at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import workers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("base", "worker", "instance"), [(None, None, 0), ("3", None, 3), (None, "gw0", 0),
                                                          (None, "gw1", 1), ("4", "gw1", 5)])
def test_each_worker_has_a_lab_instance_of_its_own(monkeypatch: pytest.MonkeyPatch, base, worker, instance) -> None:
    for name, value in (("KGW_LAB_INSTANCE", base), ("PYTEST_XDIST_WORKER", worker)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert workers.lab_instance() == instance


def fake_item(nodeid: str, lab: bool) -> SimpleNamespace:
    return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: object() if lab and name == "lab" else None)


def test_files_are_handed_out_longest_first_then_lab_files_then_the_rest_each_file_together() -> None:
    items = [fake_item("tests/docs/test_site.py::test_a", False),
             fake_item("tests/e2e/test_ansible_molecule.py::test_molecule_scenario[default]", True),
             fake_item("tests/e2e/test_b.py::test_one", True),
             fake_item("tests/unit/test_c.py::test_x", False),
             fake_item("tests/e2e/test_ansible_molecule.py::test_molecule_scenario[tls]", True),
             fake_item("tests/e2e/test_d.py::test_plain", False),
             fake_item("tests/e2e/test_d.py::test_lab", True),
             fake_item("tests/docs/test_site.py::test_b", False)]
    assert [item.nodeid for item in workers.hand_out_order(items)] == [
        "tests/e2e/test_ansible_molecule.py::test_molecule_scenario[default]",
        "tests/e2e/test_ansible_molecule.py::test_molecule_scenario[tls]",
        "tests/e2e/test_b.py::test_one",
        "tests/e2e/test_d.py::test_plain",  # a file with one lab test goes with the lab files, whole
        "tests/e2e/test_d.py::test_lab",
        "tests/docs/test_site.py::test_a",
        "tests/docs/test_site.py::test_b",
        "tests/unit/test_c.py::test_x",
    ]


def test_two_workers_run_on_two_instances_the_longest_file_first(tmp_path: Path) -> None:
    """The suite's own conftest hooks in a real xdist run: each worker exports its instance to what the tests start,
    and the first file handed out is the longest, though collected last."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems, pytest_configure\n")
    record = ("import json, os, time\n\n\ndef test_record():\n    time.sleep(SLEEP)\n"
              "    with open(os.environ['RECORD'], 'a') as out:\n"
              "        out.write(json.dumps([__file__, os.environ['PYTEST_XDIST_WORKER'], os.environ['KGW_LAB_INSTANCE'],"
              " time.monotonic()]) + '\\n')\n")
    # collected first, and each records a second later than the molecule file, which is collected last
    for path, sleep in (("tests/docs/test_x.py", 1), ("tests/docs/test_y.py", 1), ("tests/e2e/test_ansible_molecule.py", 0)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(record.replace("SLEEP", str(sleep)))
    out = tmp_path / "record.jsonl"
    env = {**os.environ, "RECORD": str(out), "PYTHONPATH": str(ROOT), "KGW_LAB_INSTANCE": "5"}
    env.pop("PYTEST_XDIST_WORKER", None)  # this test may itself run in a worker
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-n", "2", "--dist", "loadfile", "--no-loadscope-reorder", "--rootdir", str(tmp_path),
                           str(tmp_path / "tests")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda run: run[3])
    assert {(worker, instance) for _, worker, instance, _ in runs} == {("gw0", "5"), ("gw1", "6")}
    assert Path(runs[0][0]).name == "test_ansible_molecule.py"


def run_scripts_test(tmp_path: Path, *args: str, **env: str) -> list[str]:
    """scripts/test's pytest arguments, with a bootstrap and a Python that only report."""
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts", ignore=lambda d, names: [n for n in names if n != "test"])
    (tmp_path / "scripts/bootstrap").write_text("#!/usr/bin/env bash\n")
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\n")
    for path in ("scripts/bootstrap", ".venv/bin/python"):
        (tmp_path / path).chmod(0o755)
    (tmp_path / "lab").mkdir()  # a directory named like a marker: `-m lab` still names no test
    (tmp_path / "tests/e2e").mkdir(parents=True)
    (tmp_path / "tests/e2e/test_x.py").write_text("")
    environment = {k: v for k, v in os.environ.items() if k != "KGW_TEST_WORKERS"} | env
    done = subprocess.run(["bash", str(tmp_path / "scripts/test"), *args], capture_output=True, text=True, env=environment,
                          timeout=60, check=True)
    return done.stdout.split()


PARALLEL = ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"]


@pytest.mark.parametrize(("args", "env", "parallel"), [
    ((), {}, True),  # the whole suite: two workers by default
    (("-p", "no:cacheprovider"), {}, True),  # what .ci/run runs
    (("-p", "no:cacheprovider"), {"KGW_TEST_WORKERS": "1"}, False),
    ((), {"KGW_TEST_WORKERS": "2"}, True),
    (("-p", "no:cacheprovider"), {"KGW_TEST_WORKERS": "2"}, True),
    (("-m", "lab", "-k", "tls"), {"KGW_TEST_WORKERS": "2"}, True),
    (("tests/e2e/test_x.py",), {"KGW_TEST_WORKERS": "2"}, False),
    (("tests/e2e/test_x.py::test_one", "-q"), {"KGW_TEST_WORKERS": "2"}, False),
    (("tests/e2e",), {"KGW_TEST_WORKERS": "2"}, False),
    ((), {"KGW_TEST_WORKERS": "1"}, False),
])
def test_scripts_test_asks_for_workers_for_the_whole_suite_unless_told_one(tmp_path: Path, args, env, parallel) -> None:
    argv = run_scripts_test(tmp_path, *args, **env)
    assert argv[:2] == ["-m", "pytest"]
    assert (argv[2:7] == PARALLEL) is parallel and ("-n" in argv) is parallel
    assert argv[len(argv) - len(args):] == list(args)
