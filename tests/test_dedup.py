"""Canonical URLs, fingerprints, and stories (syndicated copies share one story)."""

from __future__ import annotations

import asyncio

from conftest import Reply, feeds_for, rss

from pipeline import store
from pipeline.cycle import run_cycle
from pipeline.dedup import canonical_url, fingerprint, same_story, sketch
from pipeline.demo import load_articles
from pipeline.fold import Folded


def test_canonical_url():
    assert canonical_url("HTTPS://News.Example.ORG:443/a/b?utm_source=x&id=7&fbclid=y#frag") == "https://news.example.org/a/b?id=7"
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/x?gclid=1") == "http://example.org:8080/x"
    assert canonical_url("../c?ref_src=twsrc", "https://example.org/a/b/") == "https://example.org/a/c"


def test_fingerprint_ignores_case_spacing_and_punctuation():
    a = Folded.of("Extradición  de   un líder,\nsegún la FGR.").words
    b = Folded.of("extradicion de un lider segun la fgr").words
    assert fingerprint(a) == fingerprint(b)


def _words(text: str) -> list[str]:
    return Folded.of(text).words


def _overlap(a: str, b: str) -> bool:
    sa, sb = set(sketch(_words(a))), set(sketch(_words(b)))
    return same_story(len(sa & sb), len(sa), len(sb))


_, ARTICLES = load_articles()
TALKS = " ".join(next(a for a in ARTICLES if a["id"] == "talks-wire")["paragraphs"])
ANALYSIS = " ".join(next(a for a in ARTICLES if a["id"] == "talks-courier-analysis")["paragraphs"])


def test_sketch_groups_copy_and_excerpt_but_not_another_article_on_the_same_meeting():
    republished = "This story was first published by Frontera Wire. " + TALKS + " Subscribe to our newsletter today."
    excerpt = " ".join(next(a for a in ARTICLES if a["id"] == "talks-wire")["paragraphs"][:2])
    assert _overlap(TALKS, republished)
    assert _overlap(TALKS, excerpt) and _overlap(excerpt, TALKS)
    assert not _overlap(TALKS, ANALYSIS)


def test_stories_in_the_database(server, tmp_path, db, matcher):
    """A long article, a republished copy (other title, boilerplate), an excerpt: one story. Another article
    on the same meeting: its own story."""
    paragraphs = next(a for a in ARTICLES if a["id"] == "talks-wire")["paragraphs"]
    html = "".join(f"<p>{p}</p>" for p in paragraphs)
    server.routes["/wire"] = Reply(body=rss([{"title": "US and Mexico agree to tighten precursor controls",
                                              "link": "https://wire.example/talks", "guid": "w1", "description": html}]))
    server.routes["/courier"] = Reply(body=rss([
        {"title": "Mexico City talks end with a chemicals deal", "link": "https://courier.example/2026/talks",
         "guid": "c1", "description": "<p>Republished with permission from Frontera Wire.</p>" + html
                                      + "<p>Sign up for the Courier newsletter.</p>"},
        {"title": "Analysis: what the dialogue left out", "link": "https://courier.example/2026/analysis",
         "guid": "c2", "description": "".join(f"<p>{p}</p>" for p in next(a for a in ARTICLES if a["id"] == "talks-courier-analysis")["paragraphs"])},
    ]))
    server.routes["/monitor"] = Reply(body=rss([{"title": "Read: outcomes of the talks", "link": "https://monitor.example/r",
                                                 "guid": "m1", "description": "".join(f"<p>{p}</p>" for p in paragraphs[:2])}]))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": "wire", "url": server.url("/wire")},
                                                 {"id": "courier", "url": server.url("/courier")},
                                                 {"id": "monitor", "url": server.url("/monitor")}])
    store.sync_sources(db, feeds.sources)
    for src in feeds.sources:  # in order, as a scheduler would see them arrive
        asyncio.run(run_cycle(db, feeds, matcher, [src]))
    story = {r["url"]: r["story"] for r in db.query("SELECT url, story FROM articles")}
    assert story["https://wire.example/talks"] == story["https://courier.example/2026/talks"] == story["https://monitor.example/r"]
    assert story["https://courier.example/2026/analysis"] != story["https://wire.example/talks"]
    assert next(db.query("SELECT copies FROM stories WHERE id = ?", [story["https://wire.example/talks"]]))["copies"] == 3
