"""Matcher benchmark: 10,000 synthetic 5 KB articles (English and Spanish, with accents)
against 10, 100, 1,000 and 10,000 rules, folding included, beside two baselines from the
same run:

  fold     NFKD + combining-mark removal (regex) + casefold of the same texts
  naive    one compiled regex per term, looped over the terms (timed on a sample)

Targets: at 1,000 rules the whole match costs <= 3x the fold baseline and is >= 100x
faster than the naive loop; 10,000 rules cost <= 1.5x what 100 rules cost.

    python bench/match.py [--articles 10000] [--rules 10,100,1000,10000]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import Rule, RuleSet, Term  # noqa: E402
from pipeline.rules import compile_rules  # noqa: E402

_COMBINING = re.compile(r"[\u0300-\u036f]")
STOP_EN = "the of and to in a is that for on with as was by at from it this be are have said".split()
STOP_ES = "el la de que y en los las del se por con para una su al lo como más pero sus le ya".split()
ACCENTED = "áéíóúñü"


def vocabulary(n: int = 20_000, seed: int = 3) -> list[str]:
    """Pseudo-words, a fifth of them with an accent, in Zipf rank order."""
    rnd = random.Random(seed)
    letters = "abcdefghijlmnoprstuvz"
    words = set()
    while len(words) < n:
        w = "".join(rnd.choice(letters) for _ in range(rnd.randint(3, 10)))
        if rnd.random() < 0.2:
            i = rnd.randrange(len(w))
            w = w[:i] + rnd.choice(ACCENTED) + w[i + 1:]
        words.add(w)
    return sorted(words)


VOCAB = vocabulary()
WEIGHTS = [1 / (rank + 10) for rank in range(len(VOCAB))]


def entities(n: int = 50_000, seed: int = 4) -> list[str]:
    """Names of people, groups and places: two capitalised pseudo-words."""
    rnd = random.Random(seed)
    return [f"{rnd.choice(VOCAB).capitalize()} {rnd.choice(VOCAB).capitalize()}" for _ in range(n)]


ENTITIES = entities()
RARE = [w + "x" for w in vocabulary(30_000, seed=5)]  # words outside VOCAB: an article has only a few


def make_articles(n: int, size: int = 5000, seed: int = 1) -> list[str]:
    """~5 KB articles: English- or Spanish-like stopwords, Zipf-distributed content words (a fifth
    accented), and a handful of named entities, each mentioned a few times."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        stop = STOP_ES if i % 2 else STOP_EN
        names = rnd.sample(ENTITIES, 5) + rnd.sample(RARE, 3)
        content = rnd.choices(VOCAB, WEIGHTS, k=size // 6)
        words, length = [], 0
        for w in content:
            if rnd.random() < 0.45:
                words.append(rnd.choice(stop))
            words.append(rnd.choice(names) if rnd.random() < 0.02 else w.capitalize() if rnd.random() < 0.05 else w)
            if rnd.random() < 0.08:
                words[-1] += rnd.choice([",", ".", ";", " —", ":"])
            length += len(words[-1]) + 1
            if length >= size:
                break
        out.append(" ".join(words) + ".")
    return out


def make_rules(n: int, seed: int = 2) -> RuleSet:
    """Rules of 3-5 terms, like an operator's: mostly names (some with a wildcard ending), some rare
    words; 30% with a context group, 10% with an exclusion."""
    rnd = random.Random(seed)
    rare = RARE

    def term() -> Term:
        r = rnd.random()
        if r < 0.75:
            return Term(rnd.choice(ENTITIES))
        if r < 0.85:
            name = rnd.choice(ENTITIES)
            return Term(name[: max(len(name.split()[0]) + 4, len(name) - 2)] + "*")
        return Term(rnd.choice(rare))

    rules = []
    for i in range(n):
        any_terms = tuple(term() for _ in range(rnd.randint(3, 5)))
        all_groups = ((tuple(Term(rnd.choice(VOCAB[:2000])) for _ in range(3)),) if rnd.random() < 0.3 else ())
        none = (Term(rnd.choice(rare)),) if rnd.random() < 0.1 else ()
        rules.append(Rule(f"r{i}", f"rule {i}", (), any_terms, all_groups, none))
    return RuleSet(tuple(rules), "bench", f"bench-{n}")


def baseline_fold(text: str) -> str:
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def naive_per_article(ruleset: RuleSet, docs: list[str]) -> float:
    """Seconds per article for one regex per term over the folded text."""
    patterns = [re.compile(r"\b" + re.escape(baseline_fold(t.text.rstrip("*"))) + (r"\w*" if t.text.endswith("*") else r"\b"))
                for r in ruleset.rules for g in ([r.any] + list(r.all) + [r.none]) for t in g]

    def run():
        for d in docs:
            folded = baseline_fold(d)
            for p in patterns:
                p.search(folded)

    return timed(run) / len(docs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=10_000)
    ap.add_argument("--rules", default="10,100,1000,10000")
    ap.add_argument("--naive-sample", type=int, default=100)
    args = ap.parse_args()
    docs = make_articles(args.articles)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    fold_s = timed(lambda: [baseline_fold(d) for d in docs])
    print(f"{args.articles} articles, {mb:.1f} MB; baseline fold (NFKD + strip marks + casefold): "
          f"{fold_s:.2f} s = {mb / fold_s:.1f} MB/s")
    print(f"{'rules':>7} {'terms':>7} {'compile s':>10} {'match s':>8} {'art/s':>9} {'MB/s':>7} {'x fold':>7} "
          f"{'naive ms/art':>13} {'x faster':>9}")
    per_rules: dict[int, float] = {}
    for n in [int(x) for x in args.rules.split(",")]:
        ruleset = make_rules(n)
        terms = sum(len(r.any) + sum(len(g) for g in r.all) + len(r.none) for r in ruleset.rules)
        t0 = time.perf_counter()
        matcher = compile_rules(ruleset)
        compile_s = time.perf_counter() - t0
        hits = [0]

        def run():
            for d in docs:
                hits[0] += len(matcher.match("", d))

        match_s = timed(run)
        per_rules[n] = match_s
        naive = naive_per_article(ruleset, docs[: max(1, args.naive_sample * 100 // max(n, 100))])
        print(f"{n:>7} {terms:>7} {compile_s:>10.2f} {match_s:>8.2f} {args.articles / match_s:>9.0f} {mb / match_s:>7.1f} "
              f"{match_s / fold_s:>7.2f} {naive * 1000:>13.2f} {naive / (match_s / args.articles):>9.0f}   ({hits[0]} hits)")
    if 100 in per_rules and 10_000 in per_rules:
        print(f"10,000 rules / 100 rules = {per_rules[10_000] / per_rules[100]:.2f} (target <= 1.5)")
    if 1000 in per_rules:
        print(f"1,000 rules / fold baseline = {per_rules[1000] / fold_s:.2f} (target <= 3)")


if __name__ == "__main__":
    main()
