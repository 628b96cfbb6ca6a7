"""`borderwatch serve` against a real uvicorn on 127.0.0.1: dashboard in headless Chromium, Atom feeds
read back by feedparser, the unsubscribe flow clicked and one-click POSTed, healthz and metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import sqlite3
from pathlib import Path

import feedparser
import httpx
import pytest
from conftest import free_port, wait_until
from webtools import LiveServer, browser, screenshot

from pipeline import store
from pipeline.config import load_feeds
from pipeline.cycle import run_cycle
from pipeline.demo import SiteServer, build_site, feeds_yaml
from pipeline.digest.send import OutboxTransport, send_due
from pipeline.web import WebConfig, create_app

ROOT = Path(__file__).parent.parent
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def site_db(tmp_path_factory):
    """A database filled by one real cycle over the bundled sample sources, plus its config files."""
    from pipeline.config import load_rules
    from pipeline.rules import compile_rules

    tmp = tmp_path_factory.mktemp("web")
    keywords = tmp / "keywords.yaml"
    shutil.copy(ROOT / "keywords.yaml", keywords)
    db = store.connect(tmp / "web.db")
    with SiteServer(build_site) as site:
        feeds_path = tmp / "feeds.yaml"
        feeds_path.write_text(feeds_yaml(site.base) + "alerts:\n  to: [ops@example.org]\n")
        feeds = load_feeds(feeds_path)
        store.sync_sources(db, feeds.sources)
        asyncio.run(run_cycle(db, feeds, compile_rules(load_rules(keywords))))
    db.close()
    return tmp


@pytest.fixture
def web(site_db, tmp_path):
    """A fresh copy of the seeded database served by uvicorn."""
    path = tmp_path / "web.db"
    src = sqlite3.connect(site_db / "web.db")
    dst = sqlite3.connect(path)
    src.backup(dst)
    src.close()
    dst.close()
    now = dt.datetime.now(UTC)
    cfg = WebConfig(str(path), str(site_db / "feeds.yaml"), str(site_db / "keywords.yaml"), None, clock=lambda: now)
    server = LiveServer(create_app(cfg))
    server.db_path = path
    server.cfg = cfg
    yield server
    server.close()


def subscriber(path: Path, email: str = "analyst@example.org") -> str:
    db = store.connect(path)
    store.add_subscriber(db, email, None, None, "immediate", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
    token = db.execute("SELECT token FROM subscribers WHERE email = ?", (email,)).fetchone()[0]
    db.close()
    return token


def test_dashboard_chart_visible_in_chromium(web, tmp_path):
    driver = browser(1100, 1000)
    try:
        driver.get(web.base + "/")
        chart = driver.find_element("css selector", "svg.chart")
        assert chart.is_displayed() and chart.size["width"] > 500 and chart.size["height"] > 200
        lines = driver.find_elements("css selector", "svg.chart polyline.series")
        rules = {el.get_attribute("data-rule") for el in lines}
        assert {"fentanyl", "hlsd", "cartels"} <= rules
        # every series has points spread over the plot, and at least one day with hits lifts it off zero
        assert all(el.is_displayed() for el in lines)
        assert driver.find_elements("css selector", "svg.chart circle")
        latest = driver.find_element("id", "latest").text
        assert "also in:" in latest
        health = driver.find_element("id", "health").text
        assert "sources healthy" in health
        shot = screenshot(driver, tmp_path, "dashboard.png")
        assert shot.stat().st_size > 20_000
    finally:
        driver.quit()


def test_dashboard_lists_no_personal_data(web):
    token = subscriber(web.db_path, "secret.person@example.org")
    for path in ("/", "/rules/fentanyl.atom", "/tags/drugs.atom", "/metrics", "/healthz"):
        body = httpx.get(web.base + path, timeout=30).text
        assert "secret.person" not in body and token not in body, path


def test_atom_feeds_parse_cleanly(web):
    r = httpx.get(web.base + "/rules/fentanyl.atom", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(io.BytesIO(r.content))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10" and parsed.entries
    ids = [e.id for e in parsed.entries]
    assert len(ids) == len(set(ids))  # one entry per story
    assert any("Also in:" in e.content[0].value for e in parsed.entries)
    assert all(e.link.startswith("http://127.0.0.1:") for e in parsed.entries)
    assert all("fentanyl" in [t.term for t in e.tags] for e in parsed.entries)
    tags = {t for r in __import__("pipeline.config", fromlist=["load_rules"]).load_rules(ROOT / "keywords.yaml").rules for t in r.tags}
    tag = sorted(tags)[0]
    t = httpx.get(web.base + f"/tags/{tag}.atom", timeout=30)
    assert t.status_code == 200 and feedparser.parse(io.BytesIO(t.content)).bozo == 0
    assert httpx.get(web.base + "/rules/nope.atom", timeout=30).status_code == 404
    assert httpx.get(web.base + "/tags/nope.atom", timeout=30).status_code == 404


def test_atom_escapes_hostile_titles(web):
    db = store.connect(web.db_path)
    with store.transaction(db) as conn:
        conn.execute("UPDATE articles SET title = ? WHERE id IN (SELECT article FROM hits WHERE rule = 'fentanyl')",
                     ("<script>alert(1)</script> & \x0b fentanyl ]]> \U0001F600",))
    db.close()
    r = httpx.get(web.base + "/rules/fentanyl.atom", timeout=30)
    parsed = feedparser.parse(io.BytesIO(r.content))
    assert parsed.bozo == 0
    assert b"<script>" not in r.content
    assert any("fentanyl ]]>" in e.title for e in parsed.entries), [e.title for e in parsed.entries]


def test_unsubscribe_clicked_in_chromium(web, tmp_path, shipped_rules):
    token = subscriber(web.db_path)
    driver = browser(900, 700)
    try:
        driver.get(f"{web.base}/unsubscribe/{token}")
        button = driver.find_element("id", "confirm")
        assert button.is_displayed()
        screenshot(driver, tmp_path, "unsubscribe.png")
        # the GET page changed nothing
        db = store.connect(web.db_path)
        assert store.subscribers(db)
        db.close()
        button.click()
        assert wait_until(lambda: driver.find_elements("id", "done"), timeout=30)
        assert "unsubscribed" in driver.find_element("id", "done").text
    finally:
        driver.quit()
    db = store.connect(web.db_path)
    assert store.subscribers(db) == []
    # a deactivated subscriber gets nothing more
    report = send_due(db, shipped_rules, dt.datetime.now(UTC), OutboxTransport(tmp_path / "outbox"))
    assert report.created == 0 and report.sent == 0
    db.close()


def test_one_click_post_rfc8058(web, tmp_path, shipped_rules):
    token = subscriber(web.db_path)
    db = store.connect(web.db_path)
    # something already owed when the person unsubscribes is cancelled, not sent
    now = dt.datetime.now(UTC)
    from pipeline.digest.send import prepare_due

    assert prepare_due(db, shipped_rules, now, "borderwatch <alerts@example.org>") == 1
    db.close()
    r = httpx.post(f"{web.base}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                   headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert r.status_code == 200
    assert r.headers["referrer-policy"] == "no-referrer" and "no-store" in r.headers["cache-control"]
    db = store.connect(web.db_path)
    report = send_due(db, shipped_rules, now, OutboxTransport(tmp_path / "outbox"))
    assert report.sent == 0 and not list((tmp_path / "outbox").glob("*.eml"))
    assert store.delivery_summary(db) == {"cancelled": 1}
    db.close()
    # again: idempotent; a wrong token: 404 that says nothing about anyone
    assert httpx.post(f"{web.base}/unsubscribe/{token}", timeout=30).status_code == 200
    bad = httpx.get(f"{web.base}/unsubscribe/{token[:-2]}xx", timeout=30)
    assert bad.status_code == 404 and "not valid" in bad.text


def test_digest_headers_point_at_the_endpoint(tmp_path, shipped_rules, monkeypatch, site_db):
    path = tmp_path / "d.db"
    src, dst = sqlite3.connect(site_db / "web.db"), sqlite3.connect(path)
    src.backup(dst)
    src.close(), dst.close()
    token = subscriber(path)
    monkeypatch.setenv("BORDERWATCH_PUBLIC_URL", "https://watch.example.org/")
    db = store.connect(path)
    out = OutboxTransport(tmp_path / "outbox")
    assert send_due(db, shipped_rules, dt.datetime.now(UTC), out).sent == 1
    from email import message_from_bytes, policy

    msg = message_from_bytes(next((tmp_path / "outbox").glob("*.eml")).read_bytes(), policy=policy.default)
    assert f"<https://watch.example.org/unsubscribe/{token}>" in msg["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    db.close()


def test_no_one_click_header_without_https_link(tmp_path, shipped_rules, site_db, monkeypatch):
    monkeypatch.delenv("BORDERWATCH_PUBLIC_URL", raising=False)
    path = tmp_path / "d.db"
    src, dst = sqlite3.connect(site_db / "web.db"), sqlite3.connect(path)
    src.backup(dst)
    src.close(), dst.close()
    subscriber(path)
    db = store.connect(path)
    assert send_due(db, shipped_rules, dt.datetime.now(UTC), OutboxTransport(tmp_path / "outbox")).sent == 1
    from email import message_from_bytes, policy

    msg = message_from_bytes(next((tmp_path / "outbox").glob("*.eml")).read_bytes(), policy=policy.default)
    assert msg["List-Unsubscribe"].strip().startswith("<mailto:") and msg["List-Unsubscribe-Post"] is None
    db.close()


def test_healthz_and_metrics(web):
    r = httpx.get(web.base + "/healthz", timeout=30)
    assert r.status_code == 503 and "scheduler is not running" in r.text  # no `run` holds the lease
    db = store.connect(web.db_path)
    store.acquire_lease(db, "test-run", 120)
    db.close()
    assert httpx.get(web.base + "/healthz", timeout=30).text == "healthy\n"
    m = httpx.get(web.base + "/metrics", timeout=30)
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(m.text)}
    assert families["borderwatch_articles"].samples[0].value > 0
    assert {s.labels["rule"] for s in families["borderwatch_hits"].samples} >= {"fentanyl", "hlsd"}
    assert "borderwatch_sources_by_health" in families


def test_reads_never_create_a_database(tmp_path, site_db):
    missing = tmp_path / "nothing-here.db"
    server = LiveServer(create_app(WebConfig(str(missing), str(site_db / "feeds.yaml"), str(site_db / "keywords.yaml"))))
    try:
        for path in ("/", "/rules/fentanyl.atom", "/healthz", "/metrics", "/unsubscribe/abc"):
            httpx.get(server.base + path, timeout=30)
        assert httpx.post(server.base + "/unsubscribe/abc", timeout=30).status_code == 404
        assert "No data yet" in httpx.get(server.base + "/", timeout=30).text
        assert httpx.get(server.base + "/healthz", timeout=30).status_code == 503
    finally:
        server.close()
    assert not missing.exists()


def test_serve_command_binds_loopback(tmp_path, site_db):
    """The CLI entry point: `borderwatch serve` answers /healthz on the port it was given."""
    import os
    import subprocess
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "BORDERWATCH_"))}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--db", str(site_db / "web.db"),
                             "--feeds", str(site_db / "feeds.yaml"), "--keywords", str(site_db / "keywords.yaml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 503)
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        assert wait_until(answers, timeout=60) and proc.poll() is None, proc.stderr.read().decode() if proc.poll() is not None else ""
        assert "<svg" in httpx.get(f"http://127.0.0.1:{port}/", timeout=30).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- 30 days of coverage


TOPICS = {
    "fentanyl": ("Soldiers seize {n} kilograms of fentanyl pills in {city}",
                 "Mexican soldiers seized fentanyl pills and precursor chemicals in a lab near {city}, officials said."),
    "migration": ("Asylum seekers wait in {city} as crossings change",
                  "Hundreds of asylum seekers and migrants waited at the border crossing in {city} on day {n}."),
    "extradition": ("Judge approves extradition of cartel operator held in {city}",
                    "A Mexican federal judge approved the extradition of a Sinaloa Cartel operator wanted in Chicago, arrested in {city}."),
}
CITIES = ["Culiacán", "Tijuana", "Ciudad Juárez", "Nogales", "Reynosa", "Matamoros", "Mexicali", "Hermosillo", "Monterrey"]
WORDS = ("court report agents checkpoint convoy river highway warehouse police customs witness shipment route port "
         "market schedule hearing ministry governor mayor shelter bridge permit budget patrol office station").split()


def coverage_feed(server, now: dt.datetime) -> bytes:
    """About 30 days of distinct items; fentanyl coverage spikes in the last week."""
    import random

    from conftest import rss

    rng = random.Random(7)
    items = []
    for day in range(30):
        counts = {"fentanyl": 1 + (3 if day < 6 else 0) if day % 2 == 0 or day < 6 else 0,
                  "migration": 1 + (day % 3 == 0), "extradition": int(day % 5 == 1)}
        for topic, count in counts.items():
            for k in range(count):
                title_t, lead_t = TOPICS[topic]
                city, n = rng.choice(CITIES), rng.randint(3, 400)
                body = lead_t.format(city=city, n=n) + " " + " ".join(rng.choice(WORDS) for _ in range(60))
                when = now - dt.timedelta(days=day, hours=rng.randint(0, 20))
                guid = f"{topic}-{day}-{k}"
                items.append({"title": title_t.format(city=city, n=n), "link": server.url(f"/n/{guid}"), "guid": guid,
                              "description": body, "pubDate": when.strftime("%a, %d %b %Y %H:%M:%S +0000")})
    return rss(items, title="Frontera Wire")


def test_dashboard_over_30_days_shows_the_spike(server, tmp_path):
    from conftest import Reply, feeds_for

    from pipeline.config import load_rules
    from pipeline.rules import compile_rules

    now = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    server.routes["/feed"] = Reply(body=coverage_feed(server, now))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "frontera-wire", "name": "Frontera Wire", "url": server.url("/feed")}])
    db = store.connect(tmp_path / "30d.db")
    store.sync_sources(db, feeds.sources)
    asyncio.run(run_cycle(db, feeds, compile_rules(load_rules(ROOT / "keywords.yaml"))))
    per_day = store.hits_per_day(db, store.iso(now - dt.timedelta(days=30)))
    db.close()
    recent = sum(n for d, n in per_day["fentanyl"].items() if d >= (now - dt.timedelta(days=6)).date().isoformat())
    assert recent >= 2 * (sum(per_day["fentanyl"].values()) - recent) / 3  # the spike is in the data...
    cfg = WebConfig(str(tmp_path / "30d.db"), str(tmp_path / "feeds.yaml"), str(ROOT / "keywords.yaml"), clock=lambda: now)
    web = LiveServer(create_app(cfg))
    driver = browser(1100, 1000)
    try:
        driver.get(web.base + "/")
        fentanyl = driver.find_element("css selector", 'svg.chart polyline[data-rule="fentanyl"]')
        assert fentanyl.is_displayed()
        points = [tuple(map(float, p.split(","))) for p in fentanyl.get_attribute("points").split()]
        assert len(points) == 30
        top = min(y for _, y in points)  # SVG y grows downwards: the highest point is in the last week
        assert any(y == top for _, y in points[-7:]) and top < max(y for _, y in points)
        screenshot(driver, tmp_path, "dashboard.png")  # ...and visible in the chart
    finally:
        driver.quit()
        web.close()
