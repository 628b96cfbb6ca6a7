"""The write path alone: cycle.py's feeds, parsed and prepared once (cached), then stored through
store.save_polls in batches of GROUP_COMMIT polls, as the writer process does in a first cycle.
Prints the writer's CPU per article (its thread's CPU clock: user + system), and with --profile the
costliest functions (cProfile on the thread's CPU clock; it inflates Python's share).

Used for issue 15 to compare versions of the write path back to back (run it on each checkout with
the same --feeds; the figures move with the machine's load, so alternate and repeat):

    python bench/writer.py --feeds 1000      # 20,000 articles
    python bench/writer.py --feeds 2000      # 40,000 articles
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pickle
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import store  # noqa: E402
from pipeline.config import load_rules  # noqa: E402
from pipeline.cycle import GROUP_COMMIT, parse_entries, prepare_article  # noqa: E402
from pipeline.dedup import canonical_url  # noqa: E402
from pipeline.rules import compile_rules  # noqa: E402
from pipeline.store import PollOutcome  # noqa: E402

import cycle as feeds  # noqa: E402  (bench/cycle.py: the same generated feeds)


def prepared(n: int, cache: Path) -> list[PollOutcome]:
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    matcher = compile_rules(load_rules(ROOT / "keywords.yaml"))
    fetched = store.now_iso()
    polls = []
    for i in range(n):
        base = f"http://127.0.0.{i % 10 + 1}:8000"
        entries = parse_entries("rss", None, feeds.feed_body(base, i, 0), f"{base}/feed/{i}.xml", {})
        articles = [prepare_article(e, fetched, matcher) for e in entries]
        for a in articles:
            a.url = canonical_url(a.url)
        polls.append(PollOutcome(f"feed-{i}", True, 200, articles=articles, items_seen=len(articles)))
    cache.write_bytes(pickle.dumps(polls))
    return polls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "borderwatch-writer-%d.pickle"),
                    help="where the prepared polls are kept between runs (%%d: the number of feeds)")
    args = ap.parse_args()
    polls = prepared(args.feeds, Path(args.cache % args.feeds))
    with tempfile.TemporaryDirectory() as tmp:
        db = store.connect(os.path.join(tmp, "writer.db"))
        for p in polls:
            db.execute("INSERT INTO sources (id, url) VALUES (?, ?)", (p.source, "https://example.org/feed"))
        prof = cProfile.Profile(time.thread_time) if args.profile else None
        started, wall = time.thread_time(), time.perf_counter()
        if prof:
            prof.enable()
        new = 0
        for k in range(0, len(polls), GROUP_COMMIT):
            new += sum(len(x) for x in store.save_polls(db, polls[k:k + GROUP_COMMIT]))
        if prof:
            prof.disable()
        cpu = time.thread_time() - started
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
        print(f"{args.feeds} feeds, {new:,} new articles: writer CPU {cpu:.2f} s ({cpu / new * 1000:.3f} ms/article), "
              f"wall {time.perf_counter() - wall:.2f} s, database {size / 2**20:.0f} MiB ({size / new / 1024:.1f} KiB/article)")
        db.close()
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())


if __name__ == "__main__":
    main()
