"""The snapshot page: panels drawn as inline SVG, opened in headless Chromium (Debian's
package), whose screenshot must show the plots' lines.

The page here is built from hand-made series (no Prometheus); the end-to-end test renders
one from the live stack's Prometheus and opens it the same way.
"""

from __future__ import annotations

from monitoring import snapshot, svg


def test_plot_scales_and_labels_by_hand():
    series = [svg.Series("v1 stable", ((0.0, 0.0), (60.0, 0.5))), svg.Series("empty", ())]
    out = svg.plot(series, "percentunit")
    # x: 0 s at the left edge (64), 60 s at the right (560 - 12); y: 0 at the bottom
    # (260 - 28 = 232), 0.5 at the top (12).
    assert 'points="64.0,232.0 548.0,12.0"' in out
    assert ">50%<" in out and ">0%<" in out and "v1 stable" in out
    assert "no data" in svg.plot([], "short")
    assert svg.format_value(0.0123, "s") == "12.3 ms"


def test_chromium_shows_the_plots(tmp_path, screenshot, line_pixels):
    now = 1_800_000_000.0
    panels = [
        snapshot.PanelData(
            "AIQLeads: recommendation quality",
            "Online CTR per version and variant",
            "percentunit",
            "clicks per answer",
            (
                svg.Series(
                    "v1 stable", tuple((now + 10 * i, 0.1 + 0.01 * (i % 5)) for i in range(60))
                ),
                svg.Series("v1 canary", tuple((now + 10 * i, 0.08) for i in range(60))),
            ),
        ),
        snapshot.PanelData("AIQLeads: serving health", "Cache", "reqps", "", ()),
    ]
    page = tmp_path / "index.html"
    page.write_text(snapshot.html_page(panels, "http://127.0.0.1:9090", 600))
    image = screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    counts = line_pixels(image)
    # Two lines of ~480 px at 2 px wide each: hundreds of pixels of each colour.
    assert all(n > 300 for n in counts.values()), counts
