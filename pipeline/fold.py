"""Text folding: case, accents and punctuation, done once per article.

``Cártel de Sinaloa``, ``CARTEL DE SINALOA`` and ``cartel-de  sinaloa`` all fold to
the word sequence ``cartel de sinaloa``. Matching (pipeline.rules) and near-duplicate
detection (pipeline.dedup) both work on :class:`Folded`, so an article is folded once.

Speed: ASCII text only needs ``str.lower``. Other text has each non-ASCII character
replaced through a per-character cache (NFKD, combining marks dropped, casefold),
which costs one C-level regex scan plus one dict lookup per non-ASCII character.
"""

from __future__ import annotations

import bisect
from itertools import accumulate
import re
import unicodedata
from dataclasses import dataclass, field

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_SEP = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W_]+")
_CHAR_CACHE: dict[str, str] = {}
# ASCII fast path for separators: every byte that is not [a-z0-9] becomes a space (C-speed translate),
# then runs of spaces collapse; `[\W_]+` over the same text costs ~8x more.
_ASCII_SEP = bytes(c if (48 <= c <= 57 or 97 <= c <= 122) else 32 for c in range(256))
_SPACES = re.compile(rb"  +")


def _fold_char(ch: str) -> str:
    """Fold one non-ASCII character; punctuation and symbols become a space (so Latin text folds to ASCII)."""
    folded = _CHAR_CACHE.get(ch)
    if folded is None:
        decomposed = unicodedata.normalize("NFKD", ch)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        if folded and not any(c.isalnum() for c in folded):
            folded = " "
        _CHAR_CACHE[ch] = folded
    return folded


def _sub_char(m: re.Match) -> str:
    return _fold_char(m.group())


def fold(text: str) -> str:
    """Lowercase, strip accents, apply compatibility forms (ﬁ -> fi)."""
    if not text.isascii():
        text = _NON_ASCII.sub(_sub_char, text)
    return text.lower()


def strip_accents(text: str) -> str:
    """Remove accents but keep case (for case-sensitive terms)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def term_words(text: str) -> list[str]:
    """The folded words of a rule term or phrase."""
    return _WORD.findall(fold(text))



@dataclass
class Folded:
    """An article's text folded for matching.

    ``joined`` is the folded words separated by single spaces, with a space at each
    end, so a phrase key ``" high level security dialogue "`` found in it is
    necessarily on word boundaries.
    """

    original: str
    folded: str
    joined: str
    _translated: bytes | None = field(default=None, repr=False)  # ASCII path: separators as spaces
    _runs: list[tuple[int, int]] | None = field(default=None, repr=False)  # its collapsed space runs (lazy)
    _lead: int = field(default=0, repr=False)
    _spans: list[tuple[int, int]] | None = field(default=None, repr=False)
    _offsets: list[int] | None = field(default=None, repr=False)
    _space_at: list[int] | None = field(default=None, repr=False)  # positions of the spaces in ``joined`` (lazy)

    @classmethod
    def of(cls, text: str) -> "Folded":
        folded = fold(text)
        if folded.isascii():
            translated = folded.encode("ascii").translate(_ASCII_SEP)
            collapsed = _SPACES.sub(b" ", translated).decode("ascii")
            words = collapsed.strip()
            lead = 1 if collapsed.startswith(" ") else 0
            return cls(text, folded, " " + words + " ", _translated=translated, _lead=lead)
        return cls(text, folded, " " + _SEP.sub(" ", folded).strip() + " ")

    @property
    def words(self) -> list[str]:
        return self.joined.split()

    def word_index(self, pos: int) -> int:
        """Index of the word at position ``pos`` of ``joined`` (a bisect over the space positions,
        found once: counting spaces per call made many hits in a long text quadratic)."""
        if self._space_at is None:
            # the spaces' positions from the words' lengths, in C (a finditer loop over every space cost
            # as much as the automaton's scan); ``joined`` has single spaces, one at each end
            self._space_at = list(accumulate(map((1).__add__, map(len, self.joined.split(" "))), initial=-1))[1:-1]
        return bisect.bisect_right(self._space_at, pos) - 1

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Span in ``original`` of ``joined[start:end]`` (which starts and ends on word boundaries)."""
        if self._translated is not None:
            return self._to_original(self._ascii_pos(start)), self._to_original(self._ascii_pos(end - 1) + 1)
        if self._spans is None:
            self._spans = [m.span() for m in _WORD.finditer(self.folded)]
        if not self._spans:
            return (0, 0)
        first = min(self.word_index(start), len(self._spans) - 1)
        last = min(max(self.word_index(end - 1), first), len(self._spans) - 1)
        return self._to_original(self._spans[first][0]), self._to_original(self._spans[last][1])

    def _ascii_pos(self, pos: int) -> int:
        """Position in ``joined`` -> position in ``folded`` (ASCII path: undo the collapsed runs)."""
        if self._runs is None:
            self._runs = _space_runs(self._translated)
        collapsed = pos - 1 + self._lead
        i = bisect.bisect_left(self._runs, (collapsed + 1, -1)) - 1
        return collapsed + (self._runs[i][1] if i >= 0 else 0)

    def _to_original(self, pos: int) -> int:
        """Map an offset of ``folded`` back to ``original`` (identity unless folding changed lengths)."""
        if len(self.folded) == len(self.original):
            return pos
        if self._offsets is None:
            self._offsets = fold_offsets(self.original)
        return self._offsets[min(pos, len(self._offsets) - 1)]


def fold_offsets(original: str) -> list[int]:
    """For each character of ``fold(original)``, the offset in ``original`` it came from (and, last,
    ``len(original)``). ASCII characters fold to one character each, so only the others are folded
    one by one (folding every character in Python made each article with hits cost a millisecond)."""
    offsets: list[int] = []
    done = 0
    for m in _NON_ASCII.finditer(original):
        i = m.start()
        offsets.extend(range(done, i))
        offsets.extend([i] * len(fold(m.group())))
        done = i + 1
    offsets.extend(range(done, len(original)))
    offsets.append(len(original))
    return offsets


def _space_runs(translated: bytes) -> list[tuple[int, int]]:
    """(position after collapsing, characters removed so far) for each run of 2+ spaces."""
    runs, extra = [], 0
    for start, end in [m.span() for m in _SPACES.finditer(translated)]:
        runs.append((start - extra, extra + end - start - 1))
        extra += end - start - 1
    return runs
