"""Score rules against a labelled set of news items (title + lead, expected rule ids).

Per rule: recall and precision over (item, rule) pairs. Per article: an alert is a false
alert when any rule fires on an item labelled with none (no subscriber wanted it); article
recall is the share of on-topic items on which at least one rule fired. ``heldout`` decides
the fixed split from the item id alone, so it can be chosen before any tuning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import yaml

HELDOUT_BELOW = 86  # first byte of sha1(id) < 86: about one item in three is held out


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    lead: str
    expect: frozenset[str]
    why: str = ""

    @property
    def heldout(self) -> bool:
        return hashlib.sha1(self.id.encode()).digest()[0] < HELDOUT_BELOW


def load_items(folder: str | Path) -> list[Item]:
    """Every ``*.yaml`` list in ``folder`` (keys id, t, l, e, why), ids unique."""
    items: list[Item] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            items.append(Item(str(raw["id"]), str(raw["t"]), str(raw["l"]), frozenset(raw.get("e") or ()), str(raw.get("why") or "")))
    ids = [i.id for i in items]
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate item ids in {folder}: {', '.join(dup)}")
    return items


@dataclass
class Score:
    rules: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> tp, fp, fn
    articles: dict[str, int] = field(default_factory=lambda: {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
    wrong: list[tuple[Item, set[str]]] = field(default_factory=list)

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    def recall(self, rule: str | None = None) -> float:
        """Share of labelled (item, rule) pairs that fired; one rule or all rules."""
        rows = [self.rules[rule]] if rule else list(self.rules.values())
        tp, fn = sum(r["tp"] for r in rows), sum(r["fn"] for r in rows)
        return self._ratio(tp, tp + fn)

    def precision(self, rule: str | None = None) -> float:
        rows = [self.rules[rule]] if rule else list(self.rules.values())
        tp, fp = sum(r["tp"] for r in rows), sum(r["fp"] for r in rows)
        return self._ratio(tp, tp + fp)

    @property
    def article_precision(self) -> float:
        a = self.articles
        return self._ratio(a["tp"], a["tp"] + a["fp"])

    @property
    def article_recall(self) -> float:
        a = self.articles
        return self._ratio(a["tp"], a["tp"] + a["fn"])


def score(items: Iterable[Item], predict: Callable[[Item], set[str]], rule_ids: Iterable[str]) -> Score:
    s = Score(rules={r: {"tp": 0, "fp": 0, "fn": 0} for r in rule_ids})
    for item in items:
        got = set(predict(item))
        for rule in got | item.expect:
            row = s.rules.setdefault(rule, {"tp": 0, "fp": 0, "fn": 0})
            if rule in got and rule in item.expect:
                row["tp"] += 1
            elif rule in got:
                row["fp"] += 1
            else:
                row["fn"] += 1
        key = ("tp" if got else "fn") if item.expect else ("fp" if got else "tn")
        s.articles[key] += 1
        if got != item.expect:
            s.wrong.append((item, got))
    return s


def keyword_predict(matcher) -> Callable[[Item], set[str]]:
    return lambda item: {h.rule for h in matcher.match(item.title, item.lead)}
