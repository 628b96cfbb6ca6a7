"""Typed records that cross module boundaries: what the Store returns and the library face hands out.

Stage records of the ingest path (``store.PollOutcome``, ``store.NewArticle``, ``parse.Entry``,
``rules.Hit``) stay with their owners; these are the records a caller of ``pipeline.open()`` sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_TITLE = 1_000  # characters of a title kept, parsed and matched
MAX_TEXT = 200_000  # characters of an article's text kept, parsed and matched


@dataclass(frozen=True)
class Snippet:
    """A short excerpt with the character spans the rule matched. The one highlighter:
    plain text (``marked``), HTML and the terminal all render it through ``spans``."""

    text: str
    marks: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, text: str | None, marks) -> "Snippet":
        return cls(text or "", tuple((int(s), int(e)) for s, e in marks or ()))

    def spans(self) -> Iterator[tuple[str, bool]]:
        """The text as (piece, marked) runs; overlapping or out-of-range marks are skipped."""
        pos = 0
        for start, end in sorted(self.marks, key=lambda m: (m[0], -m[1])):  # the longer of two at one start
            if start < pos or end > len(self.text) or start >= end:
                continue
            if start > pos:
                yield self.text[pos:start], False
            yield self.text[start:end], True
            pos = end
        if pos < len(self.text):
            yield self.text[pos:], False

    def marked(self, before: str = "**", after: str = "**", escape: Callable[[str], str] = str) -> str:
        """The text with each marked span wrapped in ``before``/``after`` (pieces passed through ``escape``)."""
        return "".join(f"{before}{escape(piece)}{after}" if hit else escape(piece) for piece, hit in self.spans())

    def __str__(self) -> str:
        return self.marked()


@dataclass(frozen=True)
class HitRow:
    """One stored article with hits, as `hits` lists it (newest published first)."""

    article: int
    url: str
    title: str
    source: str
    source_name: str | None
    published: str | None
    fetched: str | None
    rules: list[str]
    snippet: Snippet
    story: int | None
    rule_versions: dict | None = None  # rule id -> the version of the rule that made the hit
    rules_modified: dict | None = None  # rule id -> keywords.yaml's modification time when the hit was made
    language: str | None = None  # ISO 639-1 code of the article's language

    def as_dict(self) -> dict:
        """The JSON shape of `borderwatch hits --json` (snippet with **marks**)."""
        return {"url": self.url, "title": self.title, "source": self.source, "published": self.published,
                "fetched": self.fetched, "rules": self.rules, "snippet": self.snippet.marked(), "story": self.story,
                "language": self.language, "rule_versions": self.rule_versions, "rules_modified": self.rules_modified}


@dataclass(frozen=True)
class SourceState:
    """A source's configuration and poll state, as `status` shows it."""

    id: str
    name: str
    url: str | None
    enabled: bool
    last_poll: str | None = None
    last_success: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    items_seen: int = 0
    next_poll: str | None = None
    problem: str | None = None  # failing | selector | silent (None: healthy)
    detail: str | None = None  # what the problem is, in words
    silent_since: str | None = None
    last_new_item: str | None = None
    backlog: int = 0  # items and article links a poll did not finish, waiting for the next polls
    gave_up: int = 0  # article pages given up after repeated failures

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Subscriber:
    email: str
    rules: list[str] | None = None
    tags: list[str] | None = None
    cadence: str = "daily"
    hour: int = 7
    weekday: int = 0  # 0 = Monday
    tz: str = "UTC"
    created: str | None = None
    token: str = field(default="", repr=False)

    @classmethod
    def from_row(cls, r: dict) -> "Subscriber":
        return cls(r["email"], r["rules"], r["tags"], r["cadence"], r["hour"], r["weekday"], r["tz"], r["created"],
                   r["token"])

    @property
    def follows(self) -> str:
        """'all rules', or the rule ids and tag:NAME entries followed."""
        return ", ".join((self.rules or []) + [f"tag:{t}" for t in self.tags or []]) or "all rules"

    def as_dict(self) -> dict:
        return {"email": self.email, "rules": self.rules, "tags": self.tags, "cadence": self.cadence, "hour": self.hour,
                "weekday": self.weekday, "tz": self.tz, "created": self.created}


@dataclass(frozen=True)
class Delivery:
    """One digest owed to one subscriber for one period (the outbox row, without the message bytes)."""

    id: int | None
    subscriber: str
    period: str
    status: str  # pending | sending | committing | sent | failed | unknown
    attempts: int = 0
    subject: str | None = None
    hit_count: int | None = None
    created: str | None = None
    next_attempt: str | None = None
    sent: str | None = None
    last_error: str | None = None

    @classmethod
    def from_row(cls, r: dict) -> "Delivery":
        return cls(r.get("id"), r["subscriber"], r["period"], r["status"], r.get("attempts") or 0, r.get("subject"),
                   r.get("hit_count"), r.get("created"), r.get("next_attempt"), r.get("sent"), r.get("last_error"))

    def as_dict(self) -> dict:
        return asdict(self)
