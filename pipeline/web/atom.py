"""Atom 1.0 (RFC 4287) documents of the latest hits: one entry per story, "also in" in the content."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

from markupsafe import escape

from ..digest.render import safe_link

ATOM = "http://www.w3.org/2005/Atom"
# Characters XML 1.0 does not allow, even escaped: feed content is data and may carry them.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value) -> str:
    return _NOT_XML.sub("", str(value or ""))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: _text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = _text(text)
    return el


def story_id(row: dict) -> str:
    """A stable entry id for a story (the same whichever of its copies heads the entry)."""
    key = f"borderwatch:story:{row['story']}" if row.get("story") is not None else f"borderwatch:article:{row['url']}"
    return uuid.uuid5(uuid.NAMESPACE_URL, key).urn


def content_html(row: dict, rule_titles: dict[str, str]) -> str:
    parts = []
    if row.get("snippet"):
        parts.append(f"<p>{escape(_text(row['snippet']))}</p>")
    rules = ", ".join(escape(rule_titles.get(r, r)) for r in row.get("rules") or [])
    if rules:
        parts.append(f"<p>Rules: {rules}</p>")
    parts.append(f"<p>Source: {escape(_text(row.get('source_name') or row.get('source')))}</p>")
    if row.get("also_in"):
        parts.append(f"<p>Also in: {', '.join(escape(_text(n)) for n in row['also_in'])}</p>")
    return "".join(parts)


def feed(title: str, self_url: str, alternate: str | None, rows: list[dict], rule_titles: dict[str, str],
         generated: str) -> bytes:
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    _sub(root, "id", self_url)
    _sub(root, "title", title)
    _sub(root, "updated", max((r.get("fetched") or r.get("published") or generated for r in rows), default=generated))
    _sub(root, "link", rel="self", href=self_url, type="application/atom+xml")
    if alternate:
        _sub(root, "link", rel="alternate", href=alternate, type="text/html")
    author = _sub(root, "author")
    _sub(author, "name", "borderwatch")
    _sub(root, "generator", "borderwatch")
    for r in rows:
        entry = _sub(root, "entry")
        _sub(entry, "id", story_id(r))
        _sub(entry, "title", r.get("title") or "(untitled)")
        _sub(entry, "updated", r.get("fetched") or r.get("published") or generated)
        if r.get("published"):
            _sub(entry, "published", r["published"])
        link = safe_link(r.get("url"))
        if link:
            _sub(entry, "link", rel="alternate", href=link, type="text/html")
        by = _sub(entry, "author")
        _sub(by, "name", r.get("source_name") or r.get("source") or "unknown source")
        for rule in r.get("rules") or []:
            _sub(entry, "category", term=rule, label=rule_titles.get(rule, rule))
        _sub(entry, "content", content_html(r, rule_titles), type="html")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
