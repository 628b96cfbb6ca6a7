"""Defects from the attack run (issue 19, items 10-15 and 17-19), each against real parts:
aiosmtpd or a scripted SMTP peer on 127.0.0.1, real `borderwatch` processes, SQLite on disk,
a local HTTP server, a size-limited tmpfs.

Nothing here waits on wall-clock time: slow servers are bounded by short configured
deadlines, and tests wait for the event itself with a generous bound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import stat
import subprocess
import sys
import threading
from email.message import EmailMessage
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port, wait_until

from pipeline import store
from pipeline.config import load_rules
from pipeline.digest.send import OutboxTransport, SMTPSettings, SMTPTransport, TransientError, send_due

ROOT = Path(__file__).parent.parent.parent
KEYWORDS = ROOT / "keywords.yaml"
NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.timezone.utc)
RULES = load_rules(KEYWORDS)


def cli(*args: str, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **kw)


def smtp_env(port: int) -> dict:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none"}


def owe(db, email: str, period: str = "2026-11-23", body: bytes | None = None) -> int:
    """A subscriber and one pending digest owed to them (as prepare_due records it)."""
    store.add_subscriber(db, email, None, None, "daily", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "borderwatch <alerts@example.org>", email, f"digest {period}"
    msg["Message-ID"] = f"<digest.{abs(hash((email, period)))}@example.org>"
    msg.set_content(body.decode() if body else "Three new hits.\n")
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    return store.create_delivery(db, email, period, msg["Message-ID"], msg["Subject"], raw, [], store.iso(NOW))


def statuses(db) -> dict[str, str]:
    return {r["subscriber"]: r["status"] for r in db.query("SELECT subscriber, status FROM deliveries")}


class Recorder:
    """aiosmtpd handler that records messages; ``hold`` makes the first DATA wait for an event."""

    def __init__(self, hold: threading.Event | None = None):
        self.messages: list[bytes] = []
        self.hold = hold
        self.holding = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.hold is not None and not self.holding.is_set():
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 60)
        self.messages.append(envelope.content)
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        return [message_from_bytes(m, policy=policy.default)["Message-ID"] for m in self.messages]


@pytest.fixture
def aiosmtpd():
    started = []

    def start(handler: Recorder) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return port

    yield start
    for c in started:
        c.stop()


class ScriptedSMTP:
    """A minimal SMTP peer on 127.0.0.1 that misbehaves on purpose during DATA.

    ``modes`` says what to do, connection by connection:
    ``drop-on-data`` (reset the connection on the DATA command), ``drop-mid-body``
    (read a little of the body, then reset with the rest unread), ``drop-after-dot`` (read the
    whole message, then close without a reply), ``drip-354`` (an endless multi-line DATA reply,
    one byte every 0.2 s), ``ok``.
    """

    def __init__(self, modes: list[str], rcvbuf: int | None = None):
        self.modes = list(modes)
        self.stopped = threading.Event()
        self.got_data = threading.Event()
        self.listener = socket.socket()
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            mode = self.modes.pop(0) if self.modes else "ok"
            threading.Thread(target=self._session, args=(conn, mode), daemon=True).start()

    @staticmethod
    def _reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    def _session(self, conn: socket.socket, mode: str) -> None:
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 scripted ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 scripted\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return conn.close()
                elif verb == b"DATA":
                    self.got_data.set()
                    if mode == "drop-on-data":
                        return self._reset(conn)
                    if mode == "drip-354":  # an endless multi-line reply: smtplib reads until a line without '-'
                        for ch in b"354-please wait\r\n" * 100_000:
                            if self.stopped.wait(0.2):
                                return
                            conn.sendall(bytes([ch]))
                    conn.sendall(b"354 go ahead\r\n")
                    if mode == "drop-mid-body":
                        f.read(1000)
                        return self._reset(conn)
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    if mode == "drop-after-dot":
                        return conn.close()
                    conn.sendall(b"250 queued\r\n")
        except OSError:
            pass

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


def scripted_transport(port: int, deadline: float = 30.0) -> SMTPTransport:
    return SMTPTransport(SMTPSettings("127.0.0.1", port, tls="none", timeout=10, deadline=deadline))


# 10. SMTP has a total deadline per message -----------------------------------------------------


def test_10_smtp_server_dripping_its_reply_is_cut_at_the_deadline(tmp_path):
    db = store.connect(tmp_path / "bw.db")
    owe(db, "a@example.org")
    server = ScriptedSMTP(["drip-354"])
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=send_due(db, RULES, NOW, scripted_transport(server.port, 1.0))),
                              daemon=True)
    try:
        worker.start()
        worker.join(60)  # each byte comes well within the 10 s socket timeout: only a total deadline ends it
        assert not worker.is_alive(), "digest send still blocked by a server dripping its reply"
    finally:
        server.close()
    report = result["r"]
    assert report.retry == 1 and report.unknown == 0 and "deadline" in report.errors[0]
    assert statuses(db) == {"a@example.org": "pending"}  # before the final dot: owed, retried later


# 14. Concurrent senders never deliver the same digest twice -------------------------------------


def test_14_two_digest_send_processes_deliver_each_digest_once(tmp_path, aiosmtpd):
    path = tmp_path / "bw.db"
    db = store.connect(path)
    for who in ("a@example.org", "b@example.org", "c@example.org"):
        owe(db, who)
    release = threading.Event()
    handler = Recorder(hold=release)
    port = aiosmtpd(handler)
    args = ["digest", "send", "--db", str(path), "--keywords", str(KEYWORDS)]
    first = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env={**os.environ, **smtp_env(port)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert handler.holding.wait(60), "the first sender never reached DATA"
        second = cli(*args, env=smtp_env(port))  # while the first one is mid-delivery
        assert second.returncode == 0, second.stderr
        assert "another process" in second.stdout
    finally:
        release.set()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    ids = handler.message_ids()
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert set(statuses(db).values()) == {"sent"}


def test_14_a_sender_that_died_holding_the_lease_is_recovered_after_its_ttl(tmp_path, aiosmtpd):
    db = store.connect(tmp_path / "bw.db")
    owe(db, "a@example.org")
    handler = Recorder()
    t = SMTPTransport(SMTPSettings("127.0.0.1", aiosmtpd(handler), tls="none", deadline=10))
    stale = NOW - dt.timedelta(hours=1)
    assert store.acquire_lease(db, "dead-host:1:x", 80, now=stale, key="digest-sender") is None
    assert send_due(db, RULES, NOW, t).sent == 1 and len(handler.messages) == 1


# 15. Connection dropped mid-DATA: retried; after the final dot: unknown, status, resend ----------


def test_15_drop_before_the_final_dot_is_retried_not_unknown(tmp_path, aiosmtpd):
    db = store.connect(tmp_path / "bw.db")
    for who in ("a@example.org", "b@example.org", "c@example.org"):
        owe(db, who)
    server = ScriptedSMTP(["drop-on-data"] * 3)
    try:
        report = send_due(db, RULES, NOW, scripted_transport(server.port))
    finally:
        server.close()
    assert report.unknown == 0 and report.retry == 3, report.errors
    assert set(statuses(db).values()) == {"pending"}
    handler = Recorder()
    later = send_due(db, RULES, NOW + dt.timedelta(hours=1), scripted_transport(aiosmtpd(handler)))
    assert later.sent == 3 and len(set(handler.message_ids())) == 3


def test_15_drop_in_the_middle_of_a_large_body_is_retried(tmp_path):
    server = ScriptedSMTP(["drop-mid-body"], rcvbuf=4096)
    committing = []
    big = b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + (b"x" * 998 + b"\r\n") * 24_000  # 24 MB
    try:
        with pytest.raises(TransientError, match="before the end of the message"):
            scripted_transport(server.port).send("a@example.org", "b@example.org", big, lambda: committing.append(1))
    finally:
        server.close()
    assert committing == []  # never marked as handed over


def test_15_drop_after_the_final_dot_is_unknown_shown_by_status_and_resent_on_request(tmp_path, aiosmtpd):
    path = tmp_path / "bw.db"
    db = store.connect(path)
    did = owe(db, "a@example.org")
    server = ScriptedSMTP(["drop-after-dot"])
    try:
        report = send_due(db, RULES, NOW, scripted_transport(server.port))
    finally:
        server.close()
    assert report.unknown == 1 and statuses(db) == {"a@example.org": "unknown"}
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: https://a.example/feed\n")
    status = cli("status", "--db", str(path), "--feeds", str(feeds), env={"COLUMNS": "300"})
    assert "unknown a@example.org" in status.stdout and f"digest resend {did}" in status.stdout, status.stdout
    handler = Recorder()
    port = aiosmtpd(handler)
    resent = cli("digest", "resend", str(did), "--db", str(path), env=smtp_env(port))
    assert resent.returncode == 0, resent.stderr
    assert statuses(db) == {"a@example.org": "sent"} and len(handler.messages) == 1
    again = cli("digest", "resend", str(did), "--db", str(path), env=smtp_env(port))
    assert again.returncode == 1 and "only an unknown or failed delivery" in again.stderr
    assert len(handler.messages) == 1


# 11. Every documented rule form is accepted, every other form is a FILE:LINE error -----------------


def readme_yaml_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return section[section.index("```yaml\n") + 8:section.index("```", section.index("```yaml\n") + 8)]


DOCUMENTED_FORMS = {  # rule body -> a text it must match (the README's rule language, form by form)
    "any: [extradition]\n    all: [Mexico]": "Extradition to Mexico approved",
    "any: [extradition]\n    all: [Mexico, cartel*]": "Extradition of a cartel boss to Mexico",
    "any: [extradition]\n    all: [{any: [Mexico, México]}]": "Extradición a México: extradition confirmed",
    "any: [extradition]\n    all: [{term: HLSD, case: true}]": "HLSD talks discuss extradition",
    "any: [extradition]\n    all: [{regex: 'DEA-\\d+'}]": "Case DEA-1234 ends in extradition",
    "all: [{any: [gun*, firearm*]}, {any: [trafficking, smuggling]}]\n    near: 12": "gun smuggling at the border",
    "all: [fentanyl, {any: [seizure, seized]}]": "Fentanyl seized in Sonora",
    "any: fentanyl": "fentanyl in Sinaloa",
    "any: [cartel]\n    none: OPEC": "the Sinaloa cartel",
    "any: [{term: HLSD, case: true}, 'High-Level Security Dialogue']": "the High-Level  Security\nDialogue met",
}


def test_11_every_documented_rule_form_is_accepted_and_matches(tmp_path):
    from pipeline.rules import compile_rules

    path = tmp_path / "keywords.yaml"
    body = "rules:\n" + "".join(f"  - id: form-{i}\n    title: Form {i}\n    {form}\n"
                                 for i, form in enumerate(DOCUMENTED_FORMS))
    path.write_text(body + readme_yaml_block("### keywords.yaml").split("rules:\n", 1)[1], encoding="utf-8")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: https://a.example/feed\n")
    check = cli("check", "--feeds", str(feeds), "--keywords", str(path))
    assert check.returncode == 0, check.stderr
    matcher = compile_rules(load_rules(path))
    for i, (form, text) in enumerate(DOCUMENTED_FORMS.items()):
        title, _, rest = text.partition("\n")
        assert f"form-{i}" in [h.rule for h in matcher.match(title, rest)], form


def test_11_all_with_a_plain_term_works_in_run_once(tmp_path, server):
    from conftest import Reply, rss

    server.routes["/feed"] = Reply(body=rss([{"title": "Extradition to Mexico approved", "link": "https://n.example/1",
                                              "guid": "1", "description": "A court approved the extradition."}]))
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text("rules:\n  - id: ext\n    any: [extradition]\n    all: [Mexico]\n")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: a\n    url: {server.url('/feed')}\n")
    out = cli("run", "--once", "--json", "--no-digests", "--feeds", str(feeds), "--keywords", str(keywords),
              "--db", str(tmp_path / "bw.db"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert [r["rule"] for r in store.connect(tmp_path / "bw.db").query("SELECT rule FROM hits")] == ["ext"]


@pytest.mark.parametrize("form", [
    "all: [true]", "all: [null]", "all: [[]]", "all: [{any: []}]", "all: {any: [x]}", "all: [[[deep]]]",
    "any: [[nested]]", "none: {a: 1}", "all: [{any: x, other: y}]", "all: [{term: [x]}]", "title: [a, b]\n    any: [x]",
    "any: [{regex: '(a'}]", "near: 3\n    any: [x]", "all: []",
])
def test_11_undocumented_forms_are_file_line_errors_not_crashes(tmp_path, form):
    from pipeline.config import parse_rules, load_yaml

    path = tmp_path / "keywords.yaml"
    path.write_text(f"rules:\n  - id: r\n    {form}\n")
    data, issues = load_yaml(path)
    _, more = parse_rules(data, str(path))
    problems = issues + more
    assert problems and all(str(p).startswith(f"{path}:") and p.line >= 2 for p in problems), problems


# 12. YAML alias bombs are refused before any value is built; messages stay bounded -----------------

BOMB = "".join(f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
               for p, n in zip([None, "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi"))


def limited_memory():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a bomb needs ~10 GB; 2 GB is plenty otherwise


@pytest.mark.parametrize("which", ["feeds", "keywords", "title"])
def test_12_alias_bombs_are_refused_by_check_at_their_line(tmp_path, which):
    feeds = tmp_path / "feeds.yaml"
    keywords = tmp_path / "keywords.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: https://a.example/feed\n")
    keywords.write_text("rules:\n  - id: r\n    any: [x]\n")
    if which == "feeds":
        feeds.write_text(BOMB + "sources: *i\n")
    elif which == "keywords":
        keywords.write_text(BOMB + "rules:\n  - id: r\n    any: *i\n")
    else:
        keywords.write_text(BOMB + "rules:\n  - id: r\n    any: [x]\n    title: *i\n")
    out = cli("check", "--feeds", str(feeds), "--keywords", str(keywords), preexec_fn=limited_memory, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    target = feeds if which == "feeds" else keywords
    assert f"{target}:2: YAML aliases" in out.stderr
    assert all(len(line) < 400 for line in out.stderr.splitlines())


def test_12_a_bomb_in_a_rule_title_on_hot_reload_keeps_the_last_rules(tmp_path):
    from pipeline.app import App
    from pipeline.config import Settings

    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: https://a.example/feed\n")
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text("rules:\n  - id: r\n    any: [x]\n")
    app = App.open(Settings(str(feeds), str(keywords), str(tmp_path / "bw.db")))
    keywords.write_text(BOMB + "rules:\n  - id: r\n    any: [x]\n    title: *i\n")
    os.utime(keywords, ns=(1, 5_000_000_000_000_000_000))
    done = threading.Event()
    threading.Thread(target=lambda: (app.reload(), done.set()), daemon=True).start()
    assert done.wait(60), "hot reload stalled on an alias bomb"
    assert [r.id for r in app.rules.rules] == ["r"] and "YAML aliases" in app.errors["rules"]
    assert len(app.errors["rules"]) < 500


@pytest.mark.parametrize("text, expect", [
    ("sources:\n  - id: a\n    url: " + "h" * 1_000_000 + "\n", "more characters"),
    ("sources:\n  - id: a\n    url: https://a.example/\n    interval: [" + "1, " * 100_000 + "1]\n", "a list of 100,001 items"),
    ("sources:\n  - id: a\n    url: https://a.example/\n    ? [a, b]\n    : 1\n", "mapping key"),
    ("sources: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply"),
    ("sources:\n  - id: a\n    url: https://a.example/\n    interval: " + "9" * 5000 + "\n", "YAML error"),
    ("sources:\n  - id: a\n    url: https://a.example/\n    ? " + "k" * 100_000 + "\n    : 1\n", "more characters"),
])
def test_12_huge_or_odd_values_give_short_one_line_errors(tmp_path, text, expect):
    from pipeline.config import load_yaml, parse_feeds

    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    data, issues = load_yaml(path)
    if data is not None:
        issues += parse_feeds(data, str(path))[1]
    assert issues and any(expect in str(i) for i in issues), issues
    assert all(len(str(i)) < 400 and "\n" not in str(i) for i in issues)


# 18. The SSRF exemption is the source's origin (scheme, host, port), not its host name --------------


def test_18_another_port_of_the_sources_own_host_is_blocked(tmp_path, server):
    from conftest import LocalServer, Reply, feeds_for, rss
    from pipeline.cycle import run_cycle

    internal = LocalServer()  # 127.0.0.1 like the source, on another port: an internal service
    internal.routes["/admin"] = Reply(body=b"<html><head><title>Internal admin</title></head><body><p>"
                                      + b"secret migrants cartel data " * 50 + b"</p></body></html>")
    try:
        secret = internal.url("/admin")
        server.routes["/robots.txt"] = Reply(404)
        server.routes["/list"] = Reply(body=f'<a class="x" href="{secret}">internal</a>'.encode())
        server.routes["/feed"] = Reply(body=rss([{"title": "Teaser", "link": secret, "guid": "t1", "description": "x"}]))
        server.routes["/jump"] = Reply(302, headers={"Location": secret})
        sources = [{"id": "page", "url": server.url("/list"), "type": "page", "link_selector": "a.x"},
                   {"id": "feed", "url": server.url("/feed"), "fetch_articles": "true"},
                   {"id": "jump", "url": server.url("/jump")}]
        feeds = feeds_for(tmp_path / "feeds.yaml", sources)
        db = store.connect(tmp_path / "bw.db")
        store.sync_sources(db, feeds.sources)
        result = asyncio.run(run_cycle(db, feeds, None))
        errors = {r.source: r.error for r in result.reports}
        assert internal.hits == []
        assert f"blocked request to 127.0.0.1:{internal.port}" in errors["jump"]
        assert not list(db.query("SELECT 1 FROM articles WHERE text LIKE '%secret%'"))
        # the operator may allow exactly that origin
        allowed = feeds_for(tmp_path / "feeds2.yaml", [dict(sources[2], allow_hosts=[f"127.0.0.1:{internal.port}"])])
        result = asyncio.run(run_cycle(db, allowed, None))
        assert "blocked" not in (result.reports[0].error or "") and internal.hits == ["/admin"]
    finally:
        internal.close()


@pytest.mark.parametrize("entry, url, allowed", [
    ("intranet.example", "http://intranet.example/x", True),
    ("intranet.example", "https://intranet.example/x", True),
    ("intranet.example", "http://intranet.example:6379/x", False),
    ("intranet.example:8080", "http://intranet.example:8080/x", True),
    ("intranet.example:8080", "http://intranet.example:8081/x", False),
    ("https://intranet.example", "http://intranet.example/x", False),
    ("http://10.0.0.5:8080", "http://10.0.0.5:8080/feed", True),
    ("::1", "http://[::1]/x", True),
    ("[::1]:81", "http://[::1]:82/x", False),
])
def test_18_allow_hosts_entries_cover_their_origins_only(entry, url, allowed):
    from urllib.parse import urlsplit

    from pipeline.fetch import Policy, _exempt

    p = urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    assert _exempt(Policy(allow_hosts=(entry,)), p.scheme, p.hostname, port) is allowed


# 17. Terminal escapes from feeds never reach a terminal or a CSV ------------------------------------

ESCAPES = ["\x1b[2J", "\x1b]0;pwned\x07", "\x9b31m", "\u202e", "\x08", "\r"]


def test_17_control_characters_from_feeds_are_not_printed_by_hits_or_csv(tmp_path, server):
    import json

    from conftest import Reply

    title = "Fentanyl seized \x1b[2J\x1b]0;pwned\x07 at the \x9b31m border \u202eevil\x08\r"
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "t\x1b[2J", "items": [
        {"id": "1", "url": "https://n.example/a", "title": title,
         "content_text": "Agents seized fentanyl \x1b]0;owned\x07 near Nogales \x1b[31m today."}]}
    server.routes["/feed.json"] = Reply(body=json.dumps(feed).encode(), headers={"Content-Type": "application/feed+json"})
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text("rules:\n  - id: fentanyl\n    any: [fentanyl]\n")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: jf\n    url: {server.url('/feed.json')}\n")
    db = str(tmp_path / "bw.db")
    ran = cli("run", "--once", "--no-digests", "--feeds", str(feeds), "--keywords", str(keywords), "--db", db)
    assert ran.returncode == 0, ran.stderr
    assert "\x1b" in next(store.connect(db).query("SELECT title FROM articles"))["title"]  # stored as received
    for args in ([], ["--csv"]):
        out = cli("hits", "--db", db, "--keywords", str(keywords), *args, env={"COLUMNS": "400", "TERM": "xterm"})
        assert out.returncode == 0, out.stderr
        assert "Fentanyl seized" in out.stdout
        for esc in ESCAPES:
            assert esc not in out.stdout, (args, esc, out.stdout)
        body = out.stdout.replace("\r\n", "\n") if args else out.stdout
        assert not [c for c in body if c < " " and c != "\n"], (args, body)


# 19. The database (with its WAL and SHM files) and .eml files are private, whatever the umask -------


def test_19_database_wal_shm_and_eml_files_are_0600_in_a_0700_outbox(tmp_path):
    old = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        path = tmp_path / "bw.db"
        db = store.connect(path)
        owe(db, "a@example.org")  # a write: the -wal and -shm files exist while the connection is open
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.name.startswith("bw.db")}
        assert set(modes) == {"bw.db", "bw.db-wal", "bw.db-shm"} and set(modes.values()) == {0o600}, modes
        report = send_due(db, RULES, NOW, OutboxTransport(tmp_path / "outbox"))
        assert report.sent == 1
        assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
        assert [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "outbox").iterdir()] == [0o600]
    finally:
        os.umask(old)


# 13. A full disk: "disk full", nothing half-written, nothing lost -----------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB filesystem (tmpfs); CI runs as root on this kind of machine, so it can mount one."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt: Path, leave: int) -> Path:
    st = os.statvfs(mnt)
    filler = mnt / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_13_full_disk_during_run_once_says_so_and_loses_nothing(small_disk, tmp_path, server):
    from conftest import Reply, rss

    words = "Migrants crossed the border near Tijuana while agents seized fentanyl and cartel weapons. "
    items = [{"title": f"Report {i}: fentanyl seizure {i}", "link": f"https://n.example/{i}", "guid": str(i),
              "description": f"Item {i}. " + words * 25} for i in range(150)]
    server.routes["/feed"] = Reply(body=rss(items), etag=True)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: a\n    url: {server.url('/feed')}\n")
    db = small_disk / "bw.db"
    store.connect(db).close()
    filler = fill(small_disk, leave=64 * 1024)
    args = ["run", "--once", "--no-digests", "--feeds", str(feeds), "--keywords", str(KEYWORDS), "--db", str(db)]
    full = cli(*args)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert "disk full" in full.stderr and "cannot rollback" not in full.stderr
    check = store.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.counts(check)["articles"] == 0 and store.source_states(check)["a"]["etag"] is None
    check.close()
    filler.unlink()
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert store.counts(store.connect(db))["articles"] == 150  # the body was fetched again, not lost to a 304


def test_13_full_disk_for_the_outbox_leaves_no_partial_file_and_the_digest_owed(small_disk, tmp_path):
    db = store.connect(tmp_path / "bw.db")
    owe(db, "a@example.org", body=b"x" * 200_000)
    outbox = small_disk / "outbox"
    filler = fill(small_disk, leave=16 * 1024)
    report = send_due(db, RULES, NOW, OutboxTransport(outbox))
    assert report.retry == 1 and report.sent == 0 and "disk full" in report.errors[0]
    assert list(outbox.iterdir()) == []  # no 0-byte .tmp left behind
    assert statuses(db) == {"a@example.org": "pending"}
    filler.unlink()
    later = send_due(db, RULES, NOW + dt.timedelta(hours=1), OutboxTransport(outbox))
    assert later.sent == 1 and [p.suffix for p in outbox.iterdir()] == [".eml"]


# 10. SIGTERM stops `run` promptly during a slow SMTP reply and during article extraction ------------


def start_run(tmp_path, feeds_text: str, env: dict | None = None, keywords: Path = KEYWORDS) -> subprocess.Popen:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(feeds_text)
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--feeds", str(feeds), "--keywords", str(keywords),
                             "--db", str(tmp_path / "bw.db")], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_and_wait(proc: subprocess.Popen) -> tuple[int | None, str]:
    import signal

    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)  # the fixed process exits in seconds; before, it outlived any bound
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err


def test_10_sigterm_during_a_slow_smtp_reply_stops_run_and_keeps_the_digest_owed(tmp_path, server):
    from conftest import Reply, rss

    server.routes["/feed"] = Reply(body=rss([{"title": "Fentanyl seized in Sonora", "link": "https://n.example/1",
                                              "guid": "1", "description": "Agents seized fentanyl near Nogales."}]))
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text("rules:\n  - id: fentanyl\n    any: [fentanyl]\n")
    db = store.connect(tmp_path / "bw.db")
    store.add_subscriber(db, "a@example.org", None, None, "immediate", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
    smtp = ScriptedSMTP(["drip-354"] * 5)  # answers DATA one byte every 0.2 s: no per-read timeout ever fires
    try:
        proc = start_run(tmp_path, f"sources:\n  - id: a\n    url: {server.url('/feed')}\n", smtp_env(smtp.port),
                         keywords=keywords)
        try:
            assert smtp.got_data.wait(90), "run never started sending the digest"
        finally:
            code, err = stop_and_wait(proc)
    finally:
        smtp.close()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    assert statuses(db) == {"a@example.org": "pending"}  # aborted before the final dot: still owed


def test_10_sigterm_during_article_extraction_stops_run(tmp_path, server):
    from conftest import Reply, rss

    deep = 60_000  # the extractor is quadratic in depth on main (8,000 levels: seconds; this: many minutes)
    server.routes["/deep"] = Reply(body=("<html><body>" + "<div>" * deep + "<p>" + "fentanyl seizure " * 40 + "</p>"
                                         + "</div>" * deep + "</body></html>").encode())
    server.routes["/robots.txt"] = Reply(404)
    server.routes["/feed"] = Reply(body=rss([{"title": "Teaser", "link": server.url("/deep"), "guid": "d1"}]))
    proc = start_run(tmp_path, f"sources:\n  - id: a\n    url: {server.url('/feed')}\n    fetch_articles: true\n",
                     {"SMTP_HOST": ""})
    try:
        assert wait_until(lambda: "/deep" in server.hits, timeout=90), "the article page was never fetched"
    finally:
        code, err = stop_and_wait(proc)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
