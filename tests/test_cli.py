"""The command line end to end: demo, check, run --once, status, rules test, subscribers, digest preview."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from conftest import Reply, rss

ROOT = Path(__file__).parent.parent


def bw(*args, cwd=None, env=None, input=None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "BORDERWATCH_"))}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          env={**full_env, **(env or {})}, timeout=180, input=input)


def test_help_on_every_command():
    for cmd in ([], ["run"], ["demo"], ["check"], ["rules", "test"], ["rules", "backtest"], ["hits"], ["status"],
                ["subscribers", "add"], ["subscribers", "list"], ["subscribers", "remove"], ["digest", "preview"],
                ["digest", "send"], ["prune"], ["browse"], ["opml", "import"], ["opml", "export"]):
        out = bw(*cmd, "--help")
        assert out.returncode == 0 and "Usage:" in out.stdout and len(out.stdout) > 150, cmd


def test_demo_offline_tour(tmp_path):
    out = bw("demo", "--dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 sources (4 ok)" in out.stdout and "13 articles in 11 stories" in out.stdout
    emls = list((tmp_path / "outbox").glob("*.eml"))
    assert len(emls) == 1
    msg = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "analyst@example.org" and msg.get_body(("html",)) and msg.get_body(("plain",))
    hits = bw("hits", "--db", str(tmp_path / "demo.db"), "--json")
    rules = {r for line in hits.stdout.splitlines() for r in json.loads(line)["rules"]}
    assert rules == {"fentanyl", "hlsd", "extradition", "cartels", "migration", "arms"}


def test_check_ok_and_errors(tmp_path):
    ok = bw("check")
    assert ok.returncode == 0 and "ok: feeds.yaml (18 sources), keywords.yaml (6 rules)" in ok.stdout
    feeds = tmp_path / "f.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: ftp://x\n  - id: a\n    url: https://x/\n  - id: b\n    url: https://y/\n"
                     "    type: page\n  - id: c\n    url: https://z/\n    type: page\n    link_selector: 'a[['\n    interval: soon\n")
    kw = tmp_path / "k.yaml"
    kw.write_text("rules:\n  - id: r\n    any: [ok]\n    nope: 1\n")
    bad = bw("check", "--feeds", str(feeds), "--keywords", str(kw))
    assert bad.returncode == 2
    lines = bad.stderr.splitlines()
    assert f"{feeds}:3: url must be an absolute http(s) URL, got 'ftp://x'" in lines
    assert f"{feeds}:4: duplicate source id 'a' (first at line 2)" in lines
    assert any(line.startswith(f"{feeds}:6: source 'b': type 'page' needs a link_selector") for line in lines)
    assert any(line.startswith(f"{feeds}:12: invalid CSS selector") for line in lines)
    assert any(line.startswith(f"{feeds}:13: interval must be a duration") for line in lines)
    assert any(line.startswith(f"{kw}:4: unknown key 'nope'") for line in lines)


def test_run_once_status_and_exit_codes(tmp_path, server):
    server.routes["/feed"] = Reply(body=rss([{"title": "CJNG attack in Jalisco", "link": "https://x.example/1", "guid": "1",
                                              "description": "Members of the CJNG attacked police in Jalisco, Mexico."}]))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: good\n    url: {server.url('/feed')}\n  - id: bad\n    url: {server.url('/missing')}\n")
    db = tmp_path / "r.db"
    common = ["--feeds", str(feeds), "--db", str(db)]
    kw = ["--keywords", str(ROOT / "keywords.yaml")]
    out = bw("run", "--once", "--json", *common, *kw, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ok"] == 1 and summary["failed"] == 1 and summary["new_articles"] == 1 and summary["new_hits"] == 1
    assert summary["failures"] == [{"source": "bad", "error": "HTTP 404"}]
    human = bw("run", "--once", *common, *kw, cwd=tmp_path)
    assert "sources: 1 ok (0 unchanged), 1 failed of 2; new articles: 0; new hits: 0" in human.stdout
    status = json.loads(bw("status", "--json", *common).stdout)
    assert [s["id"] for s in status] == ["good", "bad"]
    assert status[1]["consecutive_failures"] == 2 and status[1]["last_error"] == "HTTP 404" and status[0]["last_error"] is None
    table = bw("status", *common, env={"COLUMNS": "160"})
    assert "good" in table.stdout and "HTTP 404" in table.stdout
    assert bw("status", "--check", *common).returncode == 1  # no scheduler running
    feeds.write_text("sources:\n  - id: bad\n    url: nowhere\n")
    assert bw("run", "--once", *common, *kw).returncode == 2


def test_rules_test_json_and_stdin():
    out = bw("rules", "test", "--json", "--text", "Extradición de un líder del Cártel de Sinaloa a México")
    data = json.loads(out.stdout)
    assert {m["rule"] for m in data["matches"]} == {"extradition", "cartels"}
    m = next(m for m in data["matches"] if m["rule"] == "cartels")
    assert "Cártel de Sinaloa" in m["terms"] and "**Cártel de Sinaloa**" in m["snippets"][0]
    piped = bw("rules", "test", input="Monarch butterflies\nThe migration of monarch butterflies to Michoacán, Mexico.")
    assert piped.stdout.strip() == "no rule matches"


def test_subscribers_and_digest_preview(tmp_path):
    assert bw("demo", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    db = str(tmp_path / "demo.db")
    bad = bw("subscribers", "add", "not-an-email", "--db", db)
    assert bad.returncode == 2 and "not a valid email address" in bad.stderr
    bad_rule = bw("subscribers", "add", "x@example.org", "--rules", "nope", "--db", db)
    assert bad_rule.returncode == 2 and "unknown rule id" in bad_rule.stderr
    ok = bw("subscribers", "add", "ana@example.org", "--rules", "migration", "--cadence", "weekly", "--tz",
            "America/Mexico_City", "--db", db)
    assert ok.returncode == 0 and "subscribed ana@example.org: migration, weekly" in ok.stdout
    listed = json.loads(bw("subscribers", "list", "--json", "--db", db).stdout)
    assert {s["email"] for s in listed} == {"analyst@example.org", "ana@example.org"}
    fresh = bw("digest", "preview", "--subscriber", "ana@example.org", "--db", db)
    assert "nothing to preview" in fresh.stderr  # a new subscriber is not sent history
    db_conn = __import__("pipeline.store", fromlist=["x"]).connect(db)
    db_conn.execute("UPDATE subscribers SET created = '2000-01-01T00:00:00Z' WHERE email = 'ana@example.org'")
    listed = json.loads(bw("subscribers", "list", "--json", "--db", db).stdout)
    html = tmp_path / "preview.html"
    prev = bw("digest", "preview", "--subscriber", "ana@example.org", "--out", str(html), "--db", db)
    assert prev.returncode == 0 and "migration (2)" in prev.stdout
    assert "Ciudad Juárez" in html.read_text()
    before = json.loads(bw("subscribers", "list", "--json", "--db", db).stdout)
    assert before == listed  # preview marks nothing
    assert bw("subscribers", "remove", "ana@example.org", "--db", db).returncode == 0
    assert bw("subscribers", "remove", "ana@example.org", "--db", db).returncode == 1


def test_dockerfile_essentials():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim")
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert any(line.startswith("VOLUME") and "/data" in line for line in lines)
    assert "BORDERWATCH_DB=/data/borderwatch.db" in text
    assert any(line.startswith("HEALTHCHECK") for line in lines) and '"status", "--check"' in text
    assert lines[-1] == 'CMD ["borderwatch", "run", "--log-format", "json"]'
    assert "SMTP_PASSWORD=" not in text.replace("-e SMTP_PASSWORD", "")
