"""Delivery failures are visible (status, logs, exit status) and retried soon enough."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from aiosmtpd.controller import Controller
from conftest import Reply, free_port, rss
from test_cli import ROOT, bw
from test_digest import Recorder, subscribe, transport

from pipeline import store
from pipeline.config import load_feeds
from pipeline.cycle import run_cycle
from pipeline.demo import SiteServer, build_site, feeds_yaml
from pipeline.digest.send import RETRY_CAP_IMMEDIATE, send_due

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.fixture
def seeded(tmp_path, matcher):
    db = store.connect(tmp_path / "seed.db")
    with SiteServer(build_site) as site:
        path = tmp_path / "feeds.yaml"
        path.write_text(feeds_yaml(site.base))
        feeds = load_feeds(path)
        store.sync_sources(db, feeds.sources)
        asyncio.run(run_cycle(db, feeds, matcher))
    yield db
    db.close()


def _cli_setup(tmp_path, server):
    server.routes["/feed"] = Reply(body=rss([{"title": "CJNG attack in Jalisco", "link": "https://x.example/1",
                                              "guid": "1", "description": "Members of the CJNG attacked police in Jalisco, Mexico."}]))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: good\n    url: {server.url('/feed')}\n  - id: bad\n    url: {server.url('/missing')}\n")
    common = ["--feeds", str(feeds), "--db", str(tmp_path / "r.db"), "--keywords", str(ROOT / "keywords.yaml")]
    assert bw("subscribers", "add", "boss@example.org", "--cadence", "immediate", *common[2:], cwd=tmp_path).returncode == 0
    return common


def test_smtp_down_is_visible_in_run_once_logs_and_status(tmp_path, server):
    common = _cli_setup(tmp_path, server)
    down = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_TLS": "none"}
    out = bw("run", "--once", "--log-level", "warning", *common, cwd=tmp_path, env=down)
    assert out.returncode == 1, out.stdout + out.stderr  # a delivery failed: not a success
    assert "1 to retry" in out.stdout
    assert "delivery failed: boss@example.org: cannot connect to SMTP server 127.0.0.1" in out.stderr
    assert "poll source=bad" in out.stderr and "HTTP 404" in out.stderr  # failures are warnings
    status = bw("status", *common[:4], cwd=tmp_path, env={"COLUMNS": "80"})
    assert "pending boss@example.org" in status.stdout and "cannot connect to SMTP server" in status.stdout
    assert "next attempt 20" in status.stdout and " UTC" in status.stdout
    js = json.loads(bw("status", "--deliveries", "--json", *common[:4], cwd=tmp_path).stdout)
    assert js[0]["subscriber"] == "boss@example.org" and js[0]["status"] == "pending"
    assert js[0]["attempts"] == 1 and "cannot connect" in js[0]["last_error"] and js[0]["next_attempt"]


def test_server_refusing_starttls_is_reported(tmp_path, server):
    common = _cli_setup(tmp_path, server)
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)  # no TLS: STARTTLS is refused
    controller.start()
    try:
        out = bw("run", "--once", "--json", *common, cwd=tmp_path,
                 env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "starttls"})
    finally:
        controller.stop()
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert summary["digests"]["retry"] == 1 and "STARTTLS" in summary["digests"]["errors"][0]
    assert not handler.messages
    js = json.loads(bw("status", "--deliveries", "--json", *common[:4], cwd=tmp_path).stdout)
    assert "STARTTLS" in js[0]["last_error"]


def test_immediate_back_off_is_capped_and_a_success_flushes_the_others(seeded, shipped_rules):
    port = free_port()  # nothing listens: SMTP is down
    subscribe(seeded, "now@example.org", cadence="immediate")
    subscribe(seeded, "daily@example.org", cadence="daily", hour=6)
    t = NOW
    for _ in range(12):  # a long outage: each retry as soon as the immediate one is due again
        report = send_due(seeded, shipped_rules, t, transport(port))
        assert report.sent == 0
        pending = {d["subscriber"]: d for d in store.deliveries_in(seeded, ("pending",))}
        wait = store.parse_iso(pending["now@example.org"]["next_attempt"]) - t
        assert wait <= dt.timedelta(seconds=RETRY_CAP_IMMEDIATE)
        t += wait
    daily_next = store.parse_iso(pending["daily@example.org"]["next_attempt"])
    assert daily_next > t  # the daily digest is still backing off
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        up = send_due(seeded, shipped_rules, t, transport(port))
    finally:
        controller.stop()
    assert up.sent == 2  # the immediate one succeeded, so the daily one went out at once too
    assert sorted(m[0][0] for m in handler.messages) == ["daily@example.org", "now@example.org"]
