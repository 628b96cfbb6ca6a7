"""CPU per pipeline stage for one `borderwatch run --once` (the method, not a profile).

Run by `bench/cycle.py --profile`; also usable alone:

    python bench/profile_cycle.py --feeds FEEDS.yaml [--keywords keywords.yaml] --db X.db

Method: the stage functions are wrapped (monkeypatched, nothing in the pipeline changes) with a
timer on the CPU clock of the calling thread (time.thread_time), and each call's CPU minus the
CPU of the wrapped calls nested in it is charged to its stage:

  parse        parse_entries (fastfeedparser or feedparser, HTML tidying), scrub, detect_language
  fold+match   Folded.of, match_article (automaton, evaluation, snippets), the semantic layer
  dedup/story  canonical_url, shingle_sketch, fingerprint; in storage the story lookup and the
               sketch and boilerplate maintenance (story_overlaps, _store_sketch, _add_boilerplate,
               _recheck, merge_stories, and whatever their names are after a refactoring)
  store+FTS    save_polls (articles, guids, hits, FTS5 through its triggers, source state, commit)
               and the per-poll reads (known_keys, backlog_due, backlog_guids, source_states)
  fetch+loop   the CPU of the event loop's thread during the cycle minus the wrapped calls run on
               it: HTTP (client, parsing of responses), sockets and the loop's own scheduling
  orchestration  the rest of the other threads' CPU during the cycle (executor hand-offs, the
               writer's queue, prepare_article's own glue)
  start-up     everything before the cycle starts (imports, config, rules, database) and after
               it ends (health, summary)

The total is the process's CPU (time.process_time); the stages add up to it. Coroutines
(Fetcher.get, Poller.poll) cannot be timed this way (their awaits interleave), which is why
fetch is the loop thread's remainder. The worker processes are switched off (CpuPool.worth_it
and WriterProcess.worth_it -> False) so that parse, match and the writes run in this process and
are seen; the total is therefore the CPU of the whole pipeline on one process (with the workers,
the same work is split over three processes plus the pickling between them, reported by
cycle.py's wait4 totals and its CPU by process).
Overhead: two clock reads per wrapped call (about a dozen calls per article); a syscall each.
Prints one JSON object: seconds of CPU per stage, the total, calls per stage, and the exclusive CPU
of each wrapped function.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (module, attribute, stage); a missing attribute is skipped (the code may have been refactored)
TARGETS = [
    ("pipeline.cycle", "parse_entries", "parse"),
    ("pipeline.cycle", "scrub", "parse"),
    ("pipeline.cycle", "detect_language", "parse"),
    ("pipeline.cycle", "match_article", "fold+match"),
    ("pipeline.cycle", "canonical_url", "dedup/story"),
    ("pipeline.cycle", "shingle_sketch", "dedup/story"),
    ("pipeline.cycle", "fingerprint", "dedup/story"),
    ("pipeline.cycle", "known_keys", "store+FTS"),
    ("pipeline.cycle", "source_states", "store+FTS"),
    ("pipeline.cycle", "save_polls", "store+FTS"),
    ("pipeline.store", "backlog_due", "store+FTS"),
    ("pipeline.store", "backlog_guids", "store+FTS"),
    ("pipeline.store", "known_keys", "store+FTS"),
    ("pipeline.store", "save_polls", "store+FTS"),
    ("pipeline.store.sqlite", "story_overlaps", "dedup/story"),
    ("pipeline.store.sqlite", "_store_sketch", "dedup/story"),
    ("pipeline.store.sqlite", "_store_sketches", "dedup/story"),
    ("pipeline.store.sqlite", "_add_boilerplate", "dedup/story"),
    ("pipeline.store.sqlite", "_recheck", "dedup/story"),
    ("pipeline.store.sqlite", "merge_stories", "dedup/story"),
    ("pipeline.store.sqlite", "_story_lookups", "dedup/story"),
    ("pipeline.store.sqlite", "save_polls", "store+FTS"),
]


class Meter:
    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.detail: Counter[str] = Counter()  # per wrapped function (exclusive CPU)
        self.by_thread: Counter[int] = Counter()  # wrapped CPU per thread (to find the loop's remainder)
        self.local = threading.local()
        self.lock = threading.Lock()

    def wrap(self, fn, stage: str):
        meter = self
        name = getattr(fn, "__name__", "?")

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = getattr(meter.local, "stack", None)
            if stack is None:
                stack = meter.local.stack = []
            stack.append(0.0)  # CPU of nested wrapped calls
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                nested = stack.pop()
                if stack:
                    stack[-1] += spent
                with meter.lock:
                    meter.cpu[stage] += spent - nested
                    meter.detail[name] += spent - nested
                    meter.calls[stage] += 1
                    if not stack:
                        meter.by_thread[threading.get_ident()] += spent
        timed.__wrapped_stage__ = stage
        return timed

    def patch(self) -> None:
        import importlib

        from pipeline.fold import Folded

        for module, attr, stage in TARGETS:
            mod = importlib.import_module(module)
            fn = getattr(mod, attr, None)
            if fn is None or hasattr(fn, "__wrapped_stage__"):
                continue
            setattr(mod, attr, self.wrap(fn, stage))
        of = Folded.__dict__["of"].__func__
        Folded.of = classmethod(self.wrap(of, "fold+match"))
        try:
            from pipeline.rules.semantic import Semantic

            Semantic.review = self.wrap(Semantic.review, "fold+match")
        except ImportError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", required=True)
    ap.add_argument("--keywords", default=str(ROOT / "keywords.yaml"))
    ap.add_argument("--db", required=True)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("BORDERWATCH_SEMANTIC", "off")
    process0 = time.process_time()
    import pipeline.cycle as cycle  # noqa: E402  (imports are part of the measured start-up)
    import pipeline.schedule as schedule  # noqa: E402

    meter = Meter()
    meter.patch()
    cycle.CpuPool.worth_it = classmethod(lambda cls, n: False)
    cycle.WriterProcess.worth_it = classmethod(lambda cls: False)  # the writes in a thread here, to be seen
    window: dict[str, float] = {}
    run_cycle = schedule.run_cycle

    async def measured_cycle(*a, **kw):
        window["process0"], window["loop0"] = time.process_time(), time.thread_time()
        loop_thread = threading.get_ident()
        wrapped0 = meter.by_thread[loop_thread]
        try:
            return await run_cycle(*a, **kw)
        finally:
            window["process1"], window["loop1"] = time.process_time(), time.thread_time()
            window["loop_wrapped"] = meter.by_thread[loop_thread] - wrapped0

    schedule.run_cycle = measured_cycle
    from pipeline.cli import main as cli_main

    try:
        cli_main(["run", "--once", "--json", "--no-digests", "--feeds", args.feeds, "--keywords", args.keywords,
                  "--db", args.db, "--log-level", "error"], standalone_mode=False)
    except SystemExit as exc:  # `run --once` exits 1 when a source failed: still report the profile
        print(f"run --once exited {exc.code}", file=sys.stderr)
    total = time.process_time() - process0
    stages = dict(meter.cpu)
    if window:
        in_cycle = window["process1"] - window["process0"]
        loop = window["loop1"] - window["loop0"]
        stages["fetch+loop"] = loop - window["loop_wrapped"]
        stages["orchestration"] = in_cycle - loop - (sum(meter.cpu.values()) - window["loop_wrapped"])
        stages["start-up"] = total - in_cycle
    print(json.dumps({"stages": {k: round(v, 3) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
                      "total": round(total, 3), "calls": dict(meter.calls),
                      "functions": {k: round(v, 3) for k, v in meter.detail.most_common()}}))


if __name__ == "__main__":
    main()
