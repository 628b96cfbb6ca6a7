"""`rules test --explain`: for every rule, why it matched or why not.

The verdict is the matcher's own (``match_article``); the explanation looks at each of the
rule's groups on the same folded text: which terms occur, which group is missing, which
exclusion fired, how far apart the groups are for ``near``, and, for a missing group, the
words in the text that come nearest to one of its terms (a missing ``*``, a plural, a typo).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field

from ..config import Rule, Term
from ..fold import Folded, term_words
from .compile import NONE_GROUP, Matcher
from .match import _Occ, _regex_occurrences, _resolve, article_text, match_article

MAX_OCC = 50  # occurrences looked at per term
NEAREST_MIN = 0.75  # similarity below this is not worth showing


@dataclass
class GroupReport:
    name: str  # "any", "all[1]", "none"
    terms: list[str]
    found: list[str] = field(default_factory=list)


@dataclass
class Explanation:
    rule: str
    matched: bool
    reason: str
    groups: list[GroupReport]
    terms: list[str] = field(default_factory=list)
    snippet: str | None = None
    nearest: dict | None = None  # {"term", "text", "similarity"} for the first missing group

    def as_dict(self) -> dict:
        return asdict(self)


def _group_names(rule: Rule) -> list[str]:
    names = ["any"] if rule.any else []
    names += [f"all[{i}]" for i in range(1, len(rule.all) + 1)]
    return names


def _occurrences(matcher: Matcher, ri: int, gi: int, terms: tuple[Term, ...], folded: Folded) -> list[_Occ]:
    occs: list[_Occ] = []
    joined = folded.joined
    for term in terms:
        if term.regex:
            ref = next((r for r in matcher.regexes.get(ri, []) if r.group == gi and r.label == term.label), None)
            if ref is not None:
                occs += _regex_occurrences([ref], folded)
            continue
        keys: dict = {}
        matcher._add(ri, gi, term, keys)  # the key exactly as the matcher builds it
        for key, refs in keys.items():
            for ref in refs:
                pos, n = joined.find(key), 0
                while pos != -1 and n < MAX_OCC:
                    occ = _resolve(pos + 1, pos + len(key) - 1, ref, folded)
                    if occ is not None:
                        occs.append(occ)
                    n += 1
                    pos = joined.find(key, pos + 1)
    return occs


def _nearest(terms: tuple[Term, ...], words: list[str]) -> dict | None:
    """The phrase of the text most similar to one of these terms (same number of words)."""
    best = None
    for term in terms:
        if term.regex:
            continue
        tw = term_words(term.text.rstrip("*"))
        if not tw:
            continue
        target = " ".join(tw)
        n = len(tw)
        seen = set()
        for i in range(0, max(0, len(words) - n + 1)):
            phrase = " ".join(words[i:i + n])
            if phrase in seen:
                continue
            seen.add(phrase)
            ratio = difflib.SequenceMatcher(None, target, phrase).ratio()
            if ratio >= NEAREST_MIN and (best is None or ratio > best["similarity"]):
                best = {"term": term.label, "text": phrase, "similarity": round(ratio, 2)}
    return best


def _closest_span(by_group: list[list[_Occ]]) -> int:
    """Smallest word distance that contains one occurrence of every group."""
    events = sorted((o.word, g) for g, occs in enumerate(by_group) for o in occs)
    need, counts, left, best = len(by_group), {}, 0, None
    for word, group in events:
        counts[group] = counts.get(group, 0) + 1
        while len(counts) == need:
            span = word - events[left][0]
            best = span if best is None else min(best, span)
            lg = events[left][1]
            counts[lg] -= 1
            if not counts[lg]:
                del counts[lg]
            left += 1
    return best if best is not None else -1


def explain(matcher: Matcher, title: str, text: str) -> list[Explanation]:
    folded = Folded.of(article_text(title, text))
    hits = {h.rule: h for h in match_article(matcher, title, text, folded)}
    words = folded.words
    out = []
    for ri, rule in enumerate(matcher.rules):
        groups = rule.groups()
        names = _group_names(rule)
        by_group = [_occurrences(matcher, ri, gi, terms, folded) for gi, terms in enumerate(groups)]
        excl = _occurrences(matcher, ri, NONE_GROUP, rule.none, folded) if rule.none else []
        reports = [GroupReport(name, [t.label for t in terms], list(dict.fromkeys(o.label for o in occs)))
                   for name, terms, occs in zip(names, groups, by_group)]
        if rule.none:
            reports.append(GroupReport("none", [t.label for t in rule.none], list(dict.fromkeys(o.label for o in excl))))
        hit = hits.get(rule.id)
        if hit is not None:
            why = "matched: " + "; ".join(f"{r.name} found {', '.join(r.found)}" for r in reports if r.name != "none")
            if rule.near:
                why += f" (within {rule.near} words)"
            out.append(Explanation(rule.id, True, why, reports, hit.terms, hit.highlighted))
            continue
        missing = [(name, terms) for name, terms, occs in zip(names, groups, by_group) if not occs]
        nearest = None
        if excl:
            labels = ", ".join(dict.fromkeys(o.label for o in excl))
            why = f"exclusion fired: {labels} (none:)"
        elif missing:
            name, terms = missing[0]
            shown = ", ".join(t.label for t in terms[:8]) + (", ..." if len(terms) > 8 else "")
            why = f"group {name} missing: none of {shown} occurs"
            if len(missing) > 1:
                why += f" (also missing: {', '.join(n for n, _ in missing[1:])})"
            nearest = _nearest(terms, words)
            if nearest:
                why += f"; nearest: {nearest['text']!r} for {nearest['term']!r} ({nearest['similarity']:.0%} alike)"
        elif rule.near:
            span = _closest_span(by_group)
            why = f"every group occurs, but {span} words apart at the closest (near: {rule.near})"
        else:
            why = "terms occur only in forms the rule does not accept (case-sensitive terms differ in case)"
        out.append(Explanation(rule.id, False, why, reports, nearest=nearest))
    return out
