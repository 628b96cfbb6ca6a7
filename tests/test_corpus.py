"""Robustness: every feed of feedparser's own test suite (2,106 well- and ill-formed files,
in ../shared/corpus) served as a source. The cycle must finish, with each source either
ingested or failed with a recorded reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import Reply

from pipeline import store
from pipeline.config import FeedsConfig, Source
from pipeline.cycle import run_cycle

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "feedparser-tests"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser's test corpus is not at {CORPUS} "
                    "(it lives beside the checkout, in ../shared/corpus; a fresh clone does not have it)")
def test_every_corpus_feed_leaves_the_cycle_running(server, db, matcher):
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".rdf", ".json", ".atom", ".rss"))
    assert len(files) > 2000, f"corpus not found at {CORPUS}"
    sources = []
    for i, path in enumerate(files):
        server.routes[f"/c/{i}"] = Reply(body=path.read_bytes(), headers={"Content-Type": "application/xml"})
        sources.append(Source(id=f"c{i}", url=server.url(f"/c/{i}"), name=str(path.relative_to(CORPUS)), timeout=30))
    feeds = FeedsConfig(tuple(sources), concurrency=20, per_host=20)
    store.sync_sources(db, feeds.sources)
    result = asyncio.run(run_cycle(db, feeds, matcher))
    assert len(result.reports) == len(files)
    assert all(r.ok or r.error for r in result.reports)
    states = store.source_states(db)
    assert all(states[s.id]["last_poll"] for s in sources)
    failed = [r for r in result.reports if not r.ok]
    assert all(states[r.source]["last_error"] for r in failed)
    print(f"{len(files)} corpus feeds: {result.ok} ingested, {len(failed)} failed with a reason, "
          f"{result.new_articles} articles, {result.seconds:.1f}s")
    assert result.ok > len(files) * 0.6
