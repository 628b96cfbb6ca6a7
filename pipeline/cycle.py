"""One poll cycle: fetch -> parse -> dedup -> match -> store, for a set of sources.

Sources are polled concurrently (within the fetcher's global and per-host limits);
each source's result is written in its own transaction as soon as it is ready, so a
failure or a kill loses at most the sources still in flight, which the next cycle
redoes. A source's failure is recorded on that source and never stops the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .config import FeedsConfig, Source
from .dedup import canonical_url, fingerprint, shingle_sketch
from .fetch import Fetcher, Policy, Response, origin
from .fold import Folded
from .extract import ArticlePage, detect_language
from .guard import EXTRACT_DEADLINE, EXTRACTOR, GuardError, extract_guarded
from .parse import Entry, ParseError, page_links, parse_feed, scrub
from .models import MAX_TITLE
from .rules.match import article_text, match_article
from . import store
from .store import BacklogItem, NewArticle, PollOutcome, iso, known_keys, save_polls, source_states

log = logging.getLogger("borderwatch.cycle")

MAX_NEW_PER_POLL = 200
MAX_ARTICLE_PAGES_PER_POLL = 30
MAX_ARTICLE_ATTEMPTS = 4  # an article page that fails this many times is given up
ARTICLE_RETRY = 300.0  # seconds before the first retry of a failed article page; doubles each time
ARTICLE_CONCURRENCY = 4
BACKOFF_CAP = 6 * 3600.0
JITTER = 0.1
GROUP_COMMIT = 50  # polls per transaction at most


@dataclass
class SourceReport:
    source: str
    ok: bool
    status: int
    new_articles: int
    new_hits: int
    ms: float
    error: str | None = None
    not_modified: bool = False


@dataclass
class CycleResult:
    reports: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.reports)

    @property
    def failed(self) -> list[SourceReport]:
        return [r for r in self.reports if not r.ok]

    @property
    def new_articles(self) -> int:
        return sum(r.new_articles for r in self.reports)

    @property
    def new_hits(self) -> int:
        return sum(r.new_hits for r in self.reports)

    def summary(self) -> dict:
        return {"sources": len(self.reports), "ok": self.ok, "failed": len(self.failed),
                "not_modified": sum(r.not_modified for r in self.reports),
                "new_articles": self.new_articles, "new_hits": self.new_hits, "seconds": round(self.seconds, 2)}


def next_poll(source: Source, now: dt.datetime, failures: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> dt.datetime:
    """When to poll again: the interval with +/-10% jitter, or exponential back-off after failures.

    ``failures`` counts consecutive failures including the one just recorded (0 after a success).
    A server's Retry-After is honoured when it asks for a longer wait.
    """
    rng = rng or random
    delay = source.interval
    if failures:
        delay = min(source.interval * 2 ** min(failures, 16), max(BACKOFF_CAP, source.interval))
    delay *= 1 + rng.uniform(-JITTER, JITTER)
    if retry_after:
        delay = max(delay, retry_after)
    return now + dt.timedelta(seconds=delay)


def parse_entries(kind: str, selector: str | None, body: bytes, base: str, headers: dict) -> list[Entry]:
    """Response body -> entries (CPU work: may run in the worker process)."""
    if kind == "page":
        return page_links(body, base, selector or "a", headers)
    return parse_feed(body, base, headers)


LANGUAGE_SAMPLE = 600  # characters of text after the title: enough to tell the language


EARLIEST_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
FUTURE_SLACK = dt.timedelta(days=1)  # clocks and time zones differ; more than this ahead is absurd


def published_or_fetched(published: dt.datetime | None, fetched: str) -> str:
    """An article's date as stored: its own when plausible, else the time it was fetched (a date far
    in the future would pin the article to the top of every listing)."""
    if published is None:
        return fetched
    try:
        if EARLIEST_DATE <= published <= store.parse_iso(fetched) + FUTURE_SLACK:
            return iso(published)
    except (ValueError, OverflowError, TypeError):
        pass
    return fetched


MAX_MATCH_TEXT = 100_000  # characters of an article's text that rules, fingerprint and sketch see


def prepare_article(e: Entry, fetched: str, matcher) -> NewArticle:
    """Fold once; fingerprint, sketch and match on the same folded text."""
    e.title, e.text, e.author, e.url, e.guid = (scrub(v or "") for v in (e.title, e.text, e.author, e.url, e.guid))
    text = e.text[:MAX_MATCH_TEXT]  # matching, fingerprint and sketch see at most this much (the text is kept whole)
    doc = Folded.of(article_text(e.title, text))
    words = doc.words
    title_words = Folded.of(e.title[:MAX_TITLE]).words
    title_len = len(title_words) if text else 0
    body_words = words[title_len:] or words
    hits = match_article(matcher, e.title, text, doc) if matcher else []
    if matcher is not None and matcher.semantic is not None:
        hits = matcher.semantic.review(e.title, text, hits)  # optional extra: guard and suggestions
    sketch, whole, positions, lead = shingle_sketch(body_words)
    return NewArticle(
        url=e.url, guid=e.guid or e.url, title=e.title, text=e.text, author=e.author,
        published=published_or_fetched(e.published, fetched), fetched=fetched,
        fingerprint=fingerprint(body_words, title_words), sketch=sketch, hits=hits, shingles=whole,
        positions=positions, lead=lead,
        language=e.language or detect_language(f"{e.title}\n{e.text[:LANGUAGE_SAMPLE]}"))


_WORKER_MATCHER = None


def _child_process(name: str) -> None:
    """Set up a worker process: named as ps and top show it (Linux), and gone when its parent is.
    A parent killed with SIGKILL cannot stop its children; without this they waited forever
    (seen after a cluster member was killed)."""
    import os
    import threading

    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)  # (the writer's open transaction, if any, is rolled back by SQLite)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(ruleset, semantic: bool = False) -> None:
    global _WORKER_MATCHER
    _child_process("bw-parser")
    from .rules import compile_rules

    _WORKER_MATCHER = compile_rules(ruleset, semantic) if ruleset is not None else None


def _prepare_in_worker(entries: list[Entry], fetched: str) -> list[NewArticle]:
    return [prepare_article(e, fetched, _WORKER_MATCHER) for e in entries]


class CpuPool:
    """Parsing and matching in one worker process, so that on a multi-core machine the
    event loop keeps fetching and writing while another core parses and matches.
    Built for one RuleSet: after a rules reload, make a new pool."""

    MIN_SOURCES = 50  # below this, starting a process costs more than it saves

    def __init__(self, ruleset, semantic: bool = False) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._new = lambda: ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_worker, initargs=(ruleset, semantic))
        self.executor = self._new()

    async def run(self, fn, *args, fallback: Callable[[], object]):
        """Run fn in the worker; if the worker died (a crash on hostile input), replace it and
        call ``fallback`` here instead, so one bad body never stops the cycle."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except BrokenProcessPool:
            log.warning("parser worker process died; restarting it")
            self.executor.shutdown(wait=False)
            self.executor = self._new()
            return fallback()

    @classmethod
    def worth_it(cls, n_sources: int) -> bool:
        import os

        return n_sources >= cls.MIN_SOURCES and (os.cpu_count() or 1) > 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


_WRITE_DB = None


def _init_writer(path: str) -> None:
    global _WRITE_DB
    _child_process("bw-writer")
    _WRITE_DB = store.connect(path, migrate=False)


def _save_in_writer(batch: list[PollOutcome]) -> list[tuple]:
    """save_polls in the writer process; returns only what save_polls changed on the outcomes
    (the caller applies it to its own copies): per poll (ok, error, per article (id, story id,
    duplicate of, url), the indices of the inserted articles)."""
    saved = save_polls(_WRITE_DB, batch)
    out = []
    for outcome, inserted in zip(batch, saved):
        mine = {id(a) for a in inserted}
        out.append((outcome.ok, outcome.error,
                     [(a.id, a.story_id, a.duplicate_of, a.url) for a in outcome.articles],
                     [i for i, a in enumerate(outcome.articles) if id(a) in mine]))
    return out


class WriterProcess:
    """A big cycle's writes in their own process, on their own connection.

    The writer is the cycle's longest thread (the story lookup and the sketch postings are
    thousands of small SQLite calls per poll); in a thread it shares the main process's GIL with
    the event loop and waits for it after every call. In its own process it runs on its own
    core. Only the polls go there and back, as pickles, with only the fields that the write
    changes coming back. Started on the first batch with new articles (an all-304 cycle never
    starts it). If the process dies mid-batch, that batch is written here instead: a batch the
    process committed before dying is then found already stored (its articles count as known,
    as in any later poll), so nothing is lost or stored twice.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.executor = None

    @classmethod
    def worth_it(cls) -> bool:
        import os

        return (os.cpu_count() or 1) > 1

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_writer, initargs=(self.path,))

    async def save(self, batch: list[PollOutcome], fallback: Callable[[], list]) -> list[list[NewArticle]]:
        from concurrent.futures.process import BrokenProcessPool

        if self.executor is None:
            self.executor = self._start()
        try:
            changes = await asyncio.get_running_loop().run_in_executor(self.executor, _save_in_writer, batch)
        except BrokenProcessPool:
            log.warning("writer process died; writing this batch in the main process")
            self.executor.shutdown(wait=False)
            self.executor = None
            return await asyncio.to_thread(fallback)
        saved = []
        for outcome, (ok, error, articles, inserted) in zip(batch, changes):
            outcome.ok, outcome.error = ok, error
            for art, (aid, story, dup, url) in zip(outcome.articles, articles):
                art.id, art.story_id, art.duplicate_of, art.url = aid, story, dup, url
            saved.append([outcome.articles[i] for i in inserted])
        return saved

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)


class Poller:
    """Polls sources with one fetcher; holds what a cycle needs (db, rules, worker pool)."""

    def __init__(self, db, matcher, fetcher: Fetcher, clock: Callable[[], dt.datetime] | None = None,
                 pool: CpuPool | None = None):
        self.db = db
        self.read_in_thread = None  # async (fn, *args) -> fn(a connection, *args), run off the event loop
        self.matcher = matcher
        self.fetcher = fetcher
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.pool = pool

    async def _read(self, fn, *args):
        """A store read for this poll: here, on ``self.db``; or, when ``read_in_thread`` is set (a cluster
        member, whose database is across the network), through it, so the event loop does not wait."""
        if self.read_in_thread is None:
            return fn(self.db, *args)
        return await self.read_in_thread(fn, *args)

    async def _parse(self, source: Source, resp: Response) -> list[Entry]:
        args = (source.type, source.link_selector, resp.body, resp.final_url or source.url, resp.headers)
        if self.pool is None:  # CPU work never runs on the event loop: other sources' fetches go on
            return await asyncio.to_thread(parse_entries, *args)
        return await self.pool.run(parse_entries, *args, fallback=lambda: parse_entries(*args))

    async def _extract(self, body: bytes, url: str, headers: dict) -> ArticlePage:
        """Article text off the event loop, in the extraction worker process under a deadline and a
        depth limit (guard.py); raises GuardError when the page exceeds them."""
        return await _extract(body, url, headers)

    async def _prepare(self, entries: list[Entry], fetched: str) -> list[NewArticle]:
        def here() -> list[NewArticle]:
            return [prepare_article(e, fetched, self.matcher) for e in entries]

        if not entries:
            return []
        if self.pool is None:
            return await asyncio.to_thread(here)
        return await self.pool.run(_prepare_in_worker, entries, fetched, fallback=here)

    async def poll(self, source: Source, state: dict | None) -> PollOutcome:
        state = state or {}
        policy = Policy(source.timeout, source.max_bytes, origin(source.url), source.allow_hosts,
                        source.connect_timeout, source.read_timeout)
        started = time.perf_counter()
        refusal = await self.fetcher.robots.refusal(self.fetcher, source.url, policy) if source.type == "page" else None
        if refusal:
            resp = Response(url=source.url, error=refusal)
        else:
            resp = await self.fetcher.get(source.url, policy, state.get("etag"), state.get("last_modified"))
        failures = int(state.get("consecutive_failures") or 0)
        now = self.clock()
        if resp.error is None and resp.status not in (200, 304):
            resp.error = f"unexpected HTTP status {resp.status}"
        if resp.error is not None:
            return self._failed(source, resp, failures + 1, now, started)
        outcome = PollOutcome(source.id, True, resp.status, etag=resp.headers.get("etag"),
                              last_modified=resp.headers.get("last-modified"),
                              next_poll=iso(next_poll(source, now, 0)))
        entries: list[Entry] = []
        if not resp.not_modified:  # a 304 has no body, but the backlog may hold work
            try:
                entries = await self._parse(source, resp)
            except ParseError as exc:
                resp.error = str(exc)
                return self._failed(source, resp, failures + 1, now, started)
        outcome.items_seen = len(entries)
        await self._collect_new(source, entries, outcome, policy, now)
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000
        return outcome

    def _failed(self, source: Source, resp: Response, failures: int, now: dt.datetime, started: float) -> PollOutcome:
        wait_until = now + dt.timedelta(seconds=resp.retry_after) if resp.retry_after else None
        return PollOutcome(source.id, False, resp.status, error=resp.error,
                           next_poll=iso(next_poll(source, now, failures, resp.retry_after)),
                           retry_after_until=iso(wait_until), elapsed_ms=(time.perf_counter() - started) * 1000)

    async def _collect_new(self, source: Source, entries: list[Entry], outcome: PollOutcome, policy: Policy,
                           now: dt.datetime) -> None:
        """New entries of this body plus the backlog items due now; what the per-poll caps leave
        over goes to the backlog (stored with this poll), so a cap defers work and never drops it."""
        for e in entries:
            e.url = canonical_url(e.url) if e.url else ""
        entries = [e for e in entries if e.url]
        seen_guids, seen_urls = await self._read(known_keys, source.id, [e.guid for e in entries],
                                                 [e.url for e in entries])
        queued = await self._read(store.backlog_guids, source.id, [e.guid for e in entries])
        work = [_Work(entry_from_json(b.entry), b.attempts, b.added, True)
                for b in await self._read(store.backlog_due, source.id, iso(now), MAX_NEW_PER_POLL)]
        batch_urls = {w.entry.url for w in work}
        for e in entries:
            if e.guid in seen_guids or e.guid in queued:
                continue
            if e.url in seen_urls:
                outcome.aliases.append((e.guid, e.url))
                continue
            if e.url not in batch_urls:
                batch_urls.add(e.url)
                work.append(_Work(e, 0, iso(now), False))
        take, pages = [], 0
        for w in work:
            needs_page = source.fetch_articles and w.entry.teaser
            if len(take) >= MAX_NEW_PER_POLL or (needs_page and pages >= MAX_ARTICLE_PAGES_PER_POLL):
                if not w.queued:
                    outcome.backlog_put.append(w.backlog())
                continue
            pages += needs_page
            take.append(w)
        if source.fetch_articles:
            ready = await self._fetch_articles(source, take, policy, outcome, now)
        else:
            ready = [w.entry for w in take]
        outcome.backlog_done += [w.entry.guid for w in take if w.queued and not w.requeued]
        outcome.articles = await self._prepare(ready, iso(now))

    async def _fetch_articles(self, source: Source, work: list["_Work"], policy: Policy,
                              outcome: PollOutcome, now: dt.datetime) -> list[Entry]:
        """Fetch article pages for links and teasers. A page that fails is retried by later polls
        (back-off) up to MAX_ARTICLE_ATTEMPTS; then a feed's teaser is stored as it is, and the
        backlog keeps a given-up record either way."""
        sem = asyncio.Semaphore(ARTICLE_CONCURRENCY)

        def give_up(w: _Work, error: str) -> Entry | None:
            log.warning("article page %s given up after %d attempt(s): %s", w.entry.url, w.attempts, error)
            outcome.backlog_put.append(w.backlog(error=error, gave_up=iso(now)))
            w.requeued = True  # the record stays (so the link is not taken up again)
            return w.entry if source.type == "feed" else None

        async def one(w: _Work) -> Entry | None:
            e = w.entry
            if not e.teaser:
                return e
            async with sem:
                refusal = await self.fetcher.robots.refusal(self.fetcher, e.url, policy)
                r = None if refusal else await self.fetcher.get(e.url, policy)
            if refusal:  # a feed keeps its teaser; a listing's link is recorded as given up
                return e if source.type == "feed" else give_up(w, refusal)
            if not r.ok:
                w.attempts += 1
                if w.attempts >= MAX_ARTICLE_ATTEMPTS:
                    return give_up(w, r.error or f"HTTP {r.status}")
                log.warning("article page %s failed (attempt %d of %d, retried later): %s", e.url, w.attempts,
                            MAX_ARTICLE_ATTEMPTS, r.error)
                wait = ARTICLE_RETRY * 2 ** (w.attempts - 1)
                outcome.backlog_put.append(w.backlog(error=r.error, next_attempt=iso(now + dt.timedelta(seconds=wait))))
                w.requeued = True
                return None
            try:
                page = await self._extract(r.body, r.final_url or e.url, r.headers)
            except GuardError as exc:  # this page fails alone, recorded; its feed's teaser is kept
                return give_up(w, f"article page not extracted: {exc}")
            if page.canonical:
                e.url = canonical_url(page.canonical)
            e.title = e.title or page.title
            if len(page.text) > len(e.text):
                e.text = page.text
            e.published = e.published or page.published
            e.author = e.author or page.author
            e.language = page.language
            return e

        fetched = await asyncio.gather(*(one(w) for w in work))
        return [e for e in fetched if e is not None]


_EXTRACT_QUEUE = None  # one thread hands pages to the extraction worker process, one at a time


async def _extract(body: bytes, url: str, headers: dict):
    """An article page's text, extracted in the worker process under a deadline and a depth limit
    (guard.py); raises GuardError when the page exceeds them. The event loop only waits."""
    global _EXTRACT_QUEUE
    if _EXTRACT_QUEUE is None:
        from concurrent.futures import ThreadPoolExecutor

        _EXTRACT_QUEUE = ThreadPoolExecutor(1, thread_name_prefix="borderwatch-extract")
    return await asyncio.get_running_loop().run_in_executor(
        _EXTRACT_QUEUE, EXTRACTOR.call, extract_guarded, (body, url, headers), EXTRACT_DEADLINE)


@dataclass
class _Work:
    """An entry a poll works on: new in this body, or taken from the backlog (``queued``)."""

    entry: Entry
    attempts: int
    added: str
    queued: bool
    requeued: bool = False  # goes back to the backlog (a failed page, or a given-up record)

    def backlog(self, error: str | None = None, next_attempt: str | None = None, gave_up: str | None = None) -> BacklogItem:
        return BacklogItem(self.entry.guid, self.entry.url, entry_to_json(self.entry), self.added, self.attempts,
                           next_attempt, error, gave_up)


def entry_to_json(e: Entry) -> str:
    return json.dumps({"url": e.url, "title": e.title, "text": e.text, "guid": e.guid, "author": e.author,
                       "published": iso(e.published), "teaser": e.teaser}, ensure_ascii=False)


def entry_from_json(data: str) -> Entry:
    d = json.loads(data)
    return Entry(url=d["url"], title=d["title"], text=d["text"], guid=d["guid"], author=d["author"],
                 published=store.parse_iso(d["published"]), teaser=d["teaser"])


async def run_cycle(db, feeds: FeedsConfig, matcher, sources: Iterable[Source] | None = None,
                    fetcher: Fetcher | None = None,
                    on_report: Callable[[SourceReport], None] | None = None,
                    pool: CpuPool | None = None,
                    clock: Callable[[], dt.datetime] | None = None) -> CycleResult:
    """Poll the given sources (default: all enabled) once and store what is new.

    Without a ``pool``, a cycle over many sources on a multi-core machine makes its own.
    ``clock`` gives "now" (tests drive back-off with it).
    """
    started = time.perf_counter()
    sources = list(feeds.enabled() if sources is None else sources)
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(feeds.concurrency, feeds.per_host)
    own_pool = pool is None and CpuPool.worth_it(len(sources))
    if own_pool:
        pool = CpuPool(matcher.ruleset if matcher else None, getattr(matcher, "semantic", None) is not None)
    result = CycleResult()
    states = source_states(db, [s.id for s in sources])
    poller = Poller(db, matcher, fetcher, clock=clock, pool=pool)

    written: asyncio.Queue = asyncio.Queue()
    # Backpressure: a poll holds a slot from its start until its batch is written, so finished polls
    # cannot pile up while the writer is busy, and memory does not grow with the number of sources.
    slots = asyncio.Semaphore(max(2 * GROUP_COMMIT, 2 * feeds.concurrency))

    async def one(source: Source) -> None:
        await slots.acquire()
        try:
            outcome = await poller.poll(source, states.get(source.id))
        except Exception as exc:  # a bug on one source's data must not stop the others
            log.exception("poll of %s crashed", source.id)
            outcome = PollOutcome(source.id, False, error=f"internal error: {type(exc).__name__}: {exc}",
                                  next_poll=iso(next_poll(source, poller.clock(), 1)))
        await written.put(outcome)

    async def writer() -> None:
        """Group commit: every poll finished meanwhile goes into one transaction (each poll whole).
        In a big cycle the writes run in their own process (WriterProcess: its own GIL, so the
        writes and the event loop each get a core) or, on one core, in a thread on their own
        connection; fetching and parsing go on while a batch is written."""
        big = len(sources) >= GROUP_COMMIT
        write_db = store.connect(store.db_path(db), migrate=False) if big else None
        process = WriterProcess(store.db_path(db)) if big and WriterProcess.worth_it() else None
        try:
            remaining = len(sources)
            while remaining:
                batch = [await written.get()]
                while not written.empty() and len(batch) < GROUP_COMMIT:
                    batch.append(written.get_nowait())
                remaining -= len(batch)
                if write_db is None:
                    saved = save_polls(db, batch)
                elif process is not None and any(o.articles for o in batch):
                    saved = await process.save(batch, fallback=lambda: save_polls(write_db, batch))
                else:
                    saved = await asyncio.to_thread(save_polls, write_db, batch)
                for outcome, inserted in zip(batch, saved):
                    _report(outcome, inserted)
                    slots.release()
        finally:
            if process is not None:
                process.close()
            if write_db is not None:
                write_db.close()

    def _report(outcome: PollOutcome, inserted: list[NewArticle]) -> None:
        report = SourceReport(outcome.source, outcome.ok, outcome.status, len(inserted),
                              sum(len(a.hits) for a in inserted), outcome.elapsed_ms, outcome.error,
                              outcome.ok and outcome.status == 304)
        result.reports.append(report)
        log.log(logging.WARNING if outcome.error else logging.INFO, "poll source=%s status=%s new=%d hits=%d ms=%.0f%s", outcome.source, outcome.status or "-",
                 report.new_articles, report.new_hits, report.ms, f" error={outcome.error}" if outcome.error else "",
                 extra={"source": outcome.source, "status": outcome.status, "new_items": report.new_articles,
                        "new_hits": report.new_hits, "ms": round(report.ms), "error": outcome.error})
        if on_report:
            on_report(report)

    pending = iter(sources)

    async def worker() -> None:
        for source in pending:  # a fixed set of workers: no task per source waiting in memory
            await one(source)

    try:
        await asyncio.gather(writer(), *(worker() for _ in range(min(len(sources), 2 * GROUP_COMMIT + feeds.concurrency))))
    finally:
        if own_fetcher:
            await fetcher.aclose()
        if own_pool:
            pool.close()
    result.seconds = time.perf_counter() - started
    return result
