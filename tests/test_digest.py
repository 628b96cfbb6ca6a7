"""Digest emails against a real SMTP server (aiosmtpd on 127.0.0.1), with a controllable clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port

from pipeline import store
from pipeline.config import load_feeds
from pipeline.cycle import run_cycle
from pipeline.demo import SiteServer, build_site, feeds_yaml
from pipeline.digest import send as send_mod
from pipeline.digest.select import due_period
from pipeline.digest.send import OutboxTransport, SMTPSettings, SMTPTransport, send_due

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class Recorder:
    """aiosmtpd handler: records messages; can refuse recipients (5xx) or defer them (4xx)."""

    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    yield handler
    controller.stop()


def transport(port: int) -> SMTPTransport:
    return SMTPTransport(SMTPSettings("127.0.0.1", port, tls="none", timeout=5))


@pytest.fixture
def seeded(tmp_path, shipped_rules, matcher):
    """A database filled by one real cycle over the bundled sample sources."""
    db = store.connect(tmp_path / "seed.db")
    with SiteServer(build_site) as site:
        path = tmp_path / "feeds.yaml"
        path.write_text(feeds_yaml(site.base))
        feeds = load_feeds(path)
        store.sync_sources(db, feeds.sources)
        asyncio.run(run_cycle(db, feeds, matcher))
    yield db
    db.close()


def subscribe(db, email, cadence="immediate", rules=None, tags=None, hour=7, weekday=0, tz="UTC"):
    store.add_subscriber(db, email, rules, tags, cadence, hour, weekday, tz, created="2000-01-01T00:00:00Z")


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def test_digest_content_over_smtp(seeded, shipped_rules, smtp):
    subscribe(seeded, "analyst@example.org", tz="America/Mexico_City")
    report = send_due(seeded, shipped_rules, NOW, transport(smtp.port), sender="borderwatch <alerts@example.org>")
    assert report.sent == 1 and len(smtp.messages) == 1
    rcpts, raw = smtp.messages[0]
    assert rcpts == ["analyst@example.org"]
    msg = parse(raw)
    assert re.match(r"borderwatch: \d+ new stories — fentanyl \(\d+\), hlsd", msg["Subject"])
    assert msg["List-Unsubscribe"].strip().startswith("<mailto:alerts@example.org?subject=unsubscribe")
    assert msg["Message-ID"].startswith("<digest.") and msg["Message-ID"].endswith("@example.org>")
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    # grouped by rule in rule-file order
    present = [rid for rid in ("fentanyl", "hlsd", "extradition", "cartels", "migration", "arms") if f"({rid}, " in html]
    assert len(present) >= 4 and present == re.findall(r"([a-z-]+) \(\d+\)", msg["Subject"])
    order = [html.index(f"({rid}, ") for rid in present]
    assert order == sorted(order)
    # the syndicated story appears once, with its copies listed
    assert html.count("tighten fentanyl precursor controls") + html.count("Security talks in Mexico City end") \
        + html.count("Read: outcomes of the US-Mexico security dialogue") == 1
    assert "also in:" in html and "also in:" in text
    assert "<mark" in html and "*fentanyl" in text.lower()  # "*fentanyl*" or the longer "*fentanyl precursor*"
    assert re.search(r'href="http://127\.0\.0\.1:\d+/[a-z-]+/articles/[a-z-]+\.html"', html)
    assert "CST" in text  # published times in the subscriber's zone
    for trap in ("OPEC", "Monarch", "anaesthetics", "Mazatlán espera", "UK court"):
        assert trap not in html


def test_no_second_digest_and_no_empty_digest(seeded, shipped_rules, smtp):
    subscribe(seeded, "a@example.org")
    assert send_due(seeded, shipped_rules, NOW, transport(smtp.port)).sent == 1
    later = NOW + dt.timedelta(minutes=5)
    report = send_due(seeded, shipped_rules, later, transport(smtp.port))
    assert report.created == 0 and report.sent == 0 and len(smtp.messages) == 1


def test_rules_and_tags_filter_what_a_subscriber_gets(seeded, shipped_rules, smtp):
    subscribe(seeded, "mig@example.org", rules=["migration"])
    subscribe(seeded, "tags@example.org", tags=["arms"])
    send_due(seeded, shipped_rules, NOW, transport(smtp.port))
    subjects = {r[0][0]: parse(r[1])["Subject"] for r in smtp.messages}
    assert re.search(r"— migration \(2\)$", subjects["mig@example.org"])
    assert re.search(r"— arms \(\d+\)$", subjects["tags@example.org"])


def test_smtp_down_then_up_loses_nothing(seeded, shipped_rules):
    port = free_port()
    subscribe(seeded, "a@example.org")
    down = send_due(seeded, shipped_rules, NOW, transport(port))
    assert down.created == 1 and down.sent == 0 and down.retry == 1 and "cannot connect" in down.errors[0]
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        too_soon = send_due(seeded, shipped_rules, NOW + dt.timedelta(seconds=10), transport(port))
        assert too_soon.sent == 0  # back-off
        up = send_due(seeded, shipped_rules, NOW + dt.timedelta(minutes=10), transport(port))
        assert up.sent == 1 and len(handler.messages) == 1
        assert send_due(seeded, shipped_rules, NOW + dt.timedelta(hours=1), transport(port)).sent == 0
    finally:
        controller.stop()


def test_4xx_then_success(seeded, shipped_rules, smtp):
    subscribe(seeded, "busy@example.org")
    smtp.refuse["busy@example.org"] = "451 4.3.0 try again later"
    first = send_due(seeded, shipped_rules, NOW, transport(smtp.port))
    assert first.retry == 1 and not smtp.messages
    del smtp.refuse["busy@example.org"]
    second = send_due(seeded, shipped_rules, NOW + dt.timedelta(hours=1), transport(smtp.port))
    assert second.sent == 1 and len(smtp.messages) == 1


def test_5xx_for_one_recipient_others_go_on(seeded, shipped_rules, smtp):
    subscribe(seeded, "gone@example.org")
    subscribe(seeded, "ok@example.org")
    smtp.refuse["gone@example.org"] = "550 5.1.1 no such user"
    report = send_due(seeded, shipped_rules, NOW, transport(smtp.port))
    assert report.failed == 1 and report.sent == 1
    assert [m[0] for m in smtp.messages] == [["ok@example.org"]]
    statuses = {r["subscriber"]: r["status"] for r in seeded.query("SELECT subscriber, status FROM deliveries")}
    assert statuses == {"gone@example.org": "failed", "ok@example.org": "sent"}


def crash_when_marking(monkeypatch, state: str):
    """Make the process 'crash' (KeyboardInterrupt) at the moment a delivery is moved to ``state``;
    returns a function that undoes it."""
    real = store.set_delivery

    def crashing(db, delivery, status, *args, **kwargs):
        if status == state:
            raise KeyboardInterrupt(f"simulated crash when marking {state}")
        return real(db, delivery, status, *args, **kwargs)

    monkeypatch.setattr(send_mod.store, "set_delivery", crashing)
    return lambda: monkeypatch.setattr(send_mod.store, "set_delivery", real)


def test_crash_between_accept_and_mark_does_not_resend(seeded, shipped_rules, smtp, monkeypatch):
    subscribe(seeded, "a@example.org")
    restore = crash_when_marking(monkeypatch, "sent")
    with pytest.raises(KeyboardInterrupt):
        send_due(seeded, shipped_rules, NOW, transport(smtp.port))
    assert len(smtp.messages) == 1
    restore()
    after = send_due(seeded, shipped_rules, NOW + dt.timedelta(minutes=5), transport(smtp.port))
    assert after.recovered == 1 and after.sent == 0 and len(smtp.messages) == 1
    assert next(seeded.query("SELECT status FROM deliveries"))["status"] == "unknown"


def test_crash_before_data_is_retried(seeded, shipped_rules, smtp, monkeypatch):
    subscribe(seeded, "a@example.org")
    restore = crash_when_marking(monkeypatch, "committing")
    with pytest.raises(KeyboardInterrupt):
        send_due(seeded, shipped_rules, NOW, transport(smtp.port))
    restore()
    assert not smtp.messages
    after = send_due(seeded, shipped_rules, NOW + dt.timedelta(minutes=5), transport(smtp.port))
    assert after.sent == 1 and len(smtp.messages) == 1


def test_outbox_transport_crash_after_write_is_recognised(seeded, shipped_rules, tmp_path, monkeypatch):
    subscribe(seeded, "a@example.org")
    restore = crash_when_marking(monkeypatch, "sent")
    with pytest.raises(KeyboardInterrupt):
        send_due(seeded, shipped_rules, NOW, OutboxTransport(tmp_path / "out"))
    restore()
    after = send_due(seeded, shipped_rules, NOW, OutboxTransport(tmp_path / "out"))
    assert after.recovered == 1 and after.sent == 0
    assert len(list((tmp_path / "out").glob("*.eml"))) == 1
    assert next(seeded.query("SELECT status FROM deliveries"))["status"] == "sent"


def test_cadence_periods_with_a_controllable_clock():
    sub = {"tz": "America/Mexico_City", "hour": 7, "weekday": 0}
    at = lambda *a: dt.datetime(*a, tzinfo=UTC)  # noqa: E731
    # Mexico City is UTC-6: 07:00 local = 13:00 UTC
    assert due_period({**sub, "cadence": "daily"}, at(2026, 11, 23, 12, 59)) == "daily:2026-11-22"
    assert due_period({**sub, "cadence": "daily"}, at(2026, 11, 23, 13, 0)) == "daily:2026-11-23"
    assert due_period({**sub, "cadence": "hourly"}, at(2026, 11, 23, 13, 30)) == "hourly:2026-11-23T07"
    # 2026-11-23 is a Monday
    assert due_period({**sub, "cadence": "weekly"}, at(2026, 11, 23, 13, 0)) == "weekly:2026-11-23"
    assert due_period({**sub, "cadence": "weekly"}, at(2026, 11, 25, 20, 0)) == "weekly:2026-11-23"
    assert due_period({**sub, "cadence": "weekly"}, at(2026, 11, 23, 12, 0)) == "weekly:2026-11-16"


def test_daily_subscriber_gets_one_digest_per_day(seeded, shipped_rules, smtp):
    subscribe(seeded, "d@example.org", cadence="daily", hour=7)
    t0 = dt.datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    assert send_due(seeded, shipped_rules, t0, transport(smtp.port)).sent == 1
    for minutes in (10, 120, 600):
        assert send_due(seeded, shipped_rules, t0 + dt.timedelta(minutes=minutes), transport(smtp.port)).created == 0
    assert len(smtp.messages) == 1


def test_new_subscriber_is_not_sent_history(seeded, shipped_rules, smtp):
    store.add_subscriber(seeded, "new@example.org", None, None, "immediate", 7, 0, "UTC", created="2099-01-01T00:00:00Z")
    assert send_due(seeded, shipped_rules, NOW, transport(smtp.port)).created == 0
