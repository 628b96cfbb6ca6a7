"""`borderwatch demo`: an offline tour on bundled sample sources served from 127.0.0.1.

The sample site (RSS, Atom, JSON Feed and an HTML listing page with article pages) is
built from ``demo_data/articles.yaml``; the tests serve the same site.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
import json
import threading
from collections.abc import Callable
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

DATA = resources.files("pipeline") / "demo_data"


def load_articles() -> tuple[dict, list[dict]]:
    data = yaml.safe_load((DATA / "articles.yaml").read_text(encoding="utf-8"))
    for a in data["articles"]:
        if "excerpt_of" in a:
            a["paragraphs"] = data["paragraphs"][a["excerpt_of"]][: a["excerpt_paragraphs"]]
    return data["outlets"], data["articles"]


def _body(a: dict) -> list[str]:
    return ([a["lead"]] if a.get("lead") else []) + list(a["paragraphs"]) + ([a["tail"]] if a.get("tail") else [])


def build_site(base: str, now: dt.datetime | None = None) -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, body) for every sample source and article page."""
    now = now or dt.datetime.now(dt.timezone.utc)
    outlets, articles = load_articles()
    site: dict[str, tuple[str, bytes]] = {"/robots.txt": ("text/plain", b"User-agent: *\nDisallow: /private/\n")}
    for oid, outlet in outlets.items():
        items = [a for a in articles if a["outlet"] == oid]
        for a in items:
            a["url"] = f"{base}/{oid}/articles/{a['id']}.html"
            a["when"] = now - dt.timedelta(hours=a["hours_ago"])
            a["html"] = "".join(f"<p>{html.escape(p)}</p>" for p in _body(a))
        builder = {"rss": _rss, "atom": _atom, "json": _json_feed, "page": _listing}[outlet["format"]]
        path, ctype, body = builder(base, oid, outlet["name"], items)
        site[path] = (ctype, body)
        for a in items:
            site[f"/{oid}/articles/{a['id']}.html"] = ("text/html; charset=utf-8", _article_page(outlet["name"], a))
    return site


def _rss(base, oid, name, items):
    out = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{escape(name)}</title>'
           f"<link>{base}/{oid}/</link><description>Sample feed</description>"]
    for a in items:
        out.append(f"<item><title>{escape(a['title'])}</title><link>{a['url']}?utm_source=rss&amp;utm_medium=feed</link>"
                   f"<guid isPermaLink=\"false\">{oid}-{a['id']}</guid><pubDate>{format_datetime(a['when'])}</pubDate>"
                   f"<author>{escape(a.get('author', name))}</author><description>{escape(a['html'])}</description></item>")
    out.append("</channel></rss>")
    return f"/{oid}/rss.xml", "application/rss+xml", "".join(out).encode()


def _atom(base, oid, name, items):
    updated = max(a["when"] for a in items).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = [f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>{escape(name)}</title>'
           f'<id>{base}/{oid}/</id><updated>{updated}</updated><link href="{base}/{oid}/"/>']
    for a in items:
        out.append(f"<entry><id>tag:{oid},2026:{a['id']}</id><title>{escape(a['title'])}</title>"
                   f"<link rel=\"alternate\" href=\"{a['url']}\"/><updated>{a['when'].strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>"
                   f"<author><name>{escape(a.get('author', name))}</name></author>"
                   f"<content type=\"html\">{escape(a['html'])}</content></entry>")
    out.append("</feed>")
    return f"/{oid}/atom.xml", "application/atom+xml", "".join(out).encode()


def _json_feed(base, oid, name, items):
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": name, "home_page_url": f"{base}/{oid}/",
            "items": [{"id": f"{oid}-{a['id']}", "url": a["url"], "title": a["title"], "content_html": a["html"],
                       "date_published": a["when"].strftime("%Y-%m-%dT%H:%M:%SZ")} for a in items]}
    return f"/{oid}/feed.json", "application/feed+json", json.dumps(feed, ensure_ascii=False).encode()


def _listing(base, oid, name, items):
    links = "".join(f'<li class="story"><h3><a href="articles/{a["id"]}.html">{html.escape(a["title"])}</a></h3></li>'
                    for a in items)
    page = (f"<!DOCTYPE html><html><head><title>{html.escape(name)}</title></head><body>"
            f'<nav><a href="/">Home</a> <a href="/about.html">About</a></nav>'
            f"<main><h1>Latest from {html.escape(name)}</h1><ul>{links}</ul></main>"
            f"<footer>&copy; {html.escape(name)}</footer></body></html>")
    return f"/{oid}/", "text/html; charset=utf-8", page.encode()


def _article_page(outlet_name: str, a: dict) -> bytes:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(a["title"])} | {html.escape(outlet_name)}</title>'
            f'<link rel="canonical" href="{a["url"]}"><meta property="article:published_time" content="{a["when"].isoformat()}">'
            f"<script>window.tracking = 'do not index me';</script></head><body>"
            f'<header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/subscribe">Subscribe</a></nav></header>'
            f'<article><h1>{html.escape(a["title"])}</h1>{a["html"]}</article>'
            f'<aside class="related">Related: more stories you might like</aside>'
            f"<footer>Copyright {html.escape(outlet_name)}. All rights reserved.</footer></body></html>").encode()


class SiteServer:
    """Serve a dict of pages on 127.0.0.1 (with ETag / 304) in a background thread."""

    def __init__(self, site_factory: Callable[[str], dict[str, tuple[str, bytes]]], host: str = "127.0.0.1"):
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                path = self.path.split("?", 1)[0]
                server.requests.append(path)
                page = server.site.get(path)
                if page is None:
                    self.send_error(404)
                    return
                ctype, body = page
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        self.site = site_factory(self.base)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "SiteServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def feeds_yaml(base: str) -> str:
    outlets, _ = load_articles()
    lines = ["# written by `borderwatch demo`: the bundled sample sources on 127.0.0.1", "sources:"]
    paths = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json", "page": ""}
    for oid, o in outlets.items():
        lines += [f"  - id: {oid}", f"    name: {o['name']}", f"    url: {base}/{oid}/{paths[o['format']]}"]
        if o["format"] == "page":
            lines += ["    type: page", '    link_selector: "li.story h3 a"']
    return "\n".join(lines) + "\n"


def default_keywords() -> Path:
    local = Path("keywords.yaml")
    return local if local.exists() else Path(str(DATA / "keywords.yaml"))


def run_demo(directory: Path, keywords: str | None, echo=print) -> dict:
    from . import store
    from .config import load_feeds, load_rules
    from .cycle import run_cycle
    from .digest.send import OutboxTransport, send_due
    from .rules import compile_rules

    directory.mkdir(parents=True, exist_ok=True)
    db_path = directory / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    outbox = directory / "outbox"
    rules = load_rules(keywords or default_keywords())
    with SiteServer(build_site) as server:
        feeds_path = directory / "demo-feeds.yaml"
        feeds_path.write_text(feeds_yaml(server.base), encoding="utf-8")
        feeds = load_feeds(feeds_path)
        echo(f"serving {len(feeds.sources)} sample sources on {server.base}")
        db = store.connect(db_path)
        store.sync_sources(db, feeds.sources)
        store.add_subscriber(db, "analyst@example.org", None, None, "immediate", 7, 0, "America/Mexico_City",
                             created="2000-01-01T00:00:00Z")
        result = asyncio.run(run_cycle(db, feeds, compile_rules(rules)))
    report = send_due(db, rules, transport=OutboxTransport(outbox))
    c = store.counts(db)
    per_rule = store.hits_per_rule(db)
    echo(f"polled {len(result.reports)} sources ({result.ok} ok): {c['articles']} articles in {c['stories']} stories, "
         f"{c['hits']} hits ({', '.join(f'{k} {v}' for k, v in per_rule.items())})")
    for f in report.files:
        echo(f"digest for analyst@example.org written to {f}")
    rel_db = db_path if directory != Path(".") else Path("demo.db")
    echo("\nLook around:")
    echo(f"  borderwatch hits --db {rel_db}")
    echo(f"  borderwatch hits --db {rel_db} --rule cartels --json")
    echo(f"  borderwatch status --db {rel_db} --feeds {feeds_path}")
    echo("  borderwatch rules test --text 'Extradited to Mexico: a Sinaloa Cartel operator'")
    if report.files:
        echo(f"  open {report.files[0]} in a mail client (HTML and plain-text parts)")
    return {"counts": c, "per_rule": per_rule, "files": report.files, "sources_ok": result.ok}
