"""The scheduler: jitter, back-off, hot reload, graceful shutdown, restart without re-alerting."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import Reply, rss, wait_until

from pipeline import store
from pipeline.app import App
from pipeline.config import Settings, Source
from pipeline.cycle import next_poll
from pipeline.schedule import Runner

ROOT = Path(__file__).parent.parent
T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def test_jitter_spreads_sources_that_share_an_interval():
    src = Source(id="s", url="http://x/", interval=900)
    rng = random.Random(7)
    offsets = [(next_poll(src, T0, 0, rng=rng) - T0).total_seconds() for _ in range(500)]
    assert min(offsets) >= 810 and max(offsets) <= 990
    buckets = {int((o - 810) // 36) for o in offsets}
    assert buckets == {0, 1, 2, 3, 4}  # spread over the whole ±10% window, not bunched


def test_backoff_is_exponential_capped_and_recovers():
    src = Source(id="s", url="http://x/", interval=600)
    rng = random.Random(1)
    delays = [(next_poll(src, T0, f, rng=random.Random(1)) - T0).total_seconds() for f in range(0, 8)]
    assert 540 <= delays[0] <= 660  # normal interval after success
    assert all(b > a for a, b in zip(delays[1:5], delays[2:6]))
    assert max(delays) <= 6 * 3600 * 1.1  # capped
    assert (next_poll(src, T0, 0, rng=rng) - T0).total_seconds() <= 660  # recovery: back to the interval
    assert (next_poll(src, T0, 1, retry_after=7200, rng=rng) - T0).total_seconds() >= 7200  # Retry-After honoured


def _app(tmp_path, server, n: int = 3, interval: str = "1h") -> App:
    for i in range(n):
        server.routes[f"/f{i}"] = Reply(body=rss([{"title": f"Sinaloa Cartel story {i}", "link": f"https://x.example/{i}",
                                                   "guid": f"g{i}", "description": f"Los Chapitos and the Sinaloa Cartel {i}."}]),
                                        etag=True)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n" + "".join(f"  - id: f{i}\n    url: {server.url(f'/f{i}')}\n    interval: {interval}\n"
                                            for i in range(n)))
    return App.open(Settings(str(feeds), str(ROOT / "keywords.yaml"), str(tmp_path / "s.db")))


def _run_for(runner: Runner, seconds: float) -> None:
    asyncio.run(runner.main(stop_after=seconds))


async def _until(condition, limit: float = 120.0) -> bool:
    """Wait for an event (bounded), not for a fixed time: CI is a loaded 2-core machine."""
    for _ in range(int(limit / 0.1)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def _polled(app: App, runner: Runner, ids) -> bool:
    states = store.source_states(app.db, list(ids))
    return all((states.get(s) or {}).get("last_poll") for s in ids) and not runner.polling


def _run_until_polled(app: App, runner: Runner, ids) -> None:
    async def scenario():
        task = asyncio.create_task(runner.main(stop_after=180))
        await _until(lambda: _polled(app, runner, ids))
        runner.stop()
        await task

    asyncio.run(scenario())


def test_runner_polls_each_source_once_and_restart_does_not_repoll_or_realert(tmp_path, server):
    app = _app(tmp_path, server)
    _run_until_polled(app, Runner(app, send_digests=False), ["f0", "f1", "f2"])
    assert sorted(p for p in server.hits if p.startswith("/f")) == ["/f0", "/f1", "/f2"]
    assert store.counts(app.db)["hits"] == 3
    states = store.source_states(app.db)
    assert all(store.parse_iso(s["next_poll"]) > dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=50)
               for s in states.values())
    server.hits.clear()
    _run_for(Runner(app, send_digests=False), 3)  # a restart a moment later
    assert [p for p in server.hits if p.startswith("/f")] == []  # not re-polled
    assert store.counts(app.db)["hits"] == 3  # nothing re-alerted


def test_overdue_sources_poll_once_after_a_pause(tmp_path, server):
    """Coalescing: a source whose polls were missed for a long time is polled once, not once per missed run.

    Event-driven, not timed: the run stops once both overdue polls are stored; with a 1h interval any
    second poll could only come from replaying missed runs.
    """
    app = _app(tmp_path, server, n=2, interval="1h")
    app.db.execute("UPDATE sources SET next_poll = '2026-01-01T00:00:00Z'")
    server.hits.clear()
    _run_until_polled(app, Runner(app, send_digests=False), ["f0", "f1"])
    assert {p: server.hits.count(p) for p in ("/f0", "/f1")} == {"/f0": 1, "/f1": 1}
    states = store.source_states(app.db, ["f0", "f1"])
    assert all(store.parse_iso(s["next_poll"]) > dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=50)
               for s in states.values())


def test_hot_reload_adds_removes_and_keeps_last_valid(tmp_path, server):
    app = _app(tmp_path, server, n=2)
    runner = Runner(app, send_digests=False)

    async def scenario():
        task = asyncio.create_task(runner.main(stop_after=180))
        assert await _until(lambda: _polled(app, runner, ["f0", "f1"]))
        jobs = lambda: sorted(j.id for j in runner.scheduler.get_jobs() if j.id.startswith("poll:"))  # noqa: E731
        assert jobs() == ["poll:f0", "poll:f1"]
        feeds = Path(app.settings.feeds)
        feeds.write_text(f"sources:\n  - id: f1\n    url: {server.url('/f1')}\n    interval: 1h\n"
                         f"  - id: f2\n    url: {server.url('/f2')}\n    interval: 1h\n")
        server.routes["/f2"] = Reply(body=rss([{"title": "New source item", "link": "https://x.example/new", "guid": "n",
                                                "description": "Extradition of a CJNG leader to Mexico."}]))
        os.utime(feeds, ns=(1, 7_000_000_000_000_000_000))
        await runner.reload()
        assert jobs() == ["poll:f1", "poll:f2"]
        await _until(lambda: _polled(app, runner, ["f2"]))  # its job is re-added when the poll ends
        assert "/f2" in server.hits and jobs() == ["poll:f1", "poll:f2"]
        feeds.write_text("sources: [this is: not valid")
        os.utime(feeds, ns=(1, 8_000_000_000_000_000_000))
        await runner.reload()
        assert jobs() == ["poll:f1", "poll:f2"] and "feeds" in app.errors
        shown = subprocess.run([sys.executable, "-m", "pipeline", "status", "--feeds", str(feeds), "--db", app.settings.db],
                               capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
        assert "configuration errors" in shown.stdout and "feeds.yaml:1: YAML error" in shown.stdout
        kw = tmp_path / "keywords.yaml"
        kw.write_text("rules:\n  - id: only\n    any: [zzz]\n")
        app.settings.keywords = str(kw)
        await runner.reload()
        assert [r.id for r in app.rules.rules] == ["only"]
        runner.stop()
        await task

    asyncio.run(scenario())


def test_graceful_shutdown_lets_a_slow_poll_finish(tmp_path, server):
    server.routes["/slow"] = Reply(body=rss([{"title": "Slow feed: fentanyl seizure in Sonora", "link": "https://x.example/slow",
                                              "guid": "slow", "description": "Fentanyl pills seized in Sonora, Mexico."}]), delay=3)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: slow\n    url: {server.url('/slow')}\n    interval: 1h\n    timeout: 20s\n")
    db_path = tmp_path / "g.db"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--feeds", str(feeds), "--keywords",
                             str(ROOT / "keywords.yaml"), "--db", str(db_path), "--no-digests"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: "/slow" in server.hits, timeout=30)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # while the server holds the response
        proc.wait(40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    db = store.connect(db_path)
    assert store.counts(db)["articles"] == 1 and store.counts(db)["hits"] == 1  # the in-flight poll was stored
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.lease_holder(db) is None


def test_a_poll_that_raises_keeps_its_source_scheduled(tmp_path, server, monkeypatch):
    import pipeline.schedule as schedule

    app = _app(tmp_path, server, n=1)
    runner = Runner(app, send_digests=False)

    calls = []

    async def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("database is unavailable")

    async def scenario():
        monkeypatch.setattr(schedule, "run_cycle", broken)
        task = asyncio.create_task(runner.main(stop_after=180))

        def rescheduled() -> bool:
            job = runner.scheduler.get_job("poll:f0") if runner.scheduler else None
            return job is not None and "f0" not in runner.polling and job.next_run_time > dt.datetime.now(dt.timezone.utc)

        assert await _until(lambda: calls)  # the poll ran and raised ...
        assert await _until(rescheduled)  # ... and the source is rescheduled, not lost
        job = runner.scheduler.get_job("poll:f0")
        assert job is not None and job.next_run_time > dt.datetime.now(dt.timezone.utc)  # rescheduled, not lost
        runner.stop()
        await task

    asyncio.run(scenario())


def test_new_hits_bring_the_digest_job_forward(tmp_path, server):
    app = _app(tmp_path, server, n=1, interval="2s")
    store.add_subscriber(app.db, "now@example.org", None, None, "immediate", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
    outbox = tmp_path / "outbox"
    os.environ.pop("SMTP_HOST", None)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the default outbox is ./outbox
    timings = {}
    try:
        runner = Runner(app, send_digests=True)

        async def wait_for(n: int, limit: float) -> None:
            deadline = time.monotonic() + limit
            while len(list(outbox.glob("*.eml"))) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.2)

        async def scenario():
            task = asyncio.create_task(runner.main(stop_after=60))
            await wait_for(1, 20)
            server.routes["/f0"] = Reply(body=rss([{"title": "CJNG convoy seen in Zacatecas", "link": "https://x.example/new",
                                                    "guid": "new", "description": "A CJNG convoy crossed Zacatecas, Mexico."}]),
                                         etag=True)
            changed = time.monotonic()
            await wait_for(2, 40)
            timings["second"] = time.monotonic() - changed
            runner.stop()
            await task

        asyncio.run(scenario())
    finally:
        os.chdir(cwd)
    assert len(list(outbox.glob("*.eml"))) == 2
    assert timings["second"] < 20  # the next regular digest run would be ~60 s after the first
