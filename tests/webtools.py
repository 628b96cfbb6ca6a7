"""Test helpers for the web surface: a real uvicorn server on 127.0.0.1 and headless Chromium."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import free_port, wait_until

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
DOCS = Path(__file__).parent.parent / "docs"
# Set BORDERWATCH_DOCS_SCREENSHOTS=1 to refresh the screenshots committed in docs/.
REFRESH_DOCS = os.environ.get("BORDERWATCH_DOCS_SCREENSHOTS") == "1"


class LiveServer:
    """uvicorn serving an ASGI app in a thread; ready when uvicorn says it started."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        if not wait_until(lambda: self.server.started or not self.thread.is_alive(), timeout=30):
            raise RuntimeError("uvicorn did not start within 30 s")
        if not self.server.started:
            raise RuntimeError("uvicorn exited before serving")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def browser(width: int = 1100, height: int = 1000):
    """Headless Debian Chromium driven through chromedriver (skips the test if either is absent)."""
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("headless Chromium test: install Debian's chromium and chromium-driver packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    """Save a full-page screenshot under tmp_path (and into docs/ when refreshing them)."""
    import base64

    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = tmp_path / name
    path.write_bytes(base64.b64decode(shot["data"]))
    if REFRESH_DOCS:
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / name)
    return path


class JSONSink:
    """A webhook receiver on 127.0.0.1 (what Apprise's json:// posts to); ``start()`` brings it up,
    so a test can first let deliveries fail against the closed port."""

    def __init__(self):
        from conftest import free_port

        self.port = free_port()
        self.received: list[dict] = []
        self.httpd = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.received.append({"path": self.path, **json.loads(body or b"{}")})
                self.send_response(200)  # Slack's webhook answers "ok"; other receivers ignore the body
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def seed_demo(path: Path, rules_path: Path) -> None:
    """Fill a database with one real cycle over the bundled sample sources."""
    import asyncio

    from pipeline import store
    from pipeline.config import load_feeds, load_rules
    from pipeline.cycle import run_cycle
    from pipeline.demo import SiteServer, build_site, feeds_yaml
    from pipeline.rules import compile_rules

    db = store.connect(path)
    with SiteServer(build_site) as site:
        feeds_path = path.parent / "demo-feeds.yaml"
        feeds_path.write_text(feeds_yaml(site.base))
        feeds = load_feeds(feeds_path)
        store.sync_sources(db, feeds.sources)
        asyncio.run(run_cycle(db, feeds, compile_rules(load_rules(rules_path))))
    db.close()
