"""Clear answers for operators (issue 11 items 9 and 11): subscribers, unknown ids, previews,
status at 80 columns, URLs in hits, UTC labels, check, regex errors, prune --dry-run, progress."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from email import message_from_bytes, policy

import pytest
from test_cli import ROOT, bw

from pipeline import store

KW = ["--keywords", str(ROOT / "keywords.yaml")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    out = bw("demo", "--dir", str(d), cwd=d)
    assert out.returncode == 0, out.stderr
    return d


def test_subscribers_add_refuses_an_existing_address_and_update_changes_only_what_is_given(tmp_path):
    db = ["--db", str(tmp_path / "s.db"), *KW]
    assert bw("subscribers", "add", "Boss@Example.org", "--rules", "cartels", "--cadence", "weekly", "--weekday", "fri",
              "--hour", "9", "--tz", "America/Mexico_City", *db).returncode == 0
    again = bw("subscribers", "add", "boss@example.org", "--cadence", "daily", *db)
    assert again.returncode == 2 and "already subscribed" in again.stderr and "subscribers update" in again.stderr
    up = bw("subscribers", "update", "BOSS@example.org", "--hour", "6", *db)
    assert up.returncode == 0, up.stderr
    [row] = json.loads(bw("subscribers", "list", "--json", *db[:2]).stdout)
    assert row["email"] == "boss@example.org"  # one subscriber whatever the case
    assert (row["rules"], row["cadence"], row["weekday"], row["hour"], row["tz"]) == (
        ["cartels"], "weekly", 4, 6, "America/Mexico_City")  # nothing reset but the hour
    missing = bw("subscribers", "update", "nobody@example.org", "--hour", "6", *db)
    assert missing.returncode == 1 and "no subscriber nobody@example.org" in missing.stderr


def test_subscribers_remove_accepts_the_token_and_footer_says_what_works(demo):
    db = store.connect(demo / "demo.db")
    token = db.execute("SELECT token FROM subscribers WHERE email = 'analyst@example.org'").fetchone()[0]
    eml = next((demo / "outbox").glob("*.eml"))
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert 'reply with the subject' not in body and "unsubscribe button" not in body
        assert "removes subscriptions by hand" in body and token in body
    assert token in msg["List-Unsubscribe"]  # the mailto reaches the operator, who can remove by token
    db.close()
    removed = bw("subscribers", "remove", token, "--db", str(demo / "demo.db"))
    assert removed.returncode == 0 and "removed analyst@example.org" in removed.stdout
    assert bw("subscribers", "remove", token, "--db", str(demo / "demo.db")).returncode == 1
    store.add_subscriber(store.connect(demo / "demo.db"), "analyst@example.org", None, None, "immediate", 7, 0,
                         "America/Mexico_City", created="2000-01-01T00:00:00Z")


def test_footer_links_the_web_page_when_serve_is_public(tmp_path):
    from pipeline.digest import render
    from pipeline.digest.select import Group, Item

    item = Item(1, "cartels", "t", "https://x.example/a", "src", "2026-11-23T10:00:00Z", "s", [], ["t"], 1)
    sub = {"email": "a@example.org", "tz": "UTC", "token": "tok123"}
    header = render.unsubscribe_header("alerts@example.org", "tok123", "https://bw.example.org")
    out = render.render([Group("cartels", "Cartels", [item])], sub, __import__("datetime").datetime.now(
        __import__("datetime").timezone.utc), header)
    assert "https://bw.example.org/unsubscribe/tok123" in out.text and "by hand" not in out.text
    assert 'href="https://bw.example.org/unsubscribe/tok123"' in out.html


def test_unknown_rule_tag_or_source_is_an_error_naming_the_known_ones(demo):
    db = ["--db", str(demo / "demo.db"), *KW]
    out = bw("hits", "--rule", "cartel", *db)
    assert out.returncode == 2 and "unknown rule cartel" in out.stderr and "cartels" in out.stderr
    out = bw("hits", "--tag", "nope", *db)
    assert out.returncode == 2 and "unknown tag nope" in out.stderr
    out = bw("hits", "--source", "nowhere", *db)
    assert out.returncode == 2 and "unknown source nowhere (known:" in out.stderr
    assert bw("hits", "--rule", "cartels", *db).returncode == 0


def test_hits_table_shows_urls_and_says_utc(demo):
    out = bw("hits", "--rule", "cartels", "--db", str(demo / "demo.db"), *KW, env={"COLUMNS": "200"})
    assert "published (UTC)" in out.stdout and "http://127.0.0.1:" in out.stdout


def test_digest_preview_says_which_reason(demo):
    db = ["--db", str(demo / "demo.db"), *KW]
    missing = bw("digest", "preview", "--subscriber", "ghost@example.org", *db)
    assert missing.returncode == 1 and "no subscriber ghost@example.org" in missing.stderr
    assert bw("subscribers", "add", "fresh@example.org", *db).returncode == 0
    fresh = bw("digest", "preview", "--subscriber", "fresh@example.org", *db)
    assert fresh.returncode == 0 and "no new hits for fresh@example.org" in fresh.stderr


def test_status_wraps_the_last_error_at_80_columns(tmp_path):
    db = store.connect(tmp_path / "w.db")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: gov-press\n    url: https://gov.example/press\n")
    from pipeline.config import load_feeds

    store.sync_sources(db, load_feeds(feeds).sources)
    error = "timed out after 30s without data (read timeout) while fetching the press room listing page"
    db.execute("UPDATE sources SET consecutive_failures = 3, last_error = ? WHERE id = 'gov-press'", [error])
    out = bw("status", "--db", str(tmp_path / "w.db"), "--feeds", str(feeds), env={"COLUMNS": "80"})
    flat = " ".join(out.stdout.split())
    assert error in flat and "times in UTC" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 80


def test_check_rejects_an_empty_feeds_file_and_counts_in_words(tmp_path):
    empty = tmp_path / "feeds.yaml"
    empty.write_text("")
    out = bw("check", "--feeds", str(empty), *KW)
    assert out.returncode == 2 and "empty file" in out.stderr
    one = tmp_path / "one.yaml"
    one.write_text("sources:\n  - id: a\n    url: https://x.example/feed\n")
    assert "(1 source)," in bw("check", "--feeds", str(one), *KW).stdout


def test_bad_regex_is_one_clean_line(tmp_path):
    kw = tmp_path / "k.yaml"
    kw.write_text("rules:\n  - id: r\n    any: [{regex: '(abc'}]\n")
    out = bw("check", "--keywords", str(kw), "--feeds", str(ROOT / "feeds.yaml"))
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == (f"{kw}:3: invalid regex '(abc': missing ): (abc "
                                          "(regexes use RE2 syntax: no backreferences or lookaround)")
    assert "re2.cc" not in out.stderr and "b'" not in out.stderr


def test_prune_dry_run_deletes_nothing(demo, tmp_path):
    import shutil

    copy = tmp_path / "p.db"
    shutil.copy(demo / "demo.db", copy)
    before = store.counts(store.connect(copy))
    out = bw("prune", "--dry-run", "--older-than", "0d", "--db", str(copy))
    assert out.returncode == 0 and "would delete" in out.stdout and "nothing deleted" in out.stdout
    assert store.counts(store.connect(copy)) == before


def test_digest_subject_and_body_count_the_same_thing(demo):
    eml = next((demo / "outbox").glob("*.eml"))
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    n = int(msg["Subject"].split()[1])
    assert msg["Subject"].startswith(f"borderwatch: {n} new stor")
    assert msg.get_body(("plain",)).get_content().startswith(f"borderwatch: {n} new stor")


def test_run_once_progress_bar_does_not_interleave_with_log_lines(tmp_path, server):
    from conftest import Reply

    server.routes["/missing"] = Reply(404, b"gone")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("".join(f"  - id: s{i}\n    url: {server.url('/missing')}\n" for i in range(3)).join(["sources:\n", ""]))
    main, child = pty.openpty()  # a terminal, so the bar is drawn
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "BORDERWATCH_"))}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--once", "--no-digests", "--feeds", str(feeds),
                           "--db", str(tmp_path / "p.db"), *KW], stdin=subprocess.DEVNULL, stdout=child,
                          stderr=child, cwd=tmp_path, env={**env, "COLUMNS": "120"}, timeout=120)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1
    log_lines = [line for line in err.replace("\r", "\n").splitlines() if "poll source=" in line]
    assert len(log_lines) == 3
    for line in log_lines:  # each log line is whole: no bar drawn into it
        assert "polling" not in line and "━" not in line, line
