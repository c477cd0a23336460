"""Every image on every page of the built site loads in a real browser (headless Chromium) and is drawn with a size."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs.generate import pictures

from .browser import Browser, page_url

# What the browser knows of each <img> once the page has loaded: loaded at all (naturalWidth stays 0 for a missing
# or undecodable file), and the size the page gives it.
IMAGES = """Array.from(document.images).map(img => {
  const box = img.getBoundingClientRect();
  return {src: img.currentSrc || img.src, complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
          drawn: [box.width, box.height]};
})"""


def broken(images: list[dict]) -> list[str]:
    return [f"{image['src']}: loaded {image['complete']}, natural size {image['natural']}, drawn {image['drawn']}"
            for image in images
            if not (image["complete"] and min(image["natural"]) > 0 and min(image["drawn"]) > 0)]


@pytest.fixture(scope="module")
def browser() -> Browser:
    with Browser() as chromium:
        yield chromium


def test_every_image_of_every_page_loads_with_a_size(built_site: Path, browser: Browser) -> None:
    pages = sorted(built_site.rglob("index.html"))
    assert len(pages) > 20, f"only {len(pages)} pages built"
    seen: set[str] = set()
    problems: list[str] = []
    for page in pages:
        browser.open(page_url(page))
        images = browser.evaluate(IMAGES)
        problems += [f"{page.relative_to(built_site)}: {problem}" for problem in broken(images)]
        seen.update(image["src"] for image in images)
    assert not problems, "\n".join(problems)
    for picture in pictures():
        assert page_url(built_site / picture) in seen, f"no page of the built site shows {picture}"


def test_the_check_sees_a_missing_and_an_empty_image(tmp_path: Path, browser: Browser) -> None:
    (tmp_path / "empty.svg").write_text("")
    (tmp_path / "good.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"/>')
    (tmp_path / "page.html").write_text('<html><body><img src="good.svg"><img src="missing.svg"><img src="empty.svg">'
                                        '<img src="good.svg" style="width:0"></body></html>')
    browser.open(page_url(tmp_path / "page.html"))
    images = browser.evaluate(IMAGES)
    assert len(images) == 4
    found = broken(images)
    assert [line.split(": loaded")[0] for line in found] == [page_url(tmp_path / name) for name in
                                                             ("missing.svg", "empty.svg", "good.svg")]
