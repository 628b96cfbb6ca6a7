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
import re
import unicodedata
from dataclasses import dataclass, field

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_SEP = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W_]+")
_CHAR_CACHE: dict[str, str] = {}


def _fold_char(ch: str) -> str:
    folded = _CHAR_CACHE.get(ch)
    if folded is None:
        decomposed = unicodedata.normalize("NFKD", ch)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
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
    _starts: list[int] | None = field(default=None, repr=False)
    _spans: list[tuple[int, int]] | None = field(default=None, repr=False)
    _offsets: list[int] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, text: str) -> "Folded":
        folded = fold(text)
        return cls(text, folded, " " + _SEP.sub(" ", folded).strip() + " ")

    @property
    def words(self) -> list[str]:
        return self.joined.split()

    def word_index(self, pos: int) -> int:
        """Index of the word that starts at or contains position ``pos`` of ``joined``."""
        if self._starts is None:
            self._starts = [m.start() for m in _WORD.finditer(self.joined)]
        return max(0, bisect.bisect_right(self._starts, pos) - 1)

    def original_span(self, first_word: int, last_word: int) -> tuple[int, int]:
        """Character span in ``original`` covering words first..last (inclusive)."""
        if self._spans is None:
            self._spans = [m.span() for m in _WORD.finditer(self.folded)]
        if not self._spans:
            return (0, 0)
        first = min(first_word, len(self._spans) - 1)
        last = min(max(last_word, first), len(self._spans) - 1)
        start, end = self._spans[first][0], self._spans[last][1]
        return self._to_original(start), self._to_original(end)

    def _to_original(self, pos: int) -> int:
        """Map an offset of ``folded`` back to ``original`` (identity unless folding changed lengths)."""
        if len(self.folded) == len(self.original):
            return pos
        if self._offsets is None:
            offsets: list[int] = []
            for i, ch in enumerate(self.original):
                offsets.extend([i] * len(fold(ch)))
            offsets.append(len(self.original))
            self._offsets = offsets
        return self._offsets[min(pos, len(self._offsets) - 1)]
