"""Cluster benchmark: throughput of 1, 2 and 4 `borderwatch run --db postgresql://...` members.

bench/cycle.py's feed server (its own process, 10 loopback addresses, a fixed latency per response,
default 100 ms) serves N sources (default 2,000). For each cluster size the benchmark creates a fresh
PostgreSQL database, starts that many real `borderwatch run` processes against it (same feeds.yaml,
same per-member concurrency), and watches the database until every source has been polled once
(`sources.last_poll` set), bounded by --timeout. Then it stops the members (SIGTERM) and reports:

  polls/s      sources / span, span = first poll seen in the database -> every source polled (the
               watcher looks every --sample s, default 0.2)
  articles/s   new articles stored / span
  vs 1         polls/s against the 1-member run of the same invocation (near n while latency-bound)
  startup      members started -> first poll written (imports, migrations, config load, reconcile)
  member CPU   user+sys of all members (wait4), and per stored article
  PG CPU       the database backends serving this database (sampled from /proc; a lower bound)
  --analyze    a fresh database has no planner statistics until autovacuum gets to it, and both
               procrastinate's job fetch and the story lookup then take plans that read every row;
               --analyze N runs ANALYZE once the first poll is stored and every N s after
  DB MiB       pg_database_size afterwards; B/art: borderwatch's tables (data and indexes, not the
               queue's) per stored article

The network floor of a run is sources x latency / (members x concurrency): at that rate the
members are latency-bound; far above it they are CPU- or database-bound (2 cores here, shared by
the feed server, PostgreSQL and every member).

    python bench/cluster.py                              # 2,000 sources; 1, 2, 4 members; concurrency 5
    python bench/cluster.py --members 1,2,4 --concurrency 5 --items 20
    python bench/cluster.py --dsn postgresql://postgres@127.0.0.1:5432/postgres --prefix mybench
    python bench/cluster.py --once --sources 200         # run --once into SQLite and into PostgreSQL: CPU per article
    python bench/cluster.py --smoke                      # 100 sources, 1 and 2 members: completes, counts right

Needs PostgreSQL (CREATE DATABASE allowed) and the postgres extra: pip install -e '.[postgres]'.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cycle  # noqa: E402  (bench/cycle.py: the feed server and feeds.yaml writer)

ROOT = cycle.ROOT


def _connect(dsn: str, dbname: str | None = None):
    import psycopg
    from psycopg.conninfo import make_conninfo

    return psycopg.connect(make_conninfo(dsn, dbname=dbname) if dbname else dsn, autocommit=True)



def _proc_cpu(pid: int) -> float | None:
    """user + sys seconds of a process from /proc (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _item_text(words: int):
    """cycle.item_text with another length: same vocabulary, same share of topical items."""
    import random

    def item_text(seed: str) -> str:
        rnd = random.Random(seed)
        out = [rnd.choice(cycle.WORDS) for _ in range(words)]
        if rnd.random() < 0.1:
            for _ in range(3):
                out.insert(rnd.randrange(len(out)), rnd.choice(cycle.TOPICAL))
        return " ".join(out).capitalize() + "."

    return item_text


class Members:
    """`borderwatch run` processes; stop() sends SIGTERM and collects CPU with wait4."""

    def __init__(self, n: int, db_url: str, feeds: Path, work: Path):
        # the checkout this file is in, whatever is installed; each member in its own directory (outbox)
        env = dict(os.environ, BORDERWATCH_SEMANTIC="off",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self.logs = [open(work / f"member-{k}.log", "wb") for k in range(n)]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--db", db_url, "--feeds", str(feeds),
             "--keywords", str(ROOT / "keywords.yaml"), "--no-digests", "--log-level", "warning"],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT) for log in self.logs]

    def exited(self) -> list[int]:
        return [k for k, p in enumerate(self.procs) if p.poll() is not None]

    def stop(self, grace: float = 30.0) -> dict:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        cpu, codes = 0.0, []
        deadline = time.monotonic() + grace
        for p in self.procs:
            while p.returncode is None:
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    cpu += usage.ru_utime + usage.ru_stime
                elif time.monotonic() > deadline:
                    p.kill()
                    deadline = time.monotonic() + 5
                else:
                    time.sleep(0.1)
            codes.append(p.returncode)
        for log in self.logs:
            log.close()
        return {"cpu": cpu, "exit_codes": codes}


def run_cluster(args, port: int, n: int) -> dict:
    dbname = f"{args.prefix}_{n}m_{os.getpid()}"
    admin = _connect(args.dsn)
    admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{dbname}"')
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(args.dsn)
    user = params.get("user", "postgres")
    db_url = f"postgresql://{user}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{dbname}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            work = Path(tmp)
            feeds = work / "feeds.yaml"
            # per_host = concurrency: even a cluster-wide per-host limit (10 hosts) does not bind up to
            # 10 members, so what is measured is the members, not politeness.
            cycle.write_feeds_yaml(feeds, cycle.feed_urls(port, args.sources), args.concurrency, args.concurrency)
            feeds.write_text(feeds.read_text().replace("interval: 15m", f"interval: {args.interval}", 1))
            started = time.monotonic()
            members = Members(n, db_url, feeds, work)
            pg = PGCpu(args.dsn, dbname)
            watch = _connect(make_conninfo(args.dsn, dbname=dbname))
            first_seen = all_seen = polled = None
            next_analyze = 0.0
            failure = None
            try:
                while True:
                    time.sleep(args.sample)
                    try:
                        polled = watch.execute("SELECT count(*) FROM sources WHERE last_poll IS NOT NULL").fetchone()[0]
                    except Exception:  # the members have not created the schema yet
                        polled = 0
                    if polled and first_seen is None:
                        first_seen = time.monotonic()
                    if args.analyze and first_seen is not None and time.monotonic() >= next_analyze:
                        watch.execute("ANALYZE")  # what autovacuum does for a cluster that has run a while
                        next_analyze = time.monotonic() + args.analyze
                    if polled >= args.sources:
                        all_seen = time.monotonic()
                        break
                    if members.exited():
                        failure = f"member(s) {members.exited()} exited early"
                        break
                    if time.monotonic() - started > args.timeout:
                        failure = f"timed out after {args.timeout:.0f} s with {polled} of {args.sources} sources polled"
                        break
            finally:
                stopped = members.stop()
                pg_cpu = pg.stop()
            if failure:
                logs = "\n".join(f"--- member {k}\n" + (work / f"member-{k}.log").read_text(errors="replace")[-1500:]
                                 for k in range(n))
                raise SystemExit(f"{n} member(s): {failure}\n{logs}")
            count = watch.execute("SELECT count(*) FROM sources WHERE last_poll IS NOT NULL").fetchone()[0]
            failed = watch.execute("SELECT count(*) FROM sources WHERE consecutive_failures > 0").fetchone()[0]
            articles = watch.execute("SELECT count(*) FROM articles").fetchone()[0]
            hits = watch.execute("SELECT count(*) FROM hits").fetchone()[0]
            size = watch.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            tables = []
            for schema, name, total in watch.execute(
                    "SELECT schemaname, relname, pg_total_relation_size(relid) FROM pg_stat_user_tables").fetchall():
                rows = watch.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
                tables.append((name, rows, total))
            tables.sort(key=lambda r: -r[2])
            data = sum(total for name, _, total in tables if not name.startswith("procrastinate"))
            watch.close()
    finally:
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()
    # the watcher's clock (database timestamps have 1 s resolution): first poll seen -> all polled
    span = all_seen - first_seen
    return {"members": n, "polled": count, "failed": failed, "articles": articles, "hits": hits,
            "span": span, "polls_s": count / span if span > 0 else float("nan"),
            "articles_s": articles / span if span > 0 else float("nan"),
            "startup": (first_seen - started) if first_seen else float("nan"), "data_bytes": data,
            "member_cpu": stopped["cpu"], "pg_cpu": pg_cpu, "db_bytes": size,
            "exit_codes": stopped["exit_codes"], "db": dbname, "tables": tables}


class PGCpu:
    """CPU of the PostgreSQL backends serving one database, sampled from /proc in a thread (the
    highest value seen per backend: a lower bound, since a backend's last moments are missed)."""

    def __init__(self, dsn: str, dbname: str, every: float = 0.2):
        import threading

        from psycopg.conninfo import make_conninfo

        self.conn = _connect(make_conninfo(dsn, dbname=dbname))
        self.dbname, self.every, self.seen = dbname, every, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()

    def sample(self) -> None:
        for (pid,) in self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                        "AND pid <> pg_backend_pid()", (self.dbname,)).fetchall():
            cpu = _proc_cpu(pid)
            if cpu is not None:
                self.seen[pid] = max(self.seen.get(pid, 0.0), cpu)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        self.conn.close()
        return sum(self.seen.values())


def once_cost(args, port: int) -> None:
    """`run --once` over the same sources into SQLite and into PostgreSQL (a fresh database each),
    in the order SQLite, PostgreSQL, PostgreSQL, SQLite: borderwatch's CPU and the database's."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(args.dsn)
    base = f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
    print(f"{'run --once into':<16} {'wall s':>7} {'CPU s':>7} {'PG CPU s':>8} {'articles':>8} {'ms CPU/art':>10} "
          f"{'ms PG/art':>9} {'ms total/art':>12}")
    totals: dict[str, list[float]] = {"sqlite": [0.0, 0], "postgresql": [0.0, 0]}
    with tempfile.TemporaryDirectory(prefix="bench-once-") as tmp:
        work = Path(tmp)
        feeds = work / "feeds.yaml"
        cycle.write_feeds_yaml(feeds, cycle.feed_urls(port, args.sources), args.concurrency, args.concurrency)
        for k, kind in enumerate(["sqlite", "postgresql", "postgresql", "sqlite"][: 2 * args.rounds]):
            pg = None
            if kind == "sqlite":
                db = str(work / f"once-{k}.db")
            else:
                dbname = f"{args.prefix}_once_{k}_{os.getpid()}"
                admin = _connect(args.dsn)
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{dbname}"')
                db = f"{base}/{dbname}"
                pg = PGCpu(args.dsn, dbname)
            try:
                r = cycle.borderwatch_once(work, feeds, db)
            finally:
                pg_cpu = pg.stop() if pg else 0.0
                if pg and not args.keep:
                    admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                    admin.close()
            n = r["out"].get("new_articles", 0)
            totals[kind][0] += r["cpu"] + pg_cpu
            totals[kind][1] += n
            print(f"{kind:<16} {r['wall']:>7.1f} {r['cpu']:>7.1f} {pg_cpu:>8.1f} {n:>8} "
                  f"{r['cpu'] / max(n, 1) * 1000:>10.2f} {pg_cpu / max(n, 1) * 1000:>9.2f} "
                  f"{(r['cpu'] + pg_cpu) / max(n, 1) * 1000:>12.2f}", flush=True)
    lite, pgs = (totals[k][0] / max(totals[k][1], 1) for k in ("sqlite", "postgresql"))
    print(f"CPU per article, borderwatch + database: PostgreSQL / SQLite = {pgs / lite:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=2000)
    ap.add_argument("--members", default="1,2,4", help="cluster sizes, comma-separated (default 1,2,4)")
    ap.add_argument("--concurrency", type=int, default=5, help="polls in flight per member (default 5)")
    ap.add_argument("--items", type=int, default=cycle.ITEMS, help=f"items per feed (default {cycle.ITEMS})")
    ap.add_argument("--words", type=int, default=170, help="words of text per item (default 170, ~1 KB, as cycle.py)")
    ap.add_argument("--interval", default="30s",
                    help="the sources' interval (default 30s: a fresh cluster spreads its first polls over 10%% "
                         "of it, which must not be what is measured; first-round jobs run before any re-poll)")
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per response (default 0.1)")
    ap.add_argument("--timeout", type=float, default=600, help="give up on one cluster size after this (s)")
    ap.add_argument("--sample", type=float, default=0.2, help="seconds between looks at the database")
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="a database to connect to for CREATE/DROP DATABASE")
    ap.add_argument("--prefix", default="bench_cluster", help="name prefix of the databases created")
    ap.add_argument("--analyze", type=float, default=0, metavar="SECONDS",
                    help="ANALYZE the database when the first poll is stored and then every SECONDS (as autovacuum "
                         "does for a cluster that has run a while; a fresh database has no statistics)")
    ap.add_argument("--tables", action="store_true", help="also print rows and size of every table after each run")
    ap.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    ap.add_argument("--once", action="store_true",
                    help="instead: `run --once` into SQLite and into PostgreSQL, same sources; CPU per article of both")
    ap.add_argument("--rounds", type=int, default=2, help="with --once: 1 = SQLite, PostgreSQL; 2 = and back")
    ap.add_argument("--smoke", action="store_true", help="100 sources x 2 items, 1 and 2 members; check the counts")
    args = ap.parse_args()
    if args.smoke:
        args.sources, args.items, args.members = 100, 2, "1,2"
    sizes = [int(x) for x in args.members.split(",")]
    try:
        _connect(args.dsn).close()
    except Exception as e:  # noqa: BLE001
        why = f"cannot reach PostgreSQL at {args.dsn}: {(str(e).strip() or type(e).__name__).splitlines()[0]}"
        if args.smoke:  # as the tests that need PostgreSQL: skipped, with the reason
            print(f"smoke: skipped ({why})")
            return
        raise SystemExit(why)
    os.chdir(ROOT)
    cycle.ITEMS = args.items  # read by the feed server process, forked below
    if args.words != 170:
        cycle.item_text = _item_text(args.words)
    server, port = cycle.start_server(args.latency)
    if args.once:
        try:
            print(f"store cost: {args.sources} sources x {args.items} items of {args.words} words, "
                  f"{args.latency * 1000:.0f} ms latency; `run --once` CPU (wait4) and the database backends' CPU",
                  flush=True)
            once_cost(args, port)
        finally:
            server.kill()
        return
    print(f"cluster benchmark: {args.sources} sources x {args.items} items of {args.words} words, "
          f"{args.latency * 1000:.0f} ms latency, {len(cycle.HOSTS)} hosts; concurrency {args.concurrency} per member; "
          f"{os.cpu_count()} cores; " + (f"ANALYZE every {args.analyze:g} s" if args.analyze else "no ANALYZE"), flush=True)
    head = (f"{'members':>7} {'floor s':>8} {'span s':>7} {'polls/s':>8} {'art/s':>8} {'vs 1':>5} {'startup s':>9} "
            f"{'member CPU s':>12} {'ms CPU/art':>10} {'PG CPU s':>8} {'DB MiB':>7} {'B/art':>6}")
    results = []
    try:
        for n in sizes:
            r = run_cluster(args, port, n)
            results.append(r)
            base = results[0]["polls_s"] if results[0]["members"] == 1 else float("nan")
            floor = args.sources * args.latency / (n * args.concurrency)
            if len(results) == 1:
                print(head)
            print(f"{n:>7} {floor:>8.1f} {r['span']:>7.1f} {r['polls_s']:>8.1f} {r['articles_s']:>8.0f} "
                  f"{r['polls_s'] / base:>5.2f} {r['startup']:>9.1f} {r['member_cpu']:>12.1f} "
                  f"{r['member_cpu'] / max(r['articles'], 1) * 1000:>10.2f} {r['pg_cpu']:>8.1f} "
                  f"{r['db_bytes'] / 2**20:>7.0f} {r['data_bytes'] / max(r['articles'], 1):>6.0f}", flush=True)
            print(f"        {r['polled']} polled ({r['failed']} failing), {r['articles']} articles, {r['hits']} hits, "
                  f"members exited {r['exit_codes']}", flush=True)
            if args.tables:
                for name, rows, total in r["tables"]:
                    if total >= 64 * 1024:
                        print(f"          {name:<28} {rows:>9} rows {total / 2**20:>8.1f} MiB "
                              f"{rows / max(r['articles'], 1):>6.2f} rows/article "
                              f"{total / max(r['articles'], 1):>7.0f} B/article", flush=True)
    finally:
        server.kill()
    if len(results) > 1 and results[0]["members"] == 1:
        print("scaling: " + ", ".join(f"{r['members']} members {r['polls_s'] / results[0]['polls_s']:.2f}x "
                                      f"({r['polls_s'] / results[0]['polls_s'] / r['members']:.0%} of linear)"
                                      for r in results[1:]))
    if args.smoke:
        ok = all(r["polled"] == args.sources and r["articles"] == args.sources * args.items and r["failed"] == 0
                 and all(c == 0 for c in r["exit_codes"]) for r in results)
        print("smoke: " + ("ok" if ok else "FAILED"))
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
