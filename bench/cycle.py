"""Cycle benchmark: borderwatch `run --once` against a reference poller, on a local server.

A server process (its own GIL) serves N feeds of 20 items (~1 KB of text each) from 10
loopback addresses with a fixed latency per response (default 100 ms), answering
If-None-Match with 304. Each phase runs in a fresh child process, measured with wait4
(wall s, CPU s, peak RSS):

  a  reference: concurrent fetch of every feed + fastfeedparser on every body, nothing else,
     at EXACTLY the concurrency and per-host limit given to borderwatch (aiohttp, the fastest
     Python client measured here, when installed: `pip install -e '.[bench]'`; else httpx)
  b  borderwatch run --once, empty database
  c  the same again (every feed answers 304)
  d  the same after 5% of the feeds changed

Both layouts are run and reported: all feeds on one host (per-host limit = concurrency) and on
10 loopback hosts (per-host limit = concurrency / 10), 50 requests in flight by default. The
network floor (feeds x latency / concurrency) is printed too: a ratio against a reference that
sits on the floor says little about borderwatch's own cost, so CPU seconds are compared as well.

Targets: b/a <= 1.5, c wall <= 1.2x the network floor, and (with --rss-scaling) peak RSS of b
at 10N <= 2x at N. `--profile` adds the CPU of phase b per pipeline stage (bench/profile_cycle.py
explains the method).

    python bench/cycle.py                 # N = 2,000, 50 in flight, one host and 10 hosts
    python bench/cycle.py --hosts 1 --profile   # one layout, plus the CPU per stage of phase b
    python bench/cycle.py --feeds 500
    python bench/cycle.py --rss-scaling   # b at N and at 10 N, peak RSS compared
    python bench/cycle.py --feeds 50 --smoke   # CI: completes, prints, checks sanity only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [f"127.0.0.{i}" for i in range(1, 11)]
ITEMS = 20
WORDS = ("the of and to in a is that for on with as was by at from officials said government security border "
         "report agents federal state police city week year new people two first court trade water health "
         "market energy election school program project community president minister congress meeting").split()
TOPICAL = ["fentanyl", "migrants", "Sinaloa Cartel", "extradition", "Mexico", "rifles", "smuggling", "asylum seekers"]


# --------------------------------------------------------------------------- the feed server


def item_text(seed: str) -> str:
    rnd = random.Random(seed)
    words = [rnd.choice(WORDS) for _ in range(170)]
    if rnd.random() < 0.1:
        for _ in range(3):
            words.insert(rnd.randrange(len(words)), rnd.choice(TOPICAL))
    return " ".join(words).capitalize() + "."


def feed_body(base: str, i: int, generation: int) -> bytes:
    items = []
    for k in range(ITEMS):
        n = generation * 5 + k  # a new generation replaces the 5 oldest items
        guid = f"f{i}-i{n}"
        items.append(f"<item><title>Item {n} of feed {i}</title><link>{base}/a/{guid}</link><guid>{guid}</guid>"
                     f"<pubDate>Mon, 23 Nov 2026 10:{k:02d}:00 +0000</pubDate>"
                     f"<description>{item_text(guid)}</description></item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
            f"<link>{base}/</link><description>bench</description>{''.join(items)}</channel></rss>").encode()


def serve(port: int, latency: float, ready) -> None:
    generations: dict[int, int] = {}
    cache: dict[tuple[int, int, str], bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            if self.path.startswith("/_change"):
                from urllib.parse import parse_qs, urlsplit

                q = parse_qs(urlsplit(self.path).query)
                pct, n = float(q["pct"][0]), int(q["n"][0])
                step = max(1, round(100 / pct))
                for i in range(0, n, step):
                    generations[i] = generations.get(i, 0) + 1
                self._send(200, b"ok", {})
                return
            time.sleep(latency)
            i = int(self.path.strip("/").split("/")[-1].split(".")[0])
            gen = generations.get(i, 0)
            host = self.headers.get("Host", "")
            key = (i, gen, host)
            body = cache.get(key)
            if body is None:
                body = cache[key] = feed_body(f"http://{host}", i, gen)
            etag = f'"{i}-{gen}"'
            if self.headers.get("If-None-Match") == etag:
                self._send(304, b"", {"ETag": etag})
            else:
                self._send(200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})

        def _send(self, status, body, headers):
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    servers = []
    for host in HOSTS:
        httpd = ThreadingHTTPServer((host, port), Handler)
        httpd.daemon_threads = True
        httpd.request_queue_size = 512
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ready.set()
    threading.Event().wait()


def feed_urls(port: int, n: int, hosts: int = len(HOSTS)) -> list[str]:
    return [f"http://{HOSTS[i % hosts]}:{port}/feeds/{i}.xml" for i in range(n)]


# --------------------------------------------------------------------------- phases (run in child processes)


async def reference(urls: list[str], concurrency: int, per_host: int) -> dict:
    """The fastest plain poller at the same limits as borderwatch: a global semaphore, a per-host
    limit, fastfeedparser on every body; aiohttp when installed, else per-host httpx clients."""
    import fastfeedparser

    try:
        import aiohttp
    except ImportError:
        aiohttp = None
    if aiohttp is not None:
        sem = asyncio.Semaphore(concurrency)
        items = 0
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def get(url: str) -> None:
                nonlocal items
                async with sem, session.get(url) as r:
                    body = await r.read()
                items += len(fastfeedparser.parse(body).entries)

            await asyncio.gather(*(get(u) for u in urls))
        return {"items": items, "client": "aiohttp"}
    import httpx

    sem = asyncio.Semaphore(concurrency)
    clients: dict[str, httpx.AsyncClient] = {}
    items = 0

    async def one(url: str) -> None:
        nonlocal items
        host = url.split("/")[2]
        client = clients.get(host)
        if client is None:
            client = clients[host] = httpx.AsyncClient(limits=httpx.Limits(max_connections=per_host))
        async with sem:
            r = await client.get(url)
        items += len(fastfeedparser.parse(r.content).entries)

    await asyncio.gather(*(one(u) for u in urls))
    await asyncio.gather(*(c.aclose() for c in clients.values()))
    return {"items": items, "client": "httpx"}


def phase_main(args) -> None:
    urls = feed_urls(args.port, args.feeds, args.hosts)
    if args.phase == "ref":
        out = asyncio.run(reference(urls, args.concurrency, args.per_host))
    else:
        raise SystemExit(f"unknown phase {args.phase}")
    print(json.dumps(out))


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    """Run a child process; return wall s, CPU s (user+sys) and peak RSS (MiB) from wait4, and the
    CPU of each process of the run by name (/proc, sampled every 0.25 s: borderwatch names its worker
    processes bw-parser and bw-writer)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    per_process: dict[int, tuple[str, float]] = {}
    done = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(proc.pid, per_process, done), daemon=True)
    sampler.start()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode not in (0,):
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    by_name: dict[str, float] = {}
    for pid, (name, cpu) in per_process.items():
        name = "main" if pid == proc.pid else name
        by_name[name] = by_name.get(name, 0.0) + cpu
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024, "out": result,
            "processes": by_name}


def _sample_cpu(root: int, seen: dict, done: threading.Event) -> None:
    """CPU (user + sys) of ``root`` and its descendants, read from /proc every 0.25 s until done
    (the last reading before a process exits is kept: at most 0.25 s of its CPU is missed; the
    sampling itself costs about 1% of a core, in the benchmark's own process)."""
    tick = os.sysconf("SC_CLK_TCK")
    while not done.wait(0.25):
        try:
            stats = []
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            stats.append(f.read())
                    except OSError:
                        continue
        except OSError:
            return
        parents, info = {}, {}
        for st in stats:
            pid = int(st.split(" ", 1)[0])
            name = st[st.index("(") + 1:st.rindex(")")]
            fields = st[st.rindex(")") + 2:].split()
            parents[pid] = int(fields[1])
            info[pid] = (name, (int(fields[11]) + int(fields[12])) / tick)
        for pid in info:
            p = pid
            while p and p != root and p in parents:
                p = parents[p]
            if p == root:
                seen[pid] = info[pid]


def write_feeds_yaml(path: Path, urls: list[str], concurrency: int, per_host: int) -> None:
    lines = [f"defaults: {{interval: 15m, timeout: 60s, concurrency: {concurrency}, per_host: {per_host}}}", "sources:"]
    for i, u in enumerate(urls):
        lines += [f"  - id: f{i}", f"    url: {u}"]
    path.write_text("\n".join(lines) + "\n")


def borderwatch_once(work: Path, feeds: Path, db: Path, semantic: bool = False) -> dict:
    env = dict(os.environ, BORDERWATCH_SEMANTIC="on" if semantic else "off")
    return run_child([sys.executable, "-m", "pipeline", "run", "--once", "--json", "--no-digests",
                      "--feeds", str(feeds), "--keywords", str(ROOT / "keywords.yaml"), "--db", str(db),
                      "--log-level", "warning"], env=env)


def start_server(latency: float):
    import multiprocessing

    port = _free_port()
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=serve, args=(port, latency, ready), daemon=True)
    proc.start()
    if not ready.wait(10):
        raise SystemExit("feed server did not start")
    return proc, port


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def change(port: int, pct: float, n: int) -> None:
    import urllib.request

    urllib.request.urlopen(f"http://127.0.0.1:{port}/_change?pct={pct}&n={n}", timeout=10).read()


def row(name: str, m: dict, extra: str = "") -> str:
    return f"{name:<34} {m['wall']:>8.2f} {m['cpu']:>8.2f} {m['rss_mib']:>9.1f}  {extra}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per response (default 0.1)")
    ap.add_argument("--smoke", action="store_true", help="CI: check completion and sanity, not the targets")
    ap.add_argument("--rss-scaling", action="store_true", help="compare peak RSS of phase b at N and 10 N")
    ap.add_argument("--semantic", action="store_true",
                    help="CPU of phase b and d without and with the semantic extra (must be installed)")
    ap.add_argument("--rounds", type=int, default=2, help="with --semantic: 1 = off, on; 2 = off, on, on, off")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=50, help="requests in flight, for both (default 50)")
    ap.add_argument("--hosts", type=int, choices=range(1, len(HOSTS) + 1), metavar="1-10",
                    help="one layout only: feeds spread over this many loopback hosts (default: 1 and 10)")
    ap.add_argument("--per-host", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help="also the CPU of phase b per pipeline stage (cProfile)")
    args = ap.parse_args()
    if args.phase:
        phase_main(args)
        return
    os.chdir(ROOT)
    server, port = start_server(args.latency)
    try:
        if args.rss_scaling:
            rss_scaling(args, port)
        elif args.semantic:
            semantic_cost(args, port)
        else:
            for hosts in ([args.hosts] if args.hosts else [1, len(HOSTS)]):
                compare(args, port, hosts)
    finally:
        server.kill()


def per_host_limit(args, hosts: int) -> int:
    return args.per_host or max(1, -(-args.concurrency // hosts))


def compare(args, port: int, hosts: int) -> None:
    n = args.feeds
    urls = feed_urls(port, n, hosts)
    per_host = per_host_limit(args, hosts)
    floor = n * args.latency / min(args.concurrency, per_host * hosts)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feeds = work / "feeds.yaml"
        write_feeds_yaml(feeds, urls, args.concurrency, per_host)
        db = work / "bench.db"
        print(f"\ncycle benchmark: {n} feeds x {ITEMS} items, {args.latency * 1000:.0f} ms latency, {hosts} host(s); "
              f"both at {args.concurrency} in flight, {per_host} per host; network floor {floor:.2f} s", flush=True)
        a = run_child([sys.executable, __file__, "--phase", "ref", "--port", str(port), "--feeds", str(n),
                       "--hosts", str(hosts), "--concurrency", str(args.concurrency), "--per-host", str(per_host)])
        b = borderwatch_once(work, feeds, db)
        c = borderwatch_once(work, feeds, db)
        change(port, 5, n)
        d = borderwatch_once(work, feeds, db)
        prof = None
        if args.profile:
            pdb = work / "profile.db"
            prof = run_child([sys.executable, str(ROOT / "bench" / "profile_cycle.py"), "--feeds", str(feeds),
                              "--db", str(pdb)])
    print(f"{'phase':<34} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9}")
    print(row(f"a reference ({a['out']['client']}) fetch+parse", a, f"{a['out']['items']} items"))
    print(row("b borderwatch run --once (empty)", b, _summ(b)))
    print(row("c again (all 304)", c, _summ(c)))
    print(row("d 5% of feeds changed", d, _summ(d)))
    print("CPU by process of b: " + ", ".join(f"{name} {sec:.2f} s" for name, sec in
                                              sorted(b["processes"].items(), key=lambda kv: -kv[1])))
    ba, cb, db_ = b["wall"] / a["wall"], c["wall"] / b["wall"], d["wall"] / b["wall"]
    print(f"ratios ({hosts} host(s)): b/a wall = {ba:.2f} (target <= 1.5), b/a CPU = {b['cpu'] / a['cpu']:.2f}, "
          f"a/floor = {a['wall'] / floor:.2f}, c/floor = {c['wall'] / floor:.2f} (target <= 1.2), "
          f"c/b CPU = {c['cpu'] / b['cpu']:.2f}, d/b = {db_:.2f}")
    if prof:
        stages = prof["out"]["stages"]
        total = prof["out"]["total"] or 1
        print(f"CPU of a first cycle by stage (bench/profile_cycle.py: thread CPU clocks around the stage functions, "
              f"parse and match in-process; {total:.2f} s of CPU):")
        for name, sec in stages.items():
            print(f"  {name:<24} {sec:>7.2f} s {sec / total:>6.1%}  {sec / (n * ITEMS) * 1000:.3f} ms/article")
        print("  costliest functions (exclusive CPU): " + ", ".join(
            f"{name} {sec:.2f} s" for name, sec in list(prof["out"].get("functions", {}).items())[:8]))
    if args.smoke:
        ok = (b["out"]["ok"] == n and b["out"]["new_articles"] == n * ITEMS and c["out"]["not_modified"] == n
              and d["out"]["new_articles"] == len(range(0, n, 20)) * 5)
        print("smoke: " + ("ok" if ok else "FAILED"))
        if not ok:
            raise SystemExit(1)


def _summ(m: dict) -> str:
    o = m["out"]
    return f"ok {o['ok']}, 304 {o['not_modified']}, new {o['new_articles']}, hits {o['new_hits']}"


def semantic_cost(args, port: int) -> None:
    """Phases b (empty database) and d (5% of feeds changed) with BORDERWATCH_SEMANTIC off and on,
    each run on its own database, in the order off, on, on, off (``--rounds 2``, the default) so
    that a machine whose load drifts during the benchmark weighs on both sides alike. Each run
    sees 5% of the feeds one generation later than the run before: the same counts of items, new
    articles and topical words."""
    sys.path.insert(0, str(ROOT))
    import sqlite3

    from pipeline.rules.semantic import available

    if not available():
        raise SystemExit("the semantic extra is not installed: pip install -e '.[semantic]'")
    n = args.feeds
    order = [False, True, True, False][: 2 * args.rounds] if args.rounds <= 2 else [False, True] * args.rounds
    print(f"semantic layer cost: {n} feeds x {ITEMS} items, keywords.yaml; CPU of `run --once` (wait4); "
          f"runs: {', '.join('on' if x else 'off' for x in order)}")
    print(f"{'phase':<34} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9}")
    cpu = {(sem, ph): 0.0 for sem in (False, True) for ph in "bd"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feeds = work / "feeds.yaml"
        write_feeds_yaml(feeds, feed_urls(port, n), args.concurrency, per_host_limit(args, len(HOSTS)))
        for k, semantic in enumerate(order):
            db = work / f"bench-{k}.db"
            b = borderwatch_once(work, feeds, db, semantic)
            change(port, 5, n)
            d = borderwatch_once(work, feeds, db, semantic)
            cpu[(semantic, "b")] += b["cpu"]
            cpu[(semantic, "d")] += d["cpu"]
            label = "with semantic" if semantic else "keywords only"
            print(row(f"b empty db, {label}", b, _summ(b)), flush=True)
            print(row(f"d 5% changed, {label}", d, _summ(d)), flush=True)
            if semantic:
                with sqlite3.connect(db) as conn:
                    checked, unchecked, suggested = conn.execute(
                        "SELECT count(similarity), count(*) - count(similarity), sum(suggested) FROM hits").fetchone()
                print(f"  semantic layer: {checked} hits checked within the budget, {unchecked} not, "
                      f"{suggested or 0} suggestions", flush=True)
    for name in "bd":
        off, on = cpu[(False, name)], cpu[(True, name)]
        print(f"{name}: CPU with semantic / without = {on / off:.2f} (+{(on / off - 1) * 100:.0f}%, target <= +25%)")


def rss_scaling(args, port: int) -> None:
    results = {}
    for n in (args.feeds, args.feeds * 10):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            feeds = work / "feeds.yaml"
            write_feeds_yaml(feeds, feed_urls(port, n), args.concurrency, per_host_limit(args, len(HOSTS)))
            results[n] = borderwatch_once(work, feeds, work / "bench.db")
            print(row(f"b at N = {n}", results[n], _summ(results[n])), flush=True)
    small, big = results[args.feeds]["rss_mib"], results[args.feeds * 10]["rss_mib"]
    print(f"peak RSS ratio (10N / N) = {big / small:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
