"""Debian's Chromium for the tests where a page is the product: the marker that skips them
where it is missing, one browser per test, and the site snippet a page loads the tracker with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")

# The web SDK's loader as a site pastes it (docs/tracking.md), %-formatted with the edge's
# origin (`edge`), its host (`server`) and the page's first call (`first`).
SNIPPET = """<script>
!function (w, d, name, src) {
  if (w[name]) return;
  var api = w[name] = function () {
    var args = Array.prototype.slice.call(arguments);
    return api.doCall ? api.doCall(args) : (api._q.push(args), 0);
  };
  api._q = []; api._sv = '4.1.0';
  var s = d.createElement('script'); s.async = true; s.src = src;
  (d.head || d.documentElement).appendChild(s);
}(window, document, 'rstat', '%(edge)s/lib.js');
rstat('configure', {server: '%(server)s'});
%(first)s
</script>"""


def snippet(edge: str, first: str = "rstat('page');", server: str | None = None) -> str:
    """The loader for a page that loads the tracker from ``edge`` (``http://host:port``) and
    sends to ``server`` (the edge's host and port unless said)."""
    return SNIPPET % {"edge": edge, "server": server or edge.split("//", 1)[1], "first": first}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium, closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()
