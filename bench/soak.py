"""Soak run: `borderwatch run` for 5 minutes against 200 local sources polled every 10 s.

A server process on 127.0.0.1 publishes a new item on each live feed every ~20-60 s and
answers If-None-Match with 304; some feeds flap (every other request a 500), some stall past
the timeout a third of the time, some never change. At the end the run gets SIGTERM, and
the report says: polls served, errors handled, the run's RSS early and late (growth), and
whether every item the server delivered appeared exactly once in the database.

    python bench/soak.py [--sources 200] [--seconds 300] [--interval 10]
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = "cartel border migrants fentanyl report officials security customs shelters court rifles seized".split()


def kind(i: int) -> str:
    return ["flap", "stall", "static"][i % 3] if i % 10 == 0 else "live"


def serve(port: int, started: float, ready) -> None:
    served: set[str] = set()
    counts = {"200": 0, "304": 0, "500": 0, "stall": 0}
    calls: dict[int, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            if self.path == "/_report":
                with lock:
                    body = json.dumps({"served": sorted(served), "counts": counts}).encode()
                return self._send(200, body, {})
            i = int(self.path.strip("/").split(".")[0].split("/")[-1])
            k = kind(i)
            with lock:
                calls[i] = calls.get(i, 0) + 1
                n = calls[i]
            if k == "flap" and n % 2 == 0:
                counts["500"] += 1
                return self._send(500, b"flapping", {})
            if k == "stall" and n % 3 == 0:
                counts["stall"] += 1
                time.sleep(5)
                return self._send(200, b"", {})
            period = 20 + (i * 7) % 40
            published = 1 if k == "static" else 1 + int((time.time() - started) // period)
            items = list(range(max(0, published - 20), published))
            etag = f'"{i}-{published}"'
            if self.headers.get("If-None-Match") == etag:
                counts["304"] += 1
                return self._send(304, b"", {"ETag": etag})
            xml = "".join(f"<item><title>Feed {i} item {n} {WORDS[(i + n) % len(WORDS)]}</title>"
                          f"<link>http://127.0.0.1:{port}/a/{i}/{n}</link><guid>{i}-{n}</guid>"
                          f"<description>Item {n} of feed {i}: {' '.join(WORDS[(i * n + j) % len(WORDS)] for j in range(40))}"
                          f"</description></item>" for n in items)
            with lock:
                served.update(f"http://127.0.0.1:{port}/a/{i}/{n}" for n in items)
                counts["200"] += 1
            body = f'<rss version="2.0"><channel><title>Feed {i}</title>{xml}</channel></rss>'.encode()
            self._send(200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})

        def _send(self, status, body, headers):
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    ready.set()
    httpd.serve_forever()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    import multiprocessing

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--interval", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from cycle import _free_port

    port = _free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, time.time(), ready), daemon=True)
    server.start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        feeds = Path(tmp) / "feeds.yaml"
        feeds.write_text(f"defaults: {{interval: {args.interval}s, timeout: 3s}}\nsources:\n" + "".join(
            f"  - id: s{i}\n    url: http://127.0.0.1:{port}/feeds/{i}.xml\n" for i in range(args.sources)))
        db = Path(tmp) / "soak.db"
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--feeds", str(feeds), "--keywords",
                                 str(ROOT / "keywords.yaml"), "--db", str(db), "--no-digests", "--log-level", "warning"],
                                cwd=ROOT, stderr=subprocess.PIPE, text=True)
        samples = []
        t0 = time.time()
        while time.time() - t0 < args.seconds and proc.poll() is None:
            time.sleep(5)
            samples.append((time.time() - t0, rss_mib(proc.pid)))
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        stderr = proc.stderr.read()
        report = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_report", timeout=10).read())
        conn = sqlite3.connect(db)
        urls = [r[0] for r in conn.execute("SELECT url FROM articles")]
        failures = conn.execute("SELECT count(*), sum(consecutive_failures > 0) FROM sources").fetchone()
        hits_dupes = conn.execute("SELECT count(*) FROM (SELECT article, rule FROM hits GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0]
    server.kill()
    served = set(report["served"])
    stored = set(urls)
    c = report["counts"]
    early = next((m for t, m in samples if t >= 30), samples[0][1] if samples else 0)
    late = samples[-1][1] if samples else 0
    print(f"soak: {args.sources} sources every {args.interval}s for {args.seconds:.0f}s; exit status {proc.returncode}")
    print(f"polls answered: {sum(c.values())} (200: {c['200']}, 304: {c['304']}, 500: {c['500']}, stalled past the timeout: {c['stall']})")
    print(f"sources failing at the end: {failures[1]} of {failures[0]}")
    print(f"RSS: {early:.1f} MiB at 30 s, {late:.1f} MiB at the end ({late - early:+.1f} MiB)")
    print(f"items delivered by the server: {len(served)}; stored: {len(stored)}; stored twice: {len(urls) - len(stored)}; "
          f"delivered but missing: {len(served - stored)}; stored but never delivered: {len(stored - served)}; "
          f"duplicate hits: {hits_dupes}")
    ok = proc.returncode == 0 and served == stored and len(urls) == len(stored) and hits_dupes == 0
    print("every delivered item stored exactly once: " + ("yes" if ok else "NO"))
    if proc.returncode != 0:
        print(stderr[-2000:])


if __name__ == "__main__":
    main()
