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

    def per_rule(self) -> dict[str, dict[str, int]]:
        add = Counter(h.rule for _, h in self.added)
        rem = Counter(rule for _, rule in self.removed)
        return {rule: {"added": add[rule], "removed": rem[rule]} for rule in sorted(set(add) | set(rem))}


def backtest(db, matcher: Matcher, since: str | None = None) -> Backtest:
    stored = store.stored_hits(db, since)
    result = Backtest()
    found: set[tuple[int, str]] = set()
    for row in store.articles_for_backtest(db, since):
        result.articles += 1
        for hit in matcher.match(row["title"] or "", row["text"] or ""):
            key = (row["id"], hit.rule)
            found.add(key)
            if key in stored:
                result.kept += 1
            else:
                result.added.append((row["id"], hit))
    result.removed = sorted(stored - found)
    return result
