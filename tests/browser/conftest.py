"""Fixtures for the browser tests: the built book served locally, and headless Chromium that may
reach nothing else.

The book must be built first (``make book``): these tests read ``_build/html``. Chromium is
Debian's (``/usr/bin/chromium``); Playwright never downloads a browser here.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import BUILD, CHROMIUM, CHROMIUM_ARGS, PHONE, require_build, settle, theme_script

# --- local web servers --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@dataclass
class Server:
    base: str  # "http://127.0.0.1:PORT/"
    directory: Path

    def url(self, path: Path | str) -> str:
        rel = path.relative_to(self.directory).as_posix() if isinstance(path, Path) else path
        return self.base + rel


def _serve(directory: Path) -> Iterator[Server]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", directory)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def book_server() -> Iterator[Server]:
    """The built book over http://127.0.0.1."""
    require_build()
    yield from _serve(BUILD)


@pytest.fixture(scope="session")
def harness_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="session")
def harness_server(harness_dir: Path) -> Iterator[Server]:
    """A second local server for pages the tests write themselves."""
    yield from _serve(harness_dir)


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing: `sudo apt-get install chromium` "
            "(never `playwright install`)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Watch:
    """Everything a page did wrong: console errors, uncaught exceptions, failed or outside
    requests, and dialogs (alert/confirm/prompt)."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.page_errors]
            + [f"failed request: {m}" for m in self.failed]
            + [f"request to another host (blocked): {m}" for m in self.outside]
            + [f"dialog opened: {m}" for m in self.dialogs]
        )


@pytest.fixture
def open_page(browser):
    """open_page(url, allowed_prefixes) -> (page, watch): a fresh context where every request
    that does not start with one of allowed_prefixes is aborted and recorded.

    Keywords: color_scheme (the OS preference), theme ("light"/"dark": the reader's choice in the
    theme's colour-mode button, stored as pydata-sphinx-theme stores it), phone=True (a 390 x 844
    touch screen, as helpers.PHONE) instead of a 1280 x 900 desktop window."""
    contexts = []

    def _open(
        url: str,
        allowed: tuple[str, ...],
        *,
        color_scheme: str = "light",
        theme: str | None = None,
        phone: bool = False,
    ):
        size = PHONE if phone else {"width": 1280, "height": 900}
        context = browser.new_context(
            viewport=size, color_scheme=color_scheme, is_mobile=phone, has_touch=phone
        )
        contexts.append(context)
        if theme is not None:
            context.add_init_script(theme_script(theme))
        watch = Watch()

        def route(r):
            if r.request.url.startswith(allowed):
                r.continue_()
            else:
                watch.outside.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()

        def on_console(message):
            if message.type == "error":
                watch.console_errors.append(f"{message.text} ({message.location.get('url')})")

        def on_request_failed(request):
            if request.url not in watch.outside:  # already recorded as blocked
                watch.failed.append(f"{request.url} ({request.failure})")

        def on_response(response):
            if response.status >= 400:
                watch.failed.append(f"{response.url} (HTTP {response.status})")

        def on_dialog(dialog):
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.on("requestfailed", on_request_failed)
        page.on("response", on_response)
        page.on("dialog", on_dialog)
        page.goto(url, wait_until="load")
        settle(page)
        return page, watch

    yield _open
    for context in contexts:
        context.close()
