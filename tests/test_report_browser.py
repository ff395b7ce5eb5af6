"""The backtest report rendered by a real headless browser (Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser

import polars as pl
import pytest

import assay
from assay.backtest import backtest, load_labels, sweep
from assay.demo import demo_pack, generate
from assay.report import render

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            raise RuntimeError("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ev, planted = generate(customers=3000, seed=5)
    events = assay.read_events(ev).events
    spec = assay.parse_scenarios(demo_pack())
    labels = load_labels(planted.select("key", pl.lit(1).alias("label")))
    result = backtest(spec, events, labels, population=100_000_000)
    result.sweep = sweep(spec, events, labels, "cash-structuring:threshold=2:6:1")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render(result), encoding="utf-8")
    return path


def test_browser_renders_summary_and_plots(report, tmp_path):
    exe = chromium()
    dom = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    tags = Tags()
    tags.feed(dom.stdout)
    names = [t for t, _ in tags.seen]
    assert ("table", {"id": "summary"}) in tags.seen
    assert names.count("svg") >= 3  # precision/recall bars, PR curve, alert volume
    assert names.count("rect") >= 6 and names.count("polyline") >= 2
    assert "would raise about" in dom.stdout and "precursor-trio" in dom.stdout


def test_browser_screenshot_is_not_blank(report, tmp_path):
    exe = chromium()
    shot = tmp_path / "report.png"
    run = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1600",
                          f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # text and plots, not an empty page


def test_report_is_self_contained(report):
    text = report.read_text()
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "@media print" in text
