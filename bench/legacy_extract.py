"""The hand-written extractor borderwatch used before issue 12 (class/id boilerplate filter, first
<article>/<main>, then every <p>/<li>), kept only so that bench/extract.py can compare against it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Comment

from pipeline.parse import MAX_TEXT, _parse_time, _soup, _tidy, clean_title

_BOILERPLATE = re.compile(
    r"(^|[\s_-])(nav|navbar|menu|footer|sidebar|comments?|share|sharing|social|related|promo|advert|ads?|"
    r"cookie|newsletter|subscribe|breadcrumbs?|masthead|skip)([\s_-]|$)", re.I)


@dataclass
class ArticlePage:
    title: str
    text: str
    canonical: str | None = None
    published: dt.datetime | None = None
    author: str = ""


def extract_article(body: bytes, url: str, headers: dict[str, str] | None = None) -> ArticlePage:
    """Main text of an article page: no navigation, scripts, comments, footers or asides."""
    soup = _soup(body, headers)
    canonical = None
    link = soup.find("link", rel=lambda v: v and "canonical" in (v if isinstance(v, list) else [v]), href=True)
    if link:
        canonical = urljoin(url, link["href"].strip())
        if urlsplit(canonical).scheme not in ("http", "https"):
            canonical = None
    title = _meta(soup, "og:title") or (soup.title.get_text(" ") if soup.title else "")
    h1 = soup.find("h1")
    if h1 and h1.get_text(strip=True):
        title = h1.get_text(" ")
    published = _parse_time(_meta(soup, "article:published_time") or _meta(soup, "date")
                            or (soup.find("time", datetime=True) or {}).get("datetime"))
    author = _meta(soup, "author") or _meta(soup, "article:author") or ""
    for bad in soup(["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
                     "iframe", "svg", "button", "select", "figure"]):
        bad.decompose()
    for c in soup.find_all(string=lambda s: isinstance(s, Comment)):
        c.extract()
    for el in soup.find_all(True):
        if el.decomposed or el.attrs is None:
            continue
        marker = " ".join(el.get("class", []) or []) + " " + (el.get("id") or "") + " " + (el.get("role") or "")
        if el.name not in ("body", "html", "article", "main") and _BOILERPLATE.search(marker):
            el.decompose()
    root = (soup.find(attrs={"itemprop": "articleBody"}) or soup.find("article") or soup.find("main")
            or soup.find(attrs={"role": "main"}) or soup.body or soup)
    blocks = [b.get_text(" ", strip=True) for b in root.find_all(["p", "h2", "h3", "li", "blockquote"])]
    text = "\n\n".join(b for b in blocks if b)
    if len(text) < 200:
        text = root.get_text("\n", strip=True)
    return ArticlePage(clean_title(title), _tidy(text)[:MAX_TEXT], canonical, published, clean_title(author)[:200])


def _meta(soup: BeautifulSoup, name: str) -> str:
    tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
    return tag.get("content", "").strip() if tag else ""
