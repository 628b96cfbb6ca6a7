"""Build the extraction evaluation set: article bodies (articles_en.yaml, articles_es.yaml) wrapped in
site templates shaped like real news sites, including the shapes that defeat simple extractors.

    python bench/extract_pages/make_pages.py             # rewrites bench/extract_pages/pages/
    python bench/extract_pages/make_pages.py --holdout   # rewrites pages_holdout/ (templates never tuned on)

Each page NN-template-slug.html gets NN-template-slug.txt (the expected body: the article's
paragraphs, subheadings and list items, without headline, byline, captions or boilerplate) and a
line in manifest.json (title, published date, author, language, template).

Templates (every body appears in two of them; boilerplate in the body's language):
  modern      <main><article>, cookie banner, related list, comments, JSON-LD
  sidebar     the article inside a wrapper whose class says "sidebar" (has-sidebar sidebar-right)
  adwrap      no <article>; the story inside a sticky-ad wrapper ("ad-sticky-wrapper"), ad slots between paragraphs
  menupush    off-canvas menu wrapper ("off-canvas-wrap menu-push") around the whole page
  aspnet      a page-wide <form> (ASP.NET) around everything, a government press release
  promo       two <article>s: the first is a breaking-news promo card
  twomain     two <main>s: the first is a top-stories strip
  brtext      paragraphs separated by <br><br> in one <div>
  divs        React-style markup: paragraphs in <div>s, no <p>, a large section menu
  table       an old table layout, menu in one cell, text with <br>s in another
  nomarkup    no <article>/<main>/<nav>/<footer>: divs and <p>s everywhere, footer paragraphs, related list
  wordpress   entry-content, share buttons, tags, author bio, comment form and comments, today's date on top
  navfixed    the article inside a wrapper whose class says "nav" (site nav-fixed), figure with caption
"""

from __future__ import annotations

import datetime as dt
import html
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
OUT = HERE / "pages"
TODAY = dt.date(2026, 11, 23)  # the date sites print in their headers ("today"), not the article's

MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre"]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
DAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

WORDS = {
    "en": {
        "sections": ["Home", "U.S.", "World", "Mexico", "Border", "Politics", "Business", "Opinion", "Sports",
                     "Culture", "Video", "Podcasts"],
        "more_sections": ["Immigration", "Crime", "Courts", "Energy", "Climate", "Health", "Education", "Tech",
                          "Travel", "Food", "Obituaries", "Corrections", "Newsletters", "Events", "Puzzles",
                          "Real Estate", "Weather", "Arizona", "Texas", "California", "New Mexico"],
        "cookie": "We use cookies to improve your experience, analyse traffic and show personalised ads. By "
                  "continuing to browse you agree to our use of cookies.",
        "accept": "Accept all", "settings": "Cookie settings",
        "related": "More stories", "read_also": "Read more:", "most_read": "Most read",
        "comments": "Comments", "comment_texts": [
            "This has been going on for years and nobody in Washington seems to care.",
            "Great reporting. I live near the border and this matches what we see every week.",
            "Where are the numbers from last year? Hard to judge without a comparison.",
        ],
        "commenters": ["borderdad77", "Marisol T.", "J. Kemp"],
        "leave_reply": "Leave a reply", "post_comment": "Post comment",
        "footer": ["About us", "Contact", "Careers", "Advertise", "Privacy policy", "Terms of use"],
        "footer_p": ["Copyright 2026 Frontier Media Group. All rights reserved. This material may not be "
                     "published, broadcast, rewritten or redistributed.",
                     "Our newsroom is located in El Paso, Texas. Send news tips to our editors by email or "
                     "through our secure form."],
        "share": ["Share on Facebook", "Share on X", "Email this story", "Print"],
        "tags": "Tags", "by": "By", "updated": "Updated", "published": "Published",
        "newsletter": "Sign up for our daily newsletter with the top border stories, delivered every morning.",
        "subscribe": "Subscribe", "search": "Search", "ad": "Advertisement",
        "bio": "{author} is a staff reporter covering security, immigration and the U.S.-Mexico border. "
               "Follow her reporting on our website.",
        "breaking": "Breaking news", "top": "Top stories", "caption": "Officers inspect a vehicle at a "
                    "border checkpoint. (Photo: Staff)",
        "press": "Press release", "site": "Frontier Daily",
    },
    "es": {
        "sections": ["Inicio", "Nacional", "Estados", "Seguridad", "Frontera", "Política", "Economía",
                     "Opinión", "Deportes", "Cultura", "Video", "Podcast"],
        "more_sections": ["Migración", "Justicia", "Sociedad", "Salud", "Educación", "Ciencia", "Tecnología",
                          "Espectáculos", "Gastronomía", "Turismo", "Clima", "CDMX", "Sonora", "Chihuahua",
                          "Baja California", "Tamaulipas", "Jalisco", "Guanajuato", "Sinaloa", "Michoacán"],
        "cookie": "Utilizamos cookies propias y de terceros para mejorar tu experiencia y mostrarte publicidad "
                  "personalizada. Si continúas navegando, aceptas su uso.",
        "accept": "Aceptar", "settings": "Configurar cookies",
        "related": "Más noticias", "read_also": "Lee también:", "most_read": "Lo más leído",
        "comments": "Comentarios", "comment_texts": [
            "Siempre es lo mismo, detienen a uno y llegan otros diez.",
            "Muy buena nota, ojalá den seguimiento al caso.",
            "¿Y las autoridades locales qué dicen? Nadie habla de eso.",
        ],
        "commenters": ["lector_norteño", "Ana G.", "Pepe M."],
        "leave_reply": "Deja un comentario", "post_comment": "Publicar comentario",
        "footer": ["Quiénes somos", "Contacto", "Aviso de privacidad", "Términos y condiciones", "Publicidad",
                   "Directorio"],
        "footer_p": ["Todos los derechos reservados © 2026 Grupo Editorial del Norte. Queda prohibida la "
                     "reproducción total o parcial de los contenidos sin autorización.",
                     "Nuestra redacción se encuentra en Hermosillo, Sonora. Envíanos tus denuncias a través "
                     "del formulario de contacto."],
        "share": ["Compartir en Facebook", "Compartir en X", "Enviar por correo", "Imprimir"],
        "tags": "Temas", "by": "Por", "updated": "Actualizado", "published": "Publicado",
        "newsletter": "Suscríbete a nuestro boletín y recibe cada mañana las noticias más importantes.",
        "subscribe": "Suscribirme", "search": "Buscar", "ad": "Publicidad",
        "bio": "{author} es reportera de la sección de Seguridad y cubre temas de migración y frontera.",
        "breaking": "Última hora", "top": "Lo más importante", "caption": "Elementos de seguridad revisan "
                    "un vehículo en un punto de control. (Foto: Especial)",
        "press": "Comunicado", "site": "El Diario del Norte",
    },
}

TEMPLATES = ["modern", "sidebar", "adwrap", "menupush", "aspnet", "promo", "twomain", "brtext", "divs", "table",
             "nomarkup", "wordpress", "navfixed"]


def esc(s: str) -> str:
    return html.escape(s, quote=True)


def long_date(d: dt.date, lang: str) -> str:
    if lang == "es":
        return f"{d.day} de {MONTHS_ES[d.month - 1]} de {d.year}"
    return f"{MONTHS_EN[d.month - 1]} {d.day}, {d.year}"


def weekday_date(d: dt.date, lang: str) -> str:
    if lang == "es":
        return f"{DAYS_ES[d.weekday()].capitalize()}, {long_date(d, lang)}"
    return f"{DAYS_EN[d.weekday()]}, {long_date(d, lang)}"


def numeric_date(d: dt.date, sep: str = "/") -> str:
    return f"{d.day:02d}{sep}{d.month:02d}{sep}{d.year}"


def body_html(art: dict, p: str = "p", h: str = "h2", ad_every: int = 0, lang: str = "en") -> str:
    """The article's paragraphs as markup: <p> (or another tag), subheadings, lists."""
    out, items = [], []

    def flush():
        if items:
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for n, para in enumerate(art["paragraphs"]):
        if para.startswith("- "):
            items.append(para[2:])
            continue
        flush()
        if para.startswith("## "):
            out.append(f"<{h}>{esc(para[3:])}</{h}>")
        else:
            cls = ' class="paragraph"' if p == "div" else ""
            out.append(f"<{p}{cls}>{esc(para)}</{p}>")
        if ad_every and n % ad_every == ad_every - 1 and n < len(art["paragraphs"]) - 1:
            out.append(f'<div class="ad ad-slot" id="ad-mid-{n}"><span>{WORDS[lang]["ad"]}</span></div>')
    flush()
    return "\n".join(out)


def br_html(art: dict) -> str:
    parts = []
    for para in art["paragraphs"]:
        text = para[3:] if para.startswith("## ") else para[2:] if para.startswith("- ") else para
        parts.append(f"<b>{esc(text)}</b>" if para.startswith("## ") else esc(text))
    return "<br><br>\n".join(parts)


def expected_text(art: dict) -> str:
    return "\n\n".join(p[3:] if p.startswith("## ") else p[2:] if p.startswith("- ") else p for p in art["paragraphs"])


def nav_list(w: dict, cls: str = "menu", extra: bool = False) -> str:
    items = w["sections"] + (w["more_sections"] if extra else [])
    return f'<ul class="{cls}">' + "".join(f'<li><a href="/{esc(s.lower())}/">{esc(s)}</a></li>' for s in items) + "</ul>"


def related(w: dict, others: list[dict], cls: str = "related") -> str:
    links = "".join(f'<li><a href="/nota/{o["slug"]}">{esc(o["title"])}</a></li>' for o in others[:4])
    return f'<section class="{cls}"><h3>{w["related"]}</h3><ul>{links}</ul></section>'


def comments(w: dict) -> str:
    items = "".join(
        f'<li class="comment"><div class="comment-author">{esc(a)}</div><div class="comment-meta">'
        f'{long_date(TODAY, "en")}</div><p>{esc(t)}</p></li>'
        for a, t in zip(w["commenters"], w["comment_texts"]))
    return f'<div id="comments" class="comments-area"><h3>{w["comments"]} (3)</h3><ol class="commentlist">{items}</ol></div>'


def cookie(w: dict) -> str:
    return (f'<div id="cookie-consent" class="cookie-banner"><p>{w["cookie"]}</p>'
            f'<button>{w["accept"]}</button><a href="/cookies">{w["settings"]}</a></div>')


def footer_links(w: dict) -> str:
    return "".join(f'<a href="/{i}">{esc(x)}</a> ' for i, x in enumerate(w["footer"]))


def head(art: dict, lang: str, *, meta_date: bool = False, ld: bool = False, og: bool = True,
         author_meta: bool = False, declare_lang: bool = True) -> str:
    w = WORDS[lang]
    bits = ['<meta charset="utf-8">', f"<title>{esc(art['title'])} | {w['site']}</title>",
            '<meta name="viewport" content="width=device-width, initial-scale=1">']
    if og:
        bits.append(f'<meta property="og:title" content="{esc(art["title"])}">')
        bits.append(f'<meta property="og:site_name" content="{w["site"]}">')
    if meta_date:
        bits.append(f'<meta property="article:published_time" content="{art["date"].isoformat()}T09:30:00-06:00">')
    if author_meta:
        bits.append(f'<meta name="author" content="{esc(art["author"])}">')
    if ld:
        data = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": art["title"],
                "datePublished": f"{art['date'].isoformat()}T08:15:00-06:00",
                "author": {"@type": "Person", "name": art["author"]}}
        bits.append(f'<script type="application/ld+json">{json.dumps(data, ensure_ascii=False)}</script>')
    bits.append(f'<link rel="canonical" href="https://news.example/{lang}/{art["slug"]}">')
    bits.append("<style>body{font-family:sans-serif}.ad{min-height:250px}</style>")
    bits.append("<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}</script>")
    lang_attr = f' lang="{lang}"' if declare_lang else ""
    return f"<!DOCTYPE html>\n<html{lang_attr}>\n<head>\n" + "\n".join(bits) + "\n</head>\n"


def byline(art: dict, lang: str) -> str:
    return f'{WORDS[lang]["by"]} {esc(art["author"])}'


# ----------------------------------------------------------------------------- templates


def t_modern(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, meta_date=True, ld=True) + f"""<body>
{cookie(w)}
<header class="site-header"><a class="logo" href="/">{w['site']}</a><nav aria-label="main">{nav_list(w)}</nav>
<form role="search" action="/search"><input name="q" placeholder="{w['search']}"></form></header>
<main id="main">
<article class="story">
<header><p class="kicker">{w['sections'][4]}</p><h1>{esc(art['title'])}</h1>
<p class="byline">{byline(art, lang)} · <time datetime="{art['date'].isoformat()}T09:30:00-06:00">{long_date(art['date'], lang)}</time></p></header>
<div class="story-body">
{body_html(art, lang=lang)}
</div>
<div class="share">{''.join(f'<a href="#">{s}</a>' for s in w['share'])}</div>
</article>
{related(w, others)}
{comments(w)}
</main>
<footer class="site-footer"><nav>{footer_links(w)}</nav><p>{w['footer_p'][0]}</p></footer>
</body></html>"""


def t_sidebar(art, lang, others):
    w = WORDS[lang]
    return head(art, lang) + f"""<body class="single">
<div class="top-bar"><span class="today">{weekday_date(TODAY, lang)}</span> <a href="/login">Login</a></div>
<header><div class="brand">{w['site']}</div><nav class="main-menu">{nav_list(w)}</nav></header>
<div id="content" class="page-content has-sidebar sidebar-right">
  <div class="col-main">
    <article class="post">
      <h1 class="post-title">{esc(art['title'])}</h1>
      <div class="post-meta"><span class="autor">{byline(art, lang)}</span> | <span class="fecha">{long_date(art['date'], lang)}</span></div>
      <div class="post-content">
{body_html(art, lang=lang)}
      </div>
    </article>
    {related(w, others, "more-news")}
  </div>
  <aside class="sidebar widget-area">
    <div class="widget"><h3>{w['most_read']}</h3><ol>{''.join(f'<li><a href="/n/{o["slug"]}">{esc(o["title"])}</a></li>' for o in others[1:5])}</ol></div>
    <div class="widget newsletter"><p>{w['newsletter']}</p><button>{w['subscribe']}</button></div>
  </aside>
</div>
<footer><p>{w['footer_p'][0]}</p><p>{footer_links(w)}</p></footer>
</body></html>"""


def t_adwrap(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, author_meta=True) + f"""<body>
<div class="header-wrap"><a href="/" class="logo">{w['site']}</a>{nav_list(w, "nav-links")}</div>
<div class="ad ad-leaderboard"><span>{w['ad']}</span></div>
<div class="ad-sticky-wrapper">
  <div class="story-container">
    <h1 class="headline">{esc(art['title'])}</h1>
    <div class="date">{numeric_date(art['date'])} 10:45</div>
    <div class="story-body">
{body_html(art, ad_every=2, lang=lang)}
    </div>
  </div>
  <div class="ad ad-rail"><span>{w['ad']}</span></div>
</div>
{related(w, others, "recirc")}
<div class="newsletter-box"><p>{w['newsletter']}</p><input type="email"><button>{w['subscribe']}</button></div>
<footer><ul>{''.join(f'<li><a href="/{i}">{x}</a></li>' for i, x in enumerate(w['footer']))}</ul><p>{w['footer_p'][1]}</p></footer>
</body></html>"""


def t_menupush(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, ld=True, og=False) + f"""<body>
<div class="off-canvas-wrap menu-push" data-offcanvas>
 <div class="inner-wrap">
  <nav class="tab-bar"><a class="left-off-canvas-toggle menu-icon" href="#"><span>Menu</span></a></nav>
  <aside class="left-off-canvas-menu">{nav_list(w, "off-canvas-list", extra=True)}</aside>
  <section class="main-section">
   <article>
    <h1>{esc(art['title'])}</h1>
    <p class="author-line">{byline(art, lang)}</p>
{body_html(art, lang=lang)}
   </article>
   <aside class="related-stories">{related(w, others)}</aside>
  </section>
  <a class="exit-off-canvas"></a>
 </div>
</div>
<div class="site-footer"><p>{w['footer_p'][0]}</p></div>
</body></html>"""


def t_aspnet(art, lang, others):
    w = WORDS[lang]
    paragraphs = body_html(art, lang=lang)
    return head(art, lang, og=False) + f"""<body>
<form name="aspnetForm" method="post" action="./Nota.aspx?id=4821" id="aspnetForm">
<div><input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="/wEPDwUKMTY1NDU2MTA1MmRkZ0ZrY2VmZmM=" /></div>
<div id="ctl00_header" class="encabezado"><img src="/img/logo.png" alt="{w['site']}"><div class="menu-principal">{nav_list(w, "menu")}</div>
<input name="ctl00$txtBuscar" type="text" id="ctl00_txtBuscar" /><input type="submit" value="{w['search']}" /></div>
<div id="ctl00_ContentPlaceHolder1_pnlNota" class="nota">
  <span class="tipo">{w['press']} 214/2026</span>
  <h1 id="ctl00_ContentPlaceHolder1_lblTitulo">{esc(art['title'])}</h1>
  <span id="ctl00_ContentPlaceHolder1_lblFecha" class="fecha">{w['published']}: {numeric_date(art['date'])}</span>
  <div id="ctl00_ContentPlaceHolder1_lblTexto" class="texto">
{paragraphs}
  </div>
</div>
<div class="otros-comunicados"><h3>{w['related']}</h3>{''.join(f'<p><a href="/n/{o["slug"]}">{esc(o["title"])}</a></p>' for o in others[:3])}</div>
<div id="ctl00_pie" class="pie"><p>{w['footer_p'][1]}</p><p>{footer_links(w)}</p></div>
</form>
</body></html>"""


def t_promo(art, lang, others):
    w = WORDS[lang]
    promo = others[0]
    return head(art, lang, meta_date=True) + f"""<body>
<header><nav>{nav_list(w)}</nav></header>
<article class="promo breaking-banner"><span class="label">{w['breaking']}</span>
<h2><a href="/n/{promo['slug']}">{esc(promo['title'])}</a></h2><p>{esc(promo['paragraphs'][0][:140])}…</p></article>
<div class="container">
<article class="article-main">
  <h1>{esc(art['title'])}</h1>
  <div class="article-byline">{byline(art, lang)}</div>
  <div class="article-text">
{body_html(art, lang=lang)}
  </div>
</article>
{related(w, others[1:], "related-links")}
</div>
<footer><p>{footer_links(w)}</p><p>{w['footer_p'][0]}</p></footer>
</body></html>"""


def t_twomain(art, lang, others):
    w = WORDS[lang]
    strip = "".join(f'<div class="card"><a href="/n/{o["slug"]}">{esc(o["title"])}</a><p>{esc(o["paragraphs"][0][:120])}…</p></div>'
                    for o in others[:3])
    return head(art, lang, ld=True) + f"""<body>
{cookie(w)}
<div class="masthead"><a href="/">{w['site']}</a>{nav_list(w)}</div>
<main class="top-stories"><h2>{w['top']}</h2>{strip}</main>
<main class="article-page">
  <h1>{esc(art['title'])}</h1>
  <p class="byline">{byline(art, lang)}</p>
  <section class="body">
{body_html(art, lang=lang)}
  </section>
</main>
<div class="footer"><p>{w['footer_p'][0]}</p></div>
</body></html>"""


def t_brtext(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, author_meta=True) + f"""<body>
<div id="header"><a href="/">{w['site']}</a></div>
<div id="menu">{' | '.join(f'<a href="/s/{i}">{s}</a>' for i, s in enumerate(w['sections']))}</div>
<div id="nota">
  <h1 class="titulo">{esc(art['title'])}</h1>
  <p class="fecha">{long_date(art['date'], lang)}</p>
  <div class="texto-nota">
{br_html(art)}
  </div>
  <div class="compartir">{' '.join(w['share'])}</div>
</div>
<div id="relacionadas"><b>{w['read_also']}</b><br>{'<br>'.join(f'<a href="/n/{o["slug"]}">{esc(o["title"])}</a>' for o in others[:4])}</div>
<div id="pie">{w['footer_p'][0]}<br>{w['footer_p'][1]}</div>
</body></html>"""


def t_divs(art, lang, others):
    w = WORDS[lang]
    blocks = body_html(art, p="div", h="div", lang=lang).replace("<div>", '<div class="subhead">')
    return head(art, lang) + f"""<body><div id="root">
<div class="css-1q2w3e"><div class="css-logo">{w['site']}</div>
<div class="css-menu" role="navigation">{''.join(f'<div class="css-item"><a href="/s/{i}">{s}</a></div>' for i, s in enumerate(w['sections'] + w['more_sections']))}</div></div>
<div class="css-9k8j7h">
  <div data-testid="headline"><h1>{esc(art['title'])}</h1></div>
  <div data-testid="byline">{byline(art, lang)} <time datetime="{art['date'].isoformat()}">{long_date(art['date'], lang)}</time></div>
  <div data-testid="article-body" class="css-body">
{blocks}
  </div>
</div>
<div class="css-recirc"><div class="css-h">{w['related']}</div>{''.join(f'<div class="css-card"><a href="/n/{o["slug"]}">{esc(o["title"])}</a></div>' for o in others[:4])}</div>
<div class="css-footer">{''.join(f'<div><a href="/f/{i}">{x}</a></div>' for i, x in enumerate(w['footer']))}<div>{w['footer_p'][0]}</div></div>
</div></body></html>"""


def t_table(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, og=False) + f"""<body bgcolor="#ffffff">
<table width="100%" border="0" cellpadding="0" cellspacing="0">
<tr><td colspan="2" class="banner"><img src="/img/banner.gif" alt="{w['site']}"></td></tr>
<tr>
<td width="180" valign="top" class="menu">{'<br>'.join(f'<a href="/s/{i}.htm">{s}</a>' for i, s in enumerate(w['sections'] + w['more_sections'][:8]))}</td>
<td valign="top" class="contenido">
<font size="5"><b>{esc(art['title'])}</b></font><br>
<font size="2">Fecha: {numeric_date(art['date'])}</font><br><br>
{br_html(art)}
<br><br>
<font size="1">{w['footer_p'][0]}</font>
</td>
</tr>
<tr><td colspan="2" align="center"><font size="1">{' | '.join(w['footer'])}</font></td></tr>
</table>
</body></html>"""


def t_nomarkup(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, og=False, declare_lang=False) + f"""<body>
<div class="top"><div class="logo">{w['site']}</div><div class="links">{''.join(f'<a href="/s/{i}">{s}</a> ' for i, s in enumerate(w['sections']))}</div></div>
<div class="wrap">
 <div class="left">
  <h1>{esc(art['title'])}</h1>
  <p class="info">{byline(art, lang)} - {long_date(art['date'], lang)}</p>
{body_html(art, lang=lang)}
  <div class="also"><p><b>{w['read_also']}</b></p><ul>{''.join(f'<li><a href="/n/{o["slug"]}">{esc(o["title"])}</a></li>' for o in others[:4])}</ul></div>
 </div>
 <div class="right"><p><b>{w['most_read']}</b></p>{''.join(f'<p><a href="/n/{o["slug"]}">{esc(o["title"])}</a></p>' for o in others[2:6])}
 <p>{w['newsletter']}</p></div>
</div>
<div class="bottom"><p>{w['footer_p'][0]}</p><p>{w['footer_p'][1]}</p><p>{footer_links(w)}</p></div>
</body></html>"""


def t_wordpress(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, meta_date=True, author_meta=True) + f"""<body class="post-template-default single single-post">
<div id="page" class="site">
<div class="top-header"><span class="current-date">{weekday_date(TODAY, lang)}</span></div>
<header id="masthead" class="site-header"><p class="site-title"><a href="/">{w['site']}</a></p>
<nav id="site-navigation" class="main-navigation">{nav_list(w, "menu nav-menu")}</nav></header>
<div id="content" class="site-content"><div id="primary" class="content-area"><main id="main" class="site-main">
<article id="post-4821" class="post-4821 post type-post status-publish">
 <header class="entry-header"><h1 class="entry-title">{esc(art['title'])}</h1>
 <div class="entry-meta"><span class="posted-on"><time class="entry-date published" datetime="{art['date'].isoformat()}T07:00:00+00:00">{long_date(art['date'], lang)}</time></span>
 <span class="byline"> {byline(art, lang)}</span></div></header>
 <div class="entry-content">
{body_html(art, lang=lang)}
 </div>
 <footer class="entry-footer"><span class="tags-links">{w['tags']}: <a href="/t/1">{w['sections'][3]}</a>, <a href="/t/2">{w['sections'][4]}</a></span>
 <div class="sharedaddy">{''.join(f'<a href="#">{s}</a>' for s in w['share'])}</div></footer>
 <div class="author-info"><p>{esc(w['bio'].format(author=art['author']))}</p></div>
</article>
<nav class="post-navigation"><a href="/n/{others[0]['slug']}" rel="prev">{esc(others[0]['title'])}</a></nav>
{comments(w)}
<div id="respond" class="comment-respond"><h3>{w['leave_reply']}</h3><form id="commentform"><textarea name="comment"></textarea><input type="submit" value="{w['post_comment']}"></form></div>
</main></div>
<aside id="secondary" class="widget-area">{related(w, others[1:], "widget")}</aside></div>
<footer id="colophon" class="site-footer"><div class="site-info">{w['footer_p'][0]}</div></footer>
</div></body></html>"""


def t_navfixed(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, ld=True) + f"""<body>
<div id="page" class="site nav-fixed">
<header class="header"><nav class="nav">{nav_list(w)}</nav></header>
<div class="site-inner">
<article class="entry">
<header class="entry-header"><h1>{esc(art['title'])}</h1><p class="entry-byline">{byline(art, lang)}</p></header>
<figure class="lead"><img src="/img/lead.jpg" alt=""><figcaption>{w['caption']}</figcaption></figure>
<div class="entry-content">
{body_html(art, lang=lang)}
</div>
</article>
<section class="newsletter-signup"><p>{w['newsletter']}</p><button>{w['subscribe']}</button></section>
{related(w, others)}
</div>
<footer class="footer"><p>{w['footer_p'][1]}</p>{footer_links(w)}</footer>
</div></body></html>"""


# ----------------------------------------------------------------------------- held-out templates
# Written after the extractor was tuned on the templates above, and never tuned on: their score
# says how far the figures on pages/ carry over to shapes the extractor has not seen.


def t_amp(art, lang, others):
    w = WORDS[lang]
    return head(art, lang, ld=True) + f"""<body>
<amp-sidebar id="sidebar" layout="nodisplay" side="left"><nav class="amp-menu">{nav_list(w, "amp-menu-list", extra=True)}</nav></amp-sidebar>
<header class="amp-wp-header"><div><a href="/">{w['site']}</a><button on="tap:sidebar.toggle">☰</button></div></header>
<article class="amp-wp-article">
 <header class="amp-wp-article-header"><h1 class="amp-wp-title">{esc(art['title'])}</h1>
 <div class="amp-wp-meta amp-wp-byline"><span class="amp-wp-author">{esc(art['author'])}</span></div>
 <div class="amp-wp-meta amp-wp-posted-on"><time datetime="{art['date'].isoformat()}T12:00:00+00:00">{long_date(art['date'], lang)}</time></div></header>
 <figure class="amp-wp-article-featured-image"><amp-img src="/lead.jpg" width="1200" height="800"></amp-img></figure>
 <div class="amp-wp-article-content">
{body_html(art, lang=lang)}
 </div>
 <footer class="amp-wp-article-footer"><div class="amp-wp-meta amp-wp-tax-tag">{w['tags']}: {w['sections'][4]}</div></footer>
</article>
<footer class="amp-wp-footer"><div><p>{w['footer_p'][0]}</p><a href="#top" class="back-to-top">↑</a></div></footer>
</body></html>"""


def t_inline(art, lang, others):
    w = WORDS[lang]
    paras = body_html(art, lang=lang).split("\n")
    box = (f'<div class="related-inline"><strong>{w["read_also"]}</strong> '
           f'<a href="/n/{others[0]["slug"]}">{esc(others[0]["title"])}</a></div>')
    paras.insert(min(2, len(paras)), box)
    paras.insert(min(5, len(paras)), f'<div class="ad-inarticle"><span>{w["ad"]}</span><iframe src="/ads/1"></iframe></div>')
    return head(art, lang, meta_date=True, author_meta=True) + f"""<body>
<div class="barra"><span>{weekday_date(TODAY, lang)}</span></div>
<header><h2 class="logo">{w['site']}</h2><ul class="secciones">{''.join(f'<li><a href="/{i}">{s}</a></li>' for i, s in enumerate(w['sections']))}</ul></header>
<div class="contenedor">
 <div class="nota">
  <h1>{esc(art['title'])}</h1>
  <div class="firma">{byline(art, lang)}</div>
  <div class="cuerpo">
{chr(10).join(paras)}
  </div>
 </div>
 <div class="columna-derecha">{related(w, others[1:], "lo-mas")}</div>
</div>
<div class="pie"><p>{w['footer_p'][1]}</p></div>
</body></html>"""


def t_megamenu(art, lang, others):
    w = WORDS[lang]
    mega = "".join(f'<li><a href="/n/{o["slug"]}">{esc(o["title"])}</a><p>{esc(o["paragraphs"][0][:90])}…</p></li>'
                   for o in others[:4])
    return head(art, lang, ld=True) + f"""<body>
<div class="header"><a href="/">{w['site']}</a>
 <div class="mega-dropdown"><span>{w['sections'][1]}</span><ul>{mega}</ul></div>
 <div class="mega-dropdown"><span>{w['sections'][2]}</span>{nav_list(w, "sub", extra=True)}</div></div>
<div class="row">
 <div class="col-md-8">
  <h1>{esc(art['title'])}</h1>
  <span class="author">{byline(art, lang)}</span>
  <div class="nota-texto">
{body_html(art, lang=lang)}
  </div>
  <div class="tags"><a href="/t/1">{w['sections'][3]}</a> <a href="/t/2">{w['sections'][4]}</a></div>
 </div>
 <div class="col-md-4">{related(w, others[2:], "ultimas")}</div>
</div>
<div class="footer-links">{footer_links(w)}<p>{w['footer_p'][0]}</p></div>
</body></html>"""


def t_sections(art, lang, others):
    w = WORDS[lang]
    parts = body_html(art, lang=lang).split("\n")
    half = max(1, len(parts) // 2)
    return head(art, lang, meta_date=True) + f"""<body>
<nav class="topnav">{nav_list(w)}</nav>
<div class="story">
 <h1 class="story-title">{esc(art['title'])}</h1>
 <p class="story-byline">{byline(art, lang)}</p>
 <section class="story-part">{chr(10).join(parts[:half])}</section>
 <aside class="inline-newsletter"><p>{w['newsletter']}</p><form><input type="email"><button>{w['subscribe']}</button></form></aside>
 <section class="story-part">{chr(10).join(parts[half:])}</section>
</div>
<section class="more">{related(w, others)}</section>
<footer>{footer_links(w)}</footer>
</body></html>"""


HOLDOUT = ["amp", "inline", "megamenu", "sections"]
RENDER = {name: globals()[f"t_{name}"] for name in TEMPLATES + HOLDOUT}


def main() -> None:
    holdout = "--holdout" in sys.argv
    out = HERE / ("pages_holdout" if holdout else "pages")
    templates = HOLDOUT if holdout else TEMPLATES
    arts = []
    for lang in ("en", "es"):
        for art in yaml.safe_load((HERE / f"articles_{lang}.yaml").read_text(encoding="utf-8")):
            art["lang"] = lang
            arts.append(art)
    out.mkdir(exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    manifest = {}
    n = 0
    for i, art in enumerate(arts):
        same_lang = [a for a in arts if a["lang"] == art["lang"] and a is not art]
        others = same_lang[i % len(same_lang):] + same_lang[:i % len(same_lang)]
        first = templates[i % len(templates)]
        second = templates[(i * 5 + 7) % len(templates)]
        if second == first:
            second = templates[(i + 6) % len(templates)]
        for template in ((first,) if holdout else (first, second)):
            n += 1
            name = f"{n:02d}-{template}-{art['slug']}"
            (out / f"{name}.html").write_text(RENDER[template](art, art["lang"], others), encoding="utf-8")
            (out / f"{name}.txt").write_text(expected_text(art) + "\n", encoding="utf-8")
            shows_author = template not in ("aspnet", "table")  # those two templates print no byline
            manifest[name] = {"template": template, "language": art["lang"], "title": art["title"],
                              "author": art["author"] if shows_author else "", "published": art["date"].isoformat()}
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{n} pages in {out}")


if __name__ == "__main__":
    main()
