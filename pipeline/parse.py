"""Response bodies -> entries: feeds (RSS, Atom, JSON Feed), listing pages, article pages.

Feeds take a fast path (fastfeedparser: a Rust core over libxml2) and fall back to
feedparser, which salvages ill-formed feeds better, in a separate worker process
that is killed past a time limit and runs under a memory limit (feedparser has
quadratic corners, e.g. a 32 KB crafted <author>). Before either parser sees a body,
XML entity declarations are refused (billion laughs, quadratic blow-up, external
entities). Bodies are always handed over as bytes, never as a str that a parser
could take for a URL or a file name.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup

from .errors import BorderwatchError
from .guard import GuardError, Sandbox
from .models import MAX_TEXT, MAX_TITLE
from .timestamps import parse_iso

TEASER_CHARS = 600
FALLBACK_TIMEOUT = 5.0
FALLBACK_MEMORY = 1 << 30

_ENTITY_DECL = re.compile(rb"<!\s*ENTITY", re.I)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates (JSON "\\ud800" decodes to one)
_TAGGISH = re.compile(r"[<&]")
_WS = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding=", re.I)


class ParseError(BorderwatchError):
    pass


@dataclass
class Entry:
    """One item as published by a source, before dedup."""

    url: str
    title: str = ""
    text: str = ""
    guid: str = ""
    author: str = ""
    published: dt.datetime | None = None
    teaser: bool = False
    extra: dict = field(default_factory=dict)
    language: str | None = None  # ISO 639-1, when the article page declares or shows it


# --------------------------------------------------------------------------- text helpers


def clean_text(value: str | None, limit: int = MAX_TEXT) -> str:
    """HTML or plain text -> readable plain text (paragraphs kept, scripts dropped)."""
    if not value:
        return ""
    value = scrub(value)
    if _TAGGISH.search(value) is None:
        return _tidy(value)[:limit]
    if "<" not in value:
        return _tidy(html.unescape(value))[:limit]
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(value, create_parent="div")
    except Exception:  # lxml raises ParserError on empty or odd fragments
        return _tidy(html.unescape(re.sub(r"<[^>]*>", " ", value)))[:limit]
    for bad in root.xpath("//script|//style|//noscript|//template|//iframe|//object|//svg"):
        bad.drop_tree()
    for block in root.iter("p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "section", "article"):
        block.tail = "\n" + (block.tail or "")
    return _tidy(root.text_content())[:limit]


def scrub(value: str) -> str:
    """Text as it crosses the parse boundary: lone surrogates become U+FFFD and NULs go, so that
    whatever a source sends can be encoded, stored and printed."""
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


def _tidy(text: str) -> str:
    text = scrub(text)
    text = _WS.sub(" ", text.replace("\u00a0", " "))
    text = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
    return text.strip()


def clean_title(value: str | None) -> str:
    return " ".join(clean_text(value, MAX_TITLE * 2).split())[:MAX_TITLE]


def _parse_time(value) -> dt.datetime | None:
    """A timestamp in UTC, or None when it is missing, unparsable or cannot be expressed in UTC
    (e.g. 9999-12-31T23:59:59-01:00 overflows): a bad date costs that article its date, nothing more."""
    if not value:
        return None
    try:
        if isinstance(value, dt.datetime):
            parsed = value
        else:
            try:
                parsed = parse_iso(scrub(str(value)))
            except ValueError:
                from dateutil import parser as dparser

                parsed = dparser.parse(scrub(str(value))[:100])
        if parsed is None:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError, TypeError):  # dateutil's ParserError is a ValueError
        return None


# --------------------------------------------------------------------------- feeds


def screen_xml(body: bytes) -> None:
    """Refuse entity declarations before any XML parser runs."""
    if _ENTITY_DECL.search(body):
        raise ParseError("rejected: the document declares XML entities (entity expansion attacks are refused)")


def _transcode(body: bytes, headers: dict[str, str]) -> bytes:
    """Honour a charset given only in the HTTP header, by handing the parser UTF-8."""
    ctype = headers.get("content-type", "")
    m = re.search(r"charset=[\"']?([\w.:-]+)", ctype, re.I)
    if not m or m.group(1).lower().replace("_", "-") in ("utf-8", "utf8"):
        return body
    if body.lstrip()[:1] in (b"{", b"[") or _XML_ENCODING.match(body[:200]):
        return body
    try:
        return body.decode(m.group(1)).encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return body


def parse_feed(body: bytes, base_url: str, headers: dict[str, str] | None = None) -> list[Entry]:
    """Parse an RSS/Atom/JSON feed body; raise ParseError with a reason if nothing can be salvaged."""
    headers = headers or {}
    if not body.strip():
        raise ParseError("empty response body")
    screen_xml(body)
    body = _transcode(body, headers)
    fast_error = None
    try:
        import fastfeedparser

        feed = fastfeedparser.parse(body)
        entries = feed.get("entries") or []
        if entries or _declares_feed(body):
            return [e for e in (_entry_from_dict(d, base_url) for d in entries) if e]
    except Exception as exc:  # fastfeedparser raises ValueError and lxml errors alike
        fast_error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if "HTML" in fast_error and not _declares_feed(body):
            raise ParseError("not a feed: the server returned an HTML page") from None
    entries, reason = _fallback(body, headers)
    if entries is None:
        raise ParseError(reason or fast_error or "not a feed")
    return [e for e in (_entry_from_dict(d, base_url) for d in entries) if e]


def _declares_feed(body: bytes) -> bool:
    head = body[:2048].lower()
    return any(t in head for t in (b"<rss", b"<feed", b"<rdf:rdf", b"jsonfeed.org"))


def _entry_from_dict(d: dict, base_url: str) -> Entry | None:
    link = d.get("link") or ""
    if not link:
        for alt in d.get("links") or []:
            if isinstance(alt, dict) and alt.get("href") and alt.get("rel") in (None, "alternate"):
                link = alt["href"]
                break
    guid = scrub(str(d.get("id") or ""))
    if not link and guid.startswith(("http://", "https://")):
        link = guid
    link = urljoin(base_url, scrub(str(link)).strip()) if link else ""
    if link and urlsplit(link).scheme not in ("http", "https"):
        link = ""  # javascript:, data: and friends are not article links
    content = ""
    for c in d.get("content") or []:
        if isinstance(c, dict) and c.get("value"):
            content = c["value"]
            break
    summary = d.get("description") or d.get("summary") or ""
    text = clean_text(content if len(content) >= len(summary) else summary)
    title = clean_title(d.get("title"))
    if not (link or guid) or not (title or text):
        return None
    author = d.get("author") or ""
    if isinstance(author, dict):
        author = author.get("name") or ""
    return Entry(
        url=link, title=title, text=text, guid=guid or link, author=clean_title(str(author))[:200],
        published=_parse_time(d.get("published") or d.get("updated")),
        teaser=len(text) < TEASER_CHARS,
    )


# ------------------------------------------------------------- feedparser in a worker process


def _feedparser_entries(body: bytes, headers: dict[str, str]) -> tuple[list | None, str | None]:
    """feedparser on one body (runs in the sandbox process): plain entries, or None and the reason."""
    import feedparser

    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except MemoryError:
        return None, "parser ran out of memory (limit reached)"
    except Exception as exc:
        return None, f"parser error: {type(exc).__name__}: {exc}"[:300]
    entries = [_plain_entry(e) for e in parsed.entries]
    if not entries and not parsed.get("version"):  # a recognised feed with no items is fine
        problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
        return None, (f"not a feed: {problem}"[:300] if problem else "not a feed: no RSS, Atom or JSON Feed structure found")
    return entries, None


def _plain_entry(e) -> dict:
    def get(key):
        value = e.get(key)
        return value if isinstance(value, (str, int, float, type(None))) else str(value)

    published = None
    for key in ("published_parsed", "updated_parsed"):
        t = e.get(key)
        if t:
            try:
                published = dt.datetime(*t[:6], tzinfo=dt.timezone.utc).isoformat()
            except (TypeError, ValueError):
                pass
            break
    content = [{"value": str(c.get("value", ""))} for c in (e.get("content") or []) if isinstance(c, dict)]
    return {"id": get("id"), "link": get("link"), "title": get("title"), "description": get("summary"),
            "content": content, "author": get("author"), "published": published,
            "links": [{"href": str(l.get("href", "")), "rel": l.get("rel")} for l in (e.get("links") or []) if isinstance(l, dict)]}


SANDBOX = Sandbox("borderwatch-feedparser", memory=FALLBACK_MEMORY)


def _fallback(body: bytes, headers: dict[str, str]) -> tuple[list | None, str | None]:
    try:
        return SANDBOX.call(_feedparser_entries, (body, headers), FALLBACK_TIMEOUT)
    except GuardError as exc:  # overran its deadline, or the process died
        return None, f"rejected: feed parser {exc}"


# --------------------------------------------------------------------------- pages


def _soup(body: bytes, headers: dict[str, str] | None = None) -> BeautifulSoup:
    ctype = (headers or {}).get("content-type", "")
    m = re.search(r"charset=[\"']?([\w.:-]+)", ctype, re.I)
    return BeautifulSoup(body, "lxml", from_encoding=m.group(1) if m else None)


def page_links(body: bytes, base_url: str, selector: str, headers: dict[str, str] | None = None) -> list[Entry]:
    """Links to articles on a listing page, found by a CSS selector, as absolute http(s) URLs.

    A selector that matches nothing is a ParseError (a failed poll), not an empty success:
    that is how a redesigned site announces itself.
    """
    soup = _soup(body, headers)
    base = soup.find("base", href=True)
    base_url = urljoin(base_url, base["href"]) if base else base_url
    seen, entries = set(), []
    matched = soup.select(selector)
    if not matched:
        raise ParseError(f"selector matched nothing: link_selector {selector!r} found no element on the page "
                         "(has the site changed? fix link_selector in feeds.yaml)")
    for el in matched:
        a = el if el.name == "a" else el.find("a", href=True)
        if a is None or not a.get("href"):
            continue
        url = urljoin(base_url, scrub(a["href"]).strip())
        if urlsplit(url).scheme not in ("http", "https") or url in seen:
            continue
        seen.add(url)
        entries.append(Entry(url=url, title=clean_title(a.get_text(" ")), guid=url, teaser=True))
    if not entries:
        raise ParseError(f"selector matched nothing: link_selector {selector!r} matched {len(matched)} element(s) "
                         "but no http(s) article link (fix link_selector in feeds.yaml)")
    return entries
