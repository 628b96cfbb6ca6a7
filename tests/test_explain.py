"""`rules test --explain`: per rule, why it matched or why not, on text, files and stored articles."""

from __future__ import annotations

import json

import pytest
from conftest import Reply, rss
from test_cli import bw

RULES = """\
rules:
  - id: cartels
    any: ["Sinaloa Cartel", CJNG]
    none: [OPEC]
  - id: extradition
    any: [extradition, extradite*]
    all: [{any: [Mexico, Mexican]}]
  - id: arms
    any: [firearm*, guns]
    all: [{any: [smuggling, trafficking]}]
    near: 5
  - id: fentanyl
    any: [fentanyl, fentanilo]
"""


@pytest.fixture
def kw(tmp_path):
    p = tmp_path / "keywords.yaml"
    p.write_text(RULES)
    return ["--keywords", str(p)]


def explained(kw, text, *extra):
    out = bw("rules", "test", "--explain", "--json", "--text", text, *kw, *extra)
    assert out.returncode == 0, out.stderr
    return {e["rule"]: e for e in json.loads(out.stdout)["explain"]}


def test_each_reason(kw):
    e = explained(kw, "Extradition hearing\nThe Sinaloa Cartel and OPEC were mentioned. Firearms were seized at the "
                      "port, and much later, after many other unrelated words, smuggling was alleged. Fentanil found.")
    assert e["cartels"]["matched"] is False and e["cartels"]["reason"].startswith("exclusion fired: OPEC")
    assert e["extradition"]["matched"] is False and "group all[1] missing: none of Mexico, Mexican" in e["extradition"]["reason"]
    assert e["arms"]["matched"] is False and "every group occurs" in e["arms"]["reason"] and "(near: 5)" in e["arms"]["reason"]
    assert e["fentanyl"]["nearest"] == {"term": "fentanilo", "text": "fentanil", "similarity": 0.94}
    assert "nearest: 'fentanil' for 'fentanilo'" in e["fentanyl"]["reason"]


def test_matched_rules_say_which_terms_of_which_group(kw):
    e = explained(kw, "Extradition to Mexico\nA judge approved the extradition of a CJNG leader to Mexico.")
    assert e["extradition"]["matched"] and "any found extradition" in e["extradition"]["reason"]
    assert "all[1] found Mexico" in e["extradition"]["reason"]
    assert e["cartels"]["matched"] and e["cartels"]["snippet"] and "**CJNG**" in e["cartels"]["snippet"]
    human = bw("rules", "test", "--explain", "--text", "Extradition to Mexico\nA CJNG leader.", *kw)
    assert "extradition: MATCH" in human.stdout and "fentanyl: no match — group any missing" in human.stdout


def test_explain_on_files_and_a_stored_article(kw, tmp_path, server):
    f = tmp_path / "a.txt"
    f.write_text("Guns and smuggling\nGuns smuggling across the border.")
    out = bw("rules", "test", "--explain", "--json", str(f), *kw)
    arms = next(e for e in json.loads(out.stdout)["explain"] if e["rule"] == "arms")
    assert arms["matched"] and "(within 5 words)" in arms["reason"]
    server.routes["/feed"] = Reply(body=rss([{"title": "CJNG leader extradited", "link": "https://n.example/story?id=7",
                                              "guid": "7", "description": "A CJNG leader was extradited to the US."}]))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"sources:\n  - id: n\n    url: {server.url('/feed')}\n")
    db = ["--db", str(tmp_path / "a.db")]
    assert bw("run", "--once", "--no-digests", "--feeds", str(feeds), *db, *kw).returncode == 0
    out = bw("rules", "test", "--explain", "--article", "https://n.example/story?id=7", *db, *kw)
    assert out.returncode == 0, out.stderr
    assert "cartels: MATCH" in out.stdout and "extradition: no match — group all[1] missing" in out.stdout
    missing = bw("rules", "test", "--article", "https://n.example/nope", *db, *kw)
    assert missing.returncode == 1 and "no stored article" in missing.stderr
