"""`sources add` and `sources test`: find a site's feed, and poll a source once without storing.

Discovery, in order: the URL itself is a feed; the page announces one
(``<link rel="alternate" type="application/rss+xml|atom+xml|feed+json">``); a feed at a
common path (/feed, /rss, /feed.xml, ...). Every candidate is fetched and must parse as a
feed. A site with none becomes a ``page`` source when a common listing shape (article
headings with links) finds at least a few article links on it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .config import Source
from .errors import BorderwatchError
from .fetch import Fetcher, Policy, Response
from .fetch import origin as origin_of
from .parse import Entry, ParseError, page_links, parse_feed

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/json",
              "application/rdf+xml", "text/xml", "application/xml")
COMMON_PATHS = ("feed", "feed/", "rss", "rss.xml", "feed.xml", "atom.xml", "index.xml", "feeds/all.atom.xml")
# listing shapes tried in order for a page source: the first that finds enough same-site links wins
LISTING_SELECTORS = ("article h2 a", "article h3 a", "h2 a", "h3 a", "article a", ".views-row a", "main li a")
MIN_PAGE_LINKS = 3


class DiscoveryError(BorderwatchError):
    """No feed and no recognisable listing at this URL; the message says what was tried."""


@dataclass
class Discovered:
    url: str
    type: str  # feed | page
    name: str
    how: str  # for people: how it was found
    link_selector: str | None = None
    entries: int = 0
    tried: list[str] = field(default_factory=list)


def _title(body: bytes) -> str:
    m = re.search(rb"<title[^>]*>(.*?)</title>", body[:200_000], re.S | re.I)
    if not m:
        return ""
    from html import unescape

    from .feedsfile import clean_text

    text = re.sub(r"<!\[CDATA\[(.*?)\]\]>", r"\1", m.group(1).decode("utf-8", "replace"), flags=re.S)
    return clean_text(unescape(text), 120)


def _as_feed(resp: Response) -> list[Entry] | None:
    if not resp.ok or not resp.body:
        return None
    try:
        return parse_feed(resp.body, resp.final_url or resp.url, resp.headers)
    except ParseError:
        return None


def _alternates(body: bytes, base: str) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body[:2_000_000], "lxml")
    out = []
    for link in soup.find_all("link", href=True):
        rel = " ".join(link.get("rel") or []).lower()
        kind = (link.get("type") or "").lower().split(";")[0].strip()
        if "alternate" in rel.split() and kind in FEED_TYPES and "comments" not in (link.get("title") or "").lower():
            out.append(urljoin(base, link["href"].strip()))
    return list(dict.fromkeys(out))


def guess_listing(body: bytes, base: str, headers: dict | None = None) -> tuple[str, int] | None:
    """(selector, links) of the first listing shape that finds at least MIN_PAGE_LINKS links on this site."""
    host = urlsplit(base).hostname
    for selector in LISTING_SELECTORS:
        try:
            links = page_links(body, base, selector, headers)
        except ParseError:
            continue
        same_site = [e for e in links if urlsplit(e.url).hostname == host and urlsplit(e.url).path not in ("", "/")]
        if len(same_site) >= MIN_PAGE_LINKS:
            return selector, len(same_site)
    return None


async def discover(url: str, fetcher: Fetcher, timeout: float = 20.0) -> Discovered:
    """Find the feed for ``url`` (or a page source); raise DiscoveryError saying what was tried."""
    policy = Policy(timeout, 10_000_000, origin_of(url))  # the SSRF exemption covers this origin only
    first = await fetcher.get(url, policy)
    if not first.ok:
        raise DiscoveryError(f"cannot fetch {url}: {first.error or f'HTTP {first.status}'}")
    entries = _as_feed(first)
    if entries is not None:
        return Discovered(first.final_url or url, "feed", _title(first.body), "the URL is a feed", entries=len(entries))
    base = first.final_url or url
    page_title = _title(first.body)
    tried = []
    candidates = _alternates(first.body, base)
    origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}/"
    common = [urljoin(origin, p) for p in COMMON_PATHS]
    if base.endswith("/") and base != origin:  # a section: its own /feed too
        common += [urljoin(base, p) for p in COMMON_PATHS[:3]]
    for how, candidate in [("announced by the page (<link rel=\"alternate\">)", c) for c in candidates] + \
                          [("found at a common feed path", c) for c in dict.fromkeys(common) if c not in candidates]:
        tried.append(candidate)
        resp = await fetcher.get(candidate, policy)
        entries = _as_feed(resp)
        if entries is not None:
            return Discovered(resp.final_url or candidate, "feed", _title(resp.body) or page_title, how,
                              entries=len(entries), tried=tried)
    listing = guess_listing(first.body, base, first.headers)
    if listing:
        selector, n = listing
        return Discovered(base, "page", page_title, f"no feed found; a page source: {n} article links match "
                          f"{selector!r}", link_selector=selector, entries=n, tried=tried)
    raise DiscoveryError(f"no feed found at {url} (tried the page's <link rel=\"alternate\"> and {len(tried)} common "
                         "feed paths) and no article links recognised: add it to feeds.yaml by hand as type: page "
                         "with a link_selector")


def discover_sync(url: str, concurrency: int = 4, timeout: float = 20.0) -> Discovered:
    async def go() -> Discovered:
        async with Fetcher(concurrency, concurrency) as f:
            return await discover(url, f, timeout)

    return asyncio.run(go())


@dataclass
class TrialResult:
    source: Source
    ok: bool
    error: str | None
    items: int
    new: list  # NewArticle, with .hits
    already_stored: int


def trial_poll(source: Source, db, matcher) -> TrialResult:
    """Poll ``source`` once: what would be new and what would match. Stores nothing."""
    from .cycle import Poller

    async def go():
        async with Fetcher(4, 4) as f:
            return await Poller(db, matcher, f).poll(source, None)

    outcome = asyncio.run(go())
    new = outcome.articles
    return TrialResult(source, outcome.ok, outcome.error, outcome.items_seen, new,
                      max(0, outcome.items_seen - len(new)))
