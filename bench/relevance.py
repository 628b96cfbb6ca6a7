"""Relevance benchmark: the shipped keyword rules (and the semantic layer, when installed)
against the labelled development set in bench/relevance/.

Prints, for the tuning part and the held-out third separately: per-rule recall and
precision over (item, rule) pairs, overall, and article-level precision (any rule firing on
an item no subscriber wanted is a false alert) and recall (an on-topic item firing nothing).

    python bench/relevance.py                  # keyword rules, and + semantic if installed
    python bench/relevance.py --part tuning --wrong   # list the tuning part's mistakes
    python bench/relevance.py --keywords other.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_rules  # noqa: E402
from pipeline.rules import compile_rules  # noqa: E402
from pipeline.rules.evaluate import keyword_predict, load_items, score  # noqa: E402


def table(name: str, s, rule_ids) -> str:
    lines = [f"  {name}"]
    lines.append(f"    {'rule':<12}{'recall':>16}{'precision':>16}")
    for r in rule_ids:
        row = s.rules[r]
        lines.append(f"    {r:<12}{s.recall(r):>8.3f} {row['tp']:>3}/{row['tp'] + row['fn']:<3}"
                     f"{s.precision(r):>8.3f} {row['tp']:>3}/{row['tp'] + row['fp']:<3}")
    a = s.articles
    lines.append(f"    {'all rules':<12}{s.recall():>8.3f}{'':8}{s.precision():>8.3f}")
    lines.append(f"    articles: precision {s.article_precision:.3f} ({a['fp']} false alerts of {a['tp'] + a['fp']}), "
                 f"recall {s.article_recall:.3f} ({a['fn']} on-topic items with no alert of {a['tp'] + a['fn']})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keywords", default=str(ROOT / "keywords.yaml"))
    ap.add_argument("--set", default=str(ROOT / "bench" / "relevance"), help="folder of labelled *.yaml items")
    ap.add_argument("--part", choices=["tuning", "heldout", "all"], help="only this part (default: tuning and held-out)")
    ap.add_argument("--wrong", action="store_true", help="list the items each predictor gets wrong")
    ap.add_argument("--no-semantic", action="store_true", help="keyword rules only")
    args = ap.parse_args()

    ruleset = load_rules(args.keywords)
    matcher = compile_rules(ruleset)
    rule_ids = [r.id for r in ruleset.rules]
    items = load_items(args.set)
    parts = {"tuning": [i for i in items if not i.heldout], "heldout": [i for i in items if i.heldout], "all": items}
    shown = [args.part] if args.part else ["tuning", "heldout"]
    predictors = {"keywords": keyword_predict(matcher)}
    report: dict = {}
    if not args.no_semantic:
        predictors.update(semantic_predictors(ruleset, matcher, report))
    keyword_rules = {i.id: predictors["keywords"](i) for i in items}
    n_on = sum(1 for i in items if i.expect)
    print(f"{len(items)} items ({n_on} on-topic, {len(items) - n_on} hard negatives; "
          f"{len(parts['tuning'])} tuning, {len(parts['heldout'])} held out); rules: {args.keywords}")
    for part in shown:
        print(f"\n{part} ({len(parts[part])} items)")
        for name, predict in predictors.items():
            s = score(parts[part], predict, rule_ids)
            print(table(name, s, rule_ids))
            if name != "keywords":
                print(suggestions_line(parts[part], report, keyword_rules))
            if args.wrong:
                for item, got in s.wrong:
                    print(f"      {item.id}: expected {sorted(item.expect)} got {sorted(got)} | {item.title[:80]}")
                for item in parts[part] if name != "keywords" else ():
                    if report.get(item.id):
                        print(f"      {item.id}: suggested {sorted(report[item.id])} expected {sorted(item.expect)}"
                              f" | {item.title[:70]}")


def semantic_predictors(ruleset, matcher, report: dict) -> dict:
    """``keywords + semantic`` when the extra is installed, else nothing. Alerts are the keyword
    hits the guard keeps (plus suggestions of rules with ``suggest: email``); suggestions are
    counted in ``report`` (item id -> suggested rules)."""
    from pipeline.rules.semantic import Semantic, available

    if not available():
        print("(semantic extra not installed: keyword rules only; pip install 'borderwatch[semantic]')")
        return {}
    sem = Semantic(ruleset)
    emailed = {r.id for r in ruleset.rules if r.suggest == "email"}

    def predict(item):
        hits = sem.review(item.title, item.lead, matcher.match(item.title, item.lead))
        report[item.id] = {h.rule for h in hits if h.suggested}
        return {h.rule for h in hits if not h.suggested or h.rule in emailed}

    return {"keywords + semantic guard": predict}


def suggestions_line(items, report: dict, keyword_rules: dict) -> str:
    """How the suggestions would help: labelled rules the keywords missed that were suggested."""
    right = wrong = missed = 0
    for item in items:
        sug = report.get(item.id, set())
        right += len(sug & item.expect)
        wrong += len(sug - item.expect)
        missed += len(item.expect - keyword_rules[item.id])
    return (f"    suggestions (stored, not emailed): {right + wrong} ({right} right, {wrong} wrong); "
            f"keyword misses: {missed}")


if __name__ == "__main__":
    main()
