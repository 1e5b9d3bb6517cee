"""report.html renders in a real headless browser (Chromium): the page lays out, the inline SVG
figures are in the DOM, and the screenshot is a picture, not a blank page.

Skips when no Chromium is installed (``apt-get install chromium`` on Debian/Ubuntu).
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VARIANTS = [  # name, target, width, metric, (p50, p90, p99)
    ("xnnpack-s", "android-arm64-xnnpack", 8, 0.874, (5.1, 5.9, 7.0)),
    ("xnnpack-m", "android-arm64-xnnpack", 16, 0.905, (7.9, 8.8, 10.4)),
    ("xnnpack-l", "android-arm64-xnnpack", 28, 0.914, (12.2, 13.4, 15.8)),
    ("ort-m", "ort-mobile", 16, 0.903, (8.6, 9.9, 12.9)),
    ("tflite-s", "tflite-int8", 10, 0.881, (5.0, 5.6, 6.1)),
]
BUDGETS = {"artifact_size": "160KiB", "download_size": "150KiB", "latency_p90": "12ms", "accuracy_drop": "4pt"}


def _browser() -> str:
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium binary found (install it, e.g. `apt-get install chromium`, to run this test)")


def _fixtures():
    path = Path(__file__).resolve().parents[1] / "unit" / "gate" / "conftest.py"
    spec = importlib.util.spec_from_file_location("edge_kd_tests_gate_fixtures_browser", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    from edge_kd.report import write_report

    _browser()  # skip before building anything
    fx = _fixtures()
    root = tmp_path_factory.mktemp("browser-report")
    builds = [fx.write_build(root / name, target=t, width=w, metric=m, latency=lat, budgets=BUDGETS, seed=i,
                             teacher_latency=(30.0, 33.0, 38.0))
              for i, (name, t, w, m, lat) in enumerate(VARIANTS)]
    return write_report(builds, root / "report")["html"]


def test_screenshot_is_not_blank(report_html, tmp_path):
    from PIL import Image

    browser = _browser()
    png = tmp_path / "report.png"
    proc = _chromium(browser, tmp_path / "profile", f"--screenshot={png}", "--window-size=1200,1600",
                     report_html.resolve().as_uri())
    assert png.is_file() and png.stat().st_size > 10_000, proc.stderr[-2000:]
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 1600)
    colours = image.resize((300, 400)).getcolors(maxcolors=1_000_000)
    assert len(colours) > 50  # text, charts and palette, not a blank or error page
    # The top of the page (title, table) and the first chart both hold ink, not just background.
    for box in ((0, 0, 1200, 400), (0, 500, 1200, 1100)):
        extrema = image.crop(box).convert("L").getextrema()
        assert extrema[0] < 80 and extrema[1] > 200, box


def test_dom_holds_the_figures(report_html, tmp_path):
    browser = _browser()
    proc = _chromium(browser, tmp_path / "profile", "--dump-dom", report_html.resolve().as_uri())
    dom = proc.stdout
    assert "</html>" in dom, proc.stderr[-2000:]
    assert len(re.findall(r"<svg\b", dom)) == 2 + len(VARIANTS)
    assert len(re.findall(r'<circle class="point"', dom)) == len(VARIANTS)
    assert 'class="pareto"' in dom
    assert len(re.findall(r'<rect class="bar"', dom)) >= 3 * len(VARIANTS)
    assert dom.count('class="gate"') == len(VARIANTS)


def test_latency_chart_is_readable_when_values_span_1000x(tmp_path):
    """0.01 ms students beside 20 ms budgets: on a linear axis their bars are a pixel tall and the
    figures pile up; on the log axis each p50 bar is a visible block of its colour."""
    from PIL import Image

    from edge_kd.report import write_report

    browser = _browser()
    fx = _fixtures()
    builds = [fx.write_build(tmp_path / f"tiny-{i}", target=t, width=8, metric=0.9,
                             latency=(0.010 + 0.002 * i, 0.012 + 0.002 * i, 0.016 + 0.002 * i),
                             teacher_latency=(14.0, 17.0, 24.0),
                             budgets={**BUDGETS, "latency_p90": "20ms"}, seed=i)
              for i, t in enumerate(["android-arm64-xnnpack", "ort-mobile", "tflite-int8"] * 2)]
    html = write_report(builds, tmp_path / "report")["html"]
    dom = _chromium(browser, tmp_path / "profile", "--dump-dom", html.resolve().as_uri()).stdout
    assert "(log scale)" in dom
    png = tmp_path / "report.png"
    _chromium(browser, tmp_path / "profile2", f"--screenshot={png}", "--window-size=1200,2400",
              html.resolve().as_uri())
    image = Image.open(png).convert("RGB")
    p50 = (0x9E, 0xCA, 0xE1)  # the p50 bar colour (render._LATENCY_COLOURS[0])
    pixels = sum(count for count, rgb in image.getcolors(maxcolors=10_000_000)
                 if all(abs(a - b) <= 6 for a, b in zip(rgb, p50)))
    # six p50 bars at least ~20 px tall and ~20 px wide; the legend swatch alone is 144 px
    assert pixels > 6 * 20 * 15, pixels
