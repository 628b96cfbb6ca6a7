"""Ingestion end to end: a real HTTP server on 127.0.0.1, real parsing, SQLite on disk."""

from __future__ import annotations

import asyncio
import json

from conftest import Reply, feeds_for, gzipped, rss

from pipeline import store
from pipeline.cycle import run_cycle

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom test</title><id>urn:t</id><updated>2026-11-20T10:00:00Z</updated>
<entry><id>urn:a1</id><title>Extradition of cartel figure to the US approved</title>
<link rel="alternate" href="/news/a1"/><updated>2026-11-20T10:00:00Z</updated>
<content type="html">&lt;p&gt;A federal judge in Mexico approved the extradition of a Sinaloa Cartel lieutenant.&lt;/p&gt;</content>
<author><name>Ana</name></author></entry></feed>"""

JSON_FEED = json.dumps({
    "version": "https://jsonfeed.org/version/1.1", "title": "JSON test",
    "items": [{"id": "j1", "url": "https://news.example.org/j1", "title": "Migrantes esperan en Tijuana",
               "content_html": "<p>Cientos de migrantes esperan en albergues de Tijuana una cita de asilo.</p>",
               "date_published": "2026-11-21T08:00:00Z"}],
}).encode()


def cycle(db, feeds, matcher, sources=None):
    store.sync_sources(db, feeds.sources)
    return asyncio.run(run_cycle(db, feeds, matcher, sources))


def test_rss_atom_and_json_feed_are_ingested(server, tmp_path, db, matcher):
    server.routes["/rss"] = Reply(body=rss([
        {"title": "Fentanyl seizure at Nogales", "link": server.url("/story/1?utm_source=rss&fbclid=x#top"),
         "guid": "r1", "description": "<p>CBP officers seized fentanyl pills at the Nogales port of entry, Mexico border.</p>",
         "pubDate": "Fri, 20 Nov 2026 14:00:00 -0600"}]), headers={"Content-Type": "application/rss+xml"})
    server.routes["/atom"] = Reply(body=ATOM, headers={"Content-Type": "application/atom+xml"})
    server.routes["/json"] = Reply(body=JSON_FEED, headers={"Content-Type": "application/feed+json"})
    feeds = feeds_for(tmp_path / "feeds.yaml", [
        {"id": "r", "url": server.url("/rss")}, {"id": "a", "url": server.url("/atom")}, {"id": "j", "url": server.url("/json")}])
    result = cycle(db, feeds, matcher)
    assert result.ok == 3 and not result.failed
    rows = {r["source"]: r for r in db.query("SELECT * FROM articles")}
    assert rows["r"]["url"] == server.url("/story/1")  # tracking parameters and fragment removed
    assert rows["r"]["published"] == "2026-11-20T20:00:00Z"  # converted to UTC
    assert rows["a"]["url"] == server.url("/news/a1")  # relative link resolved
    assert rows["a"]["author"] == "Ana"
    assert "Tijuana" in rows["j"]["text"] and "<p>" not in rows["j"]["text"]
    rules = {(r["source"], r["rule"]) for r in db.query("SELECT a.source, h.rule FROM hits h JOIN articles a ON a.id = h.article")}
    assert {("r", "fentanyl"), ("a", "extradition"), ("a", "cartels"), ("j", "migration")} <= rules


def test_second_poll_is_conditional_and_304_costs_no_parse(server, tmp_path, db, matcher):
    server.routes["/feed"] = Reply(body=rss([{"title": "t", "link": "https://x.example/1", "guid": "1",
                                              "description": "d"}]), etag=True)
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "f", "url": server.url("/feed")}])
    first = cycle(db, feeds, matcher)
    second = cycle(db, feeds, matcher)
    assert first.new_articles == 1
    assert second.reports[0].status == 304 and second.reports[0].not_modified and second.new_articles == 0
    assert store.source_states(db)["f"]["etag"]


def test_failures_are_recorded_per_source_and_others_go_on(server, tmp_path, db, matcher):
    server.routes["/ok"] = Reply(body=rss([{"title": "ok", "link": "https://x.example/ok", "guid": "ok", "description": "d"}]))
    server.routes["/500"] = Reply(500, b"boom")
    server.routes["/slow"] = Reply(body=b"<rss/>", delay=3)
    server.routes["/loop"] = lambda h: Reply(302, headers={"Location": "/loop2"})
    server.routes["/loop2"] = lambda h: Reply(302, headers={"Location": "/loop"})
    server.routes["/big"] = Reply(body=b"<rss>" + b"x" * 2_000_000 + b"</rss>")
    server.routes["/html"] = Reply(body=b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Welcome</p></body></html>",
                                   headers={"Content-Type": "text/html"})
    server.routes["/broken"] = Reply(body=b"\x00\x01 this is not xml at all <<<>>>")
    server.routes["/429"] = Reply(429, b"slow down", headers={"Retry-After": "3600"})
    feeds = feeds_for(tmp_path / "feeds.yaml", [
        {"id": "ok", "url": server.url("/ok")}, {"id": "e500", "url": server.url("/500")},
        {"id": "slow", "url": server.url("/slow"), "timeout": "1s"}, {"id": "loop", "url": server.url("/loop")},
        {"id": "big", "url": server.url("/big"), "max_bytes": "1MB"}, {"id": "html", "url": server.url("/html")},
        {"id": "broken", "url": server.url("/broken")}, {"id": "r429", "url": server.url("/429")}])
    result = cycle(db, feeds, matcher)
    errors = {r.source: r.error for r in result.reports}
    assert errors["ok"] is None and result.new_articles == 1
    assert errors["e500"] == "HTTP 500"
    assert "timed out" in errors["slow"]
    assert "too many redirects" in errors["loop"]
    assert "cap" in errors["big"]
    assert "HTML page" in errors["html"]
    assert errors["broken"] and "not a feed" in errors["broken"]
    assert errors["r429"] == "HTTP 429"
    states = store.source_states(db)
    assert states["e500"]["consecutive_failures"] == 1 and states["e500"]["last_error"] == "HTTP 500"
    assert states["r429"]["retry_after_until"] > store.now_iso()
    cycle(db, feeds, matcher, [feeds.get("e500")])
    assert store.source_states(db)["e500"]["consecutive_failures"] == 2


def test_gzip_response_is_decoded(server, tmp_path, db, matcher):
    body = rss([{"title": "Gzipped item", "link": "https://x.example/g", "guid": "g", "description": "d"}])
    server.routes["/gz"] = Reply(body=gzipped(body), headers={"Content-Encoding": "gzip"})
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "gz", "url": server.url("/gz")}])
    assert cycle(db, feeds, matcher).new_articles == 1


def test_windows_1252_feed(server, tmp_path, db, matcher):
    body = rss([{"title": "Cártel del Golfo: detienen a líder en Reynosa", "link": "https://x.example/w",
                 "guid": "w", "description": "La Fiscalía informó la detención en Reynosa, Tamaulipas."}],
               encoding="windows-1252")
    assert "á".encode("cp1252") in body
    server.routes["/cp"] = Reply(body=body, headers={"Content-Type": "application/rss+xml"})
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "cp", "url": server.url("/cp")}])
    cycle(db, feeds, matcher)
    row = next(db.query("SELECT title FROM articles"))
    assert row["title"] == "Cártel del Golfo: detienen a líder en Reynosa"
    assert next(db.query("SELECT rule FROM hits"))["rule"] == "cartels"


def test_charset_only_in_http_header(server, tmp_path, db, matcher):
    body = ('<rss version="2.0"><channel><title>t</title><item><title>Migración en Chiapas</title>'
            "<link>https://x.example/h</link><guid>h</guid><description>d</description></item></channel></rss>").encode("cp1252")
    server.routes["/h"] = Reply(body=body, headers={"Content-Type": "text/xml; charset=windows-1252"})
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "h", "url": server.url("/h")}])
    cycle(db, feeds, matcher)
    assert next(db.query("SELECT title FROM articles"))["title"] == "Migración en Chiapas"


def test_duplicates_across_two_feeds_are_stored_once(server, tmp_path, db, matcher):
    item = {"title": "Extradited to Mexico", "link": server.url("/story/9?utm_campaign=a"), "guid": "same",
            "description": "A long enough description of the extradition of a cartel operator from Texas to Mexico."}
    server.routes["/a"] = Reply(body=rss([item]))
    server.routes["/b"] = Reply(body=rss([{**item, "link": server.url("/story/9?utm_campaign=b"), "guid": "other"}]))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "a", "url": server.url("/a")}, {"id": "b", "url": server.url("/b")}])
    first = cycle(db, feeds, matcher)
    assert first.new_articles == 1
    assert store.counts(db)["articles"] == 1
    again = cycle(db, feeds, matcher)
    assert again.new_articles == 0 and again.new_hits == 0
    assert db.execute("SELECT count(*) FROM guids").fetchone()[0] == 2  # both GUIDs known


def test_same_text_under_another_url_is_not_new(server, tmp_path, db, matcher):
    text = "The same wire text about fentanyl precursor seizures in Manzanillo, Mexico, published twice. " * 3
    title = "Precursors seized in Manzanillo"
    server.routes["/a"] = Reply(body=rss([{"title": title, "link": "https://one.example/x", "guid": "1", "description": text}]))
    server.routes["/b"] = Reply(body=rss([{"title": title, "link": "https://two.example/y", "guid": "2", "description": text}]))
    # under another headline it is another article (issue 19.3: titles that differ are never merged), in the same story
    server.routes["/c"] = Reply(body=rss([{"title": "Other headline", "link": "https://three.example/z", "guid": "3", "description": text}]))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "a", "url": server.url("/a")}, {"id": "b", "url": server.url("/b")},
                                                 {"id": "c", "url": server.url("/c")}])
    cycle(db, feeds, matcher)
    assert store.counts(db)["articles"] == 2
    assert db.execute("SELECT count(DISTINCT story) FROM articles").fetchone()[0] == 1


LISTING = b"""<!DOCTYPE html><html><body><nav><a href="/about">About</a></nav>
<ul><li class="s"><a href="/art/1.html">First story</a></li><li class="s"><a href="art/2.html?utm_source=home">Second</a></li>
<li class="s"><a href="javascript:alert(1)">bad</a></li><li class="s"><a href="/private/3.html">Hidden</a></li></ul></body></html>"""


def _article(title: str, body: str) -> bytes:
    return (f"<html><head><title>{title}</title><script>var x = 'Sinaloa Cartel';</script></head><body>"
            f"<header><nav>Home World Sinaloa Cartel menu</nav></header><article><h1>{title}</h1><p>{body}</p></article>"
            f"<div class='related'>More: Sinaloa Cartel quiz</div><footer>Footer Sinaloa Cartel</footer>"
            f"<!-- comment Sinaloa Cartel --></body></html>").encode()


def test_page_source_follows_links_extracts_main_text_and_respects_robots(server, tmp_path, db, matcher):
    server.routes["/robots.txt"] = Reply(body=b"User-agent: *\nDisallow: /private/\n")
    server.routes["/list/"] = Reply(body=LISTING, headers={"Content-Type": "text/html"})
    server.routes["/art/1.html"] = Reply(body=_article("Gun trafficking ring", "ATF agents say the ring smuggled rifles across the border to Mexico for a trafficking network."))
    server.routes["/list/art/2.html"] = Reply(body=_article("Weather", "Sunny skies over the capital this weekend."))
    server.routes["/private/3.html"] = Reply(body=_article("Secret", "never fetched"))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "p", "url": server.url("/list/"), "type": "page",
                                                  "link_selector": "li.s a"}])
    result = cycle(db, feeds, matcher)
    assert result.ok == 1
    rows = {r["url"]: r for r in db.query("SELECT * FROM articles")}
    assert set(rows) == {server.url("/art/1.html"), server.url("/list/art/2.html")}
    assert "/private/3.html" not in server.hits
    text = rows[server.url("/art/1.html")]["text"]
    assert "smuggled rifles" in text and "menu" not in text and "quiz" not in text and "Footer" not in text
    hits = [r["rule"] for r in db.query("SELECT rule FROM hits")]
    assert hits == ["arms"]  # the boilerplate's "Sinaloa Cartel" did not count


def test_teaser_feed_fetches_article_page(server, tmp_path, db, matcher):
    server.routes["/teaser"] = Reply(body=rss([{"title": "Read more", "link": server.url("/full"), "guid": "t",
                                                "description": "Short teaser…"}]))
    server.routes["/full"] = Reply(body=_article("Full", "The Jalisco New Generation Cartel expanded into Guanajuato. " * 5))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "t", "url": server.url("/teaser"), "fetch_articles": "true"}])
    cycle(db, feeds, matcher)
    assert "Jalisco New Generation Cartel expanded" in next(db.query("SELECT text FROM articles"))["text"]
    assert next(db.query("SELECT rule FROM hits"))["rule"] == "cartels"


def test_rel_canonical_dedups_page_articles(server, tmp_path, db, matcher):
    page = b"<html><head><link rel='canonical' href='/canon'></head><body><article><p>" + b"Text about things. " * 20 + b"</p></article></body></html>"
    server.routes["/robots.txt"] = Reply(404)
    server.routes["/l"] = Reply(body=b"<a class='x' href='/v1'>a</a><a class='x' href='/v2'>b</a>")
    server.routes["/v1"] = Reply(body=page)
    server.routes["/v2"] = Reply(body=page)
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "l", "url": server.url("/l"), "type": "page", "link_selector": "a.x"}])
    cycle(db, feeds, matcher)
    assert [r["url"] for r in db.query("SELECT url FROM articles")] == [server.url("/canon")]


def test_status_reports_sources(server, tmp_path, db, matcher):
    from pipeline.status import source_status

    server.routes["/ok"] = Reply(body=rss([{"title": "x", "link": "https://x.example/1", "guid": "1", "description": "d"}]))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "ok", "url": server.url("/ok")}, {"id": "bad", "url": server.url("/nope")}])
    cycle(db, feeds, matcher)
    rows = {r["id"]: r for r in source_status(db, feeds)}
    assert rows["ok"]["last_error"] is None and rows["ok"]["items_seen"] == 1 and rows["ok"]["next_poll"]
    assert rows["bad"]["last_error"] == "HTTP 404" and rows["bad"]["consecutive_failures"] == 1
    assert set(rows["ok"]) >= {"id", "name", "url", "last_poll", "last_success", "consecutive_failures", "last_error",
                               "items_seen", "next_poll"}


def test_worker_process_pool_gives_the_same_results(server, tmp_path, matcher, shipped_rules):
    from pipeline.cycle import CpuPool

    server.routes["/a"] = Reply(body=rss([{"title": f"Fentanyl case {k}", "link": f"https://x.example/{k}", "guid": str(k),
                                           "description": f"Case {k}: fentanyl pills seized near the Mexico border."}
                                          for k in range(10)]))
    server.routes["/bad"] = Reply(body=b"<html><body>not a feed</body></html>")
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "a", "url": server.url("/a")}, {"id": "bad", "url": server.url("/bad")}])
    results = {}
    for mode in ("inline", "pool"):
        db = store.connect(tmp_path / f"{mode}.db")
        store.sync_sources(db, feeds.sources)
        pool = CpuPool(shipped_rules) if mode == "pool" else None
        try:
            r = asyncio.run(run_cycle(db, feeds, matcher, pool=pool))
        finally:
            if pool:
                pool.close()
        results[mode] = (r.new_articles, r.new_hits, {x.source: x.error for x in r.reports},
                         sorted(tuple(row.values()) for row in db.query("SELECT a.url, h.rule, h.snippet FROM hits h JOIN articles a ON a.id = h.article")))
    assert results["inline"] == results["pool"]
    assert results["pool"][0] == 10 and results["pool"][1] == 10 and "HTML page" in results["pool"][2]["bad"]


def _many_feeds(server, tmp_path, n: int):
    """n sources (a big cycle: group commit, the writer process); copies of one text across sources."""
    shared = ("Mexican authorities extradited a Sinaloa Cartel commander to the United States on Tuesday, where he "
              "faces fentanyl trafficking charges filed in a federal court in New York, officials said, adding that "
              "the transfer followed months of talks under the security dialogue between the two governments.")
    entries = []
    for i in range(n):
        items = [{"title": f"Local item {i}-{k}", "link": f"https://site{i}.example/{k}", "guid": f"{i}-{k}",
                  "description": f"Item {k} of source {i}: the council met on water prices and school repairs {i * 7 + k}."}
                 for k in range(3)]
        if i % 10 == 0:  # a syndicated copy: same text, own URL, other headline
            items.append({"title": f"Extradition ({i})", "link": f"https://site{i}.example/ex", "guid": f"{i}-ex",
                          "description": shared})
        if i % 15 == 0:  # the same URL listed by several sources: one article
            items.append({"title": "Arms seizure", "link": "https://wire.example/arms", "guid": "arms",
                          "description": "Soldiers seized rifles and ammunition bound for a cartel near the border."})
        server.routes[f"/f{i}"] = Reply(body=rss(items))
        entries.append({"id": f"s{i}", "url": server.url(f"/f{i}")})
    return feeds_for(tmp_path / "feeds.yaml", entries)


def test_writer_process_stores_what_the_in_process_writer_stores(server, tmp_path, matcher, monkeypatch):
    from pipeline import cycle

    feeds = _many_feeds(server, tmp_path, 60)
    results = {}
    for mode in ("thread", "process"):
        monkeypatch.setattr(cycle.WriterProcess, "worth_it", classmethod(lambda cls, mode=mode: mode == "process"))
        started = []
        monkeypatch.setattr(cycle.WriterProcess, "_start",
                            lambda self, orig=cycle.WriterProcess._start: started.append(1) or orig(self))
        db = store.connect(tmp_path / f"{mode}.db")
        store.sync_sources(db, feeds.sources)
        r = asyncio.run(run_cycle(db, feeds, matcher))
        assert bool(started) == (mode == "process")
        stories = sorted(sorted(row["urls"].split(" ")) for row in db.query(
            "SELECT group_concat(url, ' ') AS urls FROM articles GROUP BY story HAVING count(*) > 1"))
        results[mode] = (r.new_articles, r.new_hits, sorted((x.source, x.new_articles, x.new_hits, x.error) for x in r.reports),
                         sorted(tuple(row.values()) for row in db.query(
                             "SELECT a.url, h.rule, h.snippet FROM hits h JOIN articles a ON a.id = h.article")),
                         stories, db.execute("SELECT count(*) FROM guids").fetchone()[0])
        db.close()
    assert results["thread"] == results["process"]
    new, hits, reports, stored_hits, stories, guids = results["process"]
    assert new == 60 * 3 + 6 + 1 and guids == 60 * 3 + 6 + 4  # the shared URL: one article, four sources' GUIDs
    assert [len(s) for s in stories] == [6]  # the six copies are one story
    assert hits == len(stored_hits) > 0


def test_a_dead_writer_process_loses_nothing(tmp_path):
    """The writer process killed between batches: the next batch is written in the main process,
    and a batch written again after a crash (committed before the process died) is not stored twice."""
    import os
    import signal

    from pipeline.cycle import WriterProcess
    from pipeline.store import NewArticle, PollOutcome

    path = tmp_path / "w.db"
    db = store.connect(path)
    db.execute("INSERT INTO sources (id, url) VALUES ('s', 'https://s.example/feed')")

    def batch(k: int) -> list[PollOutcome]:
        arts = [NewArticle(f"https://s.example/{k}-{j}", f"{k}-{j}", f"Title {k} {j}", f"Text {k} {j} " * 30, "",
                           "2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z", f"fp{k}-{j}", [], [])
                for j in range(3)]
        return [PollOutcome("s", True, 200, articles=arts, items_seen=3)]

    async def main():
        writer = WriterProcess(str(path))
        try:
            first = batch(1)
            saved = await writer.save(first, fallback=lambda: store.save_polls(db, first))
            assert [a.id is not None for a in saved[0]] == [True] * 3 and saved[0][0].story_id
            (pid,) = list(writer.executor._processes)
            os.kill(pid, signal.SIGKILL)
            second, here = batch(2), []
            saved = await writer.save(second, fallback=lambda: here.append(1) or store.save_polls(db, second))
            assert here == [1] and len(saved[0]) == 3 and all(a.id for a in saved[0])
            again = batch(1)  # as if the dead process had committed it: a new process writes it
            saved = await writer.save(again, fallback=lambda: store.save_polls(db, again))
            assert saved == [[]] and all(a.duplicate_of for a in again[0].articles)
        finally:
            writer.close()

    asyncio.run(main())
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 6


def test_worker_processes_go_when_their_parent_is_killed(tmp_path):
    """A parent killed with SIGKILL (kill -9, the OOM killer) cannot stop its parser and writer
    processes: they notice and exit instead of waiting forever."""
    import os
    import signal
    import subprocess
    import sys
    import time

    db = store.connect(tmp_path / "k.db")
    db.close()
    script = f"""
import asyncio, sys
from pipeline.cycle import CpuPool, WriterProcess, _prepare_in_worker
from pipeline.config import load_rules
async def main():
    pool = CpuPool(load_rules({str(shipped_rules_path())!r}))
    await pool.run(_prepare_in_worker, [], "2026-11-23T00:00:00Z", fallback=list)
    writer = WriterProcess({str(tmp_path / "k.db")!r})
    await writer.save([], fallback=list)
    print(*pool.executor._processes, *writer.executor._processes, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        children = [int(p) for p in parent.stdout.readline().split()]
        assert len(children) == 2
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    for _ in range(600):  # the children check every second; a generous bound for a loaded machine
        if not any(alive(pid) for pid in children):
            break
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children)


def shipped_rules_path():
    from pathlib import Path

    return Path(__file__).parent.parent / "keywords.yaml"
