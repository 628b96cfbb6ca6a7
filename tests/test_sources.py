"""`sources add/disable/enable/test` against a local site: feed autodiscovery, page fallback,
feeds.yaml edited in place (comments kept, validated, atomic), nothing stored by `test`."""

from __future__ import annotations

import json

from conftest import Reply, rss
from test_cli import ROOT, bw

from pipeline import store
from pipeline.config import load_feeds

KW = ["--keywords", str(ROOT / "keywords.yaml")]
FEEDS = """\
# our sources (comment kept)
defaults: {interval: 15m}
sources:
  - id: existing      # an old friend
    name: Existing
    url: https://existing.example/feed
"""
FEED = rss([{"title": "Extradition of a Sinaloa Cartel operator to the United States", "link": "https://n.example/a1",
             "guid": "a1", "description": "Mexico extradited a Sinaloa Cartel operator to the United States on Monday."},
            {"title": "Weather in Monterrey", "link": "https://n.example/a2", "guid": "a2", "description": "Sunny."}],
           title="Noticias del Norte")


def html(head: str = "", body: str = "<p>Welcome</p>", title: str = "Noticias del Norte") -> Reply:
    return Reply(body=f"<!DOCTYPE html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>".encode(),
                 headers={"Content-Type": "text/html; charset=utf-8"})


def setup(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(FEEDS)
    return feeds, ["--feeds", str(feeds)]


def test_add_finds_the_feed_announced_by_the_page(tmp_path, server):
    server.routes["/"] = html('<link rel="alternate" type="application/rss+xml" title="RSS" href="/noticias/rss.xml">')
    server.routes["/noticias/rss.xml"] = Reply(body=FEED, headers={"Content-Type": "application/rss+xml"})
    feeds, opt = setup(tmp_path)
    out = bw("sources", "add", server.url("/"), *opt)
    assert out.returncode == 0, out.stderr
    assert "added noticias-del-norte" in out.stdout and 'rel="alternate"' in out.stdout
    text = feeds.read_text()
    assert text.startswith("# our sources (comment kept)") and "# an old friend" in text
    src = load_feeds(feeds).get("noticias-del-norte")
    assert src.url == server.url("/noticias/rss.xml") and src.type == "feed" and src.name == "Noticias del Norte"
    again = bw("sources", "add", server.url("/noticias/rss.xml"), *opt)
    assert again.returncode == 2 and "already in" in again.stderr


def test_add_finds_a_feed_at_a_common_path_and_takes_id_and_name(tmp_path, server):
    server.routes["/"] = html()
    server.routes["/feed"] = Reply(body=FEED, headers={"Content-Type": "application/rss+xml"})
    feeds, opt = setup(tmp_path)
    out = bw("sources", "add", server.url("/"), "--id", "norte", "--name", "El Norte", "--json", *opt)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["url"] == server.url("/feed") and rec["how"] == "found at a common feed path"
    assert load_feeds(feeds).get("norte").name == "El Norte"


def test_add_makes_a_page_source_when_there_is_no_feed(tmp_path, server):
    items = "".join(f'<article><h2><a href="/nota/{i}">Nota {i}</a></h2></article>' for i in range(5))
    server.routes["/prensa"] = html(body=f"<nav><a href='/'>Inicio</a></nav>{items}", title="Sala de prensa")
    feeds, opt = setup(tmp_path)
    out = bw("sources", "add", server.url("/prensa"), *opt)
    assert out.returncode == 0, out.stderr
    src = load_feeds(feeds).get("sala-de-prensa")
    assert src.type == "page" and src.link_selector == "article h2 a" and src.fetch_articles


def test_add_says_what_it_tried_when_nothing_is_found(tmp_path, server):
    server.routes["/"] = html()
    feeds, opt = setup(tmp_path)
    out = bw("sources", "add", server.url("/"), *opt)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "no feed found" in out.stderr and "common feed paths" in out.stderr
    assert feeds.read_text() == FEEDS


def test_disable_enable_keep_comments_and_status_marks_disabled(tmp_path):
    feeds, opt = setup(tmp_path)
    out = bw("sources", "disable", "existing", *opt)
    assert out.returncode == 0, out.stderr
    assert load_feeds(feeds).get("existing").enabled is False
    assert "# an old friend" in feeds.read_text() and "# our sources (comment kept)" in feeds.read_text()
    db = tmp_path / "s.db"
    store.sync_sources(store.connect(db), load_feeds(feeds).sources)
    status = bw("status", "--db", str(db), *opt, env={"COLUMNS": "160"})
    assert "disabled" in status.stdout
    assert bw("sources", "enable", "existing", *opt).returncode == 0
    assert feeds.read_text() == FEEDS  # back exactly as it was
    missing = bw("sources", "disable", "nope", *opt)
    assert missing.returncode == 1 and "no source nope" in missing.stderr and "existing" in missing.stderr


def test_source_test_shows_new_items_and_matches_and_stores_nothing(tmp_path, server):
    server.routes["/feed"] = Reply(body=FEED, headers={"Content-Type": "application/rss+xml"})
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: norte\n    url: {server.url('/feed')}\n")
    db = tmp_path / "t.db"
    store.connect(db).close()
    common = ["--feeds", str(feeds), "--db", str(db), *KW]
    out = bw("sources", "test", "norte", "--json", *common)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["ok"] and res["items"] == 2 and len(res["new"]) == 2
    extradition = next(a for a in res["new"] if "Extradition" in a["title"])
    assert {m["rule"] for m in extradition["matches"]} >= {"extradition"}
    assert store.counts(store.connect(db))["articles"] == 0  # nothing stored
    human = bw("sources", "test", server.url("/feed"), *common)
    assert "2 would be new" in human.stdout and "nothing was stored" in human.stdout
    server.routes["/gone"] = Reply(404, b"no")
    bad = bw("sources", "test", server.url("/gone"), *common)
    assert bad.returncode == 1 and "HTTP 404" in bad.stderr and "Traceback" not in bad.stderr


def test_a_read_only_feeds_file_is_not_touched(tmp_path, server):
    from test_errors import as_reader, one_line_error
    import shutil
    import tempfile
    from pathlib import Path

    server.routes["/feed"] = Reply(body=FEED, headers={"Content-Type": "application/rss+xml"})
    d = Path(tempfile.mkdtemp(prefix="bw-src-"))
    try:
        feeds = d / "feeds.yaml"
        feeds.write_text(FEEDS)
        feeds.chmod(0o444)
        d.chmod(0o755)
        out = as_reader("sources", "add", server.url("/feed"), "--feeds", str(feeds), cwd=d)
        one_line_error(out, 1, "read-only")
        assert feeds.read_text() == FEEDS
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_help_on_the_new_commands():
    for cmd in (["sources"], ["sources", "add"], ["sources", "disable"], ["sources", "enable"], ["sources", "test"],
                ["subscribers", "update"], ["rules", "test"], ["status"], ["prune"], ["opml", "import"]):
        out = bw(*cmd, "--help")
        assert out.returncode == 0 and "Usage:" in out.stdout and len(out.stdout) > 150, cmd
    assert "--explain" in bw("rules", "test", "--help").stdout and "--article" in bw("rules", "test", "--help").stdout
    assert "--deliveries" in bw("status", "--help").stdout and "--dry-run" in bw("prune", "--help").stdout
