"""Article text: canonical URLs, robots.txt rules, listing pages whose selector finds nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import Reply, feeds_for
from protego import Protego
from test_cli import bw

from pipeline.cycle import run_cycle
from pipeline.dedup import canonical_url
from pipeline.fetch import Fetcher, Policy, origin, robots_allow


# --------------------------------------------------------------------------- canonical URLs

@pytest.mark.parametrize("a, b", [
    # parameter order
    ("https://news.example/n?id=7&page=2", "https://news.example/n?page=2&id=7"),
    # percent-encoding: case of escapes, unreserved characters escaped or not, raw non-ASCII
    ("https://news.example/caf%c3%a9/%7Eedit?q=a%20b", "https://news.example/café/~edit?q=a+b"),
    ("https://news.example/se%C3%B1ales", "https://news.example/señales"),
    # dot segments
    ("https://news.example/a/./b/../nota.html", "https://news.example/a/nota.html"),
    ("https://news.example/a/b/c/../../nota.html", "https://news.example/a/nota.html"),
    # default ports, host case, fragments, tracking parameters
    ("HTTPS://News.Example:443/n?id=1#comments", "https://news.example/n?id=1"),
    ("http://news.example:80/n", "http://news.example/n"),
    ("https://news.example/n?utm_source=rss&id=1&fbclid=x&UTM_Medium=y", "https://news.example/n?id=1"),
])
def test_canonical_url_equivalences(a, b):
    assert canonical_url(a) == canonical_url(b)
    assert canonical_url(canonical_url(a)) == canonical_url(a)  # idempotent: one key, stable


@pytest.mark.parametrize("a, b", [
    ("https://news.example/n?id=1", "https://news.example/n?id=2"),
    ("https://news.example/n?ref=a", "https://news.example/n?ref=b"),  # ref/uid/source are not tracking here
    ("https://news.example:8443/n", "https://news.example/n"),
    ("https://news.example/N", "https://news.example/n"),
])
def test_canonical_url_keeps_different_pages_apart(a, b):
    assert canonical_url(a) != canonical_url(b)


def test_canonical_url_forms():
    assert canonical_url("HTTPS://Example.COM:443/a/./b/../c?b=2&a=1#frag") == "https://example.com/a/c?a=1&b=2"
    assert canonical_url("http://[::1]:80/x") == "http://[::1]/x"
    assert canonical_url("../c?ref_src=twsrc", "https://example.org/a/b/") == "https://example.org/a/c"


# --------------------------------------------------------------------------- robots.txt

ROBOTS = """\
User-agent: *
Disallow: /
Allow: /prensa/
Disallow: /prensa/borradores/
Disallow: /*.pdf$
Allow: /buscar/*/resultados

User-agent: otherbot
Allow: /
"""


@pytest.mark.parametrize("path, allowed", [
    ("/prensa/x", True),                    # longest match: Allow /prensa/ beats Disallow /
    ("/prensa/2026/11/nota.html", True),
    ("/prensa/borradores/x", False),        # longer Disallow beats the Allow
    ("/otro/nota.html", False),
    ("/docs/informe.pdf", False),           # * and $ wildcards
    ("/docs/informe.pdf?v=2", False),       # ... the query string is part of the path matched
    ("/buscar/abc/resultados", True),
    ("/", False),
])
def test_robots_longest_match_and_wildcards(path, allowed):
    assert robots_allow(Protego.parse(ROBOTS), "https://gob.example" + path) is allowed


def test_robots_missing_allows_and_unreachable_refuses(server):
    async def ask(url):
        async with Fetcher() as f:
            return await f.robots.refusal(f, url, Policy(timeout=5, own_origin=origin(url)))

    server.routes["/robots.txt"] = Reply(404)
    assert asyncio.run(ask(server.url("/any/page"))) is None
    server.routes["/robots.txt"] = Reply(503)
    assert "robots.txt unreachable" in asyncio.run(ask(server.url("/any/page")))
    server.routes["/robots.txt"] = Reply(body=ROBOTS.encode())
    assert asyncio.run(ask(server.url("/prensa/x"))) is None
    assert asyncio.run(ask(server.url("/otro"))) == "disallowed by robots.txt"


# --------------------------------------------------------------------------- listing pages

def test_selector_matching_nothing_is_a_failed_poll_shown_in_status(server, tmp_path):
    server.routes["/robots.txt"] = Reply(404)
    server.routes["/list"] = Reply(body=b"<html><body><div class='new-layout'><a href='/n/1'>Nota</a></div></body></html>",
                                   headers={"Content-Type": "text/html"})
    server.routes["/empty-links"] = Reply(body=b"<html><body><h2 class='t'>Sin enlace</h2></body></html>",
                                          headers={"Content-Type": "text/html"})
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: redesigned\n    url: {server.url('/list')}\n    type: page\n"
                     f"    link_selector: 'li.story h3 a'\n    fetch_articles: false\n"
                     f"  - id: nolinks\n    url: {server.url('/empty-links')}\n    type: page\n"
                     f"    link_selector: 'h2.t'\n    fetch_articles: false\n")
    common = ["--feeds", str(feeds), "--db", str(tmp_path / "s.db")]
    (tmp_path / "k.yaml").write_text("rules:\n  - id: x\n    any: [fentanyl]\n")
    out = bw("run", "--once", "--json", *common, "--keywords", str(tmp_path / "k.yaml"), cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # every source failed: a runtime failure
    assert json.loads(out.stdout)["failed"] == 2
    status = {s["id"]: s for s in json.loads(bw("status", "--json", *common).stdout)}
    assert status["redesigned"]["consecutive_failures"] == 1
    assert status["redesigned"]["last_error"].startswith("selector matched nothing: link_selector 'li.story h3 a'")
    assert status["nolinks"]["last_error"].startswith("selector matched nothing")
    assert status["redesigned"]["last_success"] is None


# --------------------------------------------------------------------------- borderwatch extract

ARTICLE_ES = """<html lang="es-MX"><head><title>Aseguran precursores | Diario</title>
<link rel="canonical" href="/nota/precursores?utm_source=rss&b=2&a=1"></head><body>
<nav><a href="/">Inicio</a> <a href="/seguridad">Seguridad</a></nav>
<article><h1>Aseguran en Manzanillo contenedores con precursores químicos</h1>
<p class="autor">Por Karla Mendoza</p><p class="fecha">19 de junio de 2026</p>
<p>Elementos de la Secretaría de Marina aseguraron en el puerto de Manzanillo, Colima, seis contenedores con más de
80 toneladas de sustancias químicas que pueden utilizarse para producir drogas sintéticas.</p>
<p>La carga, procedente de Asia, había sido declarada como materia prima para la industria de pinturas, pero una
revisión detectó inconsistencias en los documentos y en el peso de los contenedores.</p></article>
<section class="mas"><h3>Más noticias</h3><ul><li><a href="/a">Cae líder del Cártel de Sinaloa</a></li></ul></section>
</body></html>"""


def _extract_json(*args, **kw) -> tuple[int, list[dict], str]:
    out = bw("extract", "--json", *args, **kw)
    return out.returncode, [json.loads(line) for line in out.stdout.splitlines()], out.stderr


def test_extract_json_on_a_file(tmp_path):
    page = tmp_path / "nota.html"
    page.write_text(ARTICLE_ES, encoding="utf-8")
    code, records, err = _extract_json(str(page), "--base-url", "https://diario.example/seccion/x.html")
    assert code == 0, err
    assert len(records) == 1
    rec = records[0]
    assert set(rec) == {"input", "url", "title", "text", "published", "author", "language", "error"}
    assert rec["input"] == str(page) and rec["error"] is None
    assert rec["url"] == "https://diario.example/nota/precursores?a=1&b=2"  # rel=canonical, canonicalised
    assert rec["title"] == "Aseguran en Manzanillo contenedores con precursores químicos"
    assert rec["text"].startswith("Elementos de la Secretaría de Marina") and "Más noticias" not in rec["text"]
    assert rec["published"] == "2026-06-19T00:00:00Z" and rec["author"] == "Karla Mendoza" and rec["language"] == "es"


def test_extract_json_on_a_url_and_errors_per_input(server, tmp_path):
    server.routes["/robots.txt"] = Reply(body=b"User-agent: *\nDisallow: /privado/\n")
    server.routes["/nota/1"] = Reply(body=ARTICLE_ES.encode("utf-8"), headers={"Content-Type": "text/html; charset=utf-8"})
    server.routes["/privado/2"] = Reply(body=ARTICLE_ES.encode("utf-8"))
    code, records, err = _extract_json(server.url("/nota/1"), server.url("/falta"), server.url("/privado/2"),
                                       str(tmp_path / "no-such.html"))
    assert code == 1  # some inputs failed
    assert [r["input"] for r in records] == [server.url("/nota/1"), server.url("/falta"), server.url("/privado/2"),
                                             str(tmp_path / "no-such.html")]
    ok, missing, private, nofile = records
    assert ok["error"] is None and ok["url"] == server.url("/nota/precursores?a=1&b=2")
    assert ok["language"] == "es" and ok["published"] == "2026-06-19T00:00:00Z" and "toneladas" in ok["text"]
    assert missing["error"] == "HTTP 404" and missing["text"] is None
    assert private["error"] == "disallowed by robots.txt"
    assert nofile["error"].startswith("cannot read") and "No such file" in nofile["error"]
    assert "/privado/2" not in server.hits
    assert len(err.strip().splitlines()) == 3 and all(line.startswith("error: ") for line in err.strip().splitlines())


def test_extract_human_output_and_usage_errors(tmp_path):
    page = tmp_path / "nota.html"
    page.write_text(ARTICLE_ES, encoding="utf-8")
    out = bw("extract", str(page))
    assert out.returncode == 0 and out.stdout.startswith("Aseguran en Manzanillo") and "language: es" in out.stdout
    bad = bw("extract", str(page), "--base-url", "ftp://x")
    assert bad.returncode == 2 and "--base-url" in bad.stderr and "Traceback" not in bad.stderr
    assert bw("extract").returncode == 2


# --------------------------------------------------------------------------- language on stored articles


def test_language_is_stored_shown_and_filtered(server, tmp_path):
    from conftest import rss

    server.routes["/feed"] = Reply(body=rss([
        {"title": "Detienen a operador del Cártel de Sinaloa en Culiacán", "link": "https://x.example/1", "guid": "1",
         "description": "La Fiscalía General de la República informó la detención de un operador financiero del "
                        "Cártel de Sinaloa durante un operativo en la capital del estado."},
        {"title": "Sinaloa Cartel operative arrested in Culiacán", "link": "https://x.example/2", "guid": "2",
         "description": "Mexican prosecutors said on Thursday that a financial operative of the Sinaloa Cartel was "
                        "arrested during an operation in the state capital."}]))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: f\n    url: {server.url('/feed')}\n")
    common = ["--feeds", str(feeds), "--db", str(tmp_path / "l.db")]
    from test_cli import ROOT

    assert bw("run", "--once", *common, "--keywords", str(ROOT / "keywords.yaml"), cwd=tmp_path).returncode == 0
    db = ["--db", str(tmp_path / "l.db")]
    every = [json.loads(line) for line in bw("hits", "--json", *db).stdout.splitlines()]
    assert sorted(r["language"] for r in every) == ["en", "es"]
    spanish = [json.loads(line) for line in bw("hits", "--json", "--language", "es", *db).stdout.splitlines()]
    assert [r["url"] for r in spanish] == ["https://x.example/1"]
    assert bw("hits", "--language", "ES", *db).returncode == 0
    bad = bw("hits", "--language", "spanish!", *db)
    assert bad.returncode == 2 and "--language" in bad.stderr


def test_language_column_added_by_migration_to_an_old_database(tmp_path):
    import sqlite3

    import sqlite_utils

    from pipeline import store

    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    store.apply_migrations(sqlite_utils.Database(conn), upto=4)  # a database from before the language column
    conn.execute("INSERT INTO sources (id, name, url) VALUES ('s', 'S', 'http://s/')")
    conn.execute("INSERT INTO articles (id, source, guid, url, title, text) VALUES (1, 's', 'g', 'http://s/1', 'T', 'x')")
    conn.close()
    db = store.connect(tmp_path / "old.db")
    assert [(r["id"], r["language"]) for r in db.query("SELECT id, language FROM articles")] == [(1, None)]


def test_fold_offsets_map_every_folded_character_back():
    """fold_offsets (only non-ASCII characters folded one by one) gives, character by character, what
    folding each character of the text gives: ligatures, ß, accents, combining marks, symbols, emoji."""
    import random

    from pipeline.fold import fold, fold_offsets

    alphabet = list("abcXYZ 09,.-") + ["é", "Ñ", "ß", "ﬁ", "İ", "e\u0301", "“", "—", "😀", "Σ", "ǅ", "Å", "\u00a0", "ㄱ"]
    rng = random.Random(5)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        reference = [i for i, ch in enumerate(text) for _ in range(len(fold(ch)))] + [len(text)]
        assert fold_offsets(text) == reference
        assert len(fold_offsets(text)) == len(fold(text)) + 1
