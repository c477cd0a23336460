"""The documentation site builds with `mkdocs build --strict`: a broken link, a missing anchor or a missing nav page
fails the test command. Pages that exist but are not in the nav yet are built and do not fail it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .conftest import ROOT, mkdocs_build


def test_site_builds_strict_with_every_nav_page(built_site: Path) -> None:
    nav_pages = re.findall(r":\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert nav_pages, "no pages found in the nav of mkdocs.yml"
    for page in nav_pages:
        html = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        assert (built_site / html).is_file(), f"{page} was not built"


def test_page_outside_the_nav_does_not_fail_strict_but_a_broken_link_does(tmp_path: Path) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs/not-in-nav.md").write_text("# Not in the nav yet\n\nSee [Runbooks](runbooks.md#kafkagatewaydown).\n")
    build = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "site/not-in-nav/index.html").is_file()

    (tmp_path / "docs/not-in-nav.md").write_text("# Not in the nav yet\n\nSee [Runbooks](runbooks.md#no-such-section).\n")
    build = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert build.returncode != 0, "a link to a missing anchor must fail the strict build"
    assert "no-such-section" in build.stdout + build.stderr
