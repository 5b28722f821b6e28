"""landscapes.html in a real headless browser: it loads with no JavaScript
error, its WebGL surfaces are drawn, and dragging a slider redraws them.

Chromium is driven over its DevTools pipe (tests/_browser.py): real mouse
events on the slider, real screenshots of the composited page.  Skips where
no Chromium is installed (.ci/run installs Debian's).
"""

import io
import time

import numpy as np
import pytest

from _browser import Browser, find_browser

BROWSER = find_browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on PATH (apt-get install chromium) "
                            "to load landscapes.html in")

ERRORS = """
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + e.message);
});
window.addEventListener('unhandledrejection', function (e) {
  window.__errors.push('unhandled rejection: ' + e.reason);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__errors.push('console.error: ' +
                         Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
"""
WIDTH, HEIGHT = 1100, 1100


def _pixels(png):
    Image = pytest.importorskip("PIL.Image")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"),
                      dtype=np.float64)


def _until(browser, check, message, seconds=20.0):
    """A screenshot (as pixels) that passes check, retried for a while."""
    deadline = time.monotonic() + seconds
    while True:
        browser.evaluate("new Promise(function (r) { setTimeout(r, 500); })")
        shot = _pixels(browser.screenshot())
        if check(shot):
            return shot
        assert time.monotonic() < deadline, message


def _rect(browser, selector, index=0):
    return browser.evaluate(
        f"(function () {{ var r = document.querySelectorAll('{selector}')"
        f"[{index}].getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom]; })()")


def test_page_loads_draws_and_follows_its_slider(tmp_path):
    pytest.importorskip("plotly")
    from laefast._landscape_figures import write_page
    page = tmp_path / "landscapes.html"
    # Two lam values and two sigma2 values: the full page's machinery with
    # less data to parse.
    write_page(str(page), sigma2=1.0, lam=0.4, lams=(0.4, 1.5),
               sigma2s=(0.5, 1.0))
    with Browser(BROWSER, WIDTH, HEIGHT, timeout=90) as browser:
        browser.page("Page.enable")
        browser.page("Emulation.setDeviceMetricsOverride", width=WIDTH,
                     height=HEIGHT, deviceScaleFactor=1, mobile=False)
        browser.page("Page.addScriptToEvaluateOnNewDocument", source=ERRORS)
        browser.page("Page.navigate", url=page.as_uri())
        gd = "document.getElementById('landscapes')"
        browser.wait_for(f"{gd} && {gd}.getAttribute('data-ready') === '1'")
        # Four 3D scenes (L, L_pi, L_sigma, tied m = 2), each a canvas.
        canvases = browser.evaluate(
            "Array.prototype.map.call(document.querySelectorAll('canvas'), "
            "function (c) { var r = c.getBoundingClientRect(); return "
            "[r.left, r.top, r.right, r.bottom]; })")
        assert len(canvases) == 4
        regions = [(slice(int(top) + 40, int(bottom) - 40),
                    slice(int(left) + 40, int(right) - 40))
                   for left, top, right, bottom in canvases]
        assert browser.evaluate(f"{gd}.getAttribute('data-lam')") == "0.4"

        def drawn(shot):
            # A shaded surface has many colours; a blank canvas has one.
            return all(shot[r].std() > 20
                       and len(np.unique(shot[r].reshape(-1, 3), axis=0)) > 200
                       for r in regions)

        # WebGL draws on animation frames after the plot exists: retry
        # the screenshot for a while on a slow machine.
        before = _until(browser, drawn, "a 3D scene stayed blank")
        assert before.shape == (HEIGHT, WIDTH, 3)

        # Drag the lam slider: a real press and release at its far end.
        left, top, right, bottom = _rect(browser, ".slider-rail-touch-rect")
        browser.click(right - 2, (top + bottom) / 2)
        browser.wait_for(f"{gd}.getAttribute('data-lam') === '1.5'",
                         timeout=15)
        sigma_region = regions[2]

        def redrawn(shot):
            # lam = 1.5 > sigma2: L_sigma's two wells have become one bowl.
            changed = (np.abs(shot[sigma_region] - before[sigma_region])
                       .sum(axis=2) > 30)
            return changed.mean() > 0.05

        after = _until(browser, redrawn, "the L_sigma scene was not redrawn")
        assert drawn(after)
        title = browser.evaluate(
            "document.querySelector('.gtitle').textContent")
        assert "merged into the origin" in title
        # The sigma2 slider, to its left end (0.5).
        left, top, right, bottom = _rect(browser, ".slider-rail-touch-rect",
                                         1)
        browser.click(left + 2, (top + bottom) / 2)
        browser.wait_for(f"{gd}.getAttribute('data-sigma2') === '0.5'",
                         timeout=15)
        assert browser.evaluate(f"{gd}.getAttribute('data-lam')") == "1.5"
        errors = browser.evaluate("window.__errors")
    assert errors == []
