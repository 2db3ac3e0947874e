"""A real headless Chromium for the storefront's page tests, driven by Playwright.

Playwright's own browser download is not available everywhere; the system's Chromium is used
(Debian's ``chromium`` package: ``apt-get install chromium``; ``.ci/run`` installs it when it is
missing), or the one named by ``GPTSTORE_CHROMIUM``. Without one the browser tests skip, saying
how to enable them; the API-level tests of the storefront always run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    named = os.environ.get("GPTSTORE_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """A headless Chromium (playwright ``Browser``) for the whole session."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("browser tests need Chromium: `apt-get install chromium` (or set GPTSTORE_CHROMIUM "
                    "to a Chrome/Chromium binary)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need playwright: `pip install playwright` (the dev extra has it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: object, tmp_path: Path) -> Iterator[object]:
    """A fresh browser context and page; a screenshot of its last state lands in the test's tmp dir."""
    context = chromium.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    try:
        page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The store of ``_shop.py`` running, one per test module (a module may define its own)."""
    from ._shop import start_shop

    server = start_shop(tmp_path_factory.mktemp("shop"))
    yield server
    server.stop()
