"""/doc renders in a real browser (headless Chromium from Debian's packages), offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from .servers import demo_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("ISPYB_FALCON_TEST_REQUIRE_CHROMIUM"),
    reason="chromium is not installed",
)


def test_swagger_ui_renders_title_and_operations(tmp_path):
    assert CHROMIUM, "ISPYB_FALCON_TEST_REQUIRE_CHROMIUM is set but chromium is missing"
    with demo_server(tmp_path) as (base, _), tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                base + "/doc",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    assert "ISPyB API (ispyb-falcon)" in dom
    assert 'data-path="/proposals"' in dom and "listProposal" in dom
