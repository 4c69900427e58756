"""Browser fixtures for the UI tests: Debian's chromium, installed on a fresh CI machine when it is missing.

Playwright's own browser download (``playwright install``) is not used: the
tests drive the distribution's ``/usr/bin/chromium`` through
``executable_path``. When it is missing and the tests run as root, it is
installed with apt-get once per session; otherwise the browser tests are
skipped with the reason, or fail when ``ROGER_ECONOMIC_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("ROGER_ECONOMIC_REQUIRE_BROWSER") == "1"
APT_INSTALL = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"a browser is required (ROGER_ECONOMIC_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a chromium executable for Playwright's ``executable_path``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright python package is not installed (pip install -r requirements-dev.txt)")
    if not CHROMIUM.exists():
        if os.name != "posix" or os.geteuid() != 0:
            _unavailable(f"{CHROMIUM} is missing and installing it needs root: run `{APT_INSTALL}`")
        if shutil.which("apt-get") is None:
            _unavailable(f"{CHROMIUM} is missing and this machine has no apt-get to install it")
        done = subprocess.run(["bash", "-c", APT_INSTALL], capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not CHROMIUM.exists():
            _unavailable(f"installing chromium failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    return str(CHROMIUM)
