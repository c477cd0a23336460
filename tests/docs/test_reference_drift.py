"""The generated reference pages (settings, role variables, metrics, API handling) match the code they describe."""

from __future__ import annotations

import difflib

import pytest

from docs import figures
from docs.generate import PAGES, REGENERATE, ROOT


@pytest.mark.parametrize("page", sorted(PAGES))
def test_generated_page_matches_the_code(page: str) -> None:
    path = ROOT / "docs" / page
    expected = PAGES[page]()
    committed = path.read_text() if path.exists() else ""
    diff = "".join(difflib.unified_diff(
        committed.splitlines(keepends=True), expected.splitlines(keepends=True),
        fromfile=f"docs/{page} (committed)", tofile=f"docs/{page} (from the code)", n=1))
    if committed != expected:
        pytest.fail(f"docs/{page} is out of date with the code; run `{REGENERATE}` and commit the result.\n{diff}",
                    pytrace=False)


@pytest.mark.parametrize("page", figures.PAGES_WITH_FIGURES)
def test_the_figures_in_a_hand_written_page_are_its_result_files(page: str) -> None:
    path = ROOT / page
    committed = path.read_text()
    expected = figures.fill(committed)
    assert figures.blocks_in(committed), f"{page} is listed as holding figures but has no figures block"
    if committed != expected:
        diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), expected.splitlines(keepends=True),
                                            fromfile=f"{page} (committed)", tofile=f"{page} (from the results)", n=1))
        pytest.fail(f"{page}: a figures block differs from its result file; run `{REGENERATE}`.\n{diff}", pytrace=False)


def test_every_figures_block_is_on_a_page() -> None:
    used = {name for page in figures.PAGES_WITH_FIGURES for name in figures.blocks_in((ROOT / page).read_text())}
    assert used == set(figures.BLOCKS), f"generated but shown nowhere: {sorted(set(figures.BLOCKS) - used)}"
