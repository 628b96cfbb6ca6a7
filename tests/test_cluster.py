"""The cluster set-up: `borderwatch run --db postgresql://...` members sharing the work through PostgreSQL
and procrastinate. Skipped, with the reason, when PostgreSQL is not reachable.

The end-to-end test runs three members against a news server with 300 sources that keep publishing,
kills one with SIGKILL while polls are in flight, starts it again, and then checks what users rely on:
every published item stored once, one story per story, every subscriber's digests complete and
never twice, no source left unpolled for more than two intervals, and a clean SIGTERM exit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clustertools import NewsServer, SMTPSink, drop_schema, new_schema
from conftest import wait_until

ROOT = Path(__file__).parent.parent
N_SOURCES = 300
INTERVAL = 15.0  # seconds between polls of a source (feeds.yaml accepts 1s and up)
PUBLISH_EVERY = 20.0  # each source publishes a new item this often
HEARTBEAT = 1.0  # BORDERWATCH_CLUSTER_HEARTBEAT: a member silent for 4 s is dead (default 5 s: 20 s)

RULES = """rules:
  - {id: fentanyl, title: Fentanyl, any: [fentanyl]}
  - {id: cartel, title: Cartels, any: [cartel]}
"""
SUBSCRIBERS = {"all@example.org": None, "drugs@example.org": "fentanyl", "gangs@example.org": "cartel"}


def query(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def member_cmd(url: str, feeds: Path, keywords: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "run", "--db", url, "--feeds", str(feeds), "--keywords", str(keywords)]


def cli(url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args, "--db", url], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


class Members:
    """`borderwatch run` processes, each logging to its own file."""

    def __init__(self, tmp: Path, url: str, feeds: Path, keywords: Path, env: dict):
        self.tmp, self.url, self.feeds, self.keywords, self.env = tmp, url, feeds, keywords, env
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> int:
        log = self.tmp / f"member{len(self.procs)}.log"
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen(member_cmd(self.url, self.feeds, self.keywords), cwd=self.tmp,
                                               env=self.env, stdout=out, stderr=subprocess.STDOUT))
        self.logs.append(log)
        return len(self.procs) - 1

    def dead(self) -> str | None:
        """The log of a member that exited on its own (it should not), else None."""
        for i, p in enumerate(self.procs):
            if p.poll() is not None and p.returncode != -signal.SIGKILL:
                return f"member {i} exited with {p.returncode}:\n" + self.log(i)[-3000:]
        return None

    def wait(self, predicate, timeout: float) -> bool:
        """Wait for ``predicate`` (bounded); fail at once if a member died."""
        ok = wait_until(lambda: self.dead() is not None or predicate(), timeout=timeout, step=0.5)
        assert self.dead() is None, self.dead()
        return ok

    def log(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def polls(self, i: int) -> int:
        return self.log(i).count("poll source=")

    def stop_all(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        return [p.wait(timeout=60) for p in self.procs]

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def member_env(smtp_port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BORDERWATCH_", "SMTP_"))}
    env.update(BORDERWATCH_CLUSTER_HEARTBEAT=str(HEARTBEAT), BORDERWATCH_SEMANTIC="off", SMTP_HOST="127.0.0.1",
               SMTP_PORT=str(smtp_port), SMTP_TLS="none", DIGEST_FROM="borderwatch@example.org",
               PYTHONPATH=str(ROOT))
    return env


PER_HOST = 8  # all 300 sources are on 127.0.0.1: at most this many of their polls at once, cluster-wide


def feeds_yaml(news: NewsServer, per_host: int = PER_HOST) -> str:
    lines = [f"defaults: {{interval: {INTERVAL:g}s, timeout: 10s, per_host: {per_host}, concurrency: 20}}",
             "sources:"]
    lines += [f"  - {{id: {news.sid(i)}, url: '{news.url(i)}'}}" for i in range(news.n)]
    return "\n".join(lines) + "\n"


def test_three_members_share_the_work_and_survive_a_kill(tmp_path, pg_url):
    news = NewsServer(N_SOURCES, PUBLISH_EVERY)
    smtp = SMTPSink()
    feeds, keywords = tmp_path / "feeds.yaml", tmp_path / "keywords.yaml"
    feeds.write_text(feeds_yaml(news))
    keywords.write_text(RULES)
    env = member_env(smtp.port)
    members = Members(tmp_path, pg_url, feeds, keywords, env)
    try:
        for email, rule in SUBSCRIBERS.items():
            done = cli(pg_url, "subscribers", "add", email, "--cadence", "immediate", *(["--rules", rule] if rule else []),
                       "--keywords", str(keywords), env=env)
            assert done.returncode == 0, done.stderr
        started = time.time()
        for _ in range(3):
            members.start()

        def polled_sources() -> int:
            return query(pg_url, "SELECT count(*) FROM sources WHERE last_poll IS NOT NULL")[0][0]

        assert members.wait(lambda: polled_sources() == N_SOURCES, timeout=120), \
            f"only {polled_sources()} of {N_SOURCES} sources polled; logs:\n" + members.log(0)[-3000:]
        assert all(members.polls(i) > 0 for i in range(3)), "every member takes a share of the polls"
        health = cli(pg_url, "status", "--check", "--feeds", str(feeds), env=env)
        assert health.returncode == 0, health.stdout + health.stderr
        shown = cli(pg_url, "status", "--feeds", str(feeds), env=env).stdout
        assert re.search(r"running: 3 cluster member\(s\)", " ".join(shown.split())), shown[-500:]

        # kill -9 a member while it has polls in flight, then start it again
        worker = re.search(r"is procrastinate worker (\d+)", members.log(1))
        assert worker, members.log(1)[-3000:]

        def running() -> int:
            return query(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
                                 f" AND task_name = 'borderwatch.poll' AND worker_id = {worker.group(1)}")[0][0]

        assert wait_until(lambda: running() > 0, timeout=60, step=0.01), "member 1 never had a poll running"
        members.procs[1].kill()
        in_flight = running()
        members.procs[1].wait()
        killed_at = time.time()
        members.start()

        # every source polled twice more after the restart (publishing goes on meanwhile), then stop publishing
        def polled_since(t: float) -> int:
            return sum(1 for times in news.requests.values() if sum(1 for x in times if x > t) >= 2)

        assert members.wait(lambda: polled_since(killed_at) == N_SOURCES, timeout=150), \
            f"{polled_since(killed_at)} of {N_SOURCES} sources polled twice after the kill"
        news.freeze()
        published = news.published()
        urls = {p["url"] for p in published}

        def stored() -> int:
            rows = query(pg_url, "SELECT url FROM articles")
            return len(urls & {r[0] for r in rows})

        assert members.wait(lambda: stored() == len(urls), timeout=120), \
            f"{stored()} of {len(urls)} published items stored"

        # digests: every story with a hit reaches every subscriber following its rule, once
        def owed() -> dict:
            return expected_stories(pg_url, delivered=True)

        assert members.wait(lambda: not any(owed().values()), timeout=120), f"still owed: {owed()}"
        polling_ended = time.time()
        codes = members.stop_all()
    finally:
        members.kill_all()
        news.close()
        smtp.close()
    assert codes[1] == -signal.SIGKILL and [c for i, c in enumerate(codes) if i != 1] == [0, 0, 0], codes
    for i in (0, 2, 3):
        assert "stopped after" in members.log(i) and "Traceback" not in members.log(i), members.log(i)[-3000:]
    assert in_flight > 0, "the member was killed between polls: the test did not exercise what it should"
    assert any(re.search(r"job\(s\) of dead members redone|superseded", members.log(i)) for i in (0, 2, 3))

    # every published item stored exactly once, under its own source; nothing else stored
    rows = query(pg_url, "SELECT url, source, story FROM articles")
    assert sorted(r[0] for r in rows) == sorted(urls)
    by_url = {r[0]: r for r in rows}
    assert all(by_url[p["url"]][1] == p["source"] for p in published)

    # each story once: the copies of a story share one story id; different stories never share one
    story_of: dict[str, set[int]] = {}
    for p in published:
        story_of.setdefault(p["story"], set()).add(by_url[p["url"]][2])
    assert all(len(ids) == 1 for ids in story_of.values()), {k: v for k, v in story_of.items() if len(v) > 1}
    assert len({next(iter(v)) for v in story_of.values()}) == len(story_of)
    assert any(k.startswith("pair") and sum(1 for p in published if p["story"] == k) == 2 for k in story_of)

    # digests: delivered (nothing pending or unknown), each message once, each story once per subscriber
    statuses = query(pg_url, "SELECT status, count(*) FROM deliveries GROUP BY status")
    assert dict(statuses).keys() == {"sent"}, statuses
    deliveries = query(pg_url, "SELECT id, subscriber, period, message_id FROM deliveries")
    received = [(rcpts, msg) for rcpts, msg in smtp.messages]
    ids = [msg["Message-ID"] for _, msg in received]
    assert len(ids) == len(set(ids)), "a message was sent twice"
    assert sorted((r, m["Message-ID"]) for rs, m in received for r in rs) == \
        sorted((d[1], d[3]) for d in deliveries)
    assert len({(d[1], d[2]) for d in deliveries}) == len(deliveries)
    carried = query(pg_url, "SELECT d.subscriber, dh.story, d.message_id FROM delivery_hits dh"
                            " JOIN deliveries d ON d.id = dh.delivery")
    per_sub: dict[tuple, set] = {}
    for sub, story, mid in carried:
        per_sub.setdefault((sub, story), set()).add(mid)
    assert all(len(m) == 1 for m in per_sub.values()), "a story went to a subscriber in two digests"
    expected = expected_stories(pg_url)
    for sub in SUBSCRIBERS:
        assert {s for (who, s) in per_sub if who == sub} == expected[sub], sub
        assert expected[sub], f"{sub} was owed nothing: the test proves little"
    # the emails carry what the outbox says: a link to an article of every story they were recorded with
    texts = {m["Message-ID"]: body_text(m) for _, m in received}
    links = dict(query(pg_url, "SELECT story, string_agg(url, ' ') FROM articles GROUP BY story"))
    for sub, story, mid in carried:
        assert any(u in texts[mid] for u in links[story].split()), (sub, story)

    # no source went unpolled for more than two intervals, before or after the kill
    up = min(t for times in news.requests.values() for t in times)  # the cluster's first poll
    worst, where = 0.0, ""
    for sid, times in news.requests.items():
        edges = [up] + sorted(times) + [polling_ended]
        gap, at = max((b - a, a) for a, b in zip(edges, edges[1:]))
        if gap > worst:
            worst, where = gap, f"{sid} from {at - up:.1f}s after the first poll (kill at {killed_at - up:.1f}s)"
    # polite across machines: three members, but never more than per_host requests to the host at once
    # (except for a moment at the kill: the server may still be answering the dead member's request
    # when PostgreSQL has already released its slot)
    crowded = [(round(t - killed_at, 2), n) for t, n in news.crowds if n > PER_HOST and abs(t - killed_at) > 1.0]
    assert not crowded, crowded
    assert worst <= 2 * INTERVAL, f"a source waited {worst:.1f}s between polls (interval {INTERVAL}s): {where}"
    print(f"\ncluster: {len(urls)} items, {len(story_of)} stories, {len(deliveries)} digests, "
          f"{sum(len(t) for t in news.requests.values())} polls, {in_flight} jobs running at the kill, "
          f"longest gap {worst:.1f}s ({where}), at most {news.most_in_flight} requests at once, "
          f"{polling_ended - started:.0f}s in all")


def expected_stories(url: str, delivered: bool = False) -> dict[str, set[int]]:
    """Per subscriber, the stories with a hit on a rule they follow (with ``delivered``: those not yet
    carried by a sent digest)."""
    rows = query(url, "SELECT DISTINCT h.rule, a.story FROM hits h JOIN articles a ON a.id = h.article")
    out = {}
    for sub, rule in SUBSCRIBERS.items():
        out[sub] = {story for r, story in rows if rule is None or r == rule}
    if delivered:
        sent = query(url, "SELECT d.subscriber, dh.story FROM delivery_hits dh JOIN deliveries d ON d.id = dh.delivery"
                          " WHERE d.status = 'sent'")
        for sub, story in sent:
            out[sub].discard(story)
    return out


def body_text(msg) -> str:
    parts = msg.walk() if msg.is_multipart() else [msg]
    return "\n".join(p.get_payload(decode=True).decode("utf-8", "replace") for p in parts
                     if p.get_content_type() in ("text/plain", "text/html"))


# --------------------------------------------------------------------------- config versions and reconcile


def two_sources(base: str, n: int = 2, interval: str = "15m") -> str:
    return f"defaults: {{interval: {interval}}}\nsources:\n" + "".join(
        f"  - {{id: src{i}, url: '{base}/feed/{i}'}}\n" for i in range(n))


def member(tmp: Path, name: str, url: str, feeds: str | None, rules: str | None, age: float = 0.0):
    """A cluster member (not started) with its own config files, ``age`` seconds old."""
    from pipeline.cluster import Member
    from pipeline.settings import Settings

    d = tmp / name
    d.mkdir()
    for fname, text in (("feeds.yaml", feeds), ("keywords.yaml", rules)):
        if text is not None:
            (d / fname).write_text(text)
            stamp = time.time() - age
            os.utime(d / fname, (stamp, stamp))
    return Member(Settings(feeds=str(d / "feeds.yaml"), keywords=str(d / "keywords.yaml"), db=url, cluster_heartbeat=1))


def touch(path: Path, text: str, ahead: float = 1.0) -> None:
    """Write ``text`` with a modification time ``ahead`` seconds in the future (newer than anything stored)."""
    path.write_text(text)
    stamp = time.time() + ahead
    os.utime(path, (stamp, stamp))


def test_config_is_shared_through_the_database_by_version(tmp_path, pg_url):
    from pipeline import store
    from pipeline.errors import ConfigError

    a = member(tmp_path, "a", pg_url, two_sources("http://127.0.0.1:9"), RULES)
    a._open()
    assert a.versions == {"feeds": 1, "keywords": 1}
    # b's files are older and different: b runs with the database's config and does not overwrite it
    b = member(tmp_path, "b", pg_url, two_sources("http://127.0.0.1:8", 5), "rules:\n  - {id: other, any: [x]}\n",
               age=3600)
    b._open()
    assert b.versions == {"feeds": 1, "keywords": 1}
    assert [s.url for s in b.feeds.sources] == [s.url for s in a.feeds.sources]
    assert [r.id for r in b.rules.rules] == ["fentanyl", "cartel"]
    # a member without files joins with the database's config
    c = member(tmp_path, "c", pg_url, None, None)
    c._open()
    assert len(c.feeds.sources) == 2 and c.versions == {"feeds": 1, "keywords": 1}

    # a valid edit on a: version 2, and the others load it
    touch(Path(a.settings.feeds), two_sources("http://127.0.0.1:9", 3))
    assert a._sync_config() == {"feeds": True, "feeds_changed_sources": True}
    assert a.versions["feeds"] == 2
    b._sync_config()
    c._sync_config()
    assert len(b.feeds.sources) == len(c.feeds.sources) == 3 and b.versions["feeds"] == 2
    assert "src2" in store.source_states(a.read_db)  # the sources table follows the config

    # an invalid edit: reported (log and `status`), nothing stored, the last valid rules stay everywhere
    touch(Path(a.settings.keywords), "rules:\n  - {id: Bad Id, any: []}\n", ahead=2)
    a._sync_config()
    assert a.versions["keywords"] == 1 and [r.id for r in a.rules.rules] == ["fentanyl", "cartel"]
    errors = store.get_meta(a.read_db, "config_errors")
    assert errors and "keywords.yaml" in errors[0]
    b._sync_config()
    assert b.versions["keywords"] == 1
    # fixed: stored as version 2, the error cleared
    touch(Path(a.settings.keywords), RULES + "  - {id: arms, any: [rifle]}\n", ahead=3)
    a._sync_config()
    b._sync_config()
    assert a.versions["keywords"] == b.versions["keywords"] == 2
    assert [r.id for r in b.rules.rules] == ["fentanyl", "cartel", "arms"]
    assert store.get_meta(a.read_db, "config_errors") is None

    # an edit on b, now newer than what is stored, becomes version 3 for everyone
    touch(Path(b.settings.feeds), two_sources("http://127.0.0.1:9", 4), ahead=4)
    b._sync_config()
    a._sync_config()
    assert a.versions["feeds"] == b.versions["feeds"] == 3 and len(a.feeds.sources) == 4

    # a first member with invalid files and nothing stored yet: a one-line config error, exit status 2
    for m in (a, b, c):
        m._close()
    from pipeline.store import cluster as cs

    empty_name, empty_url = new_schema("clusterempty")
    try:
        bad = member(tmp_path, "bad", empty_url, "sources: [", RULES)
        with pytest.raises(ConfigError) as err:
            bad._open()
        assert err.value.exit_code == 2 and "feeds.yaml" in str(err.value)
        assert cs.config_versions(bad.conn).get("feeds") is None
        bad._close()
    finally:
        drop_schema(empty_name)


def test_reconcile_gives_every_source_one_job_and_redoes_dead_members_work(tmp_path, pg_url):
    m = member(tmp_path, "m", pg_url, two_sources("http://127.0.0.1:9", 3), RULES)
    m._open()

    def jobs() -> list[tuple]:
        return query(pg_url, "SELECT queueing_lock, status::text, worker_id FROM procrastinate_jobs"
                             " WHERE task_name = 'borderwatch.poll' ORDER BY queueing_lock, id")

    async def scenario():
        m.app = m._build_app()
        async with m.app.open_async():
            jm = m.app.job_manager
            assert (await m.reconcile())["deferred"] == 3
            assert (await m.reconcile())["deferred"] == 0  # one job per source, however often it runs
            assert [(j[0], j[1]) for j in jobs()] == [(f"poll:src{i}", "todo") for i in range(3)]

            # a member starts src0's and src1's polls and dies (its heartbeat stops); src1's next poll
            # was already deferred when it died
            dead = await jm.register_worker()
            query(pg_url, "UPDATE procrastinate_jobs SET scheduled_at = CASE WHEN queueing_lock = 'poll:src2'"
                          " THEN now() + interval '1 hour' ELSE now() - interval '1 second' END")
            taken = {(await jm.fetch_job(queues=None, worker_id=dead)).queueing_lock for _ in range(2)}
            assert taken == {"poll:src0", "poll:src1"}
            await m.reconcile_task.defer_async(timestamp=0)  # it was running a reconcile too
            assert (await jm.fetch_job(queues=None, worker_id=dead)).task_name == "borderwatch.reconcile"
            await m.defer_poll("src1", dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5))
            assert (await m.reconcile())["redone"] == 0  # alive until 4 heartbeats are missed
            query(pg_url, f"UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
                          f" WHERE id = {dead}")
            # the dead member's reconcile job does not hold up the next one (reconcile has no `lock`)
            await m.reconcile_task.defer_async(timestamp=1)
            live = await jm.register_worker()
            assert (await jm.fetch_job(queues=None, worker_id=live)).task_name == "borderwatch.reconcile"
            result = await m.reconcile()
            assert (result["redone"], result["superseded"], result["deferred"]) == (2, 1, 0)  # src0 and reconcile
            assert [(j[0], j[1]) for j in jobs()] == [(f"poll:src{i}", "todo") for i in range(3)]

            # a source removed from the config loses its waiting job; a new one gets one
            touch(Path(m.settings.feeds), two_sources("http://127.0.0.1:9", 3).replace("src2", "src9"))
            m._sync_config()
            await m.reconcile()
            assert [j[0] for j in jobs()] == ["poll:src0", "poll:src1", "poll:src9"]

    try:
        asyncio.run(scenario())
    finally:
        m._close()


def test_unreachable_postgresql_is_one_line_and_exit_1(tmp_path):
    from conftest import free_port

    (tmp_path / "feeds.yaml").write_text(two_sources("http://127.0.0.1:9"))
    (tmp_path / "keywords.yaml").write_text(RULES)
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--db", url], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr and "127.0.0.1" in lines[0], done.stderr
