"""Messages for chat and webhook channels (Apprise targets): one short message per new story for
`immediate` subscribers, a compact list for the other cadences, and source health alerts.

Messages are plain text, and are handed to Apprise as text: Apprise escapes them for each
service's own markup (Slack's ``<!channel>`` and ``<url|text>``, Markdown's ``*_[]()``, HTML),
so nothing in a feed's title or snippet can become a mention, a link or formatting. Here, text
from feeds also loses control and bidirectional-override characters and line breaks (a title
cannot forge extra lines), is capped in length, and only http(s) links are shown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .render import local_time, safe_link
from .select import Group, Item

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
TITLE_MAX = 250
SNIPPET_MAX = 300
LIST_MAX = 25  # stories listed in one compact message


def clean(text: str | None, limit: int) -> str:
    """One line of feed text: no control, zero-width or bidi-override characters, capped."""
    text = " ".join(_UNSAFE.sub(" ", text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ChatMessage:
    title: str
    body: str

    def encode(self) -> bytes:
        return json.dumps({"title": self.title, "body": self.body}, ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> "ChatMessage":
        obj = json.loads(data)
        return cls(obj["title"], obj["body"])


def _story_lines(item: Item, tz: str) -> list[str]:
    lines = [clean(item.title, TITLE_MAX) or "(untitled)"]
    link = safe_link(item.url)
    if link:
        lines.append(link)
    meta = [clean(item.source, 100)]
    if item.published:
        meta.append(local_time(item.published, tz))
    if item.also_in:
        meta.append("also in: " + ", ".join(clean(n, 100) for n in item.also_in))
    lines.append(" · ".join(m for m in meta if m))
    return lines


def story_message(item: Item, group: Group, sub: dict, unsubscribe: str | None) -> ChatMessage:
    """`immediate`: one new story."""
    lines = _story_lines(item, sub["tz"])
    snippet = clean(item.snippet, SNIPPET_MAX)
    if snippet:
        lines.append(f"“{snippet}”")
    rules = [group.rule] + [r for r in item.other_rules if r != group.rule]
    lines.append("Rules: " + ", ".join(rules) + (f" (matched: {', '.join(clean(t, 60) for t in item.terms[:6])})" if item.terms else ""))
    if unsubscribe:
        lines.append(f"Unsubscribe: {unsubscribe}")
    return ChatMessage(clean(f"borderwatch · {group.title}", TITLE_MAX), "\n".join(lines))


def list_message(groups: list[Group], sub: dict, unsubscribe: str | None) -> ChatMessage:
    """hourly / daily / weekly: a compact list grouped by rule."""
    total = sum(len(g.items) for g in groups)
    title = f"borderwatch: {total} new stor{'ies' if total != 1 else 'y'} — " + ", ".join(f"{g.rule} ({len(g.items)})" for g in groups)
    lines: list[str] = []
    shown = 0
    for g in groups:
        if shown >= LIST_MAX:
            break
        lines.append(f"{clean(g.title, 120)} ({g.rule})")
        for item in g.items:
            if shown >= LIST_MAX:
                break
            head, *rest = _story_lines(item, sub["tz"])
            lines.append(f"• {head}")
            lines += [f"  {r}" for r in rest]
            shown += 1
    if total > shown:
        lines.append(f"… and {total - shown} more (borderwatch hits --since 24h)")
    if unsubscribe:
        lines.append(f"Unsubscribe: {unsubscribe}")
    return ChatMessage(clean(title, TITLE_MAX), "\n".join(lines))
