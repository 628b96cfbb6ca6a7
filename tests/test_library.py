"""borderwatch as a library, the way an analyst's notebook uses it (the README's "Using borderwatch from
Python" example): open, poll once against a local HTTP server, query hits, backtest an edited rule."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import Reply, rss

import pipeline
from pipeline.store import Store

NOW = dt.datetime.now(dt.timezone.utc)

KEYWORDS = """\
rules:
  - id: fentanyl
    title: Fentanyl seizures
    tags: [drugs]
    any: [fentanyl, fentanilo]
  - id: extradition
    title: Extraditions
    tags: [justice]
    any: [extradition, extradición, extraditado]
"""

ITEMS = [
    ("Navy seizes fentanyl pills in Manzanillo", "The Mexican navy seized 300,000 fentanyl pills at the port of "
     "Manzanillo on Tuesday, officials said, in the largest haul this year."),
    ("Juez aprueba la extradición de un operador", "Un juez federal aprobó la extradición a Estados Unidos de un "
     "presunto operador financiero, informó la fiscalía el miércoles."),
    ("Border wait times grow at San Ysidro", "Commuters waited more than three hours at the San Ysidro crossing "
     "after new inspections began; no seizures were reported."),
]


@pytest.fixture
def site(server):
    server.routes["/feed.xml"] = Reply(body=rss([
        {"title": t, "link": f"https://news.example/{i}", "guid": f"n{i}", "description": body,
         "pubDate": (NOW - dt.timedelta(hours=i + 1)).strftime("%a, %d %b %Y %H:%M:%S +0000")}
        for i, (t, body) in enumerate(ITEMS)]))
    return server


@pytest.fixture
def files(tmp_path, site):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: wire\n    name: The Wire\n    url: {site.url('/feed.xml')}\n", encoding="utf-8")
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text(KEYWORDS, encoding="utf-8")
    return {"db": tmp_path / "watch.db", "feeds": feeds, "keywords": keywords}


def test_notebook_poll_query_backtest(files):
    # --- the README example, as written there ---
    with pipeline.open(db=files["db"], feeds=files["feeds"], keywords=files["keywords"]) as bw:
        summary = bw.poll_once(send_digests=False)
        rows = bw.hits(since="7d")
        seizures = bw.hits(rules=["fentanyl"], search="Manzanillo")
    # ---

    assert summary["ok"] == 1 and summary["new_articles"] == 3 and summary["new_hits"] == 2
    assert [r.title for r in rows] == [ITEMS[0][0], ITEMS[1][0]]  # newest published first
    row = seizures[0]
    assert isinstance(row, pipeline.HitRow) and row.rules == ["fentanyl"] and row.source == "wire"
    assert row.source_name == "The Wire" and row.url == "https://news.example/0"
    assert "**fentanyl**" in row.snippet.marked() and row.snippet.marked("<b>", "</b>").count("<b>fentanyl</b>") == 2
    assert [text for text, marked in row.snippet.spans() if marked] == ["fentanyl", "fentanyl"]
    assert row.as_dict()["snippet"] == row.snippet.marked()

    # edit the rules (a new rule for border crossings) and backtest the edit against stored articles
    files["keywords"].write_text(KEYWORDS + "  - id: crossings\n    title: Crossings\n    any: [San Ysidro]\n",
                                 encoding="utf-8")
    with pipeline.open(db=files["db"], feeds=files["feeds"], keywords=files["keywords"]) as bw:
        report = bw.backtest(since="30d")
        assert report.articles == 3 and report.kept == 2 and report.removed == []
        assert [(report.title(a), h.rule) for a, h in report.added] == [(ITEMS[2][0], "crossings")]
        assert bw.hits(rules="crossings") == []  # a backtest alone stores nothing
        applied = bw.backtest(apply=True)
        assert applied.applied == 1 and [r.title for r in bw.hits(rules="crossings")] == [ITEMS[2][0]]
        assert [r.title for r in bw.hits(tags="justice")] == [ITEMS[1][0]]


def test_library_reports_and_errors(files, tmp_path):
    with pipeline.open(db=files["db"], feeds=files["feeds"], keywords=files["keywords"]) as bw:
        with pytest.raises(pipeline.StorageError, match="no database"):
            bw.hits()  # reads never create a database
        assert bw.check().ok and (bw.check().sources, bw.check().rules) == (1, 2)
        bw.poll_once(send_digests=False)
        with pytest.raises(pipeline.InvalidQuery, match="invalid search query") as bad:
            bw.hits(search='"unbalanced')
        assert bad.value.param == "search" and isinstance(bad.value, pipeline.BorderwatchError)
        with pytest.raises(pipeline.InvalidArgument, match="relative time"):
            bw.hits(since="yesterday-ish")
        status = bw.status()
        assert [s.id for s in status.sources] == ["wire"] and isinstance(status.sources[0], pipeline.SourceState)
        assert status.sources[0].items_seen == 3 and not status.scheduler_running and not status.healthy

        sub = bw.subscribe("Analyst@Example.ORG", rules=["fentanyl"], cadence="daily", hour=8, tz="America/Mexico_City")
        assert isinstance(sub, pipeline.Subscriber) and sub.email == "analyst@example.org" and sub.rules == ["fentanyl"]
        assert [s.email for s in bw.subscribers()] == ["analyst@example.org"]
        with pytest.raises(pipeline.InvalidArgument, match="unknown rule"):
            bw.subscribe("b@example.org", rules=["nope"])
        with pytest.raises(pipeline.AlreadyExists):
            bw.subscribe("ANALYST@example.org")
        assert bw.update_subscriber("analyst@example.org", cadence="weekly", weekday="fri").weekday == 4
        with pytest.raises(pipeline.NotFound):
            bw.preview("nobody@example.org")
        assert bw.unsubscribe("Analyst@EXAMPLE.org") == "analyst@example.org" and bw.subscribers() == []
        with pytest.raises(pipeline.NotFound):
            bw.unsubscribe("analyst@example.org")

    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - id: x\n    any: []\n", encoding="utf-8")
    with pipeline.open(db=files["db"], feeds=files["feeds"], keywords=broken) as bw:
        with pytest.raises(pipeline.ConfigError) as err:
            bw.backtest()
        assert err.value.issues[0].file == str(broken) and err.value.issues[0].line == 3
        assert not bw.check().ok


def test_open_closes_its_connection(files):
    bw = pipeline.open(db=files["db"], feeds=files["feeds"], keywords=files["keywords"])
    bw.poll_once(send_digests=False)
    st = bw.store()
    assert isinstance(st, Store) and not st.readonly  # poll_once opened it for writing
    bw.close()
    assert st.db is None and bw._store is None
