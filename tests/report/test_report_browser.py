"""report.html in headless Chromium: no console errors, every image loaded, findings table first."""

from __future__ import annotations

import pytest

from brainprobe.report import build_report


@pytest.mark.browser
def test_synthetic_report_renders_in_chromium(synthetic_run, browser, cdp):
    html = build_report(synthetic_run)
    page = browser.load(html)
    (cdp.artifacts_dir() / "report_synthetic.png").write_bytes(page["screenshot"])
    assert page["errors"] == []
    assert len(page["images"]) >= 16  # 8 figures x 2 brains
    bad = [i for i in page["images"] if not (i["complete"] and i["naturalWidth"] > 0)]
    assert bad == []
    facts = page["facts"]
    assert facts["findingsTables"] == 2 and facts["findingsRows"] == 6
    assert facts["findingsFirst"]
    assert facts["banner"] and "SIMULATED" in facts["banner"]
    # self-contained: nothing but the page itself was requested
    assert [r for r in facts["requests"] if not r.startswith("data:")] == []
    # readable on a laptop: no horizontal scrolling at 1366 px
    assert facts["scrollWidth"] <= 1366
    assert page["screenshot"][:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_browser_check_catches_console_errors_and_broken_images(tmp_path, browser):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><img src='data:image/png;base64,AAAA'>"
        "<img src='missing.png'><script>console.error('boom')</script></body></html>"
    )
    result = browser.load(page)
    assert any("boom" in e for e in result["errors"])
    assert sum(not (i["complete"] and i["naturalWidth"] > 0) for i in result["images"]) == 2
    assert result["facts"]["findingsTables"] == 0
