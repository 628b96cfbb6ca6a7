"""Article text: canonical URLs, robots.txt rules, listing pages whose selector finds nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import Reply, feeds_for
from protego import Protego
from test_cli import bw

from pipeline.cycle import run_cycle
from pipeline.dedup import canonical_url
from pipeline.fetch import Fetcher, Policy, robots_allow


# --------------------------------------------------------------------------- canonical URLs

@pytest.mark.parametrize("a, b", [
    # parameter order
    ("https://news.example/n?id=7&page=2", "https://news.example/n?page=2&id=7"),
    # percent-encoding: case of escapes, unreserved characters escaped or not, raw non-ASCII
    ("https://news.example/caf%c3%a9/%7Eedit?q=a%20b", "https://news.example/café/~edit?q=a+b"),
    ("https://news.example/se%C3%B1ales", "https://news.example/señales"),
    # dot segments
    ("https://news.example/a/./b/../nota.html", "https://news.example/a/nota.html"),
    ("https://news.example/a/b/c/../../nota.html", "https://news.example/a/nota.html"),
    # default ports, host case, fragments, tracking parameters
    ("HTTPS://News.Example:443/n?id=1#comments", "https://news.example/n?id=1"),
    ("http://news.example:80/n", "http://news.example/n"),
    ("https://news.example/n?utm_source=rss&id=1&fbclid=x&UTM_Medium=y", "https://news.example/n?id=1"),
])
def test_canonical_url_equivalences(a, b):
    assert canonical_url(a) == canonical_url(b)
    assert canonical_url(canonical_url(a)) == canonical_url(a)  # idempotent: one key, stable


@pytest.mark.parametrize("a, b", [
    ("https://news.example/n?id=1", "https://news.example/n?id=2"),
    ("https://news.example/n?ref=a", "https://news.example/n?ref=b"),  # ref/uid/source are not tracking here
    ("https://news.example:8443/n", "https://news.example/n"),
    ("https://news.example/N", "https://news.example/n"),
])
def test_canonical_url_keeps_different_pages_apart(a, b):
    assert canonical_url(a) != canonical_url(b)


def test_canonical_url_forms():
    assert canonical_url("HTTPS://Example.COM:443/a/./b/../c?b=2&a=1#frag") == "https://example.com/a/c?a=1&b=2"
    assert canonical_url("http://[::1]:80/x") == "http://[::1]/x"
    assert canonical_url("../c?ref_src=twsrc", "https://example.org/a/b/") == "https://example.org/a/c"


# --------------------------------------------------------------------------- robots.txt

ROBOTS = """\
User-agent: *
Disallow: /
Allow: /prensa/
Disallow: /prensa/borradores/
Disallow: /*.pdf$
Allow: /buscar/*/resultados

User-agent: otherbot
Allow: /
"""


@pytest.mark.parametrize("path, allowed", [
    ("/prensa/x", True),                    # longest match: Allow /prensa/ beats Disallow /
    ("/prensa/2026/11/nota.html", True),
    ("/prensa/borradores/x", False),        # longer Disallow beats the Allow
    ("/otro/nota.html", False),
    ("/docs/informe.pdf", False),           # * and $ wildcards
    ("/docs/informe.pdf?v=2", False),       # ... the query string is part of the path matched
    ("/buscar/abc/resultados", True),
    ("/", False),
])
def test_robots_longest_match_and_wildcards(path, allowed):
    assert robots_allow(Protego.parse(ROBOTS), "https://gob.example" + path) is allowed


def test_robots_missing_allows_and_unreachable_refuses(server):
    async def ask(url):
        async with Fetcher() as f:
            return await f.robots.refusal(f, url, Policy(timeout=5, own_host="127.0.0.1"))

    server.routes["/robots.txt"] = Reply(404)
    assert asyncio.run(ask(server.url("/any/page"))) is None
    server.routes["/robots.txt"] = Reply(503)
    assert "robots.txt unreachable" in asyncio.run(ask(server.url("/any/page")))
    server.routes["/robots.txt"] = Reply(body=ROBOTS.encode())
    assert asyncio.run(ask(server.url("/prensa/x"))) is None
    assert asyncio.run(ask(server.url("/otro"))) == "disallowed by robots.txt"


# --------------------------------------------------------------------------- listing pages

def test_selector_matching_nothing_is_a_failed_poll_shown_in_status(server, tmp_path):
    server.routes["/robots.txt"] = Reply(404)
    server.routes["/list"] = Reply(body=b"<html><body><div class='new-layout'><a href='/n/1'>Nota</a></div></body></html>",
                                   headers={"Content-Type": "text/html"})
    server.routes["/empty-links"] = Reply(body=b"<html><body><h2 class='t'>Sin enlace</h2></body></html>",
                                          headers={"Content-Type": "text/html"})
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: redesigned\n    url: {server.url('/list')}\n    type: page\n"
                     f"    link_selector: 'li.story h3 a'\n    fetch_articles: false\n"
                     f"  - id: nolinks\n    url: {server.url('/empty-links')}\n    type: page\n"
                     f"    link_selector: 'h2.t'\n    fetch_articles: false\n")
    common = ["--feeds", str(feeds), "--db", str(tmp_path / "s.db")]
    (tmp_path / "k.yaml").write_text("rules:\n  - id: x\n    any: [fentanyl]\n")
    out = bw("run", "--once", "--json", *common, "--keywords", str(tmp_path / "k.yaml"), cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # every source failed: a runtime failure
    assert json.loads(out.stdout)["failed"] == 2
    status = {s["id"]: s for s in json.loads(bw("status", "--json", *common).stdout)}
    assert status["redesigned"]["consecutive_failures"] == 1
    assert status["redesigned"]["last_error"].startswith("selector matched nothing: link_selector 'li.story h3 a'")
    assert status["nolinks"]["last_error"].startswith("selector matched nothing")
    assert status["redesigned"]["last_success"] is None
