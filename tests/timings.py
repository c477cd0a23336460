"""Where the suite's time goes, as data: with KGW_TIMINGS=PATH, pytest writes PATH as JSON at the end of the session.

    KGW_TIMINGS=results/suite-timings/NAME.json scripts/test tests/e2e/test_dataplane.py

It holds each test's duration (setup, call and teardown added up) and outcome, each module's total, and the molecule
scenarios' phase and per-task times (recorded by tests/e2e/test_ansible_molecule.py). `python -m docs.generate`
renders docs/testing.md's timing tables from the files committed under results/suite-timings/.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from lab.provenance import commit
from lab.state import LabState


class SuiteTimings:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.began = time.time()
        self.commit = commit()  # at the start: the checkout may move on while a long session runs
        self.tests: dict[str, dict[str, object]] = {}
        self.molecule: list[dict[str, object]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed"})
        entry["seconds"] = round(entry["seconds"] + report.duration, 3)
        if report.failed or (report.skipped and report.when != "teardown"):
            entry["outcome"] = report.outcome
        if report.when == "call":
            self.molecule += [value for name, value in report.user_properties if name == "molecule"]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        modules: dict[str, dict[str, float]] = {}
        for nodeid, entry in self.tests.items():
            module = modules.setdefault(nodeid.split("::")[0], {"tests": 0, "seconds": 0.0})
            module["tests"] += 1
            module["seconds"] = round(module["seconds"] + entry["seconds"], 3)
        result = {
            "commit": self.commit,
            "command": shlex.join(["pytest", *sys.argv[1:]]),
            "kafka_version": lab_kafka_version(),
            "began": round(self.began, 1),
            "seconds": round(time.time() - self.began, 1),
            # the machine's load (1, 5, 15 min averages) at the end: a busy machine's figures are not a quiet one's
            "load_at_end": [round(load, 2) for load in os.getloadavg()],
            "tests": self.tests,
            "modules": modules,
            "molecule": self.molecule,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(result, indent=1) + "\n")


def lab_kafka_version() -> str:
    """The Kafka release of the lab the session ran on; empty when no lab is up (unit and docs tests only)."""
    instance = int(os.environ.get("KGW_LAB_INSTANCE", "0"))
    return LabState.load(instance).kafka_version if LabState.exists(instance) else ""


def register(config: pytest.Config) -> None:
    """Turn the recorder on when KGW_TIMINGS names the file to write."""
    if os.environ.get("KGW_TIMINGS"):
        config.pluginmanager.register(SuiteTimings(Path(os.environ["KGW_TIMINGS"]).resolve()), "kgw-suite-timings")
