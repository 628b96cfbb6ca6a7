"""Storage benchmark: insert N synthetic articles with hits through the real write path
(store.save_poll: one transaction per batch, FTS5 triggers, sketches), then time the
analyst's queries at that size:

  hits --rule R --since 7d      store.query_hits(rules=[R], since=now-7d)
  hits --search "..."           store.query_hits(search=...)

Target: both under 100 ms median at 1,000,000 articles.

    python bench/store.py [--articles 1000000] [--batch 1000] [--db PATH|postgresql://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import store  # noqa: E402
from pipeline.rules import Hit  # noqa: E402
from pipeline.store import NewArticle, PollOutcome  # noqa: E402

RULES = ["fentanyl", "hlsd", "extradition", "cartels", "migration", "arms"]
WORDS = ("the of and to in a is that for on with as was by at from officials said government security border "
         "report agents federal state police city week year court trade market energy election program community "
         "president minister congress meeting cartel migrants fentanyl weapons rifles seized extradition asylum "
         "customs port shelters prosecutors indictment laboratory precursor").split()
SOURCES = [f"src-{i}" for i in range(50)]


def article(i: int, now: dt.datetime, rnd: random.Random) -> NewArticle:
    published = store.iso(now - dt.timedelta(minutes=(1_000_000 - i) * 0.5))  # ~1 year of articles, oldest first
    text = " ".join(rnd.choice(WORDS) for _ in range(60)) + f" item{i}"
    hits = [Hit(rule, [rule], f"… {rule} snippet {i} …", [[2, 2 + len(rule)]]) for rule in rnd.sample(RULES, rnd.choice((0, 0, 1, 1, 2)))]
    return NewArticle(f"https://news{i % 97}.example/{i}", f"g{i}", f"Title {i} {rnd.choice(WORDS)} {rnd.choice(WORDS)}", text,
                      "", published, published, f"fp{i}", [rnd.getrandbits(62) for _ in range(8)], hits)


def timed(fn, repeat: int = 21) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--db", help="database path, or a postgresql:// URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    tmp = None
    if args.db:
        path = args.db if store.is_postgres(args.db) else Path(args.db)
    else:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "bench.db"
    db = store.connect(path)
    store.sync_sources(db, [type("S", (), {"id": s, "name": s, "url": f"https://{s}.example/", "type": "feed",
                                           "enabled": True})() for s in SOURCES])
    rnd = random.Random(1)
    now = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    n_hits = 0
    for b in range(0, args.articles, args.batch):
        arts = [article(i, now, rnd) for i in range(b, min(b + args.batch, args.articles))]
        n_hits += sum(len(a.hits) for a in arts)
        store.save_poll(db, PollOutcome(SOURCES[(b // args.batch) % len(SOURCES)], True, 200, articles=arts), lambda *a: False)
        if b and b % (args.articles // 10) == 0:
            print(f"  {b:>9,} articles, {b / (time.perf_counter() - started):,.0f}/s", flush=True)
    seconds = time.perf_counter() - started
    if store.is_postgres(path):
        db.execute("ANALYZE")
        size = db.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                          " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'm')").fetchone()[0]
    else:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("ANALYZE")
        size = sum(os.path.getsize(p) for p in (str(path), str(path) + "-wal") if os.path.exists(p))
    print(f"inserted {args.articles:,} articles and {n_hits:,} hits in {seconds:.1f} s: {args.articles / seconds:,.0f} articles/s "
          f"(batches of {args.batch}, full-text index and story sketches included); database {size / 2**20:,.0f} MiB")
    since = store.iso(now - dt.timedelta(days=7))
    q_rule = timed(lambda: store.query_hits(db, store.HitQuery(rules=["cartels"], since=since, limit=50)))
    q_fts = timed(lambda: store.query_hits(db, store.HitQuery(search="precursor laboratory", limit=50)))
    q_fts_rare = timed(lambda: store.query_hits(db, store.HitQuery(search=f"item{args.articles // 2}", limit=50)))
    q_all = timed(lambda: store.query_hits(db, store.HitQuery(limit=50)))
    print(f"hits --rule cartels --since 7d: {q_rule:.1f} ms median")
    print(f"hits --search 'precursor laboratory': {q_fts:.1f} ms median; a rare term: {q_fts_rare:.1f} ms median")
    print(f"hits (latest 50, no filter): {q_all:.1f} ms median")
    print(f"target: both under 100 ms -> {'met' if max(q_rule, q_fts) < 100 else 'NOT met'}")
    db.close()
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
