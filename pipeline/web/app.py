"""The Starlette application behind `borderwatch serve`.

Every read opens the existing database read-only (a missing database is reported, never
created); the one write, an unsubscribe, opens it read-write without creating it. No
endpoint lists subscriber addresses, tokens or anything else about a person: the
unsubscribe pages say only whether the link worked.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from .. import store
from ..config import ConfigError, FeedsConfig, RuleSet, load_feeds, load_rules
from ..digest.render import safe_link
from . import atom
from .chart import days_back, line_chart

log = logging.getLogger("borderwatch.web")

CHART_DAYS = 30
FEED_ENTRIES = 50
LATEST = 20

_env = Environment(loader=PackageLoader("pipeline", "web/templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)

# Pages carrying an unsubscribe token must not leak it (Referer) nor be cached or indexed.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
PUBLIC = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
          "X-Content-Type-Options": "nosniff"}


@dataclass
class WebConfig:
    db: str
    feeds: str = "feeds.yaml"
    keywords: str = "keywords.yaml"
    public_url: str | None = None  # BORDERWATCH_PUBLIC_URL: base for links in feeds
    clock: object = None  # () -> aware datetime; tests pass a fixed clock
    _cache: dict = field(default_factory=dict)

    def now(self) -> dt.datetime:
        return self.clock() if self.clock else dt.datetime.now(dt.timezone.utc)

    def _load(self, key: str, path: str, loader):
        """The config file, re-read when it changes; the last valid version if an edit is invalid."""
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return self._cache.get(key, (None, None))[1]
        cached = self._cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            value = loader(path)
        except ConfigError as exc:
            log.error("%s is invalid; using the last valid version: %s", path, str(exc).splitlines()[0])
            value = cached[1] if cached else None
        self._cache[key] = (stamp, value)
        return value

    def rules(self) -> RuleSet | None:
        return self._load("rules", self.keywords, load_rules)

    def feeds_config(self) -> FeedsConfig | None:
        return self._load("feeds", self.feeds, load_feeds)


def _html(template: str, status: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**context), status_code=status,
                        headers={**PUBLIC, **(headers or {})})


def create_app(cfg: WebConfig) -> Starlette:
    def read_db():
        return store.connect_existing(cfg.db, readonly=True)

    def base_url(request: Request) -> str:
        return (cfg.public_url or str(request.base_url)).rstrip("/")

    async def dashboard(request: Request) -> Response:
        now = cfg.now()
        rules = cfg.rules()
        feeds = cfg.feeds_config()
        try:
            db = read_db()
        except store.NoDatabase as exc:
            return _html("dashboard.html", 200, missing=str(exc), chart=None, stories=[], health=None, now=now)
        try:
            from ..status import source_status

            days = days_back(now.date(), CHART_DAYS)
            series = store.hits_per_day(db, days[0] + "T00:00:00Z")
            known = [r.id for r in rules.rules] if rules else sorted(series)
            series = {r: series.get(r, {}) for r in known if r in series or rules}
            stories = store.latest_stories(db, limit=LATEST)
            rows = source_status(db, feeds, now)
        finally:
            db.close()
        titles = {r.id: r.title for r in rules.rules} if rules else {}
        tags = sorted({t for r in rules.rules for t in r.tags}) if rules else []
        for s in stories:
            s["link"] = safe_link(s["url"])
        health = {
            "failing": [r for r in rows if r["enabled"] and r["problem"] == "failing"],
            "silent": [r for r in rows if r["enabled"] and r["problem"] == "silent"],
            "selector": [r for r in rows if r["enabled"] and r["problem"] == "selector"],
            "disabled": [r for r in rows if not r["enabled"]],
            "ok": sum(1 for r in rows if r["enabled"] and not r["problem"]),
            "total": len(rows),
        }
        return _html("dashboard.html", missing=None, chart=line_chart(series, days), days=days, stories=stories,
                     titles=titles, tags=tags, health=health, now=now, rule_ids=known)

    async def rule_feed(request: Request) -> Response:
        rule_id = request.path_params["rule"]
        rules = cfg.rules()
        rule = rules.get(rule_id) if rules else None
        if rule is None:
            return PlainTextResponse(f"unknown rule {rule_id!r}\n", 404)
        return _feed(request, f"borderwatch: {rule.title}", [rule.id], rules)

    async def tag_feed(request: Request) -> Response:
        tag = request.path_params["tag"]
        rules = cfg.rules()
        ids = [r.id for r in rules.rules if tag in r.tags] if rules else []
        if not ids:
            return PlainTextResponse(f"unknown tag {tag!r}\n", 404)
        return _feed(request, f"borderwatch: #{tag}", ids, rules)

    def _feed(request: Request, title: str, rule_ids: list[str], rules: RuleSet) -> Response:
        now_iso = store.iso(cfg.now())
        try:
            db = read_db()
        except store.NoDatabase:
            rows = []
        else:
            try:
                rows = store.latest_stories(db, rule_ids, FEED_ENTRIES)
            finally:
                db.close()
        base = base_url(request)
        body = atom.feed(title, base + request.url.path, base + "/", rows, {r.id: r.title for r in rules.rules}, now_iso)
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers=PUBLIC)

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if len(token) > 200:
            return _html("unsubscribe.html", 404, PRIVATE, state="unknown")
        if request.method == "POST":
            # RFC 8058: the mail provider POSTs "List-Unsubscribe=One-Click"; our own button posts the same.
            try:
                db = store.connect_existing(cfg.db, readonly=False)
            except store.NoDatabase:
                return _html("unsubscribe.html", 404, PRIVATE, state="unknown")
            try:
                done = store.deactivate_by_token(db, token)
            finally:
                db.close()
            return _html("unsubscribe.html", 200 if done else 404, PRIVATE, state="done" if done else "unknown")
        try:
            db = read_db()
        except store.NoDatabase:
            return _html("unsubscribe.html", 404, PRIVATE, state="unknown")
        try:
            state = store.unsubscribe_state(db, token)
        finally:
            db.close()
        if state is None:
            return _html("unsubscribe.html", 404, PRIVATE, state="unknown")
        return _html("unsubscribe.html", 200, PRIVATE, state="confirm" if state == "active" else "already",
                     action="/unsubscribe/" + quote(token, safe=""))

    async def healthz(request: Request) -> Response:
        from ..status import health_problems, source_status

        try:
            db = read_db()
        except store.NoDatabase as exc:
            return PlainTextResponse(f"unhealthy: {exc}\n", 503)
        try:
            problems = health_problems(db, source_status(db, cfg.feeds_config(), cfg.now()), cfg.now())
        finally:
            db.close()
        if problems:
            return PlainTextResponse("".join(f"unhealthy: {p}\n" for p in problems), 503)
        return PlainTextResponse("healthy\n")

    async def metrics(request: Request) -> Response:
        from .metrics import render_metrics

        try:
            db = read_db()
        except store.NoDatabase as exc:
            return PlainTextResponse(f"# {exc}\n", 503)
        try:
            body, content_type = render_metrics(db, cfg.feeds_config(), cfg.now())
        finally:
            db.close()
        return Response(body, media_type=content_type)

    routes = [
        Route("/", dashboard),
        Route("/rules/{rule}.atom", rule_feed),
        Route("/tags/{tag}.atom", tag_feed),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes)


def serve(cfg: WebConfig, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info", proxy_headers=True, server_header=False)
