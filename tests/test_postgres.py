"""PostgreSQL (the cluster set-up's store) against SQLite: same schema, same answers.

The tests that take the ``db`` fixture (test_store, test_cycle, test_stories, test_alerts, ...) run on
both backends already; these check the whole: schema parity, one fixture cycle through both (articles,
stories, hits, digests), full-text search, the CLI on a PostgreSQL URL, concurrent writers, and the
errors a user sees. They skip, saying why, where no PostgreSQL is reachable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline import store
from pipeline.errors import InvalidQuery
from pipeline.store import postgres
from pipeline.store import sqlite as sql

ROOT = Path(__file__).parent.parent
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)


def test_every_sqlite_migration_has_its_postgresql_step():
    assert postgres.BASELINE + len(postgres.MIGRATIONS) == len(sql.MIGRATIONS), \
        "a migration was added to store/sqlite.py MIGRATIONS without its step in store/postgres.py MIGRATIONS"


def test_both_schemas_have_the_same_tables_and_columns(tmp_path, pg_url):
    lite = store.connect(tmp_path / "s.db")
    pg = store.connect(pg_url)
    try:
        tables = [t for t in lite.table_names() if not t.startswith("articles_fts")]
        for table in tables:
            want = {c.name for c in lite[table].columns}
            got = {r[0] for r in pg.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                                            " AND table_schema = current_schema()", (table,))}
            assert got - {"fts"} == want, table
        assert store.schema_version(pg) == store.schema_version(lite) == len(sql.MIGRATIONS)
    finally:
        lite.close()
        pg.close()


def test_connecting_twice_and_concurrently_migrates_once(pg_url):
    errors: list[BaseException] = []

    def one():
        try:
            store.connect(pg_url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    db = store.connect(pg_url)
    assert db.execute("SELECT count(*) FROM bw_schema").fetchone()[0] == 1
    db.close()


# --------------------------------------------------------------------------- one cycle through both


def _cycle_into(target: str, site_base_holder: dict) -> dict:
    """The demo's sample site through a full cycle, a subscriber and a digest; what it stored, comparably."""
    from pipeline.config import load_feeds, load_rules
    from pipeline.cycle import run_cycle
    from pipeline.demo import feeds_yaml
    from pipeline.digest.send import OutboxTransport, send_due
    from pipeline.rules import compile_rules

    rules = load_rules(ROOT / "keywords.yaml")
    feeds_path = Path(site_base_holder["dir"]) / f"feeds-{abs(hash(target))}.yaml"
    feeds_path.write_text(feeds_yaml(site_base_holder["base"]), encoding="utf-8")
    feeds = load_feeds(feeds_path)
    db = store.connect(target)
    try:
        store.sync_sources(db, feeds.sources)
        store.add_subscriber(db, "analyst@example.org", None, None, "daily", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
        result = asyncio.run(run_cycle(db, feeds, compile_rules(rules)))
        assert result.ok == len(feeds.sources)
        outbox = Path(site_base_holder["dir"]) / f"outbox-{abs(hash(target))}"
        report = send_due(db, rules, NOW, transport=OutboxTransport(outbox))
        articles = {r["url"]: r for r in db.query("SELECT id, url, title, text, source, published, story, language FROM articles")}
        by_story: dict = {}
        for a in articles.values():
            by_story.setdefault(a["story"], set()).add(a["url"])
        hits = {(articles_url, r["rule"], r["terms"], r["snippet"], r["marks"])
                for r in db.query("SELECT a.url AS articles_url, h.rule, h.terms, h.snippet, h.marks FROM hits h"
                                  " JOIN articles a ON a.id = h.article")
                for articles_url in [r["articles_url"]]}
        delivered = {(r["subscriber"], r["period"], r["url"]) for r in db.query(
            "SELECT d.subscriber, d.period, a.url FROM deliveries d JOIN delivery_hits dh ON dh.delivery = d.id"
            " JOIN hits h ON h.id = dh.hit JOIN articles a ON a.id = h.article")}
        bodies = []
        for f in report.files:
            msg = email.message_from_bytes(Path(f).read_bytes(), policy=email.policy.default)
            text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_content()
            # the heading line and the rule groups with their story counts (which copy heads a story is
            # the first to arrive, and arrival order varies from run to run on either backend)
            bodies.append([line for line in text.splitlines() if line.startswith(("borderwatch:", "== "))])
        listed = [r["url"] for r in store.query_hits(db, store.HitQuery(limit=500))]
        return {
            "articles": {u: (a["title"], a["text"], a["source"], a["published"], a["language"]) for u, a in articles.items()},
            "stories": sorted(sorted(s) for s in by_story.values()),
            "hits": hits, "delivered": delivered, "digest_text": bodies, "listed": listed,
            "counts": store.counts(db),
            "searches": {q: [r["url"] for r in store.query_hits(db, store.HitQuery(search=q, limit=500))]
                         for q in SEARCHES},
        }
    finally:
        db.close()


# The README's examples and the FTS5 forms users write: words, accents, phrases, prefixes, operators.
SEARCHES = ["Manzanillo", "fentanyl", "culiacan", "Culiacán", '"cartel de Sinaloa"', "extradit*", "fentanyl AND Sinaloa",
            "fentanyl OR fentanilo", "fentanyl NOT Sinaloa", "(fentanyl OR fentanilo) AND precursor*", "HLSD"]


def test_one_cycle_gives_the_same_articles_stories_hits_and_digests_on_both(tmp_path, pg_url):
    from pipeline.demo import SiteServer, build_site

    with SiteServer(lambda base: build_site(base, NOW)) as server:
        holder = {"base": server.base, "dir": str(tmp_path)}
        lite = _cycle_into(str(tmp_path / "parity.db"), holder)
        pg = _cycle_into(pg_url, holder)
    assert lite["counts"]["articles"] > 10 and lite["counts"]["hits"] > 5 and len(lite["delivered"]) > 5
    assert lite["stories"] != sorted([u] for u in lite["articles"])  # syndicated copies were grouped
    for key in ("articles", "stories", "hits", "delivered", "listed", "counts", "digest_text"):
        assert pg[key] == lite[key], key
    for q in SEARCHES:
        assert pg["searches"][q] == lite["searches"][q], q
    assert any(lite["searches"][q] for q in SEARCHES[:3])  # the searches find something


# --------------------------------------------------------------------------- search syntax


def test_search_syntax_errors_are_one_line_invalid_queries():
    for bad in ['"unterminated', "(fentanyl", "fentanyl)", "fentanyl AND", "OR fentanyl", ""]:
        with pytest.raises(InvalidQuery):
            postgres.fts_condition(bad)
    condition, params = postgres.fts_condition('fent* AND "cártel de Sinaloa" NOT (a OR b)')
    assert condition.count("?") == len(params) == 4


def test_translation_of_the_sqlite_dialect():
    t = postgres.translate
    assert t("INSERT OR IGNORE INTO guids (a, b) VALUES (?, ?)") == "INSERT INTO guids (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    assert t("SELECT value FROM json_each(?)") == "SELECT value FROM unnest(%s::bigint[]) AS j(value)"
    assert t("DELETE FROM s WHERE a = ? AND h IN (SELECT value FROM json_each(?))") == \
        "DELETE FROM s WHERE a = %s AND h = ANY(%s::bigint[])"
    assert postgres._translate("SELECT 1 WHERE ? = 1 AND h IN (SELECT value FROM json_each(?))")[1] == (1,)
    assert t("SELECT x FROM t WHERE a LIKE '50%?' AND b = :name") == "SELECT x FROM t WHERE a LIKE '50%%?' AND b = %(name)s"


# --------------------------------------------------------------------------- writers and the CLI


def test_concurrent_writers_store_one_article_and_one_story(pg_url):
    """Two members saving the same article at once: the advisory write lock serialises them."""
    from pipeline.store import NewArticle, PollOutcome

    setup = store.connect(pg_url)
    store.sync_sources(setup, [type("S", (), {"id": sid, "name": sid, "url": f"http://{sid}.example/", "type": "feed",
                                              "enabled": True})() for sid in ("a", "b")])
    barrier = threading.Barrier(2)
    results: list = []

    def member(source: str):
        db = store.connect(pg_url)
        art = NewArticle("https://news.example/1", f"g-{source}", "Same title", "Same text about fentanyl " * 20, "",
                         "2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z", "fp-same", [1, 2, 3], [])
        barrier.wait(30)
        results.append(store.save_polls(db, [PollOutcome(source, True, 200, articles=[art])]))
        db.close()

    threads = [threading.Thread(target=member, args=(s,)) for s in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    assert setup.execute("SELECT count(*) FROM articles").fetchone()[0] == 1
    assert setup.execute("SELECT count(*) FROM stories").fetchone()[0] == 1
    assert setup.execute("SELECT count(*) FROM guids").fetchone()[0] == 2  # each source's GUID points at it
    setup.close()


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=180)


def _same(out: str) -> list:
    """Records without what depends on arrival order or time (fetch times, story ids, the order of
    articles published at the same second): the two cycles ran seconds apart, each in its own order."""
    import csv
    import io

    drop = ("fetched", "story")
    if out.startswith("{"):
        rows = [json.loads(line) for line in out.splitlines()]
    elif out.startswith("published,") or ",url," in out.split("\n", 1)[0]:
        rows = list(csv.DictReader(io.StringIO(out)))
    else:
        return sorted(out.splitlines())
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in rows)


def test_read_and_admin_commands_work_unchanged_on_postgresql(tmp_path, pg_url):
    from pipeline.demo import SiteServer, build_site

    with SiteServer(lambda base: build_site(base, NOW)) as server:
        holder = {"base": server.base, "dir": str(tmp_path)}
        _cycle_into(str(tmp_path / "cli.db"), holder)
        _cycle_into(pg_url, holder)
    for args in (["hits", "--json", "--limit", "100"], ["hits", "--search", "fentanyl", "--json"],
                 ["hits", "--rule", "fentanyl", "--csv"], ["subscribers", "list"], ["rules", "backtest", "--json"]):
        lite = cli(*args, "--db", str(tmp_path / "cli.db"))
        pg = cli(*args, "--db", pg_url)
        assert lite.returncode == 0, lite.stderr
        assert pg.returncode == 0, pg.stderr
        assert _same(pg.stdout) == _same(lite.stdout), args
    status = cli("status", "--json", "--db", pg_url, "--feeds", str(next(tmp_path.glob("feeds-*.yaml"))))
    assert status.returncode == 0, status.stderr
    assert all(s["last_success"] for s in json.loads(status.stdout))
    added = cli("subscribers", "add", "new@example.org", "--cadence", "weekly", env={"BORDERWATCH_DB": pg_url})
    assert added.returncode == 0, added.stderr
    assert "new@example.org" in cli("subscribers", "list", "--db", pg_url).stdout
    preview = cli("digest", "preview", "--subscriber", "new@example.org", "--db", pg_url, "--out", str(tmp_path / "p.html"))
    assert preview.returncode == 0, preview.stderr
    bad = cli("hits", "--search", '"unterminated', "--db", pg_url)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "search" in bad.stderr


def test_an_unreachable_server_is_one_line_and_exit_1():
    r = cli("hits", "--db", "postgresql://nobody:secret@127.0.0.1:9/nothing")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "cannot connect to PostgreSQL" in r.stderr and "secret" not in r.stderr
