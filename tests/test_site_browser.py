"""The results site in a real browser: headless Chromium over the DevTools protocol.

A site written from synthetic run files is served on 127.0.0.1 (a free port, in a thread);
the site index, a run page and both ranking pages are loaded and checked for what a person
sees: the query blocks and plots render, the caption ``<script>alert(1)</script>`` shows as
text and opens no dialog, every link resolves, and a screenshot is not blank. Skipped, with
the reason, only where no Chromium is installed (Debian: ``apt-get install chromium``).
"""
from __future__ import annotations

import base64
import functools
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from browser import Browser, find_chromium
from site_fixture import NUM_QUERIES, PAYLOAD, PLOTS_PER_RUN, make_site

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium installed (Debian: apt-get update && apt-get install -y chromium)")

# Share of the screenshot's pixels that differ from its most common colour.
INK_SHARE = """(async () => {
  const image = new Image();
  image.src = "data:image/png;base64,%s";
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = new Uint32Array(context.getImageData(0, 0, image.width, image.height).data.buffer);
  const counts = new Map();
  for (const p of pixels) counts.set(p, (counts.get(p) || 0) + 1);
  return 1 - Math.max(...counts.values()) / pixels.length;
})()"""

RENDERED_PLOTS = """Array.from(document.querySelectorAll("svg.plot")).filter(svg => {
  const box = svg.getBoundingClientRect();
  return box.width > 100 && box.height > 100 && svg.querySelectorAll("polyline, rect, line").length > 5;
}).length"""

LINKS = "Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, list[tuple[Path, Path]]]]:
    """The base URL of a served site, and its runs' (models, web) folders."""
    save_dir = tmp_path_factory.mktemp("saved")
    runs = make_site(save_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(save_dir / "web")))
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", runs
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    with Browser(CHROMIUM, tmp_path_factory.mktemp("profile")) as opened:
        yield opened


def ink_share(browser: Browser) -> float:
    return browser.evaluate(INK_SHARE % base64.b64encode(browser.screenshot()).decode())


def assert_links_resolve(browser: Browser, base: str) -> list[str]:
    links = browser.evaluate(LINKS)
    assert links
    for link in links:
        assert link.startswith(base), link
        with urllib.request.urlopen(link, timeout=5) as response:
            assert response.status == 200, link
    return links


@pytest.mark.slow
def test_the_checks_can_fail(browser: Browser) -> None:
    """A page that does run the payload opens a dialog; a blank page has no ink."""
    browser.open("data:text/html,<p>x</p>" + PAYLOAD)
    assert browser.dialogs == ["1"]
    browser.dialogs.clear()
    browser.open("about:blank")
    assert ink_share(browser) < 0.001


@pytest.mark.slow
def test_site_index_lists_runs_newest_first(browser: Browser, served) -> None:
    base, runs = served
    browser.open(f"{base}/index.html")
    run_ids = browser.evaluate("Array.from(document.querySelectorAll('table.runs tbody tr td:nth-child(3)'))"
                               ".map(td => td.innerText)")
    assert run_ids == [models.name for models, _ in reversed(runs)]
    links = assert_links_resolve(browser, base)
    assert sorted(links) == sorted(f"{base}/{models.parent.name}/{models.name}/index.html" for models, _ in runs)
    assert browser.dialogs == []


@pytest.mark.slow
def test_run_page_shows_its_plots(browser: Browser, served) -> None:
    base, runs = served
    models, _ = runs[-1]
    browser.open(f"{base}/{models.parent.name}/{models.name}/index.html")
    assert browser.evaluate("document.querySelectorAll('svg.plot').length") == PLOTS_PER_RUN
    assert browser.evaluate(RENDERED_PLOTS) == PLOTS_PER_RUN
    assert browser.evaluate("document.querySelectorAll('table.evaluations tbody tr').length") == 1 + 4
    links = assert_links_resolve(browser, base)
    assert {link.rsplit("/", 1)[1] for link in links} == {"index.html", "test.html", "test-v2t.html"}
    assert ink_share(browser) > 0.02
    assert browser.dialogs == []


@pytest.mark.slow
@pytest.mark.parametrize("page", ["test.html", "test-v2t.html"])
def test_ranking_pages_show_the_payload_as_text(browser: Browser, served, page: str) -> None:
    base, runs = served
    models, _ = runs[0]
    browser.open(f"{base}/{models.parent.name}/{models.name}/{page}")
    assert browser.evaluate("document.querySelectorAll('section.query').length") == NUM_QUERIES
    assert browser.evaluate("document.scripts.length") == 0
    assert browser.evaluate(f"document.body.innerText.includes({PAYLOAD!r})")
    assert "<b>test</b>" in browser.evaluate("document.querySelector('h1').innerText")
    assert_links_resolve(browser, base)
    assert ink_share(browser) > 0.02
    assert browser.dialogs == []
