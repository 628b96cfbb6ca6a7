"""The rule language: every construct, folding, error messages, labelled paragraphs, backtest, hot reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pipeline import store
from pipeline.app import App
from pipeline.config import ConfigError, Settings, load_rules
from pipeline.fold import fold
from pipeline.rules import compile_rules
from pipeline.rules.backtest import backtest

FIXTURES = Path(__file__).parent / "fixtures"


def rules_from(write, text: str):
    return compile_rules(load_rules(write("keywords.yaml", text)))


def matched(matcher, text: str, title: str = "") -> dict[str, list[str]]:
    return {h.rule: h.terms for h in matcher.match(title, text)}


def test_fold():
    assert fold("Cártel de SINALOA") == "cartel de sinaloa"
    assert fold("ﬁnanciación Straße") == "financiacion strasse"
    assert fold("EXTRADICIÓN") == "extradicion"


def test_terms_phrases_wildcards_case_and_accents(write):
    m = rules_from(write, """
        rules:
          - id: r
            any: ["High-Level Security Dialogue", "extradite*", "Cártel de Sinaloa", {term: HLSD, case: true}]
    """)
    assert matched(m, "the high level\nsecurity -- DIALOGUE met") == {"r": ["High-Level Security Dialogue"]}
    assert matched(m, "He was extradited.") == {"r": ["extradite*"]}
    assert matched(m, "Extraditing him") == {}  # 'extradit' + 'ing' is not 'extradite*'
    assert matched(m, "el CARTEL de sinaloa") == {"r": ["Cártel de Sinaloa"]}
    assert matched(m, "the HLSD met") == {"r": ["HLSD"]}
    assert matched(m, "the hlsd met") == {}
    assert matched(m, "cartels de sinaloa") == {}  # word boundaries
    assert matched(m, "nonextradited") == {}


def test_all_none_and_near(write):
    m = rules_from(write, """
        rules:
          - id: ctx
            any: [extradition]
            all: [{any: [Mexico, México]}]
          - id: excl
            any: [cartel]
            none: [OPEC]
          - id: near
            all: [{any: [guns]}, {any: [smuggling]}]
            near: 3
    """)
    assert "ctx" in matched(m, "Extradition to México approved")
    assert "ctx" not in matched(m, "Extradition to Germany approved")
    assert "excl" in matched(m, "A cartel in Sinaloa")
    assert "excl" not in matched(m, "The OPEC cartel")
    assert "near" in matched(m, "guns used for smuggling")  # 3 words apart
    assert "near" not in matched(m, "guns were found in a house far from where the smuggling took place")


def test_regex_terms_run_on_re2(write):
    m = rules_from(write, """
        rules:
          - id: case-no
            any: [{regex: 'DEA-\\d{3,}'}]
          - id: evil
            any: [{regex: '(a+)+$'}]
    """)
    assert matched(m, "file dea-1234 opened") == {"case-no": ["/DEA-\\d{3,}/"]}
    assert "evil" in matched(m, "a" * 30 + "!" + "a")
    assert "evil" not in matched(m, "a" * 30 + "!")  # linear time, no catastrophic backtracking


def test_hits_record_terms_and_a_marked_snippet(write):
    m = rules_from(write, """
        rules:
          - id: r
            any: [fentanyl]
            all: [{any: [Mexico]}]
    """)
    text = ("Lorem ipsum dolor sit amet. " * 20) + "Agents seized fentanyl near the Mexico border. " + ("More words. " * 30)
    hit = m.match("Title", text)[0]
    assert hit.terms == ["fentanyl", "Mexico"]
    assert 150 <= len(hit.snippet) <= 260
    assert [hit.snippet[s:e] for s, e in hit.marks] == ["fentanyl", "Mexico"]
    assert "**fentanyl**" in hit.highlighted


ERRORS = [
    ("rules:\n  - id: a\n    any: [x]\n    colour: red\n", "keywords.yaml:4: unknown key 'colour'"),
    ("rules:\n  - id: a\n    any: [x]\n  - id: a\n    any: [y]\n", "keywords.yaml:4: duplicate rule id 'a'"),
    ("rules:\n  - id: a\n    any: []\n", "keywords.yaml:3: any is an empty list"),
    ("rules:\n  - id: a\n    any: [{regex: '(unclosed'}]\n", "keywords.yaml:3: invalid regex"),
    ("rules:\n  - id: a\n    any: [x]\n    near: 5\n", "keywords.yaml:4: rule 'a': near needs 'all'"),
    ("rules:\n  - id: Bad_Id\n    any: [x]\n", "keywords.yaml:2: rule id must match"),
    ("rules:\n  - id: a\n    any: ['ab*']\n", "keywords.yaml:3: term 'ab*': a wildcard needs at least 3 letters"),
    ("rules:\n  - id: a\n    any: [x\n", "keywords.yaml:4: YAML error"),
    ("rules: !!python/object/apply:os.system ['echo pwned']\n", "keywords.yaml:1: YAML error: unsafe or unknown YAML tag"),
    ("rules:\n  - id: a\n", "keywords.yaml:2: rule 'a' needs 'any' or 'all'"),
]


@pytest.mark.parametrize("text,expected", ERRORS)
def test_error_messages_carry_file_and_line(tmp_path, text, expected):
    path = tmp_path / "keywords.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_rules(path)
    shown = [str(i).replace(str(tmp_path) + os.sep, "") for i in exc.value.issues]
    assert any(s.startswith(expected) for s in shown), shown


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "keywords.yaml"
    path.write_text("rules:\n  - id: a\n    any: []\n  - id: b\n    any: [x]\n    bogus: 1\n  - id: a\n    any: [y]\n")
    with pytest.raises(ConfigError) as exc:
        load_rules(path)
    assert [i.line for i in exc.value.issues] == [3, 6, 7]


def test_shipped_rules_on_labelled_paragraphs(matcher):
    cases = yaml.safe_load((FIXTURES / "labelled.yaml").read_text(encoding="utf-8"))
    wrong = []
    for case in cases:
        got = sorted(h.rule for h in matcher.match("", case["text"]))
        if got != sorted(case["expect"]):
            wrong.append((case["text"][:70], got, case["expect"]))
    assert not wrong, wrong
    assert {c for case in cases for c in case["expect"]} == {"fentanyl", "hlsd", "extradition", "cartels", "migration", "arms"}
    assert sum(1 for case in cases if not case["expect"]) >= 8


def test_shipped_rule_ids(shipped_rules):
    assert {"fentanyl", "hlsd", "extradition", "cartels", "migration", "arms"} <= {r.id for r in shipped_rules.rules}


def test_bundled_keywords_copy_matches_the_shipped_file():
    root = Path(__file__).parent.parent
    assert (root / "keywords.yaml").read_text() == (root / "pipeline" / "demo_data" / "keywords.yaml").read_text()


def _store_article(db, title, text, hits=(), url=None):
    from pipeline.store import NewArticle, PollOutcome, save_poll

    store.sync_sources(db, [type("S", (), {"id": "s", "name": "S", "url": "http://x/", "type": "feed", "enabled": True})()])
    art = NewArticle(url or f"https://x.example/{abs(hash(title))}", title, title, text, "", store.now_iso(), store.now_iso(),
                     str(abs(hash(title + text))), [], list(hits))
    save_poll(db, PollOutcome("s", True, 200, articles=[art]), lambda *a: False)
    return art.id


def test_backtest_shows_added_and_removed_and_apply_backfills(write, db):
    old = rules_from(write, "rules:\n  - id: r\n    any: [fentanyl]\n")
    a1 = _store_article(db, "Fentanyl seized", "text", old.match("Fentanyl seized", "text"))
    a2 = _store_article(db, "Carfentanil found", "text")
    new = rules_from(write, "rules:\n  - id: r\n    any: [carfentanil]\n")
    result = backtest(db, new)
    assert [(a, h.rule) for a, h in result.added] == [(a2, "r")]
    assert result.removed == [(a1, "r")]
    assert result.per_rule() == {"r": {"added": 1, "removed": 1}}
    assert store.backfill_hits(db, result.added) == 1
    assert next(db.query("SELECT backfilled FROM hits WHERE article = ?", [a2]))["backfilled"] == 1


def test_hot_reload_keeps_last_valid_rules(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: s\n    url: http://127.0.0.1:9/feed\n")
    kw = tmp_path / "keywords.yaml"
    kw.write_text("rules:\n  - id: a\n    any: [alpha]\n")
    app = App.open(Settings(str(feeds), str(kw), str(tmp_path / "db.db")))
    assert [r.id for r in app.rules.rules] == ["a"]
    kw.write_text("rules:\n  - id: a\n    any: [alpha]\n  - id: b\n    any: [beta]\n")
    os.utime(kw, ns=(1, 2_000_000_000_000_000_000))
    assert app.reload()["rules"] and [h.rule for h in app.matcher.match("", "beta")] == ["b"]
    kw.write_text("rules:\n  - id: a\n    any: []\n")
    os.utime(kw, ns=(1, 3_000_000_000_000_000_000))
    assert not app.reload()["rules"]
    assert "keywords.yaml:3" in app.errors["rules"]
    assert [h.rule for h in app.matcher.match("", "beta")] == ["b"]  # the last valid rules stay


from hypothesis import given, settings, strategies as st  # noqa: E402

_WORDS = st.sampled_from(["cartel", "Cártel", "SINALOA", "niño", "straße", "ﬁnal", "x", "42", "mañana", "Київ", "東京"])
_SEPS = st.sampled_from([" ", "  ", "-", ", ", "\n\n", "—", "¿", "…", "_", " (", "). "])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_SEPS, _WORDS), min_size=1, max_size=30), _SEPS)
def test_every_word_maps_back_to_its_span_in_the_original(parts, tail):
    from pipeline.fold import Folded, term_words

    text = "".join(sep + word for sep, word in parts) + tail
    f = Folded.of(text)
    words = f.words
    assert words == term_words(text)
    pos = 1
    for k, word in enumerate(words):
        assert f.word_index(pos) == k
        start, end = f.original_span(pos, pos + len(word))
        assert term_words(text[start:end]) == [word], (text, word, text[start:end])
        pos += len(word) + 1


def test_about_and_suggest_are_validated_and_part_of_the_rule_version(write):
    base = "rules:\n  - id: r\n    any: [x]\n"
    r = rules_from(write, base + "    about: >-\n      What the rule\n      is about.\n    suggest: email\n").ruleset.rules[0]
    assert r.about == "What the rule is about." and r.suggest == "email"
    plain = rules_from(write, base).ruleset.rules[0]
    assert plain.about == "" and plain.suggest == "store" and plain.version != r.version
    moved = rules_from(write, "rules:\n\n\n  - id: r\n    any: [x]\n").ruleset.rules[0]
    assert moved.version == plain.version  # the position in the file is not part of the definition
    for bad, message in (("    about: 3\n", "about must be a paragraph"), ("    about: ''\n", "about must be a paragraph"),
                         ("    suggest: always\n", "suggest must be one of store, email, off")):
        with pytest.raises(ConfigError) as exc:
            rules_from(write, base + bad)
        assert message in str(exc.value) and "keywords.yaml:4" in str(exc.value)


def test_every_shipped_rule_says_what_it_is_about(shipped_rules):
    assert all(len(r.about) > 200 for r in shipped_rules.rules)
