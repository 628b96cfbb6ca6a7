"""Run rules over stored articles and compare with the stored hits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .. import store
from .compile import Matcher
from .match import Hit


@dataclass
class Backtest:
    articles: int = 0
    added: list[tuple[int, Hit]] = field(default_factory=list)
    removed: list[tuple[int, str]] = field(default_factory=list)
    kept: int = 0
    titles: dict[int, dict] = field(default_factory=dict)  # article id -> {title, url, source} of added/removed
    applied: int = 0  # hits stored as backfilled (with apply=True)

    def per_rule(self) -> dict[str, dict[str, int]]:
        add = Counter(h.rule for _, h in self.added)
        rem = Counter(rule for _, rule in self.removed)
        return {rule: {"added": add[rule], "removed": rem[rule]} for rule in sorted(set(add) | set(rem))}

    def title(self, article: int) -> str:
        return (self.titles.get(article) or {}).get("title") or ""

    def as_dict(self) -> dict:
        """The JSON shape of `borderwatch rules backtest --json`."""
        def art(a: int) -> dict:
            t = self.titles.get(a) or {}
            return {"article": a, "title": t.get("title"), "url": t.get("url")}

        return {"articles": self.articles, "kept": self.kept, "per_rule": self.per_rule(),
                "added": [{**art(a), "rule": h.rule, "terms": h.terms} for a, h in self.added],
                "removed": [{**art(a), "rule": r} for a, r in self.removed],
                "applied": self.applied}


def backtest(db, matcher: Matcher, since: str | None = None, apply: bool = False) -> Backtest:
    """Match stored articles (published since ``since``) and compare with the stored hits; with
    ``apply``, store the hits that would be added, marked as backfilled (never emailed)."""
    st = store.as_store(db)
    stored = st.stored_hits(since)
    result = Backtest()
    found: set[tuple[int, str]] = set()
    for row in st.articles_for_backtest(since):
        result.articles += 1
        for hit in matcher.match(row["title"] or "", row["text"] or ""):
            key = (row["id"], hit.rule)
            found.add(key)
            if key in stored:
                result.kept += 1
            else:
                result.added.append((row["id"], hit))
    result.removed = sorted(stored - found)
    result.titles = st.article_titles([a for a, _ in result.added] + [a for a, _ in result.removed])
    if apply:
        result.applied = st.backfill_hits(result.added)
    return result
