"""Render a digest: Jinja2 templates (HTML autoescaped, plain text) and the MIME message.

Everything from feeds is data: HTML is escaped by autoescaping, links that are not
http(s) are dropped, and header values lose control characters (CR, LF and their
encoded forms) and are length-capped before they reach the email package.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, format_datetime
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ..models import Snippet
from ..timestamps import parse_iso
from .select import Group, zone

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[qQbB]\?[^?]*\?=")
HEADER_MAX = 200

_env = Environment(loader=PackageLoader("pipeline", "digest/templates"),
                   autoescape=select_autoescape(["html", "j2.html"], default=False),
                   trim_blocks=True, lstrip_blocks=True)


def header_safe(value: str, limit: int = HEADER_MAX) -> str:
    """A header value with no control characters or pre-encoded words, capped in length."""
    value = _ENCODED_WORD.sub(" ", value or "")
    value = _CONTROL.sub(" ", value)
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def safe_link(url: str | None) -> str | None:
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or _CONTROL.search(url):
        return None
    return url


def highlight_html(snippet: str, marks: list) -> Markup:
    return Markup(Snippet.of(snippet, marks).marked('<mark style="background:#fff1a8;color:inherit;padding:0 1px;">',
                                                    "</mark>", escape=lambda piece: str(escape(piece))))


def highlight_text(snippet: str, marks: list) -> str:
    return Snippet.of(snippet, marks).marked("*", "*")


def local_time(value: str | None, tz: str) -> str:
    if not value:
        return ""
    when = parse_iso(value).astimezone(zone(tz))
    return when.strftime("%Y-%m-%d %H:%M %Z")


def subject_line(groups: list[Group]) -> str:
    total = sum(len(g.items) for g in groups)
    parts = ", ".join(f"{g.rule} ({len(g.items)})" for g in groups)
    return header_safe(f"borderwatch: {total} new {'story' if total == 1 else 'stories'} — {parts}")


@dataclass
class Rendered:
    subject: str
    html: str
    text: str


def render(groups: list[Group], sub: dict, now: dt.datetime, unsubscribe: str) -> Rendered:
    context = {
        "groups": [{"rule": g.rule, "title": g.title, "items": [_item(i, sub) for i in g.items]} for g in groups],
        "total": sum(len(g.items) for g in groups),
        "subscriber": sub["email"],
        "generated": local_time(now.strftime("%Y-%m-%dT%H:%M:%SZ"), sub["tz"]),
        "unsubscribe": unsubscribe,
        # say only what works: a web link when `serve` is public, else a reply a person acts on
        "unsubscribe_link": next((part.strip(" <>") for part in unsubscribe.split(",")
                                  if part.strip().startswith("<http")), None),
        "token": sub.get("token", ""),
    }
    return Rendered(subject_line(groups),
                    _env.get_template("digest.html").render(**context),
                    _env.get_template("digest.txt").render(**context))


def _item(item, sub: dict) -> dict:
    return {
        "title": item.title or "(untitled)", "url": safe_link(item.url), "source": item.source,
        "published": local_time(item.published, sub["tz"]),
        "snippet_html": highlight_html(item.snippet or "", item.marks),
        "snippet_text": highlight_text(item.snippet or "", item.marks),
        "also_in": item.also_in, "other_rules": item.other_rules, "terms": item.terms,
    }


def build_message(rendered: Rendered, to: str, sender: str, message_id: str, unsubscribe: str,
                  now: dt.datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = header_safe(rendered.subject)
    msg["From"] = header_safe(sender)
    msg["To"] = header_safe(to)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["List-Unsubscribe"] = unsubscribe
    if unsubscribe.startswith("<https://"):  # RFC 8058 one-click needs an https link to POST to
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def unsubscribe_header(sender: str, token: str, base_url: str | None) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    links = []
    if base_url and safe_link(base_url):
        links.append(f"<{unsubscribe_url(base_url, token)}>")
    links.append(f"<mailto:{address}?subject={quote('unsubscribe ' + token)}>")
    return ", ".join(links)


def unsubscribe_url(base_url: str, token: str) -> str:
    """The `serve` page that unsubscribes this token (GET: confirm button; POST: RFC 8058 one-click)."""
    return f"{base_url.rstrip('/')}/unsubscribe/{quote(token, safe='')}"


def sender_address(value: str | None) -> str:
    return header_safe(value or formataddr(("borderwatch", "borderwatch@localhost")))
