""".ci/run ends with the suite's time against its stated budget (docs/testing.md, The time budget)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_run_reports_the_time_against_the_budget_and_keeps_the_exit_status(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci/run", tmp_path / ".ci/run")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/test").write_text("#!/usr/bin/env bash\necho '1 passed, 0 failed'\nexit ${FAKE_STATUS:-0}\n")
    (tmp_path / "scripts/test").chmod(0o755)
    for status in (0, 3):
        done = subprocess.run(["bash", str(tmp_path / ".ci/run")], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "FAKE_STATUS": str(status)})
        assert done.returncode == status
        budget = re.search(r"^BUDGET_S=(\d+)$", (ROOT / ".ci/run").read_text(), re.M).group(1)
        assert re.search(rf"^ci: suite took \d+ s of its {budget} s budget$", done.stdout, re.M), done.stdout
        assert f"ci: test command exited {status} after" in done.stdout
    assert budget == "1800"  # the figure docs/testing.md states
    assert "of its 1800 s budget" in (ROOT / "docs/testing.md").read_text()
