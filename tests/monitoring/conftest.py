"""Headless Chromium for the snapshot page's tests: a screenshot, and the plots' pixels."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from collections.abc import Callable

import pytest
from PIL import Image

from monitoring import svg

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
LINE_COLORS = (svg.COLORS[0], svg.COLORS[1])  # the first two series of a panel


def take_screenshot(page: pathlib.Path, out: pathlib.Path, profile: pathlib.Path) -> Image.Image:
    """A headless Chromium screenshot of ``page`` (a fresh, empty profile each time)."""
    chromium = shutil.which("chromium") or pytest.skip("chromium is not installed (make setup)")
    profile.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
            f"--screenshot={out}", "--window-size=1240,2400", page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert out.is_file(), result.stderr[-2000:]
    return Image.open(out).convert("RGB")


def count_line_pixels(image: Image.Image) -> dict[str, int]:
    """Pixels of each of the first two series' colours."""
    wanted = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)): c for c in LINE_COLORS}
    counts = dict.fromkeys(LINE_COLORS, 0)
    for n, pixel in image.getcolors(maxcolors=1 << 22) or []:
        if pixel in wanted:
            counts[wanted[pixel]] += n
    return counts


@pytest.fixture
def screenshot() -> Callable[[pathlib.Path, pathlib.Path, pathlib.Path], Image.Image]:
    return take_screenshot


@pytest.fixture
def line_pixels() -> Callable[[Image.Image], dict[str, int]]:
    return count_line_pixels
