"""Chat/webhook channels through Apprise, and source health alerts, with an explicit clock.

Apprise posts over real HTTP to a sink on 127.0.0.1 (json://); Slack's own endpoint cannot run
here, so for Slack the request Apprise builds is redirected to the local sink, unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import Reply, feeds_for, rss
from webtools import JSONSink, browser, screenshot, seed_demo

from pipeline import store
from pipeline.config import load_rules
from pipeline.cycle import run_cycle
from pipeline.digest.send import OutboxTransport, send_due
from pipeline.status import evaluate_health, source_status

ROOT = Path(__file__).parent.parent
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
pytest.importorskip("apprise", reason="channels need the notify extra (pip install 'borderwatch[notify]')")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alerts")
    seed_demo(tmp / "demo.db", ROOT / "keywords.yaml")
    return tmp / "demo.db"


@pytest.fixture
def db(demo_db, tmp_path):
    path = tmp_path / "copy.db"
    shutil.copy(demo_db, path)
    d = store.connect(path)
    yield d
    d.close()


@pytest.fixture
def sink():
    s = JSONSink()
    yield s
    s.close()


def subscribe(db, target, cadence="immediate", rules=None):
    store.add_subscriber(db, target, rules, None, cadence, 7, 0, "UTC", created="2000-01-01T00:00:00Z")


def owed(db) -> dict:
    return store.delivery_summary(db)


# --------------------------------------------------------------------------- channels


def test_webhook_down_then_up_gets_exactly_one_message(db, sink, shipped_rules, tmp_path):
    subscribe(db, sink.url, "immediate", ["extradition"])
    out = OutboxTransport(tmp_path / "outbox")
    now = dt.datetime.now(UTC)
    first = send_due(db, shipped_rules, now, out)
    assert first.created == 1 and first.sent == 0 and first.retry == 1
    assert "json://…" in first.errors[0] and str(sink.port) not in first.errors[0]  # no URL (secrets) in errors
    assert owed(db) == {"pending": 1} and sink.received == []
    # still backing off: nothing is attempted before the retry time
    sink.start()
    assert send_due(db, shipped_rules, now + dt.timedelta(seconds=5), out).sent == 0 and sink.received == []
    later = send_due(db, shipped_rules, now + dt.timedelta(minutes=10), out)
    assert later.sent == 1 and len(sink.received) == 1
    msg = sink.received[0]
    assert msg["path"] == "/hook" and msg["title"].startswith("borderwatch · ")
    assert "extradition" in msg["message"] and "http://127.0.0.1:" in msg["message"]
    # never twice: nothing more, whatever runs next
    again = send_due(db, shipped_rules, now + dt.timedelta(hours=2), out)
    assert again.created == 0 and again.sent == 0 and len(sink.received) == 1
    assert owed(db) == {"sent": 1}


def test_immediate_is_one_message_per_story_and_daily_a_compact_list(db, sink, shipped_rules, tmp_path):
    sink.start()
    subscribe(db, sink.url, "immediate", ["fentanyl", "hlsd"])
    daily = sink.url.replace("/hook", "/daily")
    subscribe(db, daily, "daily", ["fentanyl", "hlsd"])
    now = dt.datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    report = send_due(db, shipped_rules, now, OutboxTransport(tmp_path / "outbox"))
    per_story = [m for m in sink.received if m["path"] == "/hook"]
    lists = [m for m in sink.received if m["path"] == "/daily"]
    assert len(lists) == 1 and len(per_story) >= 2 and report.sent == len(per_story) + 1
    titles = [m["message"].splitlines()[0] for m in per_story]
    assert len(titles) == len(set(titles))  # each story once, syndicated copies as "also in"
    assert any("also in:" in m["message"] for m in per_story)
    assert lists[0]["message"].count("• ") == len(per_story)
    assert lists[0]["title"].startswith(f"borderwatch: {len(per_story)} new stories")


@pytest.fixture
def slack(sink, monkeypatch):
    """Apprise's Slack plugin, its request to hooks.slack.com sent unchanged to the local sink."""
    import apprise.plugins.slack as slack_plugin
    import requests

    sink.start()
    real = requests.request

    def to_sink(method, url, **kw):
        assert url.startswith("https://hooks.slack.com/services/")
        return real(method, f"http://127.0.0.1:{sink.port}/slack", **kw)

    monkeypatch.setattr(slack_plugin.requests, "request", to_sink)
    return sink


SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"


def test_slack_message_from_a_real_hit(db, slack, shipped_rules, tmp_path):
    subscribe(db, SLACK, "immediate", ["hlsd"])
    assert send_due(db, shipped_rules, dt.datetime.now(UTC), OutboxTransport(tmp_path / "outbox")).sent >= 1
    attachment = next(m for m in slack.received if "also in:" in m["attachments"][0]["text"])["attachments"][0]
    assert attachment["title"].startswith("borderwatch · ") and "http://127.0.0.1:" in attachment["text"]
    _slack_screenshot(attachment, tmp_path)


def test_feed_text_cannot_inject_markup_into_slack(db, slack, shipped_rules, tmp_path):
    """A hostile title reaches Slack escaped: no mention, no link, no formatting, no forged line."""
    with store.transaction(db) as conn:
        conn.execute("UPDATE articles SET title = ? WHERE id IN (SELECT article FROM hits WHERE rule = 'extradition')",
                     ("<!channel> Extradition *now* [click](javascript:alert(1)) <https://evil.example|bank>\u202e\nFAKE LINE",))
    subscribe(db, SLACK, "immediate", ["extradition"])
    assert send_due(db, shipped_rules, dt.datetime.now(UTC), OutboxTransport(tmp_path / "outbox")).sent == 1
    payload = slack.received[0]
    attachment = payload["attachments"][0]
    text = attachment["title"] + "\n" + attachment["text"]
    assert payload.get("mrkdwn") is False
    assert "<!channel>" not in text and "<https://evil" not in text and "&lt;!channel&gt;" in text
    assert "\u202e" not in text and "\nFAKE LINE" not in attachment["text"]


def _slack_screenshot(attachment: dict, tmp_path: Path) -> None:
    """Render the Slack payload the way Slack lays out an attachment, for docs/slack-message.png."""
    def slack_text(s: str) -> str:  # Slack shows &lt; as <; our page escapes it again for HTML
        return html.escape(html.unescape(s)).replace("\n", "<br>")

    page = tmp_path / "slack.html"
    page.write_text(f"""<!doctype html><meta charset="utf-8"><body style="font:15px/1.46 Lato,Helvetica,Arial,sans-serif;
background:#fff;margin:0;padding:20px;width:720px"><div style="display:flex;gap:10px">
<div style="width:36px;height:36px;border-radius:6px;background:#12344d;color:#fff;font-weight:700;display:flex;
align-items:center;justify-content:center">bw</div><div><div><b>borderwatch</b> <span style="color:#616061;font-size:12px">
APP 15:04</span></div><div style="border-left:4px solid #3AA3E3;padding:4px 12px;margin-top:6px">
<div style="font-weight:700">{slack_text(attachment['title'])}</div>
<div style="white-space:normal">{slack_text(attachment['text'])}</div></div></div></div></body>""", encoding="utf-8")
    driver = browser(800, 400)
    try:
        driver.get(page.as_uri())
        screenshot(driver, tmp_path, "slack-message.png")
    finally:
        driver.quit()


def test_subscribers_add_accepts_apprise_urls_and_rejects_unknown_ones(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "BORDERWATCH_"))}
    base = [sys.executable, "-m", "pipeline", "subscribers"]
    common = ["--db", str(tmp_path / "s.db"), "--keywords", str(ROOT / "keywords.yaml")]
    ok = subprocess.run(base + ["add", "json://127.0.0.1:9/hook", "--cadence", "immediate", *common],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(base + ["add", "nosuchservice://x/y", *common], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "Apprise does not understand" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- source health alerts


class Clock:
    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> dt.datetime:
        self.now += dt.timedelta(**kw)
        return self.now


def poll(db, feeds, clock) -> None:
    asyncio.run(run_cycle(db, feeds, None, clock=clock))


def alerts(db) -> list[dict]:
    return list(db.query("SELECT target, source, event, subject, body FROM health_alerts ORDER BY id"))


def items(n: int, start: dt.datetime, server, prefix: str = "a") -> list[dict]:
    return [{"title": f"Item {prefix}{i}", "link": server.url(f"/{prefix}{i}"), "guid": f"{prefix}{i}",
             "description": f"Story number {i} about the border, told in its own words {prefix}{i}.",
             "pubDate": (start - dt.timedelta(days=i)).strftime("%a, %d %b %Y %H:%M:%S +0000")} for i in range(n)]


def test_a_source_that_stops_publishing_raises_one_alert_and_one_recovery(server, tmp_path, sink, shipped_rules):
    db = store.connect(tmp_path / "h.db")
    clock = Clock(T0)
    server.routes["/feed"] = Reply(body=rss(items(6, T0, server)))  # one item a day: learned silence = 4 days
    path = tmp_path / "feeds.yaml"
    feeds = feeds_for(path, [{"id": "daily-news", "url": server.url("/feed")}])
    path.write_text(path.read_text() + f"alerts:\n  to: [ops@example.org, '{sink.url}']\n")
    feeds = __import__("pipeline.config", fromlist=["load_feeds"]).load_feeds(path)
    store.sync_sources(db, feeds.sources)
    poll(db, feeds, clock)
    assert evaluate_health(db, feeds, clock()) == []  # healthy on first sight: nothing sent
    for day in (1, 2, 3):  # polls with nothing new, within its usual rhythm
        poll(db, feeds, Clock(clock.advance(days=1)))
        assert evaluate_health(db, feeds, clock()) == []
    clock.advance(days=2)  # 5 days without a new item: silent
    poll(db, feeds, clock)
    events = evaluate_health(db, feeds, clock())
    assert [e["event"] for e in events] == ["silent"]
    row = source_status(db, feeds, clock())[0]
    assert row["problem"] == "silent" and row["silent_since"] == store.iso(T0)
    for _ in range(3):  # still silent: never one alert per poll
        poll(db, feeds, Clock(clock.advance(hours=6)))
        assert evaluate_health(db, feeds, clock()) == []
    server.routes["/feed"] = Reply(body=rss(items(1, clock(), server, "new") + items(6, T0, server)))
    poll(db, feeds, Clock(clock.advance(hours=1)))
    assert [e["event"] for e in evaluate_health(db, feeds, clock())] == ["recovered"]
    assert [(a["target"], a["event"]) for a in alerts(db)] == [
        ("ops@example.org", "silent"), (sink.url, "silent"), ("ops@example.org", "recovered"), (sink.url, "recovered")]
    # delivered through the outbox: email (here .eml files) and the webhook, down then up
    out = OutboxTransport(tmp_path / "outbox")
    first = send_due(db, shipped_rules, clock(), out)
    assert first.alerts == 2 and first.retry == 2  # the webhook is down: owed, not lost
    sink.start()
    second = send_due(db, shipped_rules, clock.advance(minutes=10), out)
    assert second.alerts == 2 and [m["title"] for m in sink.received] == [
        "borderwatch: source daily-news has gone silent", "borderwatch: source daily-news recovered"]
    subjects = sorted(message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"] for p in (tmp_path / "outbox").glob("*.eml"))
    assert subjects == ["borderwatch: source daily-news has gone silent", "borderwatch: source daily-news recovered"]
    assert send_due(db, shipped_rules, clock.advance(hours=1), out).alerts == 0 and len(sink.received) == 2
    db.close()


LISTING = b"""<html><body><main>%s</main></body></html>"""


def test_a_page_whose_selector_breaks_raises_one_alert_and_one_recovery(server, tmp_path):
    db = store.connect(tmp_path / "p.db")
    clock = Clock(T0)
    old = b"".join(b'<article><h2><a href="/n%d">Story %d</a></h2></article>' % (i, i) for i in range(3))
    new = b"".join(b'<div class="card"><h3><a href="/n%d">Story %d</a></h3></div>' % (i, i) for i in range(3))
    server.routes["/list"] = Reply(body=LISTING % old, headers={"Content-Type": "text/html"})
    path = tmp_path / "feeds.yaml"
    feeds_for(path, [{"id": "press-room", "url": server.url("/list"), "type": "page", "link_selector": "article h2 a",
                      "fetch_articles": "false"}])
    path.write_text(path.read_text() + "alerts:\n  to: [ops@example.org]\n  silent_after: 30d\n")
    from pipeline.config import load_feeds

    feeds = load_feeds(path)
    store.sync_sources(db, feeds.sources)
    poll(db, feeds, clock)
    assert evaluate_health(db, feeds, clock()) == []
    server.routes["/list"] = Reply(body=LISTING % new, headers={"Content-Type": "text/html"})  # the site's redesign
    poll(db, feeds, Clock(clock.advance(hours=1)))
    assert [e["event"] for e in evaluate_health(db, feeds, clock())] == ["selector"]
    for _ in range(4):  # failing polls go on: no second alert, and the "failing" threshold changes nothing
        poll(db, feeds, Clock(clock.advance(hours=1)))
        assert evaluate_health(db, feeds, clock()) == []
    path.write_text(path.read_text().replace("article h2 a", "div.card h3 a"))  # the operator fixes the selector
    feeds = load_feeds(path)
    poll(db, feeds, Clock(clock.advance(hours=1)))
    assert [e["event"] for e in evaluate_health(db, feeds, clock())] == ["recovered"]
    got = alerts(db)
    assert [a["event"] for a in got] == ["selector", "recovered"]
    assert "link selector" in got[0]["body"] or "selector matched nothing" in got[0]["body"]
    db.close()


def test_failing_after_counts_consecutive_failures_with_per_source_override(server, tmp_path):
    db = store.connect(tmp_path / "f.db")
    clock = Clock(T0)
    server.routes["/a"] = Reply(body=rss(items(2, T0, server, "x")))
    server.routes["/b"] = Reply(body=rss(items(2, T0, server, "y")))
    path = tmp_path / "feeds.yaml"
    path.write_text(f"""sources:
  - id: a
    url: {server.url('/a')}
  - id: b
    url: {server.url('/b')}
    alerts: {{failing_after: 5}}
alerts:
  to: [ops@example.org]
  failing_after: 2
""")
    from pipeline.config import load_feeds

    feeds = load_feeds(path)
    store.sync_sources(db, feeds.sources)
    poll(db, feeds, clock)
    evaluate_health(db, feeds, clock())
    server.routes["/a"] = server.routes["/b"] = Reply(500, b"down")
    seen = []
    for _ in range(6):
        poll(db, feeds, Clock(clock.advance(minutes=30)))
        seen.append(sorted((e["source"], e["event"]) for e in evaluate_health(db, feeds, clock())))
    assert seen == [[], [("a", "failing")], [], [], [("b", "failing")], []]
    server.routes["/a"] = Reply(body=rss(items(2, T0, server, "x")))
    poll(db, feeds, Clock(clock.advance(minutes=30)))
    assert [(e["source"], e["event"]) for e in evaluate_health(db, feeds, clock())] == [("a", "recovered")]
    db.close()


def test_alerts_config_is_checked(tmp_path):
    from pipeline.config import ConfigError, load_feeds

    path = tmp_path / "feeds.yaml"
    path.write_text("sources:\n  - id: a\n    url: https://example.org/feed\n    alerts: {failing_after: 0}\n"
                    "alerts:\n  to: [not-an-address, 'nosuch://x']\n  silent_after: soon\n  extra: 1\n")
    with pytest.raises(ConfigError) as err:
        load_feeds(path)
    text = str(err.value)
    assert "feeds.yaml:4: failing_after must be a positive number" in text
    assert "not a valid email address" in text and "Apprise does not understand" in text
    assert "silent_after must be a duration" in text and "unknown key 'extra' in alerts" in text


def test_status_shows_silent_since(server, tmp_path):
    """`borderwatch status` (real clock) on a source last heard of ten days ago."""
    import os
    import subprocess
    import sys

    db_path = tmp_path / "s.db"
    db = store.connect(db_path)
    ten_days_ago = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(days=10)
    server.routes["/feed"] = Reply(body=rss(items(6, ten_days_ago, server)))
    path = tmp_path / "feeds.yaml"
    feeds = feeds_for(path, [{"id": "quiet-outlet", "url": server.url("/feed")}])
    store.sync_sources(db, feeds.sources)
    poll(db, feeds, Clock(ten_days_ago))
    db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "BORDERWATCH_"))}
    args = [sys.executable, "-m", "pipeline", "status", "--db", str(db_path), "--feeds", str(path)]
    out = subprocess.run(args, capture_output=True, text=True, env={**env, "COLUMNS": "200"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"silent since {store.iso(ten_days_ago)[:16].replace('T', ' ')}" in out.stdout
    rows = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, env=env, timeout=120).stdout)
    assert rows[0]["problem"] == "silent" and rows[0]["silent_since"] == store.iso(ten_days_ago)
