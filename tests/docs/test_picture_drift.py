"""The committed pictures (docs/pictures/*.svg) are what the code and the result files draw today, byte for byte,
and drawing one twice gives the same bytes (so a stale picture, not a nondeterministic one, is what fails here)."""

from __future__ import annotations

import pytest

from docs.generate import REGENERATE, ROOT, pictures

PICTURES = pictures()


def test_every_picture_is_shown_on_a_page() -> None:
    pages = "".join(path.read_text() for path in (ROOT / "docs").glob("*.md"))
    for picture in PICTURES:
        assert f"({picture})" in pages, f"docs/{picture} is drawn but no page shows it"


@pytest.mark.parametrize("picture", sorted(PICTURES))
def test_generated_picture_matches_its_source(picture: str) -> None:
    drawn = PICTURES[picture]()
    assert drawn == PICTURES[picture](), f"docs/{picture}: two drawings of the same input differ"
    assert drawn.lstrip().startswith(("<?xml", "<svg")) and drawn.rstrip().endswith("</svg>")
    path = ROOT / "docs" / picture
    committed = path.read_text() if path.exists() else ""
    if committed != drawn:
        pytest.fail(f"docs/{picture} is out of date with what it is drawn from; run `{REGENERATE}` and commit the "
                    f"result ({len(committed)} bytes committed, {len(drawn)} drawn now)", pytrace=False)
