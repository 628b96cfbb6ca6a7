"""Timeouts: the configured limits are the ones applied, and the error names the one that fired."""

from __future__ import annotations

import asyncio

from conftest import Reply, rss

from pipeline.config import load_feeds
from pipeline.fetch import Fetcher, Policy, origin

FEED = rss([{"title": "Slow press room", "link": "https://x.example/slow", "guid": "s", "description": "d"}])


def get(url: str, policy: Policy):
    async def go():
        async with Fetcher() as f:
            return await f.get(url, policy)

    return asyncio.run(go())


def test_read_timeout_from_feeds_yaml_fires_and_is_named(server, write):
    # The server answers after 15 s; the read limit (0.3 s) must be the one that fires, not
    # httpx's 5 s default and not the 60 s total.
    server.routes["/late"] = Reply(body=FEED, delay=15)
    feeds = load_feeds(write("feeds.yaml", f"""
        sources:
          - id: late
            url: {server.url("/late")}
            timeout: {{read: 0.3s, total: 60s}}
    """))
    src = feeds.get("late")
    assert (src.timeout, src.read_timeout, src.connect_timeout) == (60.0, 0.3, None)
    r = get(src.url, Policy(src.timeout, src.max_bytes, origin(src.url), (), src.connect_timeout, src.read_timeout))
    assert r.error == "timed out after 0.3s without data (read timeout)"


def test_total_deadline_is_named_when_it_fires(server):
    server.routes["/late"] = Reply(body=FEED, delay=15)
    r = get(server.url("/late"), Policy(timeout=0.4, own_origin=origin(server.url("/")), read=30))
    assert r.error == "timed out after 0.4s (total deadline)"


def test_configured_timeout_longer_than_httpx_default_is_honoured(server):
    # httpx gives up after 5 s unless told otherwise: a feed that answers after 6 s with
    # `timeout: 60s` must be fetched, not failed with a misleading "timed out after 60s".
    server.routes["/slowish"] = Reply(body=FEED, delay=6)
    r = get(server.url("/slowish"), Policy(timeout=60, own_origin=origin(server.url("/"))))
    assert r.error is None and r.status == 200 and r.body == FEED


def test_timeout_mapping_is_validated(write):
    bad = write("feeds.yaml", """
        defaults: {timeout: {connect: 5s, read: soon, linger: 3s}}
        sources:
          - id: a
            url: https://example.org/feed
    """)
    import pytest

    from pipeline.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_feeds(bad)
    text = str(err.value)
    assert "timeout read must be a duration" in text and "unknown key 'linger' in timeout" in text
    ok = write("ok.yaml", """
        defaults: {timeout: {connect: 5s, read: 30s}}
        sources:
          - id: a
            url: https://example.org/feed
          - id: b
            url: https://example.org/feed2
            timeout: 90s
    """)
    cfg = load_feeds(ok)
    assert (cfg.get("a").connect_timeout, cfg.get("a").read_timeout, cfg.get("a").timeout) == (5, 30, 30)
    assert (cfg.get("b").connect_timeout, cfg.get("b").read_timeout, cfg.get("b").timeout) == (None, None, 90)


def test_the_per_host_limit_holds_with_many_connections_to_one_host():
    """per_host = 20 to one host: 20 requests in flight at once (the connections are spread over
    several clients, see fetch.SHARD) and never more; every request answered."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"now": 0, "most": 0}
    cond = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            with cond:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
                cond.notify_all()
                cond.wait_for(lambda: state["most"] >= 20, timeout=60)  # hold until 20 are in flight
                state["now"] -= 1
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    policy = Policy(timeout=90, allow_hosts=(f"127.0.0.1:{httpd.server_address[1]}",))

    async def main():
        async with Fetcher(concurrency=60, per_host=20) as f:
            return await asyncio.gather(*(f.get(f"{base}/{k}", policy) for k in range(60)))

    try:
        results = asyncio.run(main())
    finally:
        httpd.shutdown()
    assert [r.status for r in results] == [200] * 60 and all(r.error is None for r in results)
    assert state["most"] == 20
