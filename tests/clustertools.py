"""Parts for the cluster tests: a news server on 127.0.0.1 whose sources keep publishing, an SMTP sink
(aiosmtpd), and PostgreSQL URLs with a schema of their own."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from email import message_from_bytes
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"

WORDS = ("border crossing officials report agents customs inspection cargo trucks highway northern city state "
         "government security ministry federal police patrol river bridge migrants shelter asylum hearing court "
         "judge detention families policy announcement mayor governor council budget water treaty trade tariff "
         "shipment port railway checkpoint seizure investigation prosecutors network operation weekend morning "
         "evening community residents leaders church school hospital clinic farm workers factory wages union").split()


def pg_reachable(url: str = PG_BASE) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not (one line)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'borderwatch[postgres]')"
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL is not reachable at {url}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"


def new_schema(prefix: str = "cluster") -> tuple[str, str]:
    """A fresh schema in the test database; returns (its name, a URL whose search_path starts with it)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return name, f"{PG_BASE}?options=-csearch_path%3D{name},public"


def drop_schema(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def story_text(key: str, extra: str = "") -> tuple[str, str]:
    """(title, text) of a story: 70 words drawn from WORDS by the key's hash; stories whose hash says
    so mention fentanyl or a cartel (the test rules' terms)."""
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    words = [rng.choice(WORDS) for _ in range(70)]
    n = int(hashlib.sha256(key.encode()).hexdigest(), 16)
    if n % 3 == 0:
        words[20:20] = ["fentanyl", "precursor", "shipment"]
    if n % 4 == 0:
        words[40:40] = ["the", "cartel", "leadership"]
    title = f"Report {key}: " + " ".join(words[:6])
    text = " ".join(words) + "."
    if extra:
        text = extra + " " + text
    return title, text


class NewsServer:
    """``n`` RSS sources on one 127.0.0.1 server. Source i publishes item k at start + offset_i + k * period
    (until ``freeze()``); its feed lists the newest ``window`` items, with ETag / 304. Sources 0..pairs-1
    come in pairs that publish the same story (the odd one with an extra opening sentence: a syndicated
    copy, not the same text). Every request is logged (source, time)."""

    def __init__(self, n: int, period: float, window: int = 6, pairs: int = 60, latency: float = 0.05):
        self.n, self.period, self.window, self.pairs, self.latency = n, period, window, pairs, latency
        rng = random.Random(17)
        self.offsets = [rng.uniform(0, period) for _ in range(n)]
        self.start = time.time()
        self.stopped_at: float | None = None
        self.requests: dict[str, list[float]] = {self.sid(i): [] for i in range(n)}
        self.in_flight = self.most_in_flight = 0  # requests being answered at once (per-host politeness)
        self.crowds: list[tuple[float, int]] = []  # (when, how many) each time a request found others in flight
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                now = time.time()
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] != "feed" or parts[1] not in server.requests:
                    return self._send(404, b"not found", {})
                sid = parts[1]
                with server.lock:
                    server.requests[sid].append(now)
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                    server.crowds.append((now, server.in_flight))
                try:
                    if server.latency:
                        time.sleep(server.latency)
                    body = server.feed(sid, now)
                finally:  # counted until the answer is ready: the client holds its slot until it has read it
                    with server.lock:
                        server.in_flight -= 1
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    return self._send(304, b"", {"ETag": etag})
                self._send(200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})

            def _send(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a killed member's connections reset: expected
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def sid(i: int) -> str:
        return f"s{i:03d}"

    def url(self, i: int) -> str:
        return f"{self.base}/feed/{self.sid(i)}"

    def freeze(self) -> None:
        """Publish nothing more from now on."""
        self.stopped_at = time.time()

    def count(self, i: int, now: float) -> int:
        """How many items source i has published by ``now``."""
        if self.stopped_at is not None:
            now = min(now, self.stopped_at)
        since = now - self.start - self.offsets[i]
        return 0 if since < 0 else int(since // self.period) + 1

    def story_key(self, i: int, k: int) -> str:
        return f"pair{i // 2}-{k}" if i < self.pairs else f"{self.sid(i)}-{k}"

    def item(self, i: int, k: int) -> dict:
        key = self.story_key(i, k)
        title, text = story_text(key, "Republished from a partner outlet." if i < self.pairs and i % 2 else "")
        published = self.start + self.offsets[i] + k * self.period
        return {"url": f"{self.base}/a/{self.sid(i)}/{k}", "title": title, "text": text, "story": key,
                "published": published}

    def published(self) -> list[dict]:
        """Every item published so far, with its source."""
        now = time.time()
        return [{"source": self.sid(i), **self.item(i, k)} for i in range(self.n) for k in range(self.count(i, now))]

    def feed(self, sid: str, now: float) -> bytes:
        import datetime as dt

        i = int(sid[1:])
        count = self.count(i, now)
        items = []
        for k in range(max(0, count - self.window), count):
            it = self.item(i, k)
            when = format_datetime(dt.datetime.fromtimestamp(it["published"], dt.timezone.utc))
            items.append(f"<item><title>{escape(it['title'])}</title><link>{it['url']}</link>"
                         f"<guid isPermaLink=\"true\">{it['url']}</guid><pubDate>{when}</pubDate>"
                         f"<description>{escape(it['text'])}</description></item>")
        return (f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Source {sid}</title>"
                f"<link>{self.base}/</link><description>test</description>{''.join(reversed(items))}"
                f"</channel></rss>").encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SMTPSink:
    """aiosmtpd on 127.0.0.1 keeping every message it accepted."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        from conftest import free_port

        sink = self
        self.messages: list = []
        self.lock = threading.Lock()

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                with sink.lock:
                    sink.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
