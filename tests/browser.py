"""Pages in a real headless browser: Debian's ``chromium`` driven by Playwright (its own browser download is
never used; ``executable_path`` points at the system one).

``open_page(url)`` loads a report file or a page served on 127.0.0.1 and records what a user would not see
but a test must: console errors, uncaught page errors, and every request that leaves the host (those are
aborted, so a page that needs the internet shows it by failing to draw).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# Without the background-networking flags Chromium reaches out to Google at every start; the closed network
# refuses those connections noisily.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """The system Chromium, or a clear error saying how to install it."""
    explicit = os.environ.get("ALPACA_GYM_CHROMIUM")
    for candidate in ((explicit,) if explicit else CHROMIUM_CANDIDATES):
        path = shutil.which(candidate) if candidate else None
        if path:
            return path
    raise RuntimeError(
        "browser tests need Debian's chromium: apt-get install -y chromium (or set ALPACA_GYM_CHROMIUM)"
    )


@dataclass
class LoadedPage:
    """A loaded page and what it did.

    :param page: the Playwright page, for evaluating scripts, hovering, reading text.
    :param console_errors: console messages of type ``error``.
    :param page_errors: uncaught exceptions thrown by the page's scripts.
    :param external_requests: requests to anything but ``file:``, ``data:``, ``blob:`` or the local host
        (aborted).
    """

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every console error, page error and external request, one line each."""
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"external request: {u}" for u in self.external_requests]
        )


def is_local(url: str) -> bool:
    """True for ``file:``, ``data:``, ``blob:``, ``about:`` and loopback URLs."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", "data", "blob", "about"):
        return True
    return parsed.hostname in LOCAL_HOSTS


class Chromium:
    """One headless Chromium for a test session; :meth:`open` gives a fresh page each time."""

    def __init__(self) -> None:
        self._playwright: Playwright = sync_playwright().start()
        self.browser: Browser = self._playwright.chromium.launch(
            executable_path=chromium_path(), args=list(CHROMIUM_ARGS)
        )

    @contextlib.contextmanager
    def open(self, url: str, wait_until: str = "load", viewport: tuple[int, int] = (1400, 1000)) -> Iterator[LoadedPage]:
        """Load ``url`` in a new page and yield it with its recorded problems.

        :param url: a ``file://`` URL or a page on 127.0.0.1.
        :param wait_until: Playwright's load state to wait for.
        :param viewport: window size in CSS pixels.
        """
        context = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        loaded = LoadedPage(page)
        page.on("console", lambda m: loaded.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: loaded.page_errors.append(str(e)))

        def guard(route) -> None:  # noqa: ANN001 - Playwright's Route
            if is_local(route.request.url):
                route.continue_()
            else:
                loaded.external_requests.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        try:
            page.goto(url, wait_until=wait_until)
            yield loaded
        finally:
            context.close()

    def close(self) -> None:
        """Stop the browser and Playwright's driver."""
        self.browser.close()
        self._playwright.stop()
