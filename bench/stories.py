"""Stories battery: which copies of an article end in its story, in either arrival order, and what the lookup costs.

Articles are generated (English and Spanish, news-shaped: paragraphs of sentences with
people, places, agencies, figures and stock phrases) and fed through the real path:
Entry -> cycle.prepare_article -> store.save_polls (overlaps from storage, the decision in
pipeline.dedup), one poll per batch of a source's items, as a feed would bring them.

Kinds of same-article pairs (each original with):
  excerpt20/40/60  the first 20, 40 or 60 words, as a feed summary on an aggregator (one length per original)
  republished      the full text under a new headline on a site that wraps every article in
                   its header and footer; that site also carries 40 other articles with them
  rewrite30        30% of the sentences rewritten
  long             a 10,000-word original and its republished copy
Must stay apart (false merges): different articles about the same event (same people, place,
figures and a shared quote), the site's 40 other articles, and 50 different short items of
one site with a shared header and footer.

Orders: originals-first (every original stored before its copies) and copies-first.

Lookup cost: a database filled with filler articles (their sketches drawn from the generated
text's hashes, stock phrases included, plus random ones: cheap to insert), then the story
lookup (store.story_overlaps + dedup.join_stories) timed for the battery's copies at 20k and
200k stored articles; the 20k figure is the baseline of the ratio.

    python bench/stories.py [--originals 40] [--big 200000] [--small 20000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import store  # noqa: E402
from pipeline.cycle import prepare_article  # noqa: E402
from pipeline.dedup import COMMON_POSTINGS, join_stories, shingle_sketch  # noqa: E402
from pipeline.fold import Folded  # noqa: E402
from pipeline.parse import Entry  # noqa: E402
from pipeline.store import PollOutcome, save_polls  # noqa: E402

FETCHED = "2026-11-20T10:00:00Z"

# --------------------------------------------------------------------------- text generation

EN = dict(
    people=["Defence Secretary Laura Whitcombe", "Governor Ramón Ortega", "Attorney General Denise Fairfax",
            "Commissioner Peter Haldane", "Senator Maria Castellanos", "Judge Oliver Brandt", "Mayor Teresa Lujan",
            "Ambassador Frank Sorensen", "Colonel Hector Ybarra", "Deputy Minister Alicia Moreno", "Sheriff Dale Kimura",
            "prosecutor Nadia Quintero", "union leader Samuel Otis", "analyst Rebecca Lindqvist", "Rep. Owen Fitch",
            "Captain Lucia Serrano", "trade envoy Martin Pryce", "economist Joy Adeyemi", "pastor Luis Galindo"],
    groups=["customs officers", "federal agents", "state police", "port inspectors", "Coast Guard crews", "army engineers",
            "immigration lawyers", "shelter volunteers", "truck drivers", "Treasury investigators", "border residents",
            "local prosecutors", "navy divers", "forensic teams", "hospital staff", "farm owners", "school principals",
            "bank compliance officers", "rail dispatchers", "city councillors"],
    places=["Nogales", "Ciudad Juárez", "El Paso", "Tijuana", "San Diego", "Laredo", "Reynosa", "Matamoros", "Culiacán",
            "Manzanillo", "Lázaro Cárdenas", "Mexicali", "Yuma", "Eagle Pass", "Piedras Negras", "Hermosillo", "Sásabe",
            "Douglas", "Calexico", "Brownsville", "Agua Prieta", "Ojinaga", "Tecate", "Sonoyta"],
    verbs=["said", "announced", "confirmed", "warned", "argued", "reported", "acknowledged", "insisted", "told reporters",
           "wrote", "testified", "denied", "estimated", "predicted", "complained", "noted", "suggested", "revealed"],
    adjs=["new", "stolen", "unregistered", "seized", "imported", "counterfeit", "abandoned", "refurbished", "private",
          "federal", "illegal", "commercial", "damaged", "undeclared", "expensive", "outdated", "rented", "armoured"],
    nouns=["precursor chemicals", "pill presses", "cash couriers", "asylum requests", "rifle parts", "tunnel entrances",
           "cargo scanners", "shipping containers", "wire transfers", "detention beds", "drones", "fentanyl pills",
           "ammunition crates", "visa files", "checkpoint lanes", "court dockets", "tanker trucks", "freight wagons",
           "warehouses", "speedboats", "radio towers", "migrant shelters", "payroll accounts", "gas stations"],
    acts=["doubled", "vanished", "fell sharply", "stalled", "were audited", "were inspected twice", "were traced",
          "went unreported", "were moved at night", "were sold", "were rerouted", "were photographed", "piled up",
          "were rejected", "were approved", "were counted again", "were sealed", "were reopened", "were auctioned"],
    preps=["since spring", "last month", "in October", "after the raid", "before the election", "during the storm",
           "within a week", "over the summer", "ahead of the audit", "under the new rules", "despite the warnings",
           "near the old bridge", "along the canal", "outside the plant", "behind the market", "at the rail yard"],
    times=["on Tuesday", "late on Friday", "this week", "in a statement", "after a closed meeting", "on Monday morning",
           "during a hearing", "before dawn", "over the weekend", "at a press conference", "in an interview",
           "on Thursday evening", "in a radio address", "in a court filing"],
    stock=["according to two officials familiar with the matter", "who spoke on condition of anonymity",
           "the ministry did not respond to a request for comment", "the investigation is continuing",
           "it was not immediately clear why", "officials said in a statement"],
    joiners=["Meanwhile", "Still", "Separately", "Earlier", "By contrast", "In response", "Later", "For now", "Privately",
             "Publicly", "Locally", "In practice"],
    that="that", in_="in", near="near", of="of", met="met with", from_="from", and_="and",
    figure="The figure of",
)
ES = dict(
    people=["la secretaria de Seguridad Lorena Villaseñor", "el gobernador Rubén Anaya", "el fiscal Armando Treviño",
            "la senadora Patricia Olvera", "el juez Ernesto Salinas", "la alcaldesa Marisol Cuevas",
            "el almirante Julián Bermúdez", "la diputada Karla Benítez", "el comisionado Tomás Aguirre",
            "la investigadora Elena Robles", "el general Víctor Landa", "la cónsul Inés Carranza",
            "el obispo Raúl Medina", "la economista Sofía Ledesma", "el líder sindical Joel Estrada"],
    groups=["agentes aduanales", "elementos de la Guardia Nacional", "policías estatales", "inspectores portuarios",
            "marinos", "abogados migratorios", "voluntarios de albergues", "transportistas", "agentes de la Fiscalía",
            "vecinos de la frontera", "peritos forenses", "médicos del hospital general", "productores agrícolas",
            "directores de escuela", "regidores", "ferrocarrileros"],
    places=["Nogales", "Ciudad Juárez", "Tijuana", "Reynosa", "Matamoros", "Culiacán", "Manzanillo", "Lázaro Cárdenas",
            "Mexicali", "Hermosillo", "Nuevo Laredo", "Piedras Negras", "Sonoyta", "Ensenada", "Agua Prieta", "Ojinaga",
            "Tecate", "San Luis Río Colorado", "Caborca", "Altar"],
    verbs=["afirmó", "anunció", "confirmó", "advirtió", "sostuvo", "informó", "reconoció", "insistió", "declaró",
           "explicó", "negó", "detalló", "calculó", "lamentó", "sugirió", "reveló"],
    adjs=["nuevos", "robados", "irregulares", "asegurados", "importados", "falsos", "abandonados", "privados",
          "federales", "ilegales", "comerciales", "dañados", "no declarados", "costosos", "rentados", "blindados"],
    nouns=["precursores químicos", "prensas para pastillas", "envíos de efectivo", "expedientes de asilo",
           "piezas de armas", "túneles", "escáneres de carga", "contenedores", "giros bancarios", "camas de detención",
           "drones", "cargamentos de fentanilo", "cajas de municiones", "carriles de la garita", "camiones cisterna",
           "vagones de carga", "bodegas", "lanchas rápidas", "albergues", "cuentas de nómina", "gasolineras"],
    acts=["se duplicaron", "desaparecieron", "cayeron", "se estancaron", "fueron auditados", "fueron revisados dos veces",
          "fueron rastreados", "no se reportaron", "se movieron de noche", "fueron vendidos", "fueron desviados",
          "se acumularon", "fueron rechazados", "fueron aprobados", "fueron sellados", "fueron reabiertos",
          "fueron subastados"],
    preps=["desde la primavera", "el mes pasado", "en octubre", "tras el cateo", "antes de la elección",
           "durante la tormenta", "en una semana", "durante el verano", "antes de la auditoría", "con las nuevas reglas",
           "pese a las advertencias", "cerca del puente viejo", "junto al canal", "afuera de la planta",
           "detrás del mercado", "en el patio ferroviario"],
    times=["el martes", "el viernes por la noche", "esta semana", "en un comunicado", "tras una reunión privada",
           "el lunes por la mañana", "durante una audiencia", "de madrugada", "el fin de semana",
           "en conferencia de prensa", "en una entrevista radiofónica", "en un escrito judicial"],
    stock=["según dos funcionarios que pidieron el anonimato", "la dependencia no respondió a una solicitud de comentarios",
           "la investigación continúa", "no quedó claro de inmediato por qué", "informaron las autoridades en un comunicado"],
    joiners=["Mientras tanto", "Sin embargo", "Por separado", "Más tarde", "En respuesta", "Por ahora", "Además",
             "En privado", "En público", "En la práctica"],
    that="que", in_="en", near="cerca de", of="de", met="se reunió con", from_="de", and_="y",
    figure="La cifra de",
)
FIRST = ["Ana", "Luis", "Carmen", "Jorge", "Rosa", "Miguel", "Elena", "Pablo", "Lucía", "Diego", "Marta", "Andrés",
         "Paula", "Héctor", "Irene", "Óscar", "Clara", "Raúl", "Sara", "Iván", "Julia", "Tomás", "Nora", "Félix",
         "James", "Karen", "Dylan", "Megan", "Brian", "Alicia", "Trevor", "Holly", "Grant", "Wendy", "Curtis", "Joan"]
LAST = ["Acosta", "Bravo", "Cantú", "Durán", "Esparza", "Fuentes", "Garza", "Huerta", "Ibarra", "Jaramillo", "Leyva",
        "Mendoza", "Navarro", "Ochoa", "Peña", "Quiroz", "Rivas", "Solís", "Tapia", "Urías", "Valdez", "Zamora",
        "Baker", "Collins", "Dunn", "Ellis", "Foster", "Gibbs", "Hayes", "Irwin", "Keller", "Lowry", "Mills", "Norris"]
ROLES = {"en": ["a driver", "a nurse", "a welder", "a teacher", "a customs broker", "a rancher", "a pharmacist", "a mechanic",
                "a shop owner", "a lawyer", "a retired agent", "a student", "a fisherman", "a cook", "an accountant"],
         "es": ["chofer", "enfermera", "soldador", "maestra", "agente aduanal", "ganadero", "farmacéutica", "mecánico",
                "comerciante", "abogada", "agente retirado", "estudiante", "pescador", "cocinera", "contador"]}
MONTHS = {"en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                 "November", "December"],
          "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
                 "noviembre", "diciembre"]}
LANGS = {"en": EN, "es": ES}


def aside(rng: random.Random, v: dict) -> str:
    """A detail of the kind that makes prose specific: a named witness, a date, a figure."""
    lang = "en" if v is EN else "es"
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    day = f"{rng.randint(1, 28)} de {rng.choice(MONTHS[lang])}" if lang == "es" else f"{rng.choice(MONTHS[lang])} {rng.randint(1, 28)}"
    shape = rng.randrange(4)
    if lang == "en":
        return [f"{name}, {rng.choice(ROLES[lang])} aged {rng.randint(19, 80)}, said it began on {day}",
                f"records dated {day} list {rng.randint(2, 900)} cases",
                f"{name} counted {rng.randint(2, 400)} trucks on {day}",
                f"a report filed on {day} by {name} put the cost at {rng.randint(2, 90)} million dollars"][shape]
    return [f"{name}, {rng.choice(ROLES[lang])} de {rng.randint(19, 80)} años, dijo que empezó el {day}",
            f"registros del {day} enumeran {rng.randint(2, 900)} casos",
            f"{name} contó {rng.randint(2, 400)} camiones el {day}",
            f"un informe del {day} firmado por {name} calculó el costo en {rng.randint(2, 90)} millones de pesos"][shape]


def sentence(rng: random.Random, v: dict, event: dict | None = None) -> str:
    """One news sentence: most 5-word runs hold two or more independent choices, as in real prose."""
    c = rng.choice
    person = event["person"] if event and rng.random() < 0.4 else c(v["people"])
    place = event["place"] if event and rng.random() < 0.5 else c(v["places"])
    n = event["figure"] if event and rng.random() < 0.3 else rng.randint(3, 9800)
    thing = c(v["nouns"])
    if rng.random() < 0.7:
        thing = f"{c(v['adjs'])} {thing}" if v is EN else f"{thing} {c(v['adjs'])}"
    act = f"{c(v['acts'])} {c(v['preps'])}"
    shape = rng.randrange(5)
    if shape == 0:
        s = f"{person} {c(v['verbs'])} {v['that']} {n} {thing} {v['in_']} {place} {act}"
    elif shape == 1:
        s = f"{c(v['joiners'])}, {c(v['groups'])} {v['in_']} {place} {c(v['verbs'])} {c(v['times'])} {v['that']} {thing} {act}"
    elif shape == 2:
        s = f"{c(v['stock']).capitalize()}, {n} {thing} {act} {v['near']} {place}"
    elif shape == 3:
        s = (f"{c(v['times']).capitalize()}, {person} {v['met']} {c(v['groups'])} {v['from_']} {place} {v['and_']} "
             f"{c(v['verbs'])} {v['that']} {thing} {act}")
    else:
        s = f"{v['figure']} {n} {thing} {v['in_']} {place} {act}, {person} {c(v['verbs'])} {c(v['times'])}"
    if rng.random() < 0.6:
        s += "; " + aside(rng, v)
    return s[0].upper() + s[1:] + "."


def article(rng: random.Random, lang: str, words: int, event: dict | None = None) -> list[str]:
    """Sentences (about ``words`` words); an event's quote, when given, appears once."""
    v = LANGS[lang]
    out, n = [], 0
    while n < words:
        s = sentence(rng, v, event)
        out.append(s)
        n += len(s.split())
    if event:
        out.insert(min(3, len(out)), event["quote"])
    return out


def event_of(rng: random.Random, lang: str) -> dict:
    v = LANGS[lang]
    quote_en = f'"We will not let {rng.choice(v["nouns"])} cross through {rng.choice(v["places"])} while this office stands," {rng.choice(v["people"])} said.'
    quote_es = f'"No vamos a permitir que {rng.choice(v["nouns"])} crucen por {rng.choice(v["places"])} mientras exista esta oficina", dijo {rng.choice(v["people"])}.'
    return {"person": rng.choice(v["people"]), "place": rng.choice(v["places"]), "figure": rng.randint(100, 9000),
            "quote": quote_en if lang == "en" else quote_es}


def paragraphs(sents: list[str]) -> str:
    return "\n\n".join(" ".join(sents[i:i + 3]) for i in range(0, len(sents), 3))


HEADER = {"en": "The Borderland Ledger. Independent reporting from both sides of the line since 1994. Get our morning "
                "briefing in your inbox: sign up free and never miss the stories that shape the frontier. Advertisement.",
          "es": "El Correo Fronterizo. Periodismo independiente de ambos lados de la línea desde 1994. Recibe nuestro "
                "boletín matutino: suscríbete gratis y no te pierdas las noticias que marcan la frontera. Publicidad."}
FOOTER = {"en": "The Borderland Ledger is a nonprofit newsroom. Our journalism is free thanks to readers like you. Become "
                "a member today, share this story, and follow us for live coverage of border courts and trade.",
          "es": "El Correo Fronterizo es una redacción sin fines de lucro. Nuestro periodismo es gratuito gracias a lectores "
                "como tú. Hazte socio hoy, comparte esta nota y síguenos para la cobertura en vivo de la frontera."}


# --------------------------------------------------------------------------- the battery


def build(n_originals: int, seed: int = 7):
    """Polls per source (source -> [(truth, kind, Entry)]) and the same-article pairs by kind."""
    rng = random.Random(seed)
    polls: dict[str, list] = defaultdict(list)
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    truth = itertools.count()
    for i in range(n_originals):
        lang = "en" if i % 2 == 0 else "es"
        event = event_of(rng, lang)
        sents = article(rng, lang, rng.randint(400, 900), event)
        t = next(truth)
        body = paragraphs(sents)
        url = f"https://wire-{lang}.example/{i}"
        polls[f"wire-{lang}"].append((t, "original", Entry(url=url, title=f"Original {i}", text=body, guid=url)))
        words = body.split()
        for k in ((20, 40, 60)[i % 3],):  # one excerpt per original: no excerpt joins through a longer one
            u = f"https://brief{k}.example/{i}"
            polls[f"brief{k}"].append((t, f"excerpt{k}", Entry(url=u, title=f"Original {i}", text=" ".join(words[:k]) + " …", guid=u)))
            pairs[f"excerpt{k}"].append((url, u))
        u = f"https://ledger-{lang}.example/copy/{i}"
        polls[f"ledger-{lang}"].append((t, "republished", Entry(url=u, title=f"A new headline for story {i}",
                                                               text=f"{HEADER[lang]}\n\n{body}\n\n{FOOTER[lang]}", guid=u)))
        pairs["republished"].append((url, u))
        rewritten = [sentence(rng, LANGS[lang], event) if rng.random() < 0.3 else s for s in sents]
        u = f"https://rewrite.example/{i}"
        polls["rewrite"].append((t, "rewrite30", Entry(url=u, title=f"Rewritten {i}", text=paragraphs(rewritten), guid=u)))
        pairs["rewrite30"].append((url, u))
        u = f"https://other-{lang}.example/{i}"  # another article about the same event: must stay apart
        polls[f"other-{lang}"].append((next(truth), "same-event", Entry(
            url=u, title=f"Another view of story {i}", text=paragraphs(article(rng, lang, rng.randint(300, 700), event)), guid=u)))
    for lang in ("en", "es"):
        for j in range(40):  # the ledger's own articles, with the same header and footer
            u = f"https://ledger-{lang}.example/own/{j}"
            polls[f"ledger-{lang}"].append((next(truth), "site-other", Entry(
                url=u, title=f"Ledger {j}", text=f"{HEADER[lang]}\n\n{paragraphs(article(rng, lang, rng.randint(150, 600)))}\n\n{FOOTER[lang]}", guid=u)))
        for j in range(50):  # different short items of one site, header and footer around each
            u = f"https://shorts-{lang}.example/{j}"
            polls[f"shorts-{lang}"].append((next(truth), "short-item", Entry(
                url=u, title=f"Brief {j}", text=f"{HEADER[lang]}\n\n{' '.join(' '.join(article(rng, lang, 40)).split()[:rng.randint(25, 60)])}\n\n{FOOTER[lang]}", guid=u)))
    for i in range(4):  # long reads and their republished copies
        lang = "en" if i % 2 == 0 else "es"
        body = paragraphs(article(rng, lang, 10_000))
        t = next(truth)
        url, u = f"https://longform.example/{i}", f"https://ledger-{lang}.example/long/{i}"
        polls["longform"].append((t, "original", Entry(url=url, title=f"Long read {i}", text=body, guid=url)))
        polls[f"ledger-{lang}"].append((t, "long", Entry(url=u, title=f"Long read {i}, republished",
                                                        text=f"{HEADER[lang]}\n\n{body}\n\n{FOOTER[lang]}", guid=u)))
        pairs["long"].append((url, u))
    for items in polls.values():
        rng.shuffle(items)
    return polls, pairs


ORIGINAL_SOURCES = ("wire-en", "wire-es", "longform")


def feed(db, polls: dict, order: str, batch: int = 20) -> dict[str, int]:
    """Store the battery's polls; returns the lookup+save time per article (ms)."""
    names = sorted(polls)
    originals = [s for s in names if s in ORIGINAL_SOURCES]
    copies = [s for s in names if s not in ORIGINAL_SOURCES]
    seq = originals + copies if order == "originals-first" else copies + originals
    store.sync_sources(db, [type("S", (), {"id": s, "name": s, "url": f"http://{s}/", "type": "feed", "enabled": True})()
                            for s in names])
    for source in seq:
        items = polls[source]
        for i in range(0, len(items), batch):
            arts = [prepare_article(Entry(e.url, e.title, e.text, e.guid), FETCHED, None) for _, _, e in items[i:i + batch]]
            save_polls(db, [PollOutcome(source, True, 200, articles=arts)])


def grouping(tmp: Path, polls, pairs, order: str) -> dict:
    db = store.connect(tmp / f"battery-{order}.db")
    feed(db, polls, order)
    story = {r["url"]: r["story"] for r in db.query("SELECT url, story FROM articles")}
    truth = {e.url: (t, kind, src) for src, items in polls.items() for t, kind, e in items}
    out = {kind: sum(story[a] == story[b] for a, b in ps) / len(ps) for kind, ps in pairs.items()}
    by_story: dict[int, list[str]] = defaultdict(list)
    for url, s in story.items():
        by_story[s].append(url)
    false, boiler = 0, 0
    for urls in by_story.values():
        for a, b in itertools.combinations(urls, 2):
            if truth[a][0] != truth[b][0]:
                false += 1
                boiler += truth[a][2] == truth[b][2]  # both from one site (its boilerplate)
    pairs_total = len(story) * (len(story) - 1) // 2
    db.close()
    return {"grouped": out, "false_merges": false, "false_merges_same_site": boiler, "pairs_checked": pairs_total,
            "partition": sorted(sorted(u) for u in by_story.values())}


# --------------------------------------------------------------------------- lookup cost


def fill(db, target: int, pool: list[int], rng: random.Random, start: int, counts: dict[int, int]) -> int:
    """Add filler articles until ``target`` are stored: each gets ~22 random hashes and ~3 stock-phrase hashes of
    the generated text (its hashes found in three or more different articles), stored as the real path stores
    them: a hash already held by COMMON_POSTINGS articles is not stored again."""
    have = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    n = target - have
    if n <= 0:
        return start
    db.execute("PRAGMA cache_size = -200000")
    db.execute("INSERT OR IGNORE INTO sources (id, name, url, type) VALUES ('filler', 'Filler', 'http://filler/', 'feed')")
    with store.transaction(db) as conn:
        story0 = conn.execute("SELECT coalesce(max(id), 0) FROM stories").fetchone()[0] + 1
        conn.executemany("INSERT INTO stories (id, title, first_seen) VALUES (?, 'filler', ?)",
                         [(story0 + k, FETCHED) for k in range(n)])
        for chunk in range(0, n, 20_000):
            rows, meta, post = [], [], []
            for k in range(chunk, min(n, chunk + 20_000)):
                aid = start + k
                hashes = {rng.getrandbits(63) for _ in range(22)}
                if pool:  # Zipf-like: a few stock phrases are everywhere, most are rare
                    hashes |= {pool[min(int(rng.paretovariate(1.0)) - 1, len(pool) - 1)] for _ in range(3)}
                rows.append((aid, "filler", f"f{aid}", f"https://filler.example/{aid}", "Filler", "filler text",
                             FETCHED, FETCHED, f"fp{aid}", story0 + k, len(hashes)))
                meta.append((aid, story0 + k, "filler", len(hashes), 0, FETCHED))
                for h in hashes:
                    if counts.get(h, 0) < COMMON_POSTINGS:
                        counts[h] = counts.get(h, 0) + 1
                        post.append((h, aid))
            conn.executemany("INSERT INTO articles (id, source, guid, url, title, text, published, fetched, fingerprint,"
                             " story, sketch_size) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO sketch_articles (article, story, source, size, whole, fetched) VALUES (?,?,?,?,?,?)", meta)
            post.sort()
            conn.executemany("INSERT OR IGNORE INTO sketches (hash, article) VALUES (?, ?)", post)
    return start + n


def postings_read(db, probes: list[tuple]) -> float:
    """Mean postings a lookup reads (the work that could grow with the database)."""
    total = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for source, sketch, whole, positions, lead in probes:
            form, _, _ = store.story_overlaps(db.conn, source, sketch, whole, None, positions, lead)
            if form.hashes:
                total += db.execute("SELECT count(*) FROM sketches WHERE hash IN (SELECT value FROM json_each(?))",
                                    (json.dumps(form.hashes),)).fetchone()[0]
    finally:
        db.execute("ROLLBACK")
    return total / len(probes)


def lookup_ms(db, probes: list[tuple], rounds: int = 5) -> float:
    """Mean ms per article of the story lookup (overlaps from storage + the decision), best of ``rounds``.
    A first pass keeps what lookups learn (stock phrases, boilerplate), as the real path would; the timed
    passes are rolled back."""
    with store.transaction(db) as conn:
        for source, sketch, whole, positions, lead in probes:
            store.story_overlaps(conn, source, sketch, whole, None, positions, lead)
    best = float("inf")
    for _ in range(rounds):
        db.execute("BEGIN IMMEDIATE")
        try:
            t = time.perf_counter()
            for source, sketch, whole, positions, lead in probes:
                form, overlaps, _ = store.story_overlaps(db.conn, source, sketch, whole, None, positions, lead)
                join_stories(form, overlaps)
            best = min(best, (time.perf_counter() - t) * 1000 / len(probes))
        finally:
            db.execute("ROLLBACK")
    return best


def cost(tmp: Path, polls, small: int, big: int) -> dict:
    db = store.connect(tmp / "cost.db")
    originals = {s: polls[s] for s in polls if s in ORIGINAL_SOURCES}
    feed(db, originals, "originals-first")
    rng = random.Random(11)
    truths: dict[int, set[int]] = defaultdict(set)
    probes = []
    for src, items in polls.items():
        for t, kind, e in items:
            sk, whole, positions, lead = shingle_sketch(Folded.of(e.text).words)
            for h in sk:
                truths[h].add(t)
            if src not in ORIGINAL_SOURCES:
                probes.append((src, sk, whole, positions, lead))
    pool = [h for h, ts in truths.items() if len(ts) >= 3]  # the generated text's stock phrases
    probes = random.Random(3).sample(probes, min(400, len(probes)))
    counts = {h: n for h, n in db.execute("SELECT hash, count(*) FROM sketches GROUP BY hash")}
    start = db.execute("SELECT max(id) FROM articles").fetchone()[0] + 1
    out = {}
    for target in (small, big):
        t = time.perf_counter()
        start = fill(db, target, pool, rng, start, counts)
        filled = time.perf_counter() - t
        ms = lookup_ms(db, probes)
        out[target] = {"ms_per_article": round(ms, 3), "fill_s": round(filled, 1), "stock_hashes": len(pool),
                       "postings_read": round(postings_read(db, probes), 1),
                       "postings": db.execute("SELECT count(*) FROM sketches").fetchone()[0]}
    db.close()
    out["ratio"] = round(out[big]["ms_per_article"] / out[small]["ms_per_article"], 2)
    out["postings_ratio"] = round(out[big]["postings_read"] / out[small]["postings_read"], 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=120, help="original articles in the battery (half English, half Spanish)")
    ap.add_argument("--small", type=int, default=20_000, help="stored articles for the baseline lookup figure")
    ap.add_argument("--big", type=int, default=200_000, help="stored articles for the second lookup figure")
    ap.add_argument("--seed", type=int, default=7, help="seed of the generated battery")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)
    polls, pairs = build(args.originals, args.seed)
    n = sum(len(v) for v in polls.values())
    result: dict = {"articles": n}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for order in ("originals-first", "copies-first"):
            t = time.perf_counter()
            result[order] = grouping(tmp, polls, pairs, order)
            result[order]["ms_per_article_stored"] = round((time.perf_counter() - t) * 1000 / n, 2)
        same = result["originals-first"].pop("partition") == result["copies-first"].pop("partition")
        result["same_stories_both_orders"] = same
        result["lookup"] = cost(tmp, polls, args.small, args.big)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"battery: {n} articles, {args.originals} originals (EN/ES), pairs per kind: "
          + ", ".join(f"{k} {len(v)}" for k, v in sorted(pairs.items())))
    print(f"{'kind':<14}{'originals-first':>17}{'copies-first':>14}")
    for kind in sorted(pairs):
        print(f"{kind:<14}{result['originals-first']['grouped'][kind]:>17.3f}{result['copies-first']['grouped'][kind]:>14.3f}")
    for order in ("originals-first", "copies-first"):
        r = result[order]
        print(f"{order}: false merges {r['false_merges']} of {r['pairs_checked']:,} pairs "
              f"({r['false_merges_same_site']} within one site's boilerplate); "
              f"{r['ms_per_article_stored']} ms per article (prepare + store)")
    print(f"same stories in both orders: {same}")
    lk = result["lookup"]
    for target in (args.small, args.big):
        print(f"lookup at {target:>7,} stored articles: {lk[target]['ms_per_article']:.3f} ms per article "
              f"reading {lk[target]['postings_read']:.0f} postings ({lk[target]['postings']:,} stored, "
              f"{lk[target]['stock_hashes']} stock-phrase hashes; filled in {lk[target]['fill_s']} s)")
    print(f"ratio {args.big:,} / {args.small:,} (baseline): {lk['ratio']:.2f}x time, {lk['postings_ratio']:.2f}x postings read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
