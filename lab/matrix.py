"""``python -m lab.matrix``: the data-plane, cluster and client e2e tests against each supported Kafka release.

For each release the lab instance is taken down, brought up on that release and the test modules run against it
with pytest; each test's outcome is counted for the client family it exercises. The results are merged into a
committed file (results/kafka-matrix.json, one entry per release: commit, date, duration, per family passed, failed,
skipped), from which ``python -m docs.generate`` writes docs/reference/kafka-matrix.md. Not part of the default
suite: one run takes minutes per release. The instance is left down at the end.

    .venv/bin/python -m lab.matrix                          # every release of lab.kafka_versions.MATRIX_VERSIONS
    .venv/bin/python -m lab.matrix --versions 4.4.0 --instance 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from . import kafka_versions
from .provenance import commit
from .layout import REPO_DIR

RESULTS = REPO_DIR / "results" / "kafka-matrix.json"
MODULES = (
    # data plane
    "tests/e2e/test_dataplane.py", "tests/e2e/test_dataplane_sasl.py", "tests/e2e/test_dataplane_tls.py",
    # cluster
    "tests/e2e/test_cluster_gateway.py", "tests/e2e/test_cluster_topology.py", "tests/e2e/test_cluster_membership.py",
    # clients, and what the gateway reads of their requests
    "tests/e2e/test_clients.py", "tests/e2e/test_request_guard.py", "tests/e2e/test_kip1242.py",
)
# A test belongs to the first family whose word its name holds; raw-frame modules to "raw frames"; the rest of the
# e2e tests drive confluent-kafka, so librdkafka.
FAMILY_WORDS = (
    ("franz_go", "Go (franz-go)"), ("kafka_python", "kafka-python"), ("aiokafka", "aiokafka"),
    ("java", "Java"), ("verifiable", "Java"), ("kcat", "kcat (librdkafka)"),
)
RAW_FRAME_MODULES = ("test_request_guard", "test_kip1242")
DEFAULT_FAMILY = "librdkafka (confluent-kafka)"


def family_of(module: str, name: str) -> str:
    """The client family a test exercises, from its module and name."""
    lowered = name.lower()
    for word, family in FAMILY_WORDS:
        if word in lowered:
            return family
    if module.rsplit(".", 1)[-1] in RAW_FRAME_MODULES:
        return "raw frames"
    return DEFAULT_FAMILY


def outcomes(junit_xml: str) -> list[dict[str, Any]]:
    """Each test case of a pytest JUnit XML report: module, name, outcome, seconds."""
    cases = []
    for case in ElementTree.fromstring(junit_xml).iter("testcase"):
        tags = {child.tag for child in case}
        outcome = ("failed" if tags & {"failure", "error"} else "skipped" if "skipped" in tags else "passed")
        cases.append({"module": case.get("classname", ""), "name": case.get("name", ""), "outcome": outcome,
                      "seconds": float(case.get("time") or 0)})
    return cases


def by_family(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    families: dict[str, dict[str, Any]] = {}
    for case in cases:
        counts = families.setdefault(family_of(case["module"], case["name"]),
                                     {"passed": 0, "failed": 0, "skipped": 0, "duration_s": 0.0})
        counts[case["outcome"]] += 1
        counts["duration_s"] = round(counts["duration_s"] + case["seconds"], 1)
    return dict(sorted(families.items()))


def merge(existing: dict[str, Any], version: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The results file with one release's entry replaced (the other releases' kept as they were run)."""
    runs = dict(existing.get("versions", {}))
    runs[version] = entry
    ordered = sorted(runs, key=lambda v: tuple(int(part) for part in v.split(".")))
    return {"command": "python -m lab.matrix", "versions": {v: runs[v] for v in ordered}}


def _lab(instance: int, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "lab", "--instance", str(instance), *args], cwd=REPO_DIR, check=True)


def run_version(version: str, instance: int, modules: list[str], timeout_s: float, made_by: str) -> dict[str, Any]:
    """Bring the instance up on this release, run the modules, take it down; the release's results entry, naming
    `made_by`, the commit the matrix run started at."""
    started = time.monotonic()
    _lab(instance, "down")
    _lab(instance, "up", "--kafka-version", version)
    lab_up_s = round(time.monotonic() - started, 1)
    env = {**os.environ, "KGW_LAB_INSTANCE": str(instance), "KGW_KAFKA_VERSION": version}
    try:
        with TemporaryDirectory() as work:
            report = Path(work) / "junit.xml"
            tests_started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "pytest", *modules, "-q", "-p", "no:cacheprovider",
                                   f"--junitxml={report}"], cwd=REPO_DIR, env=env, timeout=timeout_s)
            tests_s = round(time.monotonic() - tests_started, 1)
            cases = outcomes(report.read_text()) if report.exists() else []
    finally:
        _lab(instance, "down")
    return {
        "commit": made_by, "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lab_up_s": lab_up_s, "tests_s": tests_s, "pytest_exit": done.returncode, "modules": modules,
        "families": by_family(cases),
        "failed_tests": [f"{case['module']}::{case['name']}" for case in cases if case["outcome"] == "failed"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", nargs="+", type=kafka_versions.validate, default=list(kafka_versions.MATRIX_VERSIONS),
                        help=f"Kafka releases to run ({kafka_versions.SUPPORTED_TEXT}; default: %(default)s)")
    parser.add_argument("--instance", type=int, default=int(os.environ.get("KGW_LAB_INSTANCE", "0")),
                        help="the lab instance to use; it is taken down first and left down (default: $KGW_LAB_INSTANCE or 0)")
    parser.add_argument("--modules", nargs="+", default=list(MODULES), help="test modules (default: the matrix's)")
    parser.add_argument("--timeout-minutes", type=float, default=30.0, help="bound on one release's tests")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results file, merged per release")
    args = parser.parse_args(argv)
    failed = 0
    # read once: the results file this run writes after each release would mark the next ones -dirty
    made_by = commit()
    for version in args.versions:
        entry = run_version(version, args.instance, args.modules, args.timeout_minutes * 60, made_by)
        existing = json.loads(args.output.read_text()) if args.output.exists() else {}
        args.output.write_text(json.dumps(merge(existing, version, entry), indent=2) + "\n")
        failed += entry["pytest_exit"] != 0
        print(f"matrix: Kafka {version}: pytest exit {entry['pytest_exit']} in {entry['tests_s']} s, "
              + ", ".join(f"{family} {c['passed']}/{c['passed'] + c['failed']}" for family, c in entry["families"].items()))
    print(f"matrix: wrote {args.output}; regenerate the page with `python -m docs.generate`")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
