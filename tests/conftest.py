"""Shared fixtures: a real HTTP server on 127.0.0.1 with programmable routes, configs, databases."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline import store
from pipeline.config import load_feeds, load_rules
from pipeline.rules import compile_rules

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = False  # answer If-None-Match with 304
    delay: float = 0.0  # before headers
    drip: float = 0.0  # seconds between body bytes


Route = Reply | Callable[[BaseHTTPRequestHandler], Reply]


class LocalServer:
    """A threaded HTTP server on a loopback address; routes map paths to Replies (or callables)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        self.stop_event = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                path = self.path
                server.hits.append(path)
                route = server.routes.get(path) or server.routes.get(path.split("?", 1)[0])
                if route is None:
                    reply = Reply(404, b"not found")
                else:
                    reply = route(self) if callable(route) else route
                if reply.delay:
                    server.stop_event.wait(reply.delay)
                etag = '"' + hashlib.sha1(reply.body).hexdigest()[:12] + '"'
                if reply.etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                if reply.etag:
                    headers["ETag"] = etag
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    if reply.drip:
                        for i in range(len(reply.body)):
                            if server.stop_event.wait(reply.drip):
                                return
                            self.wfile.write(reply.body[i:i + 1])
                            self.wfile.flush()
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.close()


@pytest.fixture
def write(tmp_path):
    """Write a dedented text file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    return _write


# PostgreSQL for the cluster set-up's tests: the machine's own server (trust auth, database `test`);
# BORDERWATCH_TEST_PG names another. Each test gets a fresh schema (search_path), dropped afterwards.
PG_BASE = os.environ.get("BORDERWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_pg_reason: list[str] = []


def pg_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (None when they can); asked once per session."""
    if not _pg_reason:
        try:
            import psycopg

            with psycopg.connect(PG_BASE, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_reason.append("")
        except ImportError:
            _pg_reason.append("psycopg is not installed (pip install -e '.[postgres]')")
        except Exception as exc:  # noqa: BLE001 - any failure to connect means: skip, saying why
            _pg_reason.append(f"no PostgreSQL at {PG_BASE} ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})")
    return _pg_reason[0] or None


@pytest.fixture
def pg_url():
    """A URL to a fresh, empty PostgreSQL schema (skips, saying why, where PostgreSQL is unreachable)."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    import uuid

    import psycopg

    schema = f"bw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:  # unaccent (a database-wide extension) in public: created in a test's schema, dropping that schema
            conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")  # would break concurrent runs
        except psycopg.Error:  # not installed or not allowed: the store falls back to translate()
            pass
    sep = "&" if "?" in PG_BASE else "?"
    yield f"{PG_BASE}{sep}options=-csearch_path%3D{schema},public"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                     " AND application_name = 'borderwatch' AND query LIKE %s", (f"%{schema}%",))
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A migrated database: a SQLite file, and the same tests again on PostgreSQL."""
    target = str(tmp_path / "test.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    d = store.connect(target)
    yield d
    d.close()


@pytest.fixture
def sqlite_db(tmp_path):
    """A SQLite database, for tests of SQLite's own behaviour (WAL, locks, files)."""
    d = store.connect(tmp_path / "test.db")
    yield d
    d.close()


@pytest.fixture
def shipped_rules():
    return load_rules(Path(__file__).parent.parent / "keywords.yaml")


@pytest.fixture
def matcher(shipped_rules):
    return compile_rules(shipped_rules)


def feeds_for(path: Path, sources: list[dict], **defaults) -> "FeedsConfig":  # noqa: F821
    """Write a feeds.yaml for these sources and load it."""
    lines = []
    if defaults:
        lines.append("defaults:")
        lines += [f"  {k}: {v}" for k, v in defaults.items()]
    lines.append("sources:")
    for s in sources:
        lines.append(f"  - id: {s['id']}")
        for k, v in s.items():
            if k != "id":
                lines.append(f"    {k}: {v!r}" if isinstance(v, str) and ":" in v and not v.startswith("http") else f"    {k}: {v}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_feeds(path)


def rss(items: list[dict], title: str = "Test feed", encoding: str = "utf-8") -> bytes:
    """A small RSS 2.0 document; items: dicts with title, link, guid, description, pubDate."""
    from xml.sax.saxutils import escape

    parts = [f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
             "<link>http://example.org/</link><description>d</description>"]
    for it in items:
        parts.append("<item>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in it.items()) + "</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode(encoding)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
