"""Fixtures for the browser tests: a live OneCart site over real HTTP, filled by the real pipeline.

- `live_catalog` (module): a private ONECART_HOME with a migrated storefront DB, then
  `pipelines.run.materialize_all` against the sandbox marketplaces, which fills the warehouse, the
  Meilisearch index and (through the storefront sync) the storefront DB. The environment is
  restored afterwards, so later test modules never see this home.
- `live_server` (module): the real app (create_app) served by a threaded werkzeug server on a
  free loopback port.
- `browser` (module): Debian's Chromium driven by Playwright (never `playwright install`).
- `open_tab(browser, live_server, viewport)`: a tab in a fresh browser context, for a module's
  page fixtures; JavaScript errors fail the test.
- `capture(page, name)`: full-page screenshots at 375 px and 1280 px under
  test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from werkzeug.serving import make_server

from assistant.config import get_assistant_settings
from onecart import processes
from onecart.services import sandbox_credentials
from onecart.settings import REPO_ROOT, Settings, get_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"
WIDTHS = (375, 1280)
DESKTOP_VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# How long a page may take to answer or an element to appear (a loaded machine is slow).
PAGE_TIMEOUT_MS = 15_000
# The sandbox accepts any non-empty credentials.
# Placeholder keys for every marketplace marketplaces.toml serves from the sandbox.
SANDBOX_CREDENTIALS = sandbox_credentials(get_settings(), environ={})


@dataclass(frozen=True, slots=True)
class LiveCatalog:
    """Where the pipeline put the catalog this module browses."""

    settings: Settings
    database_url: str
    index_uid: str
    ingest_lines: list[str]


@pytest.fixture(scope="module")
def live_catalog(
    request: pytest.FixtureRequest, settings: Settings, sandbox_server: str, meili_server: str
) -> Iterator[LiveCatalog]:
    """Run the whole pipeline once into a private home (see the module docstring).

    A module that needs less can say so to keep CI short: a module-level `LIVE_CATALOG` dict is
    passed to materialize_all (e.g. `marketplaces`, `downstream_assets`, `embeddings`).
    """
    ingest_options = dict(getattr(request.module, "LIVE_CATALOG", {}))
    from pipelines.run import dagster_instance, materialize_all
    from storefront.db_migrate import upgrade_database

    run = uuid.uuid4().hex[:8]
    home = settings.home_dir / f"browser-{run}"
    database_url = f"sqlite:///{home / 'storefront.db'}"
    overrides = {
        "ONECART_HOME": str(home),
        "MEILI_INDEX": f"browser_{run}",
        "DATABASE_URL": database_url,
        # The journey searches by keyword; offer embeddings are tested in tests/assistant.
        "ONECART_ASSISTANT_EMBEDDINGS": "off",
        **{name: os.environ.get(name) or value for name, value in SANDBOX_CREDENTIALS.items()},
    }
    saved = {name: os.environ.get(name) for name in [*overrides, "DAGSTER_HOME"]}
    os.environ.update(overrides)
    os.environ.pop("DAGSTER_HOME", None)
    get_settings.cache_clear()
    get_assistant_settings.cache_clear()
    try:
        live_settings = get_settings()
        upgrade_database(database_url)
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        instance = dagster_instance(dagster_home)
        lines: list[str] = []
        try:
            report = materialize_all(instance=instance, progress=lines.append, **ingest_options)
        finally:
            instance.dispose()
        assert report.success, "\n".join(lines)
        yield LiveCatalog(
            settings=live_settings,
            database_url=database_url,
            index_uid=live_settings.meili_index,
            ingest_lines=lines,
        )
    finally:
        import meilisearch

        client = meilisearch.Client(
            get_settings().meili_url, get_settings().meili_master_key, timeout=30
        )
        for uid in (
            overrides["MEILI_INDEX"],
            f"{overrides['MEILI_INDEX']}_next",
            f"{overrides['MEILI_INDEX']}_groups",
        ):
            client.delete_index(uid)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        get_assistant_settings.cache_clear()


@pytest.fixture(scope="module")
def live_server(live_catalog: LiveCatalog) -> Iterator[str]:
    """The real storefront on a free loopback port; yields its base URL."""
    from commerce.db import dispose_engines
    from storefront import create_app

    app = create_app(
        {
            "DATABASE_URL": live_catalog.database_url,
            "MEILI_URL": live_catalog.settings.meili_url,
            "MEILI_INDEX": live_catalog.index_uid,
            "SECRET_KEY": f"browser-{uuid.uuid4().hex}",
            "RATE_LIMIT_PREFIX": f"onecart-browser:{uuid.uuid4().hex[:8]}:",
        }
    )
    port = processes.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-storefront", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        dispose_engines()


@pytest.fixture(scope="module")
def browser(live_server: str) -> Iterator[Browser]:
    """Debian's Chromium through Playwright's sync API.

    Started after the live site on purpose: Playwright's sync API runs an event loop in this
    thread, and the pipeline's in-process Dagster runs must not start while it is running.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def open_tab(
    browser: Browser,
    live_server: str,
    viewport: ViewportSize = DESKTOP_VIEWPORT,
    *,
    fail_on_js_errors: bool = True,
) -> Iterator[Page]:
    """A tab on the live site in a fresh browser context (no cookies of another test), closed
    afterwards; a JavaScript error on any of its pages fails the test unless told otherwise."""
    context = browser.new_context(base_url=live_server, viewport=viewport)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    if fail_on_js_errors:
        assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture
def capture() -> Callable[[Page, str], list[Path]]:
    """capture(page, name): full-page screenshots of the current page at 375 and 1280 px."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> list[Path]:
        paths = []
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            path = SCREENSHOT_DIR / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            paths.append(path)
        page.set_viewport_size({"width": 1280, "height": 900})
        return paths

    return take
