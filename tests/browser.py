"""Headless Debian Chromium for the browser tests: where it is, and how it is started.

Playwright's own browser download cannot work here, so tests drive the `chromium` package.
In CI a missing browser is a failure (it must be installed), elsewhere a skip with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]


def require_chromium() -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install chromium (apt-get install chromium)")
        pytest.skip("Debian chromium is not installed")


def launch(playwright: Any) -> Any:
    """The Debian binary, headless, with the flags every browser test uses."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
