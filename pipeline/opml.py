"""OPML import/export of the feed list (the format every feed reader speaks).

Import reads outlines as data only: each becomes a candidate source (id, name, url, type and,
for exported pages, link_selector) that is checked on its own; the rejects are listed with
the reason, and nothing an OPML file says can set any other key (allow_hosts, timeouts,
sizes). Writing goes through :mod:`pipeline.feedsfile` (quoted scalars, whole-file
validation, atomic replace).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as ET

from .config import ID_RE, FeedsConfig, Source
from .feedsfile import clean_text

_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\u0085\u00a0\u2028\u2029]")


def export_opml(feeds: FeedsConfig) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">',
             "  <head><title>borderwatch sources</title></head>", "  <body>"]
    for s in feeds.sources:
        attrs = {"text": s.name, "title": s.name, "type": "rss" if s.type == "feed" else "link",
                 ("xmlUrl" if s.type == "feed" else "htmlUrl"): s.url, "borderwatchId": s.id}
        if s.type == "page" and s.link_selector:
            attrs["borderwatchLinkSelector"] = s.link_selector
        lines.append("    <outline " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + "/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "source"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a source URL, or None."""
    if _BAD_URL_CHARS.search(url):
        return "the URL contains spaces, line breaks or control characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an absolute http(s) URL"
    return None


@dataclass
class Candidate:
    id: str
    name: str
    url: str
    type: str = "feed"
    link_selector: str | None = None


@dataclass
class OPMLImport:
    new: list[Candidate] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    known: int = 0  # already in feeds.yaml (same URL)


def import_opml(data: bytes, existing: FeedsConfig | None) -> OPMLImport:
    """Outlines of an OPML file that are not in ``existing`` (by URL), each checked, with unique ids.

    Raises the XML parser's errors for a file that is not well-formed OPML."""
    import soupsieve

    root = ET.fromstring(data)
    if root.tag != "opml":
        raise ValueError(f"the root element is <{root.tag}>, not <opml>")
    known_urls = {s.url for s in existing.sources} if existing else set()
    known_ids = {s.id for s in existing.sources} if existing else set()
    result = OPMLImport()
    for el in root.iter("outline"):
        selector = el.get("borderwatchLinkSelector")
        url = el.get("xmlUrl") or (el.get("htmlUrl") if selector else None)
        if not url:
            continue  # a folder, or a plain link that is not a source
        url = url.strip()
        name = clean_text(el.get("title") or el.get("text") or "") or url
        what = f"{clean_text(name, 60)!r} ({clean_text(url, 100)})"
        problem = url_problem(url)
        if problem is None and selector is not None:
            try:
                soupsieve.compile(selector)
            except Exception as exc:  # soupsieve's SelectorSyntaxError and friends
                problem = f"invalid link selector: {str(exc).splitlines()[0]}"
        if problem:
            result.rejected.append((what, problem))
            continue
        if url in known_urls:
            result.known += 1
            continue
        wanted = el.get("borderwatchId") or ""
        sid = wanted if ID_RE.match(wanted) and len(wanted) <= 60 else slug(name)
        base, n = sid, 2
        while sid in known_ids:
            sid, n = f"{base}-{n}", n + 1
        known_ids.add(sid)
        known_urls.add(url)
        result.new.append(Candidate(sid, name, url, "page" if selector else "feed", selector))
    return result


def entries(candidates: list[Candidate]):
    from .feedsfile import new_source

    return [new_source(c.id, c.url, c.name, c.type, c.link_selector) for c in candidates]


def sources_yaml(candidates: list[Candidate]) -> str:
    """The YAML for these sources (for --print), as the serializer writes it."""
    import io

    from ruamel.yaml.comments import CommentedMap

    from .feedsfile import _yaml

    doc = CommentedMap()
    doc["sources"] = entries(candidates)
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


__all__ = ["Candidate", "OPMLImport", "Source", "export_opml", "import_opml", "sources_yaml", "url_problem"]
