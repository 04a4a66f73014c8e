"""What every browser journey shares: Debian's Chromium driven by Playwright against the live
server, seeded with the demo, at the 1280 x 900 screen the README's screenshots show.

A test module sets `pytestmark = BROWSER_MARKS` and asks for the `browser_page` fixture
(in the root conftest.py), which yields `(page, base_url)`; `full_demo` on a test seeds
the demo with its default history (what scripts/run.sh shows) instead of none.
"""

import shutil
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
WIDTH, HEIGHT = 1280, 900
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

BROWSER_MARKS = [
    pytest.mark.real_clock,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
        reason="browser: needs Debian's chromium (apt-get install chromium)",
    ),
]


def login(page, base: str, username: str) -> None:
    """Sign in as a demo user (password demo), whoever was signed in before."""
    page.context.clear_cookies()
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
