"""OPML import/export of the feed list (the format every feed reader speaks)."""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as ET

from .config import FeedsConfig, Source


def export_opml(feeds: FeedsConfig) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">',
             "  <head><title>borderwatch sources</title></head>", "  <body>"]
    for s in feeds.sources:
        attrs = {"text": s.name, "title": s.name, "type": "rss" if s.type == "feed" else "link",
                 ("xmlUrl" if s.type == "feed" else "htmlUrl"): s.url, "borderwatchId": s.id}
        lines.append("    <outline " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + "/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "source"


def import_opml(data: bytes, existing: FeedsConfig | None) -> list[Source]:
    """Feeds in an OPML file that are not in ``existing`` (by URL), with fresh unique ids."""
    root = ET.fromstring(data)
    known_urls = {s.url for s in existing.sources} if existing else set()
    known_ids = {s.id for s in existing.sources} if existing else set()
    new = []
    for el in root.iter("outline"):
        url = el.get("xmlUrl")
        if not url or url in known_urls:
            continue
        name = el.get("title") or el.get("text") or url
        sid = el.get("borderwatchId") or slug(name)
        base, n = sid, 2
        while sid in known_ids:
            sid, n = f"{base}-{n}", n + 1
        known_ids.add(sid)
        known_urls.add(url)
        new.append(Source(id=sid, url=url, name=name))
    return new


def sources_yaml(sources: list[Source]) -> str:
    """YAML lines to append under ``sources:`` (appending keeps the file's comments)."""
    import yaml

    out = []
    for s in sources:
        out.append(f"  - id: {s.id}\n    name: {yaml.safe_dump(s.name, allow_unicode=True).strip().removesuffix('...').strip()}\n"
                   f"    url: {s.url}\n    type: feed\n")
    return "".join(out)
