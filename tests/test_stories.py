"""Stories: one story per text whatever the arrival order, the boilerplate or the length.

Articles go through the real path: Entry -> cycle.prepare_article (fold, fingerprint,
sketch, rules) -> store.save_polls (overlaps from storage, the decision in dedup).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import sqlite3

import sqlite_utils

from pipeline import store
from pipeline.cycle import prepare_article
from pipeline.dedup import COMMON_POSTINGS, Overlap, StoredForm, aligned_run, join_stories
from pipeline.digest.select import build_groups
from pipeline.digest.send import OutboxTransport, send_due
from pipeline.parse import Entry
from pipeline.store import PollOutcome, save_polls

FETCHED = "2026-11-20T10:00:00Z"
SUBJECTS = ["the defence minister", "a federal judge", "customs officers", "the governor of Sonora", "port inspectors",
            "the attorney general", "state police", "two senators", "the border patrol chief", "local prosecutors",
            "la fiscalía estatal", "el secretario de marina", "agentes aduanales", "la gobernadora"]
VERBS = ["said", "announced", "confirmed", "denied", "reported", "warned", "explained", "insisted", "informó",
         "aseguró", "declaró", "confirmó"]
OBJECTS = ["that shipments of precursor chemicals had doubled", "that the new scanners at Nogales were working",
           "a plan to audit every warehouse near the crossing", "that the inquiry would take months",
           "que el decomiso incluía pastillas de fentanilo", "que los camiones venían de Manzanillo",
           "new limits on cash transfers", "that three suspects were extradited", "un operativo en Culiacán",
           "that the tunnel ran four hundred metres", "a review of seizures at the port of Lázaro Cárdenas"]
TAILS = ["on Tuesday", "late on Friday", "in a written statement", "according to two officials", "after a closed meeting",
         "el lunes por la tarde", "durante una conferencia", "before the hearing", "in Ciudad Juárez", "in Tijuana"]


def sentences(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        num = rng.randint(2, 9000)
        out.append(f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                   f"{rng.choice(TAILS)}, citing {num} cases and file {rng.randint(100, 99999)}.")
    return out


def text_of(seed: int, words: int) -> str:
    rng = random.Random(seed)
    out, count = [], 0
    while count < words:
        s = sentences(rng, 1)[0]
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def first_words(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


HEADER = ("Frontera Daily. Independent news from the borderlands since 1998. Subscribe to our morning newsletter "
          "for the stories that matter on both sides of the line, delivered before seven every day.")
FOOTER = ("Frontera Daily is a member of the Borderlands News Trust. Our reporting is free to read thanks to readers "
          "like you. Support local journalism today and join more than ten thousand members.")


def item(url: str, title: str, text: str) -> Entry:
    return Entry(url=url, title=title, text=text, guid=url)


def save(db, source: str, entries: list[Entry], matcher=None, fetched: str = FETCHED) -> list:
    arts = [prepare_article(e, fetched, matcher) for e in entries]
    return save_polls(db, [PollOutcome(source, True, 200, articles=arts)])[0]


def stories(db) -> dict[str, int]:
    return {r["url"]: r["story"] for r in db.query("SELECT url, story FROM articles")}


def sources(db, *ids):
    store.sync_sources(db, [type("S", (), {"id": i, "name": i.title(), "url": f"http://{i}.example/", "type": "feed",
                                           "enabled": True})() for i in ids])


def partition(db) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for url, story in stories(db).items():
        groups.setdefault(story, set()).add(url)
    return {frozenset(g) for g in groups.values()}


# --------------------------------------------------------------------------- the pure decision


def test_decision_is_a_pure_function_of_the_overlaps():
    me = StoredForm([1, 2, 3, 4], 4, 0)
    overlaps = [Overlap(10, 7, 4, 40, 0), Overlap(11, 3, 3, 5, 0), Overlap(12, 9, 1, 4, 0)]
    assert join_stories(me, overlaps) == [3, 7]  # both matching stories, oldest first; 9 shares too little
    assert join_stories(me, list(reversed(overlaps))) == [3, 7]
    assert join_stories(me, []) == []
    # two whole (short) texts compare shingle by shingle: 30 of 36 shared
    assert join_stories(StoredForm(list(range(36)), 6, 36), [Overlap(1, 1, 30, 8, 50)]) == [1]
    assert join_stories(StoredForm(list(range(36)), 6, 36), [Overlap(1, 1, 3, 8, 50)]) == []


def test_a_short_text_matches_a_run_not_a_scatter():
    run = tuple((p, p + 500) for p in (0, 7, 15, 22, 30))  # one shift, spread over a 40-word text
    assert aligned_run(run, 0, 40) == 5
    scatter = tuple((p, p * 37 % 9000) for p in (0, 7, 15, 22, 30))  # shared by chance, all over a long text
    assert aligned_run(scatter, 0, 40) < 3
    phrase = tuple((p, p + 900) for p in (2, 3, 4, 5))  # one stock phrase: aligned but only 8 words long
    assert aligned_run(phrase, 0, 40) == 0
    me = StoredForm(list(range(36)), 6, 36)
    assert join_stories(me, [Overlap(1, 1, 5, 900, 0, run)]) == [1]
    assert join_stories(me, [Overlap(1, 1, 5, 900, 0, scatter)]) == []


# --------------------------------------------------------------------------- arrival order and merges


def test_same_stories_whatever_the_arrival_order(tmp_path):
    """An original, its 40-word excerpt, a republished copy with boilerplate, a second article about the
    same events and an unrelated one, in every order of arrival: the same partition into stories."""
    body = text_of(1, 700)
    other = text_of(2, 600)
    polls = [
        ("wire", [item("https://wire.example/a", "Chemicals deal reached", body)]),
        ("digest", [item("https://digest.example/x", "Chemicals deal reached", first_words(body, 40))]),
        ("daily", [item("https://daily.example/copy", "A new headline for the copy", f"{HEADER} {body} {FOOTER}")]
         + [item(f"https://daily.example/{k}", f"Daily item {k}", f"{HEADER} {text_of(100 + k, 300)} {FOOTER}")
            for k in range(5)]),
        ("courier", [item("https://courier.example/b", "Another view", other)]),
    ]
    seen = set()
    for n, order in enumerate(itertools.permutations(polls)):
        if n % 3:  # 8 of the 24 orders keep the test fast; they include originals-first and copies-first
            continue
        db = store.connect(tmp_path / f"o{n}.db")
        sources(db, "wire", "digest", "daily", "courier")
        for source, entries in order:
            save(db, source, entries)
        seen.add(frozenset(partition(db)))
        db.close()
    assert len(seen) == 1
    (groups,) = seen
    assert frozenset({"https://wire.example/a", "https://digest.example/x", "https://daily.example/copy"}) in groups
    assert len(groups) == 1 + 1 + 5  # the story, the other article, the daily's five own items


def test_an_article_joining_two_stories_merges_them_keeping_the_oldest_id(db):
    """Two excerpts of different halves of one article arrive first (two stories); the full text joins both."""
    sources(db, "a", "b", "c")
    body = text_of(3, 400)
    words = body.split()
    save(db, "a", [item("https://a.example/1", "Part one", " ".join(words[:150]))])
    save(db, "b", [item("https://b.example/2", "Part two", " ".join(words[250:]))])
    before = stories(db)
    assert before["https://a.example/1"] != before["https://b.example/2"]
    save(db, "c", [item("https://c.example/full", "Whole", body)])
    after = stories(db)
    oldest = min(before.values())
    assert set(after.values()) == {oldest}
    assert [r["copies"] for r in db.query("SELECT copies FROM stories")] == [3]


def test_merge_moves_hits_and_deliveries_and_a_digest_shows_a_merged_story_once(tmp_path, shipped_rules, matcher):
    db = store.connect(tmp_path / "m.db")
    sources(db, "a", "b", "c")
    store.add_subscriber(db, "ana@example.org", None, None, "immediate", 7, 0, "UTC", created="2000-01-01T00:00:00Z")
    body = "Fentanyl seizures rose again at the Nogales crossing. " + text_of(4, 400)
    words = body.split()
    save(db, "a", [item("https://a.example/1", "Fentanyl seizures rise", " ".join(words[:150]))], matcher)
    save(db, "b", [item("https://b.example/2", "Fentanyl at the border", "Fentanyl " + " ".join(words[250:]))], matcher)
    assert len(set(stories(db).values())) == 2
    save(db, "c", [item("https://c.example/full", "Fentanyl seizures rise at Nogales", body)], matcher)
    (story,) = set(stories(db).values())
    groups = build_groups(db, store.subscribers(db)[0], shipped_rules)
    items = [i for g in groups for i in g.items]
    assert len(items) == 1 and items[0].story == story  # one story, once
    assert sorted(items[0].also_in) == ["B", "C"]
    assert len(items[0].hit_ids) == 3  # the hits of all three copies follow the story
    now = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)
    assert send_due(db, shipped_rules, now, OutboxTransport(tmp_path / "out"), sender="bw <bw@example.org>").sent == 1

    # A delivered story merged later: the delivery follows, so nothing of it is sent again.
    save(db, "a", [item("https://a.example/9", "Fentanyl lab", "Fentanyl " + text_of(5, 150))], matcher)
    save(db, "b", [item("https://b.example/9", "Fentanyl lab found", "Fentanyl " + text_of(6, 150))], matcher)
    lab = stories(db)
    bridge = "Fentanyl " + text_of(5, 150) + " " + text_of(6, 150)  # the full account both pieces were cut from
    first = db.execute("SELECT min(id) FROM deliveries").fetchone()[0]
    db.execute("INSERT INTO delivery_hits (delivery, hit, story) SELECT ?, h.id, a.story FROM hits h JOIN articles a"
               " ON a.id = h.article WHERE a.url = 'https://b.example/9'", (first,))  # as if b/9 had been sent
    save(db, "c", [item("https://c.example/9", "Fentanyl lab, the full account", bridge)], matcher)
    merged = stories(db)
    assert merged["https://a.example/9"] == merged["https://b.example/9"] == merged["https://c.example/9"] \
        == min(lab["https://a.example/9"], lab["https://b.example/9"])
    assert db.execute("SELECT count(*) FROM delivery_hits WHERE story NOT IN (SELECT id FROM stories)").fetchone()[0] == 0
    assert build_groups(db, store.subscribers(db)[0], shipped_rules) == []  # the merged story was sent already
    db.close()


# --------------------------------------------------------------------------- boilerplate, short and long texts


def test_boilerplate_of_a_site_neither_merges_its_short_items_nor_hides_a_copy(db):
    sources(db, "wire", "daily")
    body = text_of(7, 600)
    save(db, "wire", [item("https://wire.example/a", "Original", body)])
    daily = [item(f"https://daily.example/{k}", f"Brief {k}", f"{HEADER} {text_of(200 + k, 40)} {FOOTER}") for k in range(40)]
    daily.append(item("https://daily.example/copy", "New headline", f"{HEADER} {body} {FOOTER}"))
    save(db, "daily", daily)
    s = stories(db)
    assert s["https://daily.example/copy"] == s["https://wire.example/a"]
    assert len({s[f"https://daily.example/{k}"] for k in range(40)}) == 40
    # later items of the site, one per poll: the learnt boilerplate keeps them apart too
    for k in range(40, 45):
        save(db, "daily", [item(f"https://daily.example/{k}", f"Brief {k}", f"{HEADER} {text_of(200 + k, 30)} {FOOTER}")])
    s = stories(db)
    assert len({s[f"https://daily.example/{k}"] for k in range(45)}) == 45
    assert db.execute("SELECT count(*) FROM boilerplate WHERE source = 'daily'").fetchone()[0] > 0


def test_a_forty_word_excerpt_joins_its_article_in_either_order(tmp_path):
    joined = 0
    for seed in range(20):
        for order in (0, 1):
            db = store.connect(tmp_path / f"e{seed}{order}.db")
            sources(db, "a", "b")
            body = text_of(300 + seed, 500)
            polls = [("a", item("https://a.example/1", "Full", body)),
                     ("b", item("https://b.example/1", "Full", first_words(body, 40)))]
            for source, entry in (polls if order == 0 else polls[::-1]):
                save(db, source, [entry])
            joined += len(set(stories(db).values())) == 1
            db.close()
    assert joined == 40


def test_different_short_items_of_one_site_stay_apart(db):
    sources(db, "briefs")
    save(db, "briefs", [item(f"https://briefs.example/{k}", f"Brief {k}", text_of(500 + k, 40)) for k in range(30)])
    assert len(set(stories(db).values())) == 30


def test_a_ten_thousand_word_article_groups_with_its_copy(db):
    sources(db, "a", "b")
    body = text_of(8, 10_000)
    save(db, "a", [item("https://a.example/long", "Long read", body)])
    save(db, "b", [item("https://b.example/long", "Long read, republished", f"{HEADER} {body} {FOOTER}")])
    assert len(set(stories(db).values())) == 1


# --------------------------------------------------------------------------- storage: window, migration


def test_prune_drops_sketches_outside_the_window(db):
    sources(db, "a", "b")
    body = text_of(9, 300)
    save(db, "a", [item("https://a.example/old", "Old", body)], fetched="2026-09-01T00:00:00Z")
    store.prune(db, "2000-01-01T00:00:00Z", sketches_before="2026-10-01T00:00:00Z")
    assert db.execute("SELECT count(*) FROM sketches").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1  # the article itself stays
    save(db, "b", [item("https://b.example/new", "New", body + " And one more line.")])
    assert len(set(stories(db).values())) == 2  # no grouping with what is outside the window


def test_migration_recomputes_sketches_of_an_existing_database(tmp_path):
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    old = sqlite_utils.Database(conn)
    store.apply_migrations(old, upto=3)
    conn.execute("INSERT INTO sources (id, name, url) VALUES ('a', 'A', 'http://a/')")
    body = text_of(10, 500)
    conn.execute("INSERT INTO stories (id, title, first_seen) VALUES (1, 'Old', ?)", (FETCHED,))
    conn.execute("INSERT INTO articles (id, source, guid, url, title, text, published, fetched, fingerprint, story)"
                 " VALUES (1, 'a', 'g', 'https://a.example/1', 'Old', ?, ?, ?, 'fp', 1)", (body, FETCHED, FETCHED))
    conn.execute("INSERT INTO sketches (hash, article) VALUES (12345, 1)")  # an old-style anchor hash
    conn.close()
    db = store.connect(path)
    assert store.schema_version(db) == len(store.MIGRATIONS)
    assert db.execute("SELECT count(*) FROM sketches WHERE hash = 12345").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sketch_articles").fetchone()[0] == 1
    sources(db, "a", "b")
    save(db, "b", [item("https://b.example/1", "Excerpt", first_words(body, 60))])
    assert set(stories(db).values()) == {1}


def test_a_stock_phrase_in_many_stories_is_left_out_of_lookups(db):
    stock = "according to two officials who spoke on condition of anonymity because they were not authorised"
    n = COMMON_POSTINGS + 6
    sources(db, *[f"s{k}" for k in range(n + 1)])
    for k in range(n):
        save(db, f"s{k}", [item(f"https://s{k}.example/1", f"Item {k}", f"{text_of(900 + k, 60)} {stock} {text_of(1900 + k, 60)}")])
    assert len(set(stories(db).values())) == n
    assert db.execute("SELECT count(*) FROM boilerplate WHERE source = '*'").fetchone()[0] > 0
    held = db.execute("SELECT max(c) FROM (SELECT count(*) AS c FROM sketches GROUP BY hash) AS per_hash").fetchone()[0]
    assert held <= COMMON_POSTINGS  # postings per hash stay bounded: the lookup cost does not grow with the database


def postings_agree(db) -> None:
    """Each article's own list of hashes (sketch_articles.hashes) is exactly its postings in sketches."""
    from pipeline.store.postings import unpack as _unpack

    by_article: dict[int, set] = {}
    for h, article in db.execute("SELECT hash, article FROM sketches").fetchall():
        by_article.setdefault(article, set()).add(h)
    own = {article: {h for h, _, _ in _unpack(packed)}
           for article, packed in db.execute("SELECT article, hashes FROM sketch_articles").fetchall()}
    assert {a: s for a, s in own.items() if s} == by_article


def test_postings_and_each_articles_own_hashes_stay_in_step(db):
    """Through boilerplate learnt later (hashes taken out of stored articles), stock phrases, merges and prune."""
    stock = "according to two officials who spoke on condition of anonymity because they were not authorised"
    n = COMMON_POSTINGS + 2
    sources(db, "daily", *[f"s{k}" for k in range(n)])
    footer = "Subscribe to the Daily Ledger newsletter for the morning briefing delivered before seven each weekday"
    for k in range(4):  # a site's footer, learnt as boilerplate over several polls
        save(db, "daily", [item(f"https://daily.example/{k}", f"Daily {k}", f"{text_of(300 + k, 80)} {footer}")])
    for k in range(n):
        save(db, f"s{k}", [item(f"https://s{k}.example/1", f"Item {k}", f"{text_of(900 + k, 60)} {stock} {text_of(1900 + k, 60)}")])
    body = text_of(77, 400)
    save(db, "s0", [item("https://s0.example/long", "Long", body)])
    save(db, "s1", [item("https://s1.example/excerpt", "Excerpt", first_words(body, 60))])
    assert db.execute("SELECT count(*) FROM boilerplate").fetchone()[0] > 0
    postings_agree(db)
    store.prune(db, "2000-01-01T00:00:00Z", sketches_before="2100-01-01T00:00:00Z")  # the window ends now
    assert db.execute("SELECT count(*) FROM sketches").fetchone()[0] == 0
    postings_agree(db)


def test_pruned_articles_leave_no_postings_behind(db):
    sources(db, "a")
    save(db, "a", [item("https://a.example/1", "One", text_of(5, 200))], fetched="2026-11-01T00:00:00Z")
    assert db.execute("SELECT count(*) FROM sketches").fetchone()[0] > 0
    # the article is pruned (no hits, older than asked) while its sketch is still inside the story window
    assert store.prune(db, "2026-11-02T00:00:00Z", sketches_before="2026-10-01T00:00:00Z") == 1
    assert db.execute("SELECT count(*) FROM sketches").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sketch_articles").fetchone()[0] == 0


def test_migration_13_keeps_the_postings_and_the_stories(tmp_path):
    """A database whose postings were indexed by article too (schema 12) moves to hash-keyed postings
    with each article's hashes in sketch_articles; stories go on forming across the migration."""
    from pipeline.dedup import shingle_sketch, stored_form
    from pipeline.fold import Folded

    path = tmp_path / "v12.db"
    conn = sqlite3.connect(path, isolation_level=None)
    store.apply_migrations(sqlite_utils.Database(conn), upto=12)
    conn.execute("INSERT INTO sources (id, name, url) VALUES ('a', 'A', 'http://a/'), ('b', 'B', 'http://b/')")
    bodies = {1: text_of(21, 500), 2: text_of(22, 150)}
    for aid, body in bodies.items():
        conn.execute("INSERT INTO stories (id, title, first_seen) VALUES (?, 'Old', ?)", (aid, FETCHED))
        conn.execute("INSERT INTO articles (id, source, guid, url, title, text, published, fetched, fingerprint, story)"
                     " VALUES (?, 'a', ?, ?, 'Old', ?, ?, ?, ?, ?)", (aid, f"g{aid}", f"https://a.example/{aid}", body,
                                                                     FETCHED, FETCHED, f"fp{aid}", aid))
        sk, whole, positions, lead = shingle_sketch(Folded.of(body).words)
        form = stored_form(sk, whole, set(), lead, positions)
        conn.execute("INSERT INTO sketch_articles (article, story, source, size, whole, fetched) VALUES (?,?,?,?,?,?)",
                     (aid, aid, "a", form.size, form.whole, FETCHED))
        conn.executemany("INSERT INTO sketches (hash, article, pos, sampled) VALUES (?,?,?,?)",
                         [(h, aid, positions.get(h), h in form.sampled) for h in form.hashes])
    before = sorted(conn.execute("SELECT hash, article FROM sketches").fetchall())
    own_before = {a: sorted((h, p, bool(x)) for h, a2, p, x in conn.execute("SELECT hash, article, pos, sampled FROM sketches") if a2 == a)
                  for a in bodies}
    conn.close()
    db = store.connect(path)
    assert store.schema_version(db) == len(store.MIGRATIONS)
    assert sorted(db.execute("SELECT hash, article FROM sketches").fetchall()) == before
    from pipeline.store.postings import unpack
    assert {a: sorted(unpack(p)) for a, p in db.execute("SELECT article, hashes FROM sketch_articles")} == own_before
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sketches_article'").fetchone()[0] == 0
    postings_agree(db)
    save(db, "b", [item("https://b.example/1", "Excerpt", first_words(bodies[1], 60))])
    assert stories(db)["https://b.example/1"] == 1
