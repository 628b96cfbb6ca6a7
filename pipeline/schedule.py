"""APScheduler wiring: jobs call the cycle and send_due; state lives in the database.

- one job per source, first run at the source's stored ``next_poll`` (so a restart
  neither re-polls a source polled a minute ago nor loses its back-off), then
  rescheduled after each poll to the ``next_poll`` the cycle computed (interval with
  jitter, or capped exponential back-off, or the server's Retry-After);
- ``max_instances=1``, ``coalesce=True`` and a misfire grace time on every job;
- all polls share one Fetcher, so sources due together run concurrently within the
  global and per-host limits;
- a lease row in the database keeps a second ``run`` on the same database out;
- SIGINT/SIGTERM: stop taking work; in-flight polls get SHUTDOWN_DEADLINE to finish, then
  are cancelled (each poll writes in one transaction, so a cancelled one leaves nothing and
  is redone by the next run); a digest attempt before its final dot is aborted at once
  (it stays owed), one past it gets a few seconds for the server's reply; CPU work that
  cannot be interrupted (extraction in a thread, the parser process) is abandoned, not
  waited for: exit 0 within seconds. A second signal exits at once (SQLite rolls back
  any open transaction).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import multiprocessing
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import lease, store
from .errors import AlreadyRunning  # noqa: F401 (re-exported)
from .runtime import App
from .cycle import CpuPool, SourceReport, next_poll, run_cycle
from .fetch import Fetcher, Robots
from .status import evaluate_health

log = logging.getLogger("borderwatch.schedule")

LEASE_TTL = lease.TTL
LEASE_RENEW = lease.RENEW
RELOAD_EVERY = 5.0
DIGEST_EVERY = 60.0
IMMEDIATE_DELAY = 5.0  # after a poll with new hits, digests go out this soon
SHUTDOWN_DEADLINE = 8.0  # in-flight polls may finish within this, then are cancelled: fits Docker's default 10 s stop grace
CANCEL_WAIT = 1.0
MISFIRE_GRACE = 300
THREAD_PREFIX = "borderwatch-run"


def _owner() -> str:
    return lease.new_owner()


def _take_lease(db, owner: str) -> None:
    holder = store.acquire_lease(db, owner, LEASE_TTL, gone=lease.owner_gone)
    if holder:
        raise AlreadyRunning(f"another borderwatch run ({lease.label(holder)}) is using this database; "
                             f"two schedulers on one database would duplicate polls and digests. "
                             f"Stop it first; if it died on another host, its lease expires {LEASE_TTL:.0f}s "
                             "after its last heartbeat.")


def run_once(app: App, progress: bool = False, send_digests: bool = True, now: dt.datetime | None = None) -> dict:
    """One full cycle: poll all enabled sources, store, send due digests; returns a summary."""
    owner = _owner()
    _take_lease(app.db, owner)
    try:
        sources = app.feeds.enabled()
        if progress:
            result = _with_progress(app, sources)
        else:
            result = asyncio.run(run_cycle(app.db, app.feeds, app.matcher, sources))
        summary = result.summary()
        summary["failures"] = [{"source": r.source, "error": r.error} for r in result.failed]
        summary["health"] = evaluate_health(app.db, app.feeds, now)
        if send_digests:
            from .digest import send_due

            summary["digests"] = send_due(app.db, app.rules, now, settings=app.settings).as_dict()
        return summary
    finally:
        store.release_lease(app.db, owner)


def _with_progress(app: App, sources) -> object:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import sys

    from rich.console import Console

    with Progress(TextColumn("polling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                  TimeElapsedColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("poll", total=len(sources), last="")
        # log lines go through the bar's redirected stderr, so they print above it instead of through it
        handlers = [h for h in logging.getLogger("borderwatch").handlers if isinstance(h, logging.StreamHandler)]
        old = [h.setStream(sys.stderr) for h in handlers]

        def done(report: SourceReport) -> None:
            bar.update(task, advance=1, last=f"{report.source} {'ok' if report.ok else 'FAILED'}")

        try:
            return asyncio.run(run_cycle(app.db, app.feeds, app.matcher, sources, on_report=done))
        finally:
            for h, stream in zip(handlers, old):
                if stream is not None:  # None: the stream had not changed
                    h.setStream(stream)


class Metrics:
    """Prometheus metrics when prometheus_client is installed and a port is given; else no-ops."""

    def __init__(self, port: int | None, addr: str = "127.0.0.1"):
        self.enabled, self.addr = False, addr
        if port is None:
            return
        try:
            import prometheus_client as pc
        except ImportError:
            log.warning("--metrics-port needs the metrics extra: pip install 'borderwatch[metrics]'")
            return
        self.polls = pc.Counter("borderwatch_polls_total", "Source polls", ["result"])
        self.articles = pc.Counter("borderwatch_articles_total", "New articles stored")
        self.hits = pc.Counter("borderwatch_hits_total", "New hits stored")
        self.digests = pc.Counter("borderwatch_digests_sent_total", "Digests sent")
        self.latency = pc.Histogram("borderwatch_poll_seconds", "Poll latency",
                                    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60))
        pc.start_http_server(port, addr=addr)
        self.enabled = True

    def poll(self, r: SourceReport) -> None:
        if self.enabled:
            self.polls.labels("not_modified" if r.not_modified else "ok" if r.ok else "failed").inc()
            self.articles.inc(r.new_articles)
            self.hits.inc(r.new_hits)
            self.latency.observe(r.ms / 1000)

    def sent(self, n: int) -> None:
        if self.enabled and n:
            self.digests.inc(n)


class Runner:
    """The long-running scheduler behind `borderwatch run`."""

    def __init__(self, app: App, metrics_port: int | None = None, send_digests: bool = True,
                 clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self.app = app
        self.send_digests = send_digests
        self.metrics_port = metrics_port
        self.clock = clock
        self.owner = _owner()
        self.inflight: set[asyncio.Task] = set()
        self.polling: set[str] = set()  # sources whose poll is running (their job is re-added when it ends)
        self.stopping: asyncio.Event | None = None
        self.halt = threading.Event()  # the same stop request, for work running in threads (digest sending)
        self.jobs: set[asyncio.Task] = set()  # digest and prune jobs in flight
        self._executor: ThreadPoolExecutor | None = None
        self._configs: dict = {}
        self._last_errors: str | None = None
        self.polls_done = 0
        self.scheduler = None
        self.fetcher: Fetcher | None = None
        self.pool: CpuPool | None = None

    # -- lifecycle

    def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM. The event loop's threads are not waited for at the end: a thread
        still busy (an extraction that cannot be interrupted) holds nothing that must be written."""
        _take_lease(self.app.db, self.owner)
        loop = asyncio.new_event_loop()
        self._executor = ThreadPoolExecutor(thread_name_prefix=THREAD_PREFIX)
        loop.set_default_executor(self._executor)
        try:
            loop.run_until_complete(self.main())
        finally:
            try:
                store.release_lease(self.app.db, self.owner)
            finally:
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                self._executor.shutdown(wait=False, cancel_futures=True)
                loop.close()

    def stuck_threads(self, wait: float = 2.0) -> int:
        """After run_forever: give the loop's worker threads ``wait`` seconds to end; return how many
        are still busy (CPU work that cannot be interrupted; nothing of theirs is half-written)."""
        deadline = time.monotonic() + wait
        workers = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX + "_")]
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return sum(t.is_alive() for t in workers)

    async def main(self, stop_after: float | None = None) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.metrics = Metrics(self.metrics_port, self.app.settings.metrics_addr)
        self.fetcher = Fetcher(self.app.feeds.concurrency, self.app.feeds.per_host, robots=Robots())
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=dt.timezone.utc,
                                          job_defaults={"max_instances": 1, "coalesce": True,
                                                        "misfire_grace_time": MISFIRE_GRACE})
        self._install_signals(loop)
        self._refresh_pool()
        self.sync_jobs()
        now = self.clock()
        self.scheduler.add_job(self.renew_lease, "interval", seconds=LEASE_RENEW, id="lease")
        self.scheduler.add_job(self.reload, "interval", seconds=RELOAD_EVERY, id="reload")
        if self.send_digests:
            self.scheduler.add_job(self.digests, "interval", seconds=DIGEST_EVERY, id="digests",
                                   next_run_time=now + dt.timedelta(seconds=5))
        self.scheduler.add_job(self.prune, "interval", days=1, id="prune", next_run_time=now + dt.timedelta(hours=1))
        self.scheduler.start()
        log.info("scheduler started: %d sources, %d rules", len(self.app.feeds.enabled()), len(self.app.rules.rules))
        try:
            if stop_after is None:
                await self.stopping.wait()
            else:
                try:
                    await asyncio.wait_for(self.stopping.wait(), stop_after)
                except TimeoutError:
                    pass
        finally:
            await self.shutdown()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_signal(signum: int) -> None:
            if self.stopping.is_set():
                log.warning("second signal: exiting now (open transactions roll back)")
                os._exit(130)
            log.info("signal %s: finishing in-flight polls (up to %.0fs), then exiting", signal.Signals(signum).name,
                     SHUTDOWN_DEADLINE)
            self.halt.set()
            self.stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass

    def stop(self) -> None:
        self.halt.set()
        if self.stopping is not None:
            self.stopping.set()

    async def shutdown(self) -> None:
        """Stop taking work, let in-flight polls finish (each writes in one transaction), then stop."""
        self.halt.set()  # a digest attempt before its final dot is aborted now
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()  # shutdown() would cancel running coroutine jobs: drain them first
        running = set(self.inflight) | set(self.jobs)
        if running:
            done, pending = await asyncio.wait(running, timeout=SHUTDOWN_DEADLINE)
            for task in pending:
                task.cancel()  # a poll not yet written leaves nothing; the next run polls it again
            if pending:
                await asyncio.wait(pending, timeout=CANCEL_WAIT)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.fetcher is not None:
            await self.fetcher.aclose()
        if self.pool is not None:  # do not wait for a parse in the worker process: end it
            self.pool.executor.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():
                child.terminate()
        log.info("scheduler stopped after %d polls", self.polls_done)

    # -- jobs

    def sync_jobs(self) -> None:
        """Make the poll jobs match the enabled sources: add new, drop removed, re-plan changed ones."""
        states = store.source_states(self.app.db)
        wanted = {s.id: s for s in self.app.feeds.enabled()}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll:") and job.id[5:] not in wanted:
                job.remove()
        now = self.clock()
        for sid, source in wanted.items():
            job_id = f"poll:{sid}"
            stored = store.parse_iso((states.get(sid) or {}).get("next_poll"))
            spread = min(source.interval * 0.1, len(wanted) * 0.05)  # never-polled sources: no burst at start
            first = max(stored, now) if stored else now + dt.timedelta(seconds=random.uniform(0, spread))
            changed = sid in self._configs and self._configs[sid] != source
            if sid in self.polling and not changed:
                continue  # the running poll reschedules it
            if changed:
                first = now
            if changed or self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(self.poll, "date", run_date=first, id=job_id, args=[sid], replace_existing=True)
        self._configs = dict(wanted)

    async def poll(self, source_id: str) -> None:
        if self.stopping.is_set():
            return
        source = self.app.feeds.get(source_id)
        if source is None or not source.enabled:
            return
        task = asyncio.current_task()
        self.inflight.add(task)
        self.polling.add(source_id)
        try:
            result = await run_cycle(self.app.db, self.app.feeds, self.app.matcher, [source], self.fetcher,
                                     on_report=self.metrics.poll, pool=self.pool)
            self.polls_done += 1
            if evaluate_health(self.app.db, self.app.feeds, self.clock(), [source_id]) and self.send_digests:
                self._digests_soon()  # a health alert is owed: deliver it with the next digest run
            if result.new_hits and self.send_digests:
                self._digests_soon()
        except asyncio.CancelledError:  # shutdown: nothing of this poll was written; the next run redoes it
            log.info("poll of %s abandoned at shutdown (nothing stored; polled again next time)", source_id)
        except store.StoreError as exc:  # e.g. disk full: one line; the poll is rolled back and redone later
            log.error("poll of %s not stored: %s", source_id, exc)
        except Exception:  # e.g. the database is unavailable: log it, and keep the source scheduled
            log.exception("poll of %s failed outside the source's own handling", source_id)
        finally:
            self.inflight.discard(task)
            self.polling.discard(source_id)
            if not self.stopping.is_set():
                self._schedule_next(source)

    def _digests_soon(self) -> None:
        """New hits: run the digest job within a few seconds (immediate subscribers), batching
        whatever other polls find meanwhile into the same email."""
        job = self.scheduler.get_job("digests")
        soon = self.clock() + dt.timedelta(seconds=IMMEDIATE_DELAY)
        if job is not None and job.next_run_time and job.next_run_time > soon:
            job.modify(next_run_time=soon)

    def _schedule_next(self, source) -> None:
        try:
            state = store.source_states(self.app.db, [source.id]).get(source.id) or {}
        except Exception:  # noqa: BLE001 - an unreadable database must not unschedule the source
            state = {}
        planned = store.parse_iso(state.get("next_poll"))
        now = self.clock()
        when = planned if planned and planned > now else next_poll(source, now, int(state.get("consecutive_failures") or 0))
        self.scheduler.add_job(self.poll, "date", run_date=when, id=f"poll:{source.id}", args=[source.id],
                               replace_existing=True)

    async def reload(self) -> None:
        changed = self.app.reload()
        errors = "\n".join(self.app.errors.values()) or None
        if errors != self._last_errors:  # shown by `borderwatch status`
            store.set_meta(self.app.db, "config_errors", errors)
            self._last_errors = errors
        if changed["rules"]:
            self._refresh_pool()
        if changed["feeds"]:
            self.sync_jobs()

    def _refresh_pool(self) -> None:
        """A worker process for parsing and matching when there are many sources (rebuilt for new rules)."""
        old = self.pool
        self.pool = CpuPool(self.app.rules) if CpuPool.worth_it(len(self.app.feeds.enabled())) else None
        if old is not None:
            old.executor.shutdown(wait=False)

    def renew_lease(self) -> None:
        holder = store.acquire_lease(self.app.db, self.owner, LEASE_TTL)
        if holder:
            log.error("lost the scheduler lease to %s; stopping", lease.label(holder))
            self.stop()

    async def digests(self) -> None:
        from .digest import send_due

        def send() -> dict:
            db = store.connect(self.app.settings.db)
            try:
                return send_due(db, self.app.rules, self.clock(), settings=self.app.settings, stop=self.halt).as_dict()
            finally:
                db.close()

        task = asyncio.current_task()
        self.jobs.add(task)
        try:
            report = await asyncio.to_thread(send)
        finally:
            self.jobs.discard(task)
        self.metrics.sent(report["sent"])
        if report["created"] or report["sent"] or report["errors"]:
            log.log(logging.WARNING if report["errors"] else logging.INFO,
                    "digests: %d new, %d sent, %d retry, %d failed", report["created"], report["sent"],
                    report["retry"], report["failed"])
        for error in report["errors"]:  # the reason, not only a count (also shown by `borderwatch status`)
            log.warning("delivery failed: %s", error)

    async def prune(self) -> None:
        cutoff = store.iso(self.clock() - dt.timedelta(days=self.app.settings.retention_days))

        def work() -> int:
            db = store.connect(self.app.settings.db)
            try:
                return store.prune(db, cutoff)
            finally:
                db.close()

        n = await asyncio.to_thread(work)
        log.info("pruned %d old articles without hits", n)

