"""Every alert rule of the monitoring role links to its own section of the runbooks page of the built site."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import jinja2
import yaml

from .conftest import ROOT

ROLE = ROOT / "roles/gateway_monitoring"


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def rendered_rules() -> list[dict]:
    """The rules file as the role writes it with its defaults (the role's own templating is plain Jinja here)."""
    variables = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (ROLE / "templates/kafka-gateway.rules.yml.j2").read_text())
    rules = yaml.safe_load(template.render(ansible_managed="test", **variables))
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_runbook_url_that_resolves_in_the_built_site(built_site: Path) -> None:
    base = yaml.safe_load((ROLE / "defaults/main.yml").read_text())["gateway_monitoring_runbook_base_url"]
    assert base.endswith("runbooks/"), "the default must point at the runbooks page of the site"
    page = built_site / "runbooks/index.html"
    parser = _Ids()
    parser.feed(page.read_text())
    rules = rendered_rules()
    assert rules, "no alert rules found"
    for rule in rules:
        url = rule.get("annotations", {}).get("runbook_url")
        assert url, f"{rule['alert']} has no runbook_url annotation"
        assert url == f"{base}#{rule['alert'].lower()}", f"{rule['alert']}: runbook_url {url!r}"
        assert rule["alert"].lower() in parser.ids, f"{rule['alert']}: no section #{rule['alert'].lower()} in {page}"
