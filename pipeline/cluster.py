"""A cluster member: `borderwatch run --db postgresql://...`. Start as many as you like, on any machines.

The work is shared through PostgreSQL with procrastinate (a task queue in the database):

- every enabled source has exactly one poll job, waiting (scheduled for its ``next_poll``) or running:
  the job's ``queueing_lock`` is ``poll:ID`` (procrastinate refuses a second waiting one), and a poll
  that ends, however it ends, defers the next one for later. (No procrastinate ``lock``: it makes
  every job fetch check the other jobs with the same lock, 4x slower with 2,000 waiting polls, and the
  successor is scheduled for after the running poll anyway);
- ``reconcile`` (a periodic task, one member per tick) gives every enabled source without a job one,
  puts the running jobs of dead members (no heartbeat for 4 heartbeats) back in the queue, and
  brings the sources table up to the cluster's feeds version. So a member killed with -9 loses
  nothing: its polls are redone by the others;
- per-host politeness holds across machines: a poll holds one of ``per_host`` slots of its host
  while it fetches; a slot is a PostgreSQL session advisory lock (store/cluster.py), which the
  server drops with the session, so a dead member holds none. (procrastinate's own ``lock`` cannot
  do this: a waiting job scheduled for later blocks every later job with the same lock);
- stories: every write goes through store.transaction, which on PostgreSQL takes the cluster-wide
  advisory write lock, so story assignment is serialised as on SQLite;
- digests: a periodic task (every minute, and a few seconds after a poll with new hits) with a
  queueing lock and a lock, running the same send_due as one machine, whose sender lease in the
  database keeps the outbox guarantees; prune: a daily task.

Config is shared through the database (store/cluster.py ``borderwatch_config``): a member stores
its feeds.yaml/keywords.yaml there when they change and are valid and newer than the stored
version; every member reloads when the version changes. An invalid edit is reported (log and
`borderwatch status`) and the last valid config stays.

SIGTERM/SIGINT: stop taking jobs; running polls get SHUTDOWN_DEADLINE to finish (a poll's writes are
one transaction), then are cancelled and deferred again; the member leaves the worker table.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import random
import secrets
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import store
from .config import ConfigError, ConfigIssue, FeedsConfig, RuleSet, Settings, load_feeds, load_rules
from .cycle import GROUP_COMMIT, CpuPool, Poller, SourceReport, next_poll
from .errors import StorageError
from .fetch import Fetcher, Robots
from .rules import compile_rules
from .status import evaluate_health

log = logging.getLogger("borderwatch.cluster")

STALLED_HEARTBEATS = 4  # a member silent for this many heartbeats is dead
RELOAD_EVERY = 5.0  # seconds between looks at the config files and the cluster's config version
DIGEST_CRON = "* * * * *"  # every minute
PRUNE_CRON = "17 3 * * *"  # daily
IMMEDIATE_DELAY = 5.0  # after a poll with new hits, digests go out this soon
SHUTDOWN_DEADLINE = 8.0  # running polls may finish within this at SIGTERM (Docker's stop grace is 10 s)
FETCH_POLL_INTERVAL = 1.0  # how often an idle member asks for due jobs (scheduled jobs start within this)
RETRY_AFTER_ERROR = 60.0  # a poll that failed outside the source's own handling (database down) is retried this soon
THREAD_PREFIX = "borderwatch-member"
READERS = 4  # threads (each with its own connection) for the pollers' reads
SLOT_RETRY = 0.2  # longest wait before asking again for a busy host's slot held by another member
CONFIG_FILES = ("feeds", "keywords")


def _file_state(path: str) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
        return st.st_mtime, st.st_size
    except OSError:
        return None


def _share_logging() -> None:
    """procrastinate's warnings and errors go where borderwatch's log lines go (its info lines, one per
    job, would drown them)."""
    ours = logging.getLogger("borderwatch")
    theirs = logging.getLogger("procrastinate")
    if ours.handlers and not theirs.handlers:
        theirs.handlers[:] = list(ours.handlers)
        theirs.setLevel(logging.WARNING)
        theirs.propagate = False


class HostSlots:
    """Cluster-wide per-host concurrency: each request holds one of ``limit`` slots of its host (a session
    advisory lock on this member's slot connection) while it talks to the host."""

    def __init__(self, url: str):
        self.url = url
        self.conn = None
        self.held: set[tuple[str, int]] = set()
        self.freed: dict[str, asyncio.Event] = {}  # set when this member releases a slot of the host
        self.lock = asyncio.Lock()

    async def _conn(self):
        from .store import cluster as cs

        if self.conn is None or self.conn.closed or self.conn.broken:
            self.held.clear()  # a new session holds nothing
            self.conn = await cs.connect_async(self.url)
        return self.conn

    @contextlib.asynccontextmanager
    async def hold(self, host: str, limit: int):
        from .store import cluster as cs

        slot, wait = None, 0.02
        while slot is None:
            async with self.lock:
                conn = await self._conn()
                for i in range(max(1, limit)):
                    if (host, i) not in self.held and await cs.try_host_slot(conn, host, i):
                        self.held.add((host, i))
                        slot = i
                        break
                freed = self.freed.setdefault(host, asyncio.Event())
                freed.clear()
            if slot is None:  # every slot of this host is busy somewhere in the cluster: wait for one of
                # ours to be released, or look again soon (another member's may be free by then)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), wait)
                wait = min(wait * 2, SLOT_RETRY)
        try:
            yield slot
        finally:
            await asyncio.shield(self._release(host, slot))

    async def _release(self, host: str, slot: int) -> None:
        from .store import cluster as cs

        async with self.lock:
            if (host, slot) in self.held:
                self.held.discard((host, slot))
                try:
                    await cs.release_host_slot(self.conn, host, slot)
                    if host in self.freed:
                        self.freed[host].set()
                except Exception as exc:  # noqa: BLE001 - the session is gone: so is the lock
                    log.warning("host slot of %s not released (%s); the connection is dropped", host, exc)
                    with contextlib.suppress(Exception):
                        await self.conn.close()

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()


class Writer:
    """Group commit for one member: polls finished meanwhile are written in one transaction (each poll
    whole), in a thread, on the member's write connection; each poll waits for its own result."""

    def __init__(self, member: "Member"):
        self.member = member
        self.queue: asyncio.Queue = asyncio.Queue()
        self.db = None

    async def save(self, outcome) -> list:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((outcome, fut))
        return await asyncio.shield(fut)  # a cancelled poll still learns nothing; the write goes on

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            batch = [item]
            while not self.queue.empty() and len(batch) < GROUP_COMMIT:
                nxt = self.queue.get_nowait()
                if nxt is None:
                    self.queue.put_nowait(None)
                    break
                batch.append(nxt)
            try:
                saved = await asyncio.to_thread(self._write, [o for o, _ in batch])
            except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL went away: these polls are redone
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for (_, fut), inserted in zip(batch, saved):
                    if not fut.done():
                        fut.set_result(inserted)

    def _write(self, outcomes: list) -> list:
        m = self.member
        if self.db is None:
            self.db = store.connect(m.url)
        try:
            saved = store.save_polls(self.db, outcomes)
            events = evaluate_health(self.db, m.feeds, m.clock(), [o.source for o in outcomes])
            if events and m.send_digests:
                m.call_soon(m.digests_soon)  # a health alert is owed: delivered with the next digest run
            return saved
        except BaseException:
            with contextlib.suppress(Exception):
                self.db.close()
            self.db = None
            raise

    async def close(self) -> None:
        await self.queue.put(None)


class Member:
    """One cluster member: a procrastinate worker running borderwatch's poll, reconcile, digest and
    prune tasks, with the config shared through the database."""

    def __init__(self, settings: Settings, metrics_port: int | None = None, send_digests: bool = True,
                 clock=lambda: dt.datetime.now(dt.timezone.utc), queue_url: str | None = None):
        self.settings = settings
        self.url = settings.db  # borderwatch's tables
        self.queue_url = queue_url or settings.db  # the queue and the cluster's tables (the same database in `run`)
        self.metrics_port = metrics_port
        self.send_digests = send_digests
        self.clock = clock
        self.heartbeat = float(settings.cluster_heartbeat)
        self.stalled_after = STALLED_HEARTBEATS * self.heartbeat
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.feeds: FeedsConfig | None = None
        self.rules: RuleSet | None = None
        self.matcher = None
        self.versions: dict[str, int] = {}
        self._file_states: dict[str, tuple[float, int] | None] = {}
        self._errors: dict[str, str] = {}
        self._last_errors: str | None = None
        self.halt = threading.Event()
        self.stopping: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.conn = None  # cluster bookkeeping (sync, used from threads under self._conn_lock)
        self._conn_lock = threading.Lock()
        self._config_lock = threading.Lock()  # config syncing runs in threads: one at a time
        self._bad: dict[str, ConfigError] = {}
        self._meta = None
        self.read_db = None  # reads on the event loop's thread (a source's state, reconcile)
        self._readers = threading.local()  # the reader threads' connections
        self._reader_dbs: list = []
        self._reader_list_lock = threading.Lock()
        self._read_pool = ThreadPoolExecutor(READERS, thread_name_prefix="borderwatch-reader")
        self.pool: CpuPool | None = None
        self.polls_done = 0
        self.worker_id: int | None = None  # procrastinate's id for this member (known from its first job)
        self.app = None
        self._executor: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle

    def run_forever(self) -> None:
        loop = asyncio.new_event_loop()
        self._executor = ThreadPoolExecutor(thread_name_prefix=THREAD_PREFIX)
        loop.set_default_executor(self._executor)
        try:
            loop.run_until_complete(self.main())
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            self._executor.shutdown(wait=False, cancel_futures=True)
            loop.close()

    def stuck_threads(self, wait: float = 2.0) -> int:
        deadline = time.monotonic() + wait
        workers = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX + "_")]
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return sum(t.is_alive() for t in workers)

    def stop(self) -> None:
        self.halt.set()
        if self.stopping is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)

    def call_soon(self, coro_fn) -> None:
        """Run ``coro_fn()`` on the member's loop (from a thread)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(coro_fn()))

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        await asyncio.to_thread(self._open)
        self._install_signals()
        self.app = self._build_app()
        self.slots = HostSlots(self.queue_url)
        self.writer = Writer(self)
        from .schedule import Metrics

        self.metrics = Metrics(self.metrics_port, self.settings.metrics_addr)
        _share_logging()
        self.fetcher = Fetcher(self.feeds.concurrency, self.feeds.per_host, robots=Robots(),
                               host_gate=lambda host: self.slots.hold(host, self.feeds.per_host))
        self._refresh_pool()
        self.poller = Poller(self.read_db, self.matcher, self.fetcher, clock=self.clock, pool=self.pool)
        self.poller.read_in_thread = self.read
        writer_task = asyncio.create_task(self.writer.run(), name="writer")
        async with self.app.open_async():
            worker = asyncio.create_task(self.app.run_worker_async(
                name=self.name, concurrency=self.feeds.concurrency + 2, install_signal_handlers=False,
                shutdown_graceful_timeout=SHUTDOWN_DEADLINE, update_heartbeat_interval=self.heartbeat,
                stalled_worker_timeout=self.stalled_after, fetch_job_polling_interval=FETCH_POLL_INTERVAL,
                listen_notify=False, delete_jobs="successful", additional_context={}), name="worker")
            watcher = asyncio.create_task(self._watch_config(), name="config")
            log.info("cluster member %s started: %d sources, %d rules (feeds version %s, rules version %s)", self.name,
                     len(self.feeds.enabled()), len(self.rules.rules), self.versions.get("feeds"),
                     self.versions.get("keywords"))
            failure: BaseException | None = None
            try:
                await self.reconcile()  # now, not at the first tick: sources get their jobs at once
                stop = asyncio.create_task(self.stopping.wait())
                done, _ = await asyncio.wait({worker, stop}, return_when=asyncio.FIRST_COMPLETED)
                if worker in done and not self.stopping.is_set():
                    failure = worker.exception() or StorageError("the procrastinate worker stopped unexpectedly")
                stop.cancel()
            finally:
                self.halt.set()
                watcher.cancel()
                if not worker.done():
                    worker.cancel()  # procrastinate stops fetching, waits for running jobs, then aborts them
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
                await self.writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer_task, SHUTDOWN_DEADLINE)
                await self.slots.close()
                await self.fetcher.aclose()
                if self.pool is not None:
                    self.pool.executor.shutdown(wait=False, cancel_futures=True)
                    for child in multiprocessing.active_children():
                        child.terminate()
                await asyncio.to_thread(self._close)
            log.info("cluster member %s stopped after %d polls", self.name, self.polls_done)
            if failure is not None:
                from .store.cluster import one_line

                raise StorageError(f"cluster member stopped: {one_line(failure)}") from None

    def _install_signals(self) -> None:
        def on_signal(signum: int) -> None:
            if self.stopping.is_set():
                log.warning("second signal: exiting now (open transactions roll back)")
                os._exit(130)
            log.info("signal %s: finishing running polls (up to %.0fs), then leaving the cluster",
                     signal.Signals(signum).name, SHUTDOWN_DEADLINE)
            self.halt.set()
            self.stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.loop.add_signal_handler(sig, on_signal, sig)

    def _open(self) -> None:
        """Connect, create what is missing (borderwatch's schema, procrastinate's, the config table),
        and load the cluster's config (storing this member's files when they are newer)."""
        from procrastinate import schema

        from .store import cluster as cs

        self.read_db = store.connect(self.url)
        self.conn = cs.connect(self.queue_url)
        try:
            if cs.setup(self.conn, schema.SchemaManager.get_schema()):
                log.info("created procrastinate's schema")
        except Exception as exc:  # noqa: BLE001
            raise cs.ClusterUnavailable(f"cannot set up the cluster's tables: {cs.one_line(exc)}") from None
        self._sync_config(first=True)

    def _close(self) -> None:
        self._read_pool.shutdown(wait=False, cancel_futures=True)
        for db in (self.read_db, self._meta, *self._reader_dbs):
            with contextlib.suppress(Exception):
                db.close()
        with contextlib.suppress(Exception):
            self.conn.close()

    async def read(self, fn, *args):
        """``fn(db, *args)`` in a reader thread, each with its own connection: the pollers' reads are
        network round trips that must not stop the event loop (and so every other poll)."""
        def run():
            db = getattr(self._readers, "db", None)
            if db is None:
                db = self._readers.db = store.connect(self.url, migrate=False)
                with self._reader_list_lock:
                    self._reader_dbs.append(db)
            try:
                return fn(db, *args)
            except BaseException:
                with contextlib.suppress(Exception):
                    db.close()
                self._readers.db = None
                raise

        return await asyncio.get_running_loop().run_in_executor(self._read_pool, run)

    # ------------------------------------------------------------------ procrastinate

    def _build_app(self):
        from procrastinate import App, PsycopgConnector

        app = App(connector=PsycopgConnector(conninfo=self.queue_url, min_size=2, max_size=4,
                                             kwargs={"application_name": "borderwatch-queue"}))
        self.poll_task = app.task(name="borderwatch.poll", pass_context=True)(self._poll_job)
        # no `lock` on reconcile: a dead member's running reconcile job would block every later one, and
        # only reconcile redoes dead members' jobs. Two reconciles at once are harmless.
        self.reconcile_task = app.task(name="borderwatch.reconcile", queueing_lock="reconcile")(
            self._reconcile_job)
        every = max(1, round(2 * self.heartbeat))
        app.periodic(cron=f"* * * * * */{every}", periodic_id="reconcile")(self.reconcile_task)
        self.digest_task = app.task(name="borderwatch.digests", queueing_lock="digests", lock="digests")(
            self._digests_job)
        if self.send_digests:
            app.periodic(cron=DIGEST_CRON, periodic_id="digests")(self.digest_task)
        self.prune_task = app.task(name="borderwatch.prune", queueing_lock="prune", lock="prune")(self._prune_job)
        app.periodic(cron=PRUNE_CRON, periodic_id="prune")(self.prune_task)
        return app

    async def defer_poll(self, source_id: str, when: dt.datetime) -> None:
        from procrastinate.exceptions import AlreadyEnqueued

        from .store.cluster import poll_lock

        try:
            await self.poll_task.configure(queueing_lock=poll_lock(source_id), schedule_at=when).defer_async(
                source=source_id)
        except AlreadyEnqueued:  # reconcile (or a redone job) got there first: one waiting poll is enough
            pass

    async def _defer_polls(self, plan: list[tuple[str, dt.datetime]], chunk: int = 500) -> None:
        """Defer many polls, ``chunk`` to a statement; a chunk refused because one of its sources got a
        job meanwhile is deferred one by one."""
        from procrastinate.exceptions import AlreadyEnqueued

        from .store.cluster import poll_lock

        for i in range(0, len(plan), chunk):
            part = plan[i:i + chunk]
            jobs = [self.poll_task.configure(queueing_lock=poll_lock(sid), schedule_at=when,
                                             task_kwargs={"source": sid}).job for sid, when in part]
            try:
                await self.app.job_manager.batch_defer_jobs_async(jobs)
            except AlreadyEnqueued:
                for sid, when in part:
                    await self.defer_poll(sid, when)

    async def digests_soon(self) -> None:
        from procrastinate.exceptions import AlreadyEnqueued

        if not self.send_digests or self.halt.is_set():
            return
        with contextlib.suppress(AlreadyEnqueued):
            await self.digest_task.configure(schedule_in={"seconds": IMMEDIATE_DELAY}).defer_async()

    # ------------------------------------------------------------------ tasks

    async def _poll_job(self, context, source: str) -> None:
        source_id = source
        if self.worker_id is None and context.job.worker_id is not None:
            self.worker_id = context.job.worker_id
            log.info("member %s is procrastinate worker %d", self.name, self.worker_id)
        src = self.feeds.get(source_id)
        if src is None or not src.enabled:
            log.info("poll of %s skipped: not an enabled source in feeds version %s", source_id,
                     self.versions.get("feeds"))
            return  # reconcile gives it a job again if it comes back
        when: dt.datetime | None = None
        try:
            when = await self._poll(src)
        except asyncio.CancelledError:  # shutdown: nothing of this poll was written, or all of it
            log.info("poll of %s abandoned at shutdown; deferred again", source_id)
            when = self.clock()
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL unavailable: the source stays scheduled
            from .store.cluster import one_line

            log.error("poll of %s not stored: %s", source_id, one_line(exc))
            when = self.clock() + dt.timedelta(seconds=min(src.interval, RETRY_AFTER_ERROR))
        finally:
            await asyncio.shield(self.defer_poll(source_id, when or self.clock()))

    async def _poll(self, src) -> dt.datetime:
        from .store import PollOutcome, iso

        state = (await self.read(store.source_states, [src.id])).get(src.id) or {}
        try:  # each request holds one of its host's cluster-wide slots (the fetcher's host_gate)
            outcome = await self.poller.poll(src, state)
        except Exception as exc:  # a bug on one source's data must not stop it being scheduled
            log.exception("poll of %s crashed", src.id)
            outcome = PollOutcome(src.id, False, error=f"internal error: {type(exc).__name__}: {exc}",
                                  next_poll=iso(next_poll(src, self.clock(), 1)))
        inserted = await self.writer.save(outcome)
        self.polls_done += 1
        hits = sum(len(a.hits) for a in inserted)
        self.metrics.poll(SourceReport(src.id, outcome.ok, outcome.status, len(inserted), hits, outcome.elapsed_ms,
                                       outcome.error, outcome.ok and outcome.status == 304))
        log.log(logging.WARNING if outcome.error else logging.INFO, "poll source=%s status=%s new=%d hits=%d ms=%.0f%s",
                src.id, outcome.status or "-", len(inserted), hits, outcome.elapsed_ms,
                f" error={outcome.error}" if outcome.error else "",
                extra={"source": src.id, "status": outcome.status, "new_items": len(inserted), "new_hits": hits,
                       "ms": round(outcome.elapsed_ms), "error": outcome.error})
        if hits:
            await self.digests_soon()
        return store.parse_iso(outcome.next_poll) or next_poll(src, self.clock(), 0)

    async def _reconcile_job(self, timestamp: int | None = None) -> None:
        await self.reconcile()

    async def reconcile(self) -> dict:
        """Put the running jobs of dead members back in the queue, and give every enabled source
        without a poll job one (at its stored next_poll, or now)."""
        from procrastinate import jobs
        from procrastinate.exceptions import ConnectorException, UniqueViolation

        from .store import cluster as cs

        jm = self.app.job_manager
        redone = dropped = 0
        for job in await jm.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after):
            try:
                await jm.retry_job(job)  # back to 'todo', due now
                redone += 1
            except UniqueViolation:  # the dead member had deferred the next poll already: that one stays
                with contextlib.suppress(ConnectorException):
                    await jm.finish_job(job, status=jobs.Status.FAILED, delete_job=True)
                dropped += 1
            except ConnectorException as exc:  # another reconcile handled it meanwhile
                log.debug("stalled job %s: %s", job.id, exc)
        if redone or dropped:
            log.warning("reconcile: %d job(s) of dead members redone, %d superseded", redone, dropped)
        await jm.prune_stalled_workers(self.stalled_after)
        await asyncio.to_thread(self._sync_sources_if_behind)
        have = await asyncio.to_thread(self._locked, cs.sources_with_polls)
        wanted = self.feeds.enabled()
        missing = [s for s in wanted if s.id not in have]
        if missing:
            states = store.source_states(self.read_db, [s.id for s in missing])
            now = self.clock()
            # never polled: due now, give or take a second (the queue is the back-pressure: due jobs
            # wait until a member is free, so there is no burst to spread out as on one machine)
            spread = min(min(s.interval for s in missing) * 0.1, 1.0)
            plan = []
            for s in missing:
                planned = store.parse_iso((states.get(s.id) or {}).get("next_poll"))
                plan.append((s.id, max(planned, now) if planned else now + dt.timedelta(seconds=random.uniform(0, spread))))
            await self._defer_polls(plan)
            log.info("reconcile: %d source(s) had no poll job; deferred", len(missing))
        return {"redone": redone, "superseded": dropped, "deferred": len(missing)}

    async def _digests_job(self, timestamp: int | None = None) -> None:
        from .digest import send_due

        def send() -> dict:
            db = store.connect(self.url)
            try:
                return send_due(db, self.rules, self.clock(), settings=self.settings, stop=self.halt).as_dict()
            finally:
                db.close()

        report = await asyncio.to_thread(send)
        self.metrics.sent(report["sent"])
        if report["created"] or report["sent"] or report["errors"]:
            log.log(logging.WARNING if report["errors"] else logging.INFO,
                    "digests: %d new, %d sent, %d retry, %d failed", report["created"], report["sent"],
                    report["retry"], report["failed"])
        for error in report["errors"]:
            log.warning("delivery failed: %s", error)

    async def _prune_job(self, timestamp: int | None = None) -> None:
        cutoff = store.iso(self.clock() - dt.timedelta(days=self.settings.retention_days))

        def work() -> int:
            db = store.connect(self.url)
            try:
                return store.prune(db, cutoff)
            finally:
                db.close()

        n = await asyncio.to_thread(work)
        await self.app.job_manager.delete_old_jobs(nb_hours=24 * 7, include_failed=True)
        log.info("pruned %d old articles without hits, and finished jobs older than a week", n)

    # ------------------------------------------------------------------ config shared through the database

    def _locked(self, fn, *args):
        with self._conn_lock:
            return fn(self.conn, *args)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_EVERY)
            try:
                changed = await asyncio.to_thread(self._sync_config)
            except Exception as exc:  # noqa: BLE001 - PostgreSQL briefly away: try again next time
                from .store.cluster import one_line

                log.error("config check failed: %s", one_line(exc))
                continue
            if changed.get("keywords"):
                self._refresh_pool()
                self.poller.matcher, self.poller.pool = self.matcher, self.pool
            if changed.get("feeds_changed_sources") and not self.halt.is_set():
                await self.reconcile()

    def _sync_config(self, first: bool = False) -> dict:
        """Store this member's config files in the database when they changed (valid, and newer than
        the stored version); load the database's version when it is not the one in use. Returns what
        changed here."""
        with self._config_lock:
            return self._sync_config_locked(first)

    def _sync_config_locked(self, first: bool) -> dict:
        from .store import cluster as cs

        changed: dict = {}
        paths = {"feeds": self.settings.feeds, "keywords": self.settings.keywords}
        for name in CONFIG_FILES:
            path = paths[name]
            state = _file_state(path)
            if state != self._file_states.get(name, "unseen"):
                self._file_states[name] = state
                if state is not None:
                    self._offer(name, path, state[0])
                else:
                    self._errors.pop(name, None)
        versions = self._locked(cs.config_versions)
        for name in CONFIG_FILES:
            if name not in versions:
                if first and name in self._bad:
                    raise self._bad[name]
                if first:
                    raise ConfigError([ConfigIssue(paths[name], 0, "file not found, and the cluster's database has "
                                                                   f"no {name} config yet: start one member with it")])
                continue
            if versions[name] != self.versions.get(name):
                row = self._locked(cs.stored_config, name)
                changed.update(self._apply(name, row, paths[name]))
        errors = "\n".join(self._errors.values()) or None
        if errors != self._last_errors:  # shown by `borderwatch status`
            store.set_meta(self._meta_db(), "config_errors", errors)
            self._last_errors = errors
        return changed

    def _meta_db(self):
        """The connection config syncing writes with (used under self._config_lock)."""
        if self._meta is None:
            self._meta = store.connect(self.url)
        return self._meta

    def _offer(self, name: str, path: str, mtime: float) -> None:
        """Validate a local config file and store it as the cluster's when it is newer."""
        from .store import cluster as cs

        try:
            body = Path(path).read_bytes().decode("utf-8")
            if name == "feeds":
                load_feeds(path, text=body)
            else:
                load_rules(path, text=body, mtime=mtime)
        except (OSError, UnicodeDecodeError) as exc:
            self._errors[name] = f"{path}: cannot read: {exc}"
            log.error("cannot read %s, keeping the cluster's config: %s", path, exc)
            return
        except ConfigError as exc:
            self._errors[name], self._bad[name] = str(exc), exc
            log.error("invalid edit of %s, keeping the last valid config:\n%s", path, exc)
            return
        self._errors.pop(name, None)
        self._bad.pop(name, None)
        stored, row = self._locked(cs.publish_config, name, body, mtime, self.name)
        if stored:
            log.info("stored %s as the cluster's %s config, version %d", path, name, row.version)
            if name == "feeds":
                self._sync_sources(row)
        elif row.digest != cs.digest_of(body):
            log.warning("%s is older than the cluster's %s config (version %d, stored by %s): using the database's",
                        path, name, row.version, row.loaded_by)

    def _apply(self, name: str, row, path: str) -> dict:
        label = f"{path} (cluster version {row.version})"
        try:
            if name == "feeds":
                feeds = load_feeds(label, text=row.body)
            else:
                rules = load_rules(label, text=row.body, mtime=row.file_mtime)
        except ConfigError as exc:  # stored by a member of another version, perhaps: keep what runs
            self._errors[name + "-cluster"] = str(exc)
            log.error("the cluster's %s config version %d does not load here; keeping version %s:\n%s", name,
                      row.version, self.versions.get(name), exc)
            self.versions[name] = row.version
            return {}
        self._errors.pop(name + "-cluster", None)
        old = self.versions.get(name)
        self.versions[name] = row.version
        if name == "keywords":
            self.rules, self.matcher = rules, compile_rules(rules, self.settings.semantic)
            if old is not None:
                log.info("loaded rules version %d: %d rules", row.version, len(rules.rules))
            return {"keywords": True}
        before = {s.id: s for s in self.feeds.sources} if self.feeds else {}
        self.feeds = feeds
        if old is None:
            return {"feeds": True}
        diff = [s.id for s in feeds.sources if before.get(s.id) != s] + [i for i in before if feeds.get(i) is None]
        log.info("loaded feeds version %d: %d sources (%d changed)", row.version, len(feeds.sources), len(diff))
        if row.loaded_by == self.name and diff:  # the member that stored it replans the changed sources
            from .store.cluster import cancel_waiting_polls

            self._locked(cancel_waiting_polls, diff)
        return {"feeds": True, "feeds_changed_sources": bool(diff)}

    def _sync_sources(self, row) -> None:
        feeds = load_feeds(self.settings.feeds, text=row.body)
        store.sync_sources(self._meta_db(), feeds.sources)
        store.set_meta(self._meta_db(), "cluster_sources_version", str(row.version))

    def _sync_sources_if_behind(self) -> None:
        """The sources table follows the cluster's feeds version (its writer may have died before)."""
        from .store import cluster as cs

        with self._config_lock:
            self._sync_sources_behind_locked(cs)

    def _sync_sources_behind_locked(self, cs) -> None:
        synced = store.get_meta(self._meta_db(), "cluster_sources_version")
        current = self._locked(cs.stored_config, "feeds")
        if current is not None and (synced is None or synced[0] != str(current.version)):
            self._sync_sources(current)

    def _refresh_pool(self) -> None:
        old = self.pool
        self.pool = CpuPool(self.rules, self.settings.semantic) if CpuPool.worth_it(len(self.feeds.enabled())) else None
        if old is not None:
            old.executor.shutdown(wait=False)
