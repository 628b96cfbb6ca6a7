"""Article pages -> title, main text, published date, author, language (pipeline/extract.py),
and the evaluation set in bench/extract_pages/ (F1 >= 0.96, no page below 0.5)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from pipeline.extract import byline_author, detect_language, extract_article, written_date

ROOT = Path(__file__).parent.parent
BODY_ES = ("<p>La Fiscalía General de la República informó este jueves la detención de un hombre señalado como "
           "operador financiero de una célula delictiva que trafica metanfetamina hacia Estados Unidos.</p>"
           "<p>De acuerdo con el comunicado, el detenido fue localizado en Culiacán tras un operativo conjunto con "
           "la Guardia Nacional y el Ejército Mexicano, en el que no se registraron disparos.</p>"
           "<p>En el inmueble, los agentes aseguraron documentos contables, diez teléfonos celulares y más de dos "
           "millones de pesos en efectivo.</p>")
BODY_EN = ("<p>Customs officers at the Mariposa port of entry in Nogales seized about 400 pounds of fentanyl powder "
           "on Tuesday after a dog alerted on a tractor-trailer carrying tomatoes, federal officials said.</p>"
           "<p>The driver was detained and turned over to Homeland Security Investigations. Agents said the powder "
           "was packed in bundles inside a false floor built into the trailer.</p>"
           "<p>It is the largest single fentanyl seizure at an Arizona port this year, according to officials.</p>")


def page(body: str, lang: str = "es", head: str = "", before: str = "", title: str = "Título de la nota") -> bytes:
    return (f'<html lang="{lang}"><head><title>{title} | Diario</title>{head}</head><body>'
            f'<header><nav><a href="/">Inicio</a> <a href="/s">Seguridad</a></nav>'
            f'<span class="hoy">Lunes, 23 de noviembre de 2026</span></header>'
            f"<article><h1>{title}</h1>{before}{body}</article>"
            f"<footer><p>Todos los derechos reservados © 2026</p></footer></body></html>").encode()


def day(value: dt.datetime | None) -> str | None:
    return value.date().isoformat() if value else None


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize("dateline, expected", [
    ('<p class="fecha">20 de noviembre de 2026</p>', "2026-11-20"),
    ('<div class="meta">Publicado el 3 de marzo de 2025 a las 10:32</div>', "2025-03-03"),
    ('<p>Ciudad de México, 1º de septiembre del 2026.</p>', "2026-09-01"),
    ('<span class="date">11/12/2026 09:15</span>', "2026-12-11"),     # day-first: 11 December
    ('<span class="date">25/11/2026</span>', "2026-11-25"),
    ('<span class="date">05.11.2026</span>', "2026-11-05"),
    ('<p class="byline">Por Ana Ruiz · 7 de octubre de 2026</p>', "2026-10-07"),
])
def test_spanish_and_day_first_dates(dateline, expected):
    got = extract_article(page(BODY_ES, before=dateline), "https://diario.example/nota")
    assert day(got.published) == expected  # not the header's "today" (23 de noviembre)


def test_month_first_only_on_pages_declaring_us_english():
    us = page(BODY_EN, lang="en-US", before='<span class="date">11/12/2026</span>', title="Seizure")
    assert day(extract_article(us, "https://x.example/a").published) == "2026-11-12"
    gb = page(BODY_EN, lang="en-GB", before='<span class="date">11/12/2026</span>', title="Seizure")
    assert day(extract_article(gb, "https://x.example/a").published) == "2026-12-11"
    worded = page(BODY_EN, lang="en", before="<p class='dateline'>Nov. 20, 2026</p>", title="Seizure")
    assert day(extract_article(worded, "https://x.example/a").published) == "2026-11-20"


def test_machine_readable_dates_come_first():
    ld = ('<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle",'
          ' "headline": "Título de la nota", "datePublished": "2026-10-02T08:00:00-06:00",'
          ' "author": {"@type": "Person", "name": "Ana Ruiz"}}</script>')
    got = extract_article(page(BODY_ES, head=ld, before='<p class="fecha">20 de noviembre de 2026</p>'), "https://d.example/n")
    assert got.published == dt.datetime(2026, 10, 2, 14, 0, tzinfo=dt.timezone.utc) and got.author == "Ana Ruiz"
    meta = '<meta property="article:published_time" content="2026-09-30T22:00:00Z">'
    assert day(extract_article(page(BODY_ES, head=meta), "https://d.example/n").published) == "2026-09-30"
    timed = '<time datetime="2026-08-01T10:00:00+02:00">1 de agosto</time>'
    assert day(extract_article(page(BODY_ES, before=timed), "https://d.example/n").published) == "2026-08-01"


def test_written_date_unit():
    assert day(written_date(["20 de noviembre de 2026"])) == "2026-11-20"
    assert day(written_date(["el 2 de enero del 2026"])) == "2026-01-02"
    assert day(written_date(["November 20th, 2026"])) == "2026-11-20"
    assert day(written_date(["20 November 2026"])) == "2026-11-20"
    assert day(written_date(["03/04/2026"])) == "2026-04-03"
    assert day(written_date(["03/04/2026"], region="us")) == "2026-03-04"
    assert day(written_date(["12/25/2026"])) == "2026-12-25"  # only month-first is a valid date
    assert written_date(["32 de noviembre de 2026", "sin fecha"]) is None


# --------------------------------------------------------------------------- text, title, author, language


def test_text_title_author_and_language():
    before = '<p class="byline">Por María López | 20 de noviembre de 2026</p>'
    related = ('<section class="mas-noticias"><h3>Más noticias</h3><ul><li><a href="/a">Aseguran fentanilo en '
               'Sonora</a></li><li><a href="/b">Cártel de Sinaloa: nueva detención</a></li></ul></section>')
    body = page(BODY_ES + related, before=before, title="Detienen a operador financiero en Culiacán")
    got = extract_article(body, "https://diario.example/nota")
    assert got.title == "Detienen a operador financiero en Culiacán"
    assert got.text.startswith("La Fiscalía General de la República informó")
    assert got.text.endswith("millones de pesos en efectivo.")
    for boilerplate in ("Más noticias", "fentanilo en Sonora", "Inicio", "derechos reservados", "Por María"):
        assert boilerplate not in got.text
    assert "\n\n" in got.text  # paragraphs kept apart
    assert got.author == "María López" and got.language == "es"


def test_canonical_link_is_resolved():
    head = '<link rel="canonical" href="/nota/123?utm_source=x">'
    assert extract_article(page(BODY_ES, head=head), "https://d.example/a/b").canonical == "https://d.example/nota/123?utm_source=x"
    assert extract_article(page(BODY_ES, head='<link rel="canonical" href="javascript:x">'), "https://d.example/").canonical is None


def test_language_detection_without_declaration():
    assert detect_language("Detienen en Culiacán a operador financiero de una célula criminal que trafica drogas") == "es"
    assert detect_language("Inspectors find 400 pounds of fentanyl hidden in a tomato shipment at the border") == "en"
    assert detect_language("Fentanyl") is None and detect_language("") is None and detect_language("12 34 56 78 90 12") is None
    undeclared = page(BODY_EN, lang="", title="Seizure").replace(b' lang=""', b"")
    assert extract_article(undeclared, "https://x.example/").language == "en"


def test_byline_author():
    assert byline_author(["By Jane Doe | Nov. 20, 2026"]) == "Jane Doe"
    assert byline_author(["Por María Fernanda López - 20 de noviembre de 2026"]) == "María Fernanda López"
    assert byline_author(["By James O'Connell March 9, 2026"]) == "James O'Connell"
    assert byline_author(["La entrega se realizó en el aeropuerto"], need_prefix=True) == ""


def test_empty_and_odd_bodies_give_an_empty_page():
    for body in (b"", b"   ", b"<html></html>", b"\xff\xfe\x00garbage", "<?xml version='1.0' encoding='utf-8'?><html><body><p>x</p></body></html>"):
        got = extract_article(body, "https://x.example/")
        assert isinstance(got.text, str) and got.published is None


def test_charset_from_the_http_header():
    body = page(BODY_ES, title="Señales de alarma").decode().encode("latin-1")
    got = extract_article(body, "https://x.example/", {"content-type": "text/html; charset=iso-8859-1"})
    assert got.title == "Señales de alarma" and "Fiscalía" in got.text


# --------------------------------------------------------------------------- the evaluation set


def test_evaluation_set_f1_and_no_page_below_half():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from extract import PAGES, ex_borderwatch, evaluate
    finally:
        sys.path.remove(str(ROOT / "bench"))
    manifest = json.loads((PAGES / "manifest.json").read_text(encoding="utf-8"))
    pages = [(n, (PAGES / f"{n}.html").read_bytes(), (PAGES / f"{n}.txt").read_text(encoding="utf-8")) for n in manifest]
    assert len(pages) >= 40 and {m["language"] for m in manifest.values()} == {"en", "es"}
    result = evaluate(pages, ex_borderwatch, 1)
    assert result["F1"] >= 0.96, result["F1"]
    assert result["below_0.5"] == []
    for name, body, _ in pages:
        got = extract_article(body, "https://news.example/a")
        want = manifest[name]
        assert (day(got.published), got.language, got.author, got.title) == (
            want["published"], want["language"], want["author"], want["title"]), name
