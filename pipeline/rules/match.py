"""Match one article against a compiled Matcher: Article text -> [Hit].

``matcher`` arguments are ``compile.Matcher`` objects; this module does not import ``compile``
(``compile`` imports it), so the two never import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..fold import Folded, strip_accents
from ..models import MAX_TEXT, MAX_TITLE, Snippet

SNIPPET_CHARS = 200
_WS = re.compile(r"\s+")


NONE_GROUP = -1


@dataclass(frozen=True)
class TermRef:
    rule: int  # index into Matcher.rules
    group: int  # 0.. positive groups, NONE_GROUP for exclusions
    label: str  # as written by the operator
    wildcard: bool
    cased: str | None  # accent-stripped words with case, for case: true terms


@dataclass(frozen=True)
class RegexRef:
    group: int
    label: str
    pattern: object  # re2 compiled pattern


@dataclass
class Hit:
    rule: str
    terms: list[str]
    snippet: str
    marks: list[tuple[int, int]] = field(default_factory=list)
    version: str = ""  # short hash of the rule's definition (Rule.version) when it matched
    rules_mtime: str = ""  # keywords file's modification time then
    suggested: bool = False  # found by the semantic layer, not by the keyword rule
    similarity: float | None = None  # semantic similarity to the rule's `about`, when the layer ran

    @property
    def highlighted(self) -> str:
        return Snippet.of(self.snippet, self.marks).marked()


@dataclass
class _Occ:
    group: int
    label: str
    start: int  # in the original text
    end: int
    word: int  # index of the first word, for `near`


def article_text(title: str, text: str) -> str:
    """The text rules see: capped title and body."""
    return (title or "")[:MAX_TITLE] + "\n\n" + (text or "")[:MAX_TEXT]


def match_article(matcher, title: str, text: str, folded: Folded | None = None) -> list[Hit]:
    if folded is None:
        folded = Folded.of(article_text(title, text))
    occ: dict[int, list[int]] = {}  # key id -> end positions in joined
    if not matcher.empty:
        for kid, _start, stop in matcher.automaton.find_matches_as_indexes(folded.joined, overlapping=True):
            end = stop - 1  # last character of the key
            ends = occ.get(kid)
            if ends is None:
                occ[kid] = [end]
            else:
                ends.append(end)
    candidates = set(matcher.regexes)
    primary = matcher.primary
    for kid in occ:
        candidates.update(primary[kid])
    if not candidates:
        return []
    found: dict[int, list[tuple[int, int, TermRef]]] = {ri: [] for ri in candidates}
    key_len, key_refs = matcher.key_len, matcher.key_refs
    for kid, ends in occ.items():
        length = key_len[kid]
        for ref in key_refs[kid]:
            raw = found[ref.rule]
            raw.extend((end - length + 2, end, ref) for end in ends)  # start: first char of the first word
    hits = []
    for ri in sorted(candidates):
        raw = found[ri]
        if not _add_secondary(matcher, ri, raw, folded.joined):
            continue
        raw.sort(key=lambda x: x[0])
        hit = _evaluate(matcher, ri, raw, folded)
        if hit:
            hits.append(hit)
    return hits


def _add_secondary(matcher, ri: int, raw: list, joined: str) -> bool:
    """Find a candidate rule's context and exclusion terms; False as soon as the rule cannot match."""
    rule = matcher.rules[ri]
    limit = MAX_PER_TERM if rule.near is None else 1 << 30
    present = {ref.group for _, _, ref in raw}
    for key, ref in matcher.secondary.get(ri, ()):
        pos, n = joined.find(key), 0
        while pos != -1 and n < limit:
            raw.append((pos + 1, pos + len(key) - 1, ref))
            present.add(ref.group)
            n += 1
            pos = joined.find(key, pos + 1)
        if ref.group == -1 and n and ref.cased is None:
            return False  # an exclusion occurred
    if ri in matcher.regexes:
        return True
    return all(g in present for g in range(matcher.group_counts[ri]))


def _evaluate(matcher, ri: int, raw: list, folded: Folded) -> Hit | None:
    """Decide a candidate rule (``_add_secondary`` has already ruled out missing groups)."""
    rule = matcher.rules[ri]
    ngroups = matcher.group_counts[ri]
    regexes = matcher.regexes.get(ri, [])
    if rule.near is None:
        raw = _first_occurrences(raw)
    occs = [o for o in (_resolve(s, e, ref, folded) for s, e, ref in raw) if o is not None]
    occs += _regex_occurrences(regexes, folded)
    if any(o.group == -1 for o in occs):
        return None
    by_group: dict[int, list[_Occ]] = {}
    for o in occs:
        by_group.setdefault(o.group, []).append(o)
    if any(g not in by_group for g in range(ngroups)):
        return None
    if rule.near is not None and not _within(by_group, ngroups, rule.near):
        return None
    positive = sorted(occs, key=lambda o: (o.start, -o.end))  # at one start, the longest term (a name over a word in it)
    terms = list(dict.fromkeys(o.label for o in positive))
    anchor = min(by_group[0], key=lambda o: o.start)  # the rule's main terms, not its context words
    snippet, marks = _snippet(folded.original, anchor, positive)
    return Hit(rule.id, terms, snippet, marks, matcher.versions[ri], matcher.ruleset.mtime)


MAX_PER_TERM = 8  # without `near`, later occurrences of a term change neither the verdict nor the snippet


def _first_occurrences(raw: list) -> list:
    seen: dict[object, int] = {}
    kept = []
    for item in raw:
        n = seen.get(item[2], 0)
        if n < MAX_PER_TERM:
            seen[item[2]] = n + 1
            kept.append(item)
    return kept


def _resolve(start: int, end: int, ref: TermRef, folded: Folded) -> _Occ | None:
    """Turn an automaton match (positions in ``joined``) into an occurrence in the original."""
    joined = folded.joined
    stop = joined.find(" ", end) if ref.wildcard else end  # a wildcard match runs to the end of its word
    o_start, o_end = folded.original_span(start, stop)
    if ref.cased is not None:
        words = re.findall(r"[^\W_]+", strip_accents(folded.original[o_start:o_end]))
        if " ".join(words) != ref.cased:
            return None
    return _Occ(ref.group, ref.label, o_start, o_end, folded.word_index(start))


def _regex_occurrences(regexes: list, folded: Folded) -> list[_Occ]:
    occs = []
    for rx in regexes:
        m = rx.pattern.search(folded.original)
        if m is None or m.end() == m.start():
            continue
        occs.append(_Occ(rx.group, rx.label, m.start(), m.end(), _word_at(folded, m.start())))
    return occs


def _word_at(folded: Folded, original_pos: int) -> int:
    """Word index for an offset in the original text (used by regex matches)."""
    prefix = folded.original[:original_pos]
    return len(re.findall(r"[^\W_]+", prefix))


def _within(by_group: dict[int, list[_Occ]], ngroups: int, near: int) -> bool:
    """Is there one occurrence per group with all of them within ``near`` words?"""
    events = sorted((o.word, g) for g in range(ngroups) for o in by_group[g])
    counts: dict[int, int] = {}
    left = 0
    for right, (word, group) in enumerate(events):
        counts[group] = counts.get(group, 0) + 1
        while len(counts) == ngroups:
            if word - events[left][0] <= near:
                return True
            lg = events[left][1]
            counts[lg] -= 1
            if not counts[lg]:
                del counts[lg]
            left += 1
    return False


def _snippet(original: str, first: _Occ, occs: list[_Occ]) -> tuple[str, list[tuple[int, int]]]:
    """About SNIPPET_CHARS of text around ``first``, whitespace collapsed, every match in it marked."""
    start = max(0, first.start - SNIPPET_CHARS // 3)
    end = min(len(original), max(start + SNIPPET_CHARS, first.end))
    # widen to word boundaries
    while start > 0 and not original[start - 1].isspace() and first.start - start < SNIPPET_CHARS // 2:
        start -= 1
    while end < len(original) and not original[end].isspace() and end - first.end < SNIPPET_CHARS:
        end += 1
    pieces: list[tuple[str, bool]] = []
    pos = start
    for o in occs:
        if o.start < pos or o.end > end:
            continue
        pieces += [(original[pos:o.start], False), (original[o.start:o.end], True)]
        pos = o.end
    pieces.append((original[pos:end], False))
    text, marks = "…" if start > 0 else "", []
    for piece, marked in pieces:
        piece = _WS.sub(" ", piece)
        if not text and not marked:
            piece = piece.lstrip()
        if marked:
            marks.append((len(text), len(text) + len(piece)))
        text += piece
    text = text.rstrip()
    if end < len(original):
        text += "…"
    return text, marks
