"""docs/testing.md's timing tables, from the files `KGW_TIMINGS=PATH` wrote (tests/timings.py).

The files are results/suite-timings/<label>-<what>.json, label `before`, `after` or `quick` (`scripts/test --quick`
run without a network): each is one pytest session, e.g.
one molecule scenario (`KGW_TIMINGS=results/suite-timings/after-tls.json scripts/test
tests/e2e/test_ansible_molecule.py -k tls`). The tables go between the two marker lines of docs/testing.md; the
text around them is written by hand.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from docs.generate import _table

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / "results" / "suite-timings"
TESTING = ROOT / "docs" / "testing.md"
BEGIN = "<!-- timing tables: begin -->"
END = "<!-- timing tables: end -->"
LABELS = ("before", "after")
PHASES = ("create", "prepare", "converge", "idempotence", "verify", "destroy")
SLOWEST_TASKS = 6
SLOWEST_TESTS = 10


def load(label: str) -> list[tuple[str, dict[str, Any]]]:
    """(file name, contents) of each file of one label, by name."""
    return [(path.name, json.loads(path.read_text())) for path in sorted(TIMINGS.glob(f"{label}-*.json"))]


def _scenario_runs(runs: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[tuple[str, str, str, dict, dict]]:
    """(scenario, label, file name, its figures, the whole file) of every molecule scenario run, by scenario, then
    before ahead of after, then file."""
    found = [(scenario["scenario"], label, name, scenario, run)
             for label in LABELS for name, run in runs[label] for scenario in run["molecule"]]
    return sorted(found, key=lambda item: (item[0], LABELS.index(item[1]), item[2]))


def _phase_seconds(scenario: dict[str, Any]) -> dict[str, float]:
    """Seconds per phase that ran (the two destroys added up)."""
    totals: dict[str, float] = {}
    for phase in scenario["phases"]:
        totals[phase["phase"]] = totals.get(phase["phase"], 0.0) + phase["seconds"]
    return totals


def _sources(runs: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    rows = [[label, f"`{name}`", f"`{run['commit']}`", run["kafka_version"] or "no lab",
             time.strftime("%Y-%m-%d %H:%M", time.gmtime(run["began"])), f"`{run['command']}`"]
            for label in LABELS for name, run in runs[label]]
    return _table(["run", "file", "commit", "Kafka", "began (UTC)", "command"], rows)


def _load(run: dict[str, Any]) -> str:
    return " / ".join(str(load) for load in run["load_at_end"]) if "load_at_end" in run else "not recorded"


def molecule_phases(runs: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    rows = []
    for scenario, label, file, figures, run in _scenario_runs(runs):
        phases = _phase_seconds(figures)
        # "–": not in the scenario's test sequence (rolling_restart has no idempotence step)
        rows.append([scenario, label, f"`{file}`", *(f"{phases[phase]:.0f}" if phase in phases else "–" for phase in PHASES),
                     f"{figures['seconds']:.0f}", _load(run)])
    return _table(["scenario", "run", "file", *PHASES, "whole test", "load at the end (1 / 5 / 15 min)"], rows)


def molecule_tasks(runs: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    rows = []
    for _, _, file, figures, _ in _scenario_runs(runs):
        for task in sorted(figures["tasks"], key=lambda task: -task["seconds"])[:SLOWEST_TASKS]:
            # Ansible names a role's task "role : task" itself
            rows.append([f"`{file}`", task["phase"], task["task"], task["runs"], f"{task['seconds']:.1f}"])
    return _table(["file", "phase", "task", "runs", "seconds"], rows)


def slowest_tests(runs: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    rows = []
    for label in LABELS:
        tests = {nodeid: entry for _, run in runs[label] for nodeid, entry in run["tests"].items()}
        for nodeid, entry in sorted(tests.items(), key=lambda item: -item[1]["seconds"])[:SLOWEST_TESTS]:
            rows.append([label, f"`{nodeid}`", entry["outcome"], f"{entry['seconds']:.1f}"])
    return _table(["run", "test", "outcome", "seconds"], rows)


def quick_runs(_: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    """`scripts/test --quick` runs (files quick-*.json): the edit-test loop's time against its 180 s budget."""
    rows = []
    for name, run in load("quick"):
        outcomes: dict[str, int] = {}
        for entry in run["tests"].values():
            outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
        rows.append([f"`{name}`", f"`{run['commit']}`", time.strftime("%Y-%m-%d %H:%M", time.gmtime(run["began"])),
                     ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())),
                     f"{run['seconds']:.0f}", _load(run),
                     f"`{run['command']}`"])
    return _table(["file", "commit", "began (UTC)", "tests", "seconds", "load at the end", "command"], rows)


SECTIONS: dict[str, Callable[[dict[str, list[tuple[str, dict[str, Any]]]]], str]] = {
    "Molecule phases, seconds (both destroys added up)": molecule_phases,
    f"The {SLOWEST_TASKS} slowest tasks of each scenario (a task's runs summed within a phase)": molecule_tasks,
    f"The {SLOWEST_TESTS} slowest tests of each run": slowest_tests,
    "Where each figure comes from": _sources,
    "`scripts/test --quick` without a network (budget 180 s)": quick_runs,
}


def tables() -> str:
    runs = {label: load(label) for label in LABELS}
    out = ["<!-- Generated by `.venv/bin/python -m docs.generate` from results/suite-timings/*.json; "
           "edit those or docs/suite_timings.py, not this block. -->\n"]
    for title, make in SECTIONS.items():
        out.append(f"\n**{title}**\n\n{make(runs)}")
    return "".join(out)


def testing_page() -> str:
    """docs/testing.md as committed, its marked block replaced by the tables."""
    text = TESTING.read_text()
    block = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not block.search(text):
        raise ValueError(f"docs/testing.md lacks the lines {BEGIN} and {END}")
    return block.sub(lambda _: f"{BEGIN}\n{tables()}\n{END}", text)
