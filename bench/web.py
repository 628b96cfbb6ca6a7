"""Web surface benchmark: `borderwatch serve` pages over real HTTP (uvicorn on 127.0.0.1) on a
database of N synthetic articles with hits spread over the last 60 days, written through the
real write path (store.save_poll). Baseline, measured in the same run: /healthz (a lease read).

    python bench/web.py [--articles 100000] [--repeat 21]

Prints the median latency of each page and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from pipeline import store  # noqa: E402
from pipeline.rules import Hit  # noqa: E402
from pipeline.store import NewArticle, PollOutcome  # noqa: E402
from pipeline.web import WebConfig, create_app  # noqa: E402

RULES = ["fentanyl", "hlsd", "extradition", "cartels", "migration", "arms"]
WORDS = ("officials said government security border report agents federal police city court port shelters "
         "prosecutors indictment laboratory precursor cartel migrants fentanyl weapons rifles seized asylum").split()
SOURCES = [f"src-{i}" for i in range(40)]


def article(i: int, n: int, now: dt.datetime, rnd: random.Random) -> NewArticle:
    published = store.iso(now - dt.timedelta(days=60) * (n - i) / n)
    hits = [Hit(rule, [rule], f"… {rule} snippet {i} …", [[2, 2 + len(rule)]])
            for rule in rnd.sample(RULES, rnd.choice((0, 1, 1, 2)))]
    return NewArticle(f"https://news{i % 97}.example/{i}", f"g{i}", f"Title {i} {rnd.choice(WORDS)}",
                      " ".join(rnd.choice(WORDS) for _ in range(40)) + f" item{i}", "", published, published,
                      f"fp{i}", [rnd.getrandbits(62) for _ in range(6)], hits)


def median_ms(client: httpx.Client, url: str, repeat: int) -> float:
    client.get(url)  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code in (200, 404, 503), (url, r.status_code)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        db = store.connect(path)
        store.sync_sources(db, [type("S", (), {"id": s, "name": s, "url": f"https://{s}.example/", "type": "feed",
                                               "enabled": True})() for s in SOURCES])
        rnd, now = random.Random(1), dt.datetime.now(dt.timezone.utc)
        started = time.perf_counter()
        for b in range(0, args.articles, 1000):
            arts = [article(i, args.articles, now, rnd) for i in range(b, min(b + 1000, args.articles))]
            store.save_poll(db, PollOutcome(SOURCES[(b // 1000) % len(SOURCES)], True, 200, articles=arts), lambda *a: False)
        db.execute("ANALYZE")
        n_hits = db.execute("SELECT count(*) FROM hits").fetchone()[0]
        db.close()
        print(f"database: {args.articles:,} articles, {n_hits:,} hits over 60 days ({time.perf_counter() - started:.1f} s to build)")
        server = uvicorn.Server(uvicorn.Config(create_app(WebConfig(str(path), str(ROOT / "feeds.yaml"), str(ROOT / "keywords.yaml"))),
                                               host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=60) as client:
            baseline = median_ms(client, base + "/healthz", args.repeat)
            print(f"{'/healthz (baseline)':<28} {baseline:8.1f} ms   1.0x")
            for page in ("/", "/rules/fentanyl.atom", "/tags/drugs.atom", "/metrics", "/unsubscribe/no-such-token"):
                ms = median_ms(client, base + page, args.repeat)
                print(f"{page:<28} {ms:8.1f} ms {ms / baseline:6.1f}x")
        server.should_exit = True
        thread.join(timeout=30)


if __name__ == "__main__":
    main()
