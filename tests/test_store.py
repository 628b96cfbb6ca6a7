"""The hit database: migrations, concurrency, crash consistency, FTS, queries, prune, OPML, Datasette."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from conftest import Reply, feeds_for, free_port, rss, wait_until

from pipeline import store
from pipeline.cycle import run_cycle
from pipeline.store import NewArticle, PollOutcome, save_poll

ROOT = Path(__file__).parent.parent


def _source(db, sid="s"):
    store.sync_sources(db, [type("S", (), {"id": sid, "name": sid.upper(), "url": f"http://{sid}.example/",
                                           "type": "feed", "enabled": True})()])


def _article(i: int, published: str = "2026-11-20T10:00:00Z", rule: str | None = "fentanyl", text: str = "") -> NewArticle:
    from pipeline.rules import Hit

    hits = [Hit(rule, ["fentanyl"], f"snippet {i} fentanyl", [[10, 18]])] if rule else []
    return NewArticle(f"https://x.example/{i}", f"g{i}", f"Title {i}", text or f"Body text number {i} about fentanyl",
                      "", published, published, f"fp{i}", [], hits)


def test_migration_from_the_first_schema_keeps_every_row(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    import sqlite_utils

    old = sqlite_utils.Database(conn)
    store.apply_migrations(old, upto=1)
    assert store.schema_version(old) == 1
    conn.execute("INSERT INTO sources (id, name, url) VALUES ('s', 'S', 'http://s/')")
    conn.execute("INSERT INTO stories (id, title) VALUES (1, 't')")
    conn.execute("INSERT INTO articles (id, source, guid, url, title, text, published, fetched, fingerprint, story)"
                 " VALUES (1, 's', 'g', 'http://s/1', 'Old title', 'old fentanyl text', '2026-01-01T00:00:00Z',"
                 " '2026-01-01T00:00:00Z', 'fp', 1)")
    conn.execute("INSERT INTO hits (article, rule, terms, snippet, marks, created) VALUES (1, 'fentanyl', '[]', 's', '[]', 'x')")
    conn.close()
    db = store.connect(path)
    assert store.schema_version(db) == len(store.MIGRATIONS)
    assert store.counts(db) == {"sources": 1, "articles": 1, "stories": 1, "hits": 1}
    assert next(db.query("SELECT backfilled FROM hits"))["backfilled"] == 0
    assert next(db.query("SELECT rule_version, suggested FROM hits")) == {"rule_version": None, "suggested": 0}
    assert [r["title"] for r in store.query_hits(db, store.HitQuery(search="fentanyl"))] == ["Old title"]
    assert "subscribers" in db.table_names() and "deliveries" in db.table_names()


def test_wal_and_busy_timeout(sqlite_db):
    assert sqlite_db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10000


def test_reader_during_write_cycle_never_sees_database_locked(tmp_path, server, matcher):
    for i in range(20):
        server.routes[f"/f{i}"] = Reply(body=rss([
            {"title": f"Fentanyl item {i}-{k}", "link": f"https://x.example/{i}/{k}", "guid": f"{i}-{k}",
             "description": f"Report {i}-{k}: fentanyl seized at the border with Mexico. " * 20} for k in range(40)]))
    feeds = feeds_for(tmp_path / "feeds.yaml", [{"id": f"f{i}", "url": server.url(f"/f{i}")} for i in range(20)])
    path = tmp_path / "busy.db"
    db = store.connect(path)
    store.sync_sources(db, feeds.sources)
    errors, reads, stop = [], [0], threading.Event()

    def reader():
        rdb = store.connect(path)
        while not stop.is_set():
            try:
                store.query_hits(rdb, store.HitQuery(rules=["fentanyl"], limit=20))
                rdb.execute("SELECT count(*) FROM articles").fetchone()
                reads[0] += 1
            except sqlite3.OperationalError as exc:
                errors.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        result = asyncio.run(run_cycle(db, feeds, matcher))
    finally:
        stop.set()
        t.join(10)
    assert result.ok == 20 and result.new_articles == 800
    assert not errors and reads[0] > 10


def test_writer_waits_for_a_reader_holding_a_snapshot(tmp_path):
    """BEGIN IMMEDIATE + busy timeout: a long read transaction does not turn a write into SQLITE_BUSY."""
    path = tmp_path / "x.db"
    writer = store.connect(path)
    _source(writer)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM articles").fetchone()
    save_poll(writer, PollOutcome("s", True, 200, articles=[_article(1)]), lambda *a: False)
    reader.execute("COMMIT")
    assert store.counts(writer)["articles"] == 1


CRASH_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {root!r})
from pipeline import store
from pipeline.config import load_feeds, load_rules
from pipeline.cycle import run_cycle
from pipeline.rules import compile_rules
db = store.connect({db!r})
feeds = load_feeds({feeds!r})
store.sync_sources(db, feeds.sources)
print("started", flush=True)
asyncio.run(run_cycle(db, feeds, compile_rules(load_rules({kw!r}))))
"""


def test_kill_during_a_cycle_then_a_clean_cycle_gives_correct_counts(tmp_path, server):
    n_feeds, per_feed = 30, 10
    for i in range(n_feeds):
        server.routes[f"/f{i}"] = Reply(body=rss([{"title": f"Cartel story {i}-{k}", "link": f"https://x.example/{i}/{k}",
                                                    "guid": f"{i}-{k}", "description": f"The Sinaloa Cartel report {i} {k}. " * 10}
                                                   for k in range(per_feed)]), delay=0.05 * (i % 10))
    feeds_path = tmp_path / "feeds.yaml"
    feeds = feeds_for(feeds_path, [{"id": f"f{i}", "url": server.url(f"/f{i}")} for i in range(n_feeds)], concurrency=3)
    db_path = tmp_path / "crash.db"
    script = CRASH_SCRIPT.format(root=str(ROOT), db=str(db_path), feeds=str(feeds_path), kw=str(ROOT / "keywords.yaml"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"started"
    check = store.connect(db_path)
    assert wait_until(lambda: store.counts(check)["articles"] >= per_feed * 3, timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    partial = store.counts(check)
    assert 0 < partial["articles"] < n_feeds * per_feed
    assert partial["articles"] % per_feed == 0  # whole polls only
    assert partial["hits"] == partial["articles"]  # no article without its hits
    store.sync_sources(check, feeds.sources)
    from pipeline.config import load_rules
    from pipeline.rules import compile_rules

    asyncio.run(run_cycle(check, feeds, compile_rules(load_rules(ROOT / "keywords.yaml"))))
    final = store.counts(check)
    assert final["articles"] == n_feeds * per_feed and final["hits"] == n_feeds * per_feed
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _seed(db):
    _source(db, "a")
    _source(db, "b")
    save_poll(db, PollOutcome("a", True, 200, articles=[
        _article(1, "2026-11-20T10:00:00Z", "fentanyl", "Precursor chemicals seized in Manzanillo"),
        _article(2, "2026-11-21T10:00:00Z", "cartels", "Los Chapitos and La Mayiza clash in Culiacán")]), lambda *a: False)
    save_poll(db, PollOutcome("b", True, 200, articles=[_article(3, "2026-11-22T10:00:00Z", "fentanyl", "Pill presses found"),
                                                         _article(4, "2026-11-22T11:00:00Z", None, "No hit here")]),
              lambda *a: False)


def test_hits_filters(db):
    _seed(db)
    q = lambda **kw: [r["title"] for r in store.query_hits(db, store.HitQuery(**kw))]  # noqa: E731
    assert q() == ["Title 3", "Title 2", "Title 1"]  # newest first, only articles with hits
    assert q(rules=["fentanyl"]) == ["Title 3", "Title 1"]
    assert q(source="a") == ["Title 2", "Title 1"]
    assert q(since="2026-11-21T00:00:00Z") == ["Title 3", "Title 2"]
    assert q(until="2026-11-21T00:00:00Z") == ["Title 1"]
    assert q(search="manzanillo") == ["Title 1"]
    assert q(search="culiacan") == ["Title 2"]  # FTS ignores diacritics
    assert q(limit=1) == ["Title 3"]
    assert q(rules=[]) == []


def cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_hits_cli_output_formats(tmp_path):
    path = tmp_path / "h.db"
    db = store.connect(path)
    _seed(db)
    out = cli("hits", "--db", str(path), "--json", "--rule", "fentanyl")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["title"] for r in lines] == ["Title 3", "Title 1"]
    assert set(lines[0]) == {"url", "title", "source", "published", "fetched", "rules", "snippet", "story", "language",
                             "rule_versions", "rules_modified"}
    assert lines[0]["rules"] == ["fentanyl"] and "**" in lines[0]["snippet"]
    csv_out = cli("hits", "--db", str(path), "--csv", "--since", "2026-11-21")
    assert csv_out.stdout.splitlines()[0] == "published,source,rules,title,url,story,snippet"
    assert len(csv_out.stdout.splitlines()) == 3
    table = cli("hits", "--db", str(path), "--tag", "drugs", env={"COLUMNS": "150"})
    assert "Title 3" in table.stdout and "Title 2" not in table.stdout
    bad = cli("hits", "--db", str(path), "--since", "yesterday-ish")
    assert bad.returncode == 2 and "relative time" in bad.stderr
    bad_fts = cli("hits", "--db", str(path), "--search", '"unbalanced')
    assert bad_fts.returncode == 2 and "invalid search query" in bad_fts.stderr


def test_prune_deletes_old_articles_without_hits_only(db):
    _seed(db)
    db.execute("UPDATE articles SET fetched = '2020-01-01T00:00:00Z'")
    assert store.prune(db, "2025-01-01T00:00:00Z") == 1
    assert store.counts(db)["articles"] == 3 and store.counts(db)["hits"] == 3


def test_opml_round_trip(tmp_path):
    from pipeline.config import load_feeds
    from pipeline.opml import export_opml, import_opml

    original = load_feeds(ROOT / "feeds.yaml")
    opml = export_opml(original)
    imported = import_opml(opml.encode(), None).new
    assert ([(s.id, s.url, s.name, s.type, s.link_selector) for s in imported]
            == [(s.id, s.url, s.name, s.type, s.link_selector) for s in original.sources])  # pages come back too
    again = import_opml(opml.encode(), original)
    assert again.new == [] and again.known == len(original.sources)  # nothing new
    target = tmp_path / "feeds.yaml"
    target.write_text("# my comment\nsources:\n  - id: keep\n    url: https://keep.example/feed\n")
    src = tmp_path / "in.opml"
    src.write_text(opml)
    res = cli("opml", "import", str(src), "--feeds", str(target))
    assert res.returncode == 0, res.stderr
    text = target.read_text()
    assert text.startswith("# my comment") and "insight-crime" in text
    assert len(load_feeds(target).sources) == 1 + len(original.sources)


def test_datasette_serves_canned_queries(tmp_path):
    import urllib.request

    from pipeline.browse import serve_command

    path = tmp_path / "browse.db"
    db = store.connect(path)
    _seed(db)
    db.close()
    port = free_port()
    proc = subprocess.Popen(serve_command(str(path), "127.0.0.1", port, open_browser=False),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def fetch():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/browse/latest_hits.json?_shape=array", timeout=2).read()
            except OSError:
                return None

        assert wait_until(lambda: fetch() is not None, timeout=30)
        rows = json.loads(fetch())
        assert [r["title"] for r in rows] == ["Title 3", "Title 2", "Title 1"]
        by_rule = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/browse/hits_by_rule.json?rule=cartels&_shape=array", timeout=5).read())
        assert [r["title"] for r in by_rule] == ["Title 2"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_url_migration_recanonicalises_and_merges_collisions_without_losing_deliveries(tmp_path):
    """Migration 4 moves stored URLs to the w3lib canonical form; rows that become one URL merge into
    the oldest, keeping its GUIDs, hits and delivery records (so nothing already sent is owed again)."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    import sqlite_utils

    old = sqlite_utils.Database(conn)
    store.apply_migrations(old, upto=3)
    conn.execute("INSERT INTO sources (id, name, url) VALUES ('s', 'S', 'http://s/')")
    conn.execute("INSERT INTO stories (id, title, copies) VALUES (1, 't', 1), (2, 't2', 1)")
    rows = [(1, "https://x.example:443/a/./b/../story?b=2&a=1", 1, "fp1"),  # -> https://x.example/a/story?a=1&b=2
            (2, "https://x.example/a/story?a=1&b=2&utm_source=feed", 2, "fp2"),  # same page, stored twice before
            (3, "http://x.example/caf%c3%a9?q=%7e", 2, "fp3"),  # only its spelling changes
            (4, "https://x.example/other", 2, "fp4")]  # unchanged
    for aid, url, story, fp in rows:
        conn.execute("INSERT INTO articles (id, source, guid, url, title, text, published, fetched, fingerprint, story)"
                     " VALUES (?, 's', ?, ?, 'T', 'fentanyl text', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', ?, ?)",
                     (aid, f"g{aid}", url, fp, story))
        conn.execute("INSERT INTO guids (source, guid, article) VALUES ('s', ?, ?)", (f"g{aid}", aid))
    conn.execute("INSERT INTO hits (id, article, rule, terms, snippet, marks, created) VALUES"
                 " (1, 1, 'fentanyl', '[]', 's', '[]', 'x'), (2, 2, 'fentanyl', '[]', 's', '[]', 'x'),"
                 " (3, 2, 'cartels', '[]', 's', '[]', 'x')")
    conn.execute("INSERT INTO subscribers (email, token, created) VALUES ('a@x.example', 't', 'x')")
    conn.execute("INSERT INTO deliveries (id, subscriber, period, message_id, status, created) VALUES"
                 " (1, 'a@x.example', 'p', 'm', 'sent', 'x')")
    conn.execute("INSERT INTO delivery_hits (delivery, hit, story) VALUES (1, 2, 2), (1, 3, 2)")
    conn.close()

    db = store.connect(path)
    assert store.schema_version(db) == len(store.MIGRATIONS)
    urls = {r["id"]: r["url"] for r in db.query("SELECT id, url FROM articles")}
    assert urls == {1: "https://x.example/a/story?a=1&b=2", 3: "http://x.example/caf%C3%A9?q=~",
                    4: "https://x.example/other"}
    assert {r["guid"]: r["article"] for r in db.query("SELECT guid, article FROM guids")} == {
        "g1": 1, "g2": 1, "g3": 3, "g4": 4}
    assert sorted((r["article"], r["rule"]) for r in db.query("SELECT article, rule FROM hits")) == [
        (1, "cartels"), (1, "fentanyl")]
    # the sent delivery still covers both rules: its fentanyl record now points at the kept hit
    assert sorted(r["hit"] for r in db.query("SELECT hit FROM delivery_hits")) == [1, 3]
    assert store.owed_hits(db, "a@x.example", ["fentanyl", "cartels"], "") == []
    assert [r["title"] for r in store.query_hits(db, store.HitQuery(search="fentanyl"))] == ["T"]


def test_hits_record_the_version_of_the_rule_that_made_them(tmp_path):
    """Provenance: each hit stores its rule's definition hash and the file's mtime; `hits --json`
    shows them per rule; editing one rule changes that rule's version only."""
    from pipeline.config import load_rules
    from pipeline.rules import compile_rules

    kw = tmp_path / "keywords.yaml"
    kw.write_text("rules:\n  - id: fentanyl\n    any: [fentanyl]\n  - id: cartels\n    any: [cartel]\n")
    os.utime(kw, (1_700_000_000, 1_700_000_000))
    first = compile_rules(load_rules(kw))
    path = tmp_path / "p.db"
    db = store.connect(path)
    _source(db)
    art = _article(1, text="A cartel moved fentanyl")
    art.hits = first.match(art.title, art.text)
    save_poll(db, PollOutcome("s", True, 200, articles=[art]))
    v1 = {r.id: r.version for r in load_rules(kw).rules}
    kw.write_text("rules:\n  - id: fentanyl\n    any: [fentanyl, fentanilo]\n  - id: cartels\n    any: [cartel]\n")
    os.utime(kw, (1_800_000_000, 1_800_000_000))
    second = compile_rules(load_rules(kw))
    v2 = {r.id: r.version for r in second.ruleset.rules}
    assert v2["cartels"] == v1["cartels"] and v2["fentanyl"] != v1["fentanyl"] and len(v1["fentanyl"]) == 10
    art2 = _article(2, published="2026-11-21T10:00:00Z", text="Fentanilo and a cartel")
    art2.hits = second.match(art2.title, art2.text)
    save_poll(db, PollOutcome("s", True, 200, articles=[art2]))
    out = cli("hits", "--db", str(path), "--json")
    lines = {r["title"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert lines["Title 1"]["rule_versions"] == {"fentanyl": v1["fentanyl"], "cartels": v1["cartels"]}
    assert lines["Title 2"]["rule_versions"] == {"fentanyl": v2["fentanyl"], "cartels": v2["cartels"]}
    assert lines["Title 1"]["rules_modified"]["fentanyl"] == "2023-11-14T22:13:20Z"
    assert lines["Title 2"]["rules_modified"]["fentanyl"] == "2027-01-15T08:00:00Z"


def test_suggested_hits_are_shown_apart_and_not_owed_unless_the_rule_opts_in(db):
    from pipeline.rules import Hit

    _source(db)
    art = _article(1)
    art.hits = [Hit("fentanyl", ["fentanyl"], "snippet fentanyl", [[8, 16]], "v1"),
                Hit("migration", [], "snippet", [], "v2", suggested=True, similarity=0.91)]
    save_poll(db, PollOutcome("s", True, 200, articles=[art]))
    assert [r["rules"] for r in store.query_hits(db, store.HitQuery())] == [["fentanyl"]]
    assert [r["rules"] for r in store.query_hits(db, store.HitQuery(suggested=True))] == [["migration"]]
    assert store.query_hits(db, store.HitQuery(rules=["migration"])) == []
    store.add_subscriber(db, "a@example.org", None, None, "daily", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
    owed = lambda **kw: sorted(r["rule"] for r in store.owed_hits(db, "a@example.org", ["fentanyl", "migration"],  # noqa: E731
                                                                  "2000-01-01", **kw))
    assert owed() == ["fentanyl"]
    assert owed(email_suggested=["migration"]) == ["fentanyl", "migration"]
    assert store.stored_hits(db, None) == {(art.id, "fentanyl")}  # a backtest compares rules with rules' hits
    assert set(store.hits_per_day(db, "2000-01-01")) == {"fentanyl"}
