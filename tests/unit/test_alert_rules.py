"""Every alert rule of the monitoring role is unit-tested with `promtool test rules` (tests/unit/alert_rules_test.yml).

The rules template is rendered with the role's defaults, as the role would render it, and promtool (from Debian's
prometheus package; scripts/bootstrap puts it in /var/cache/kgw-lab/promtool) evaluates the test cases against it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/gateway_monitoring"
TESTS = Path(__file__).with_name("alert_rules_test.yml")
CACHED_PROMTOOL = Path("/var/cache/kgw-lab/promtool/usr/bin/promtool")


def promtool() -> str:
    found = shutil.which("promtool") or (str(CACHED_PROMTOOL) if CACHED_PROMTOOL.exists() else None)
    assert found, "promtool is missing: run scripts/bootstrap"
    return found


def render_rules() -> str:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    literal = {k: v for k, v in defaults.items() if "{{" not in str(v)}
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (ROLE / "templates/kafka-gateway.rules.yml.j2").read_text())
    return template.render(ansible_managed="rendered by tests/unit/test_alert_rules.py", **literal)


def test_every_alert_rule_passes_its_promtool_tests(tmp_path: Path) -> None:
    (tmp_path / "kafka-gateway.rules.yml").write_text(render_rules())
    shutil.copy(TESTS, tmp_path / TESTS.name)
    proc = subprocess.run([promtool(), "test", "rules", TESTS.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_every_alert_of_the_template_has_a_firing_test_case() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", (ROLE / "templates/kafka-gateway.rules.yml.j2").read_text(), re.M))
    firing = {case["alertname"] for test in yaml.safe_load(TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts and alerts <= firing, f"alerts without a test case that fires them: {sorted(alerts - firing)}"
