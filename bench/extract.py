"""Main-text extraction on the evaluation set in bench/extract_pages/pages/ (48 pages, English and
Spanish, news-site shapes including the ones that defeat simple extractors; see make_pages.py).

    python bench/extract.py [--pages DIR] [--repeat N] [--show-worst N]

Metric (as in public article-extraction benchmarks): text -> lower-cased word tokens -> 4-token
shingles (a multiset); per page, precision = shared / extracted and recall = shared / expected;
P and R are averaged over pages, and F1 is the harmonic mean of the two averages. An empty
extraction scores P = R = 0. Also printed: pages with F1 below 0.5 and milliseconds per page.

Extractors, in one run on the same pages:
  borderwatch     pipeline.extract.extract_article (trafilatura in precision mode, layout tables unwrapped)
  +fallback       borderwatch, then readability-lxml where it returns under 250 characters
                  (what a fallback would add: the difference to the line above)
  trafilatura     trafilatura with its default settings
  readability     readability-lxml alone (pip install readability-lxml; the `bench` extra)
  old             the hand-written extractor borderwatch used before (bench/legacy_extract.py)
  whole-page      all visible text of the page (the baseline)
For borderwatch it also checks title, published date, author and language against manifest.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PAGES = Path(__file__).parent / "extract_pages" / "pages"
SHINGLE = 4
URL = "https://news.example/article"


def shingles(text: str) -> Counter:
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE:
        return Counter([tuple(words)]) if words else Counter()
    return Counter(tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1))


def score(extracted: str, expected: str) -> tuple[float, float]:
    got, want = shingles(extracted), shingles(expected)
    if not got or not want:
        return (1.0, 1.0) if not got and not want else (0.0, 0.0)
    shared = sum((got & want).values())
    return shared / sum(got.values()), shared / sum(want.values())


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


# ----------------------------------------------------------------------------- extractors


def ex_borderwatch(body: bytes) -> str:
    from pipeline.extract import extract_article

    return extract_article(body, URL).text


FALLBACK_BELOW = 250  # characters


def ex_with_fallback(body: bytes) -> str:
    """borderwatch, plus readability-lxml where borderwatch returns less than 250 characters."""
    text = ex_borderwatch(body)
    if len(text) < FALLBACK_BELOW:
        second = ex_readability(body)
        if len(second) > len(text):
            return second
    return text


def ex_trafilatura(body: bytes) -> str:
    """trafilatura with its defaults (comments excluded), the headline line dropped."""
    import trafilatura

    from pipeline.extract import _body_text, parse_html

    doc = trafilatura.bare_extraction(parse_html(body), url=URL, with_metadata=True, include_comments=False)
    return _body_text(doc.text, doc.title or "") if doc is not None and doc.text else ""


def ex_readability(body: bytes) -> str:
    import lxml.html
    from readability import Document

    from pipeline.extract import _body_text, parse_html
    from pipeline.parse import clean_text

    html = Document(body.decode("utf-8", "replace")).summary(html_partial=True)
    tree = parse_html(body)
    title = " ".join(tree.xpath("string(//h1)").split()) if tree is not None else ""
    return _body_text(clean_text(html).replace("\n\n", "\n"), title)


def ex_old(body: bytes) -> str:
    from legacy_extract import extract_article

    return extract_article(body, URL).text


def ex_whole_page(body: bytes) -> str:
    import lxml.html

    root = lxml.html.fromstring(body)
    for bad in root.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    body_el = root.find("body")
    return (body_el if body_el is not None else root).text_content()


EXTRACTORS = {"borderwatch": ex_borderwatch, "+fallback": ex_with_fallback, "trafilatura": ex_trafilatura,
              "readability": ex_readability, "old": ex_old, "whole-page": ex_whole_page}


def evaluate(pages: list[tuple[str, bytes, str]], fn, repeat: int) -> dict:
    ps, rs, low, per_page = [], [], [], {}
    elapsed = 0.0
    for name, body, expected in pages:
        started = time.perf_counter()
        for _ in range(repeat):
            text = fn(body)
        elapsed += (time.perf_counter() - started) / repeat
        p, r = score(text, expected)
        ps.append(p)
        rs.append(r)
        per_page[name] = f1(p, r)
        if f1(p, r) < 0.5:
            low.append(name)
    p, r = sum(ps) / len(ps), sum(rs) / len(rs)
    return {"P": p, "R": r, "F1": f1(p, r), "below_0.5": low, "ms": 1000 * elapsed / len(pages), "pages": per_page}


def metadata_accuracy(pages: list[tuple[str, bytes, str]], manifest: dict) -> dict:
    from pipeline.extract import extract_article

    right = Counter()
    wrong: dict[str, list[str]] = {"title": [], "published": [], "author": [], "language": []}
    fallback = 0
    for name, body, _ in pages:
        want = manifest[name]
        page = extract_article(body, URL)
        fallback += len(page.text) < FALLBACK_BELOW
        got = {"title": page.title, "published": page.published.date().isoformat() if page.published else None,
               "author": page.author, "language": page.language}
        for key in wrong:
            if got[key] == want[key]:
                right[key] += 1
            else:
                wrong[key].append(f"{name}: {got[key]!r} (want {want[key]!r})")
    return {"right": right, "wrong": wrong, "fallback_used": fallback}


def py3langid_language(text: str) -> str | None:
    import py3langid

    return py3langid.classify(text[:1000])[0]


def language_accuracy(pages: list[tuple[str, bytes, str]], manifest: dict) -> None:
    from pipeline.extract import detect_language

    seen, samples = set(), []
    for name, _, expected in pages:
        want = manifest[name]
        if want["title"] not in seen:
            seen.add(want["title"])
            samples.append((want["language"], want["title"], expected.split("\n\n")[0]))
    print(f"\nlanguage of {len(samples)} articles without a declared language (feed items):")
    for label, make in (("title", lambda t, p: t), ("title + 1st paragraph", lambda t, p: f"{t}\n{p}")):
        methods = [("stop words", detect_language)]
        try:
            import py3langid  # noqa: F401

            py3langid_language("warm up: load the model")
            methods.append(("py3langid", py3langid_language))
        except ImportError:
            pass
        for method, fn in methods:
            started = time.perf_counter()
            got = [(lang, fn(make(t, p))) for lang, t, p in samples]
            ms = 1000 * (time.perf_counter() - started) / len(samples)
            print(f"  {label:<22} {method:<10} right {sum(a == b for a, b in got)}/{len(got)}, "
                  f"unsure {sum(b is None for _, b in got)}, {ms:.2f} ms each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=Path, default=PAGES)
    ap.add_argument("--repeat", type=int, default=1, help="extractions per page for the timing (default 1)")
    ap.add_argument("--show-worst", type=int, default=3, help="lowest-F1 pages to list per extractor")
    ap.add_argument("--only", help="comma-separated extractor names")
    args = ap.parse_args()
    manifest = json.loads((args.pages / "manifest.json").read_text(encoding="utf-8"))
    pages = [(name, (args.pages / f"{name}.html").read_bytes(), (args.pages / f"{name}.txt").read_text(encoding="utf-8"))
             for name in sorted(manifest)]
    names = args.only.split(",") if args.only else list(EXTRACTORS)
    try:
        import readability  # noqa: F401
    except ImportError:
        print("readability-lxml is not installed: skipping the readability and +fallback rows\n")
        names = [n for n in names if n not in ("readability", "+fallback")]
    for name in names:  # warm-up: imports and one-time loading are not per-page costs
        for _, body, _ in pages[:2]:
            EXTRACTORS[name](body)
    print(f"{len(pages)} pages ({sum(m['language'] == 'es' for m in manifest.values())} Spanish), "
          f"metric: 4-token shingles, per-page P/R averaged, F1 of the averages\n")
    print(f"{'extractor':<13} {'P':>6} {'R':>6} {'F1':>6} {'<0.5':>5} {'ms/page':>8}")
    results = {}
    from trafilatura.meta import reset_caches

    for name in names:
        reset_caches()  # the same (cold) cache state for every extractor: trafilatura and htmldate memoise
        res = results[name] = evaluate(pages, EXTRACTORS[name], args.repeat)
        print(f"{name:<13} {res['P']:6.3f} {res['R']:6.3f} {res['F1']:6.3f} {len(res['below_0.5']):5d} {res['ms']:8.1f}")
    if "borderwatch" in results and "whole-page" in results:
        b, w = results["borderwatch"], results["whole-page"]
        print(f"\nborderwatch vs whole-page baseline: F1 {b['F1']:.3f} vs {w['F1']:.3f} "
              f"({b['F1'] / w['F1']:.2f}x), {b['ms'] / max(w['ms'], 1e-9):.1f}x the time")
    print("\nlowest pages:")
    for name in names:
        worst = sorted(results[name]["pages"].items(), key=lambda kv: kv[1])[:args.show_worst]
        print(f"  {name:<12} " + ", ".join(f"{n} {v:.2f}" for n, v in worst))
    if "borderwatch" in names:
        meta = metadata_accuracy(pages, manifest)
        print(f"\nborderwatch metadata (of {len(pages)}): " + ", ".join(f"{k} {meta['right'][k]}" for k in meta["wrong"])
              + f"; pages under {FALLBACK_BELOW} characters (where a fallback would run): {meta['fallback_used']}")
        for key, misses in meta["wrong"].items():
            for miss in misses[:5]:
                print(f"  {key} wrong: {miss}")
        language_accuracy(pages, manifest)


if __name__ == "__main__":
    main()
