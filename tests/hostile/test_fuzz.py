"""Property-based fuzzing: random and mutated feeds through fetch-parse-match, random titles
through the digest renderer."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import LocalServer, Reply
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline import store
from pipeline.config import FeedsConfig, Source
from pipeline.cycle import run_cycle

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "feedparser-tests"
SEEDS = [p.read_bytes() for p in sorted(CORPUS.rglob("*.xml"))[::60]] + [
    b'<rss version="2.0"><channel><title>t</title><item><title>Migrants in Tijuana</title><link>https://b.example/1</link>'
    b"<description>Migrants wait at the border in Tijuana</description></item></channel></rss>"]
CONTROL = (b'<rss version="2.0"><channel><title>t</title><item><title>Fentanyl in Sonora</title><link>https://a.example/1</link>'
           b"<description>Sinaloa Cartel fentanyl seizure near Mexico border</description></item></channel></rss>")


@pytest.fixture(scope="module")
def fuzz_server():
    s = LocalServer()
    yield s
    s.close()


def _mutate(data: bytes, cuts: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, length, insert in cuts:
        pos = pos % (len(out) + 1)
        out[pos:pos + length] = insert
    return bytes(out)


bodies = st.one_of(
    st.binary(max_size=2000),
    st.builds(_mutate, st.sampled_from(SEEDS),
              st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 20),
                                 st.sampled_from([b"", b"<", b">", b"&", b"]]>", b"<![CDATA[", b"\x00", b"\xff\xfe",
                                                  b"<item>", b"</channel>", b"&#x0;", b'encoding="utf-16"', b"<!--"])),
                       max_size=5)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_random_and_mutated_feeds_never_escape_the_cycle(fuzz_server, tmp_path_factory, matcher, body):
    fuzz_server.routes["/f"] = Reply(body=body)
    fuzz_server.routes["/ok"] = Reply(body=CONTROL)
    db = store.connect(tmp_path_factory.mktemp("fuzz") / "f.db")
    feeds = FeedsConfig((Source(id="f", url=fuzz_server.url("/f")), Source(id="ok", url=fuzz_server.url("/ok"))))
    store.sync_sources(db, feeds.sources)
    result = asyncio.run(run_cycle(db, feeds, matcher))
    reports = {r.source: r for r in result.reports}
    assert reports["f"].ok or reports["f"].error
    assert reports["ok"].ok and reports["ok"].new_hits >= 1
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
# List-Unsubscribe-Post (RFC 8058 one-click) only comes with an https unsubscribe link, not with mailto.
EXPECTED_HEADERS = sorted(["Subject", "From", "To", "Date", "Message-ID", "List-Unsubscribe",
                           "Auto-Submitted", "MIME-Version", "Content-Type"])
TEMPLATE_TAGS = {"html", "head", "meta", "title", "body", "div", "h2", "span", "a", "mark"}


@settings(max_examples=150, deadline=None)
@given(title=text, snippet=text, source=text, url=text, rule_title=text)
def test_random_titles_cannot_escape_the_template(title, snippet, source, url, rule_title):
    from pipeline.digest.render import build_message, render
    from pipeline.digest.select import Group, Item

    marks = [[0, min(3, len(snippet))]] if snippet else []
    item = Item(1, "cartels", title, url, source, "2026-11-20T10:00:00Z", snippet, marks, [title], 1, also_in=[source])
    now = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    rendered = render([Group("cartels", rule_title, [item])], {"email": "a@example.org", "tz": "UTC"}, now, "<mailto:u@example.org>")
    msg = build_message(rendered, "a@example.org", "b@example.org", "<m@example.org>", "<mailto:u@example.org>", now)
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert sorted(parsed.keys()) == EXPECTED_HEADERS
    assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
    html = parsed.get_body(("html",)).get_content()
    assert set(re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", html)) <= TEMPLATE_TAGS
    assert all(h.startswith(("http://", "https://")) for h in re.findall(r'href="([^"]*)"', html))
