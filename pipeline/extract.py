"""Article pages -> the text borderwatch stores: title, main text, published date, author, language.

One pure function, ``extract_article(body, url, headers)``: bytes in, an ``ArticlePage`` out, no I/O,
no global state; callers run it off the event loop (in the worker process when there is one).
``extract_inputs`` (the ``extract`` command) reads files and fetches URLs with the polls' fetcher
and hands each body to it.

- Main text: trafilatura in precision mode (boilerplate removal by structure and text density, with
  its own readability/jusText fallbacks inside), comments excluded, after tables used for page
  layout are turned into plain blocks; the headline, byline and dateline that lead its output and
  copyright lines that close it are dropped. A second library extractor (readability-lxml) as a
  fallback was measured and added nothing on the evaluation set (bench/extract.py), so there is none.
- Published date: the page's own machine-readable metadata first (JSON-LD ``datePublished``,
  ``article:published_time``, ``itemprop=datePublished``, ``<time datetime>``), then a date
  written in words or numbers in the page's date/byline elements or at the top of the article
  (Spanish "20 de noviembre de 2026", English "November 20, 2026", numeric dates day-first
  unless the page says it is US English), then htmldate's guess.
- Language: the page's declared language (``<html lang>``, Content-Language, ``og:locale``),
  else a count of frequent function words over the title and text (``detect_language``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .parse import MAX_TEXT, _parse_time, _tidy, clean_title, scrub

DATE_SCAN_CHARS = 1500  # how much of the article's start is searched for a written date

UTC = dt.timezone.utc


@dataclass
class ArticlePage:
    title: str
    text: str
    canonical: str | None = None
    published: dt.datetime | None = None
    author: str = ""
    language: str | None = None


def extract_article(body: bytes | str, url: str, headers: dict[str, str] | None = None) -> ArticlePage:
    """Main text and metadata of one article page (pure: no I/O)."""
    tree = parse_html(body, headers)
    if tree is None:
        return ArticlePage("", "")
    meta = _page_metadata(tree, url)
    import trafilatura

    unwrap_layout_tables(tree)
    try:
        doc = trafilatura.bare_extraction(
            tree, url=url or None, with_metadata=True, include_comments=False, include_tables=True,
            favor_precision=True, deduplicate=False,
            date_extraction_params={"extensive_search": False, "original_date": True})
    except (ValueError, TypeError, OverflowError, RecursionError, AttributeError):  # odd documents: no text
        doc = None
    title = meta["title"] or (doc.title if doc is not None else "") or ""
    raw = doc.text if doc is not None and doc.text else ""
    author = clean_author(meta["author"] or (doc.author if doc is not None and doc.author else "")
                          or byline_author(meta["byline_texts"]) or byline_author(raw.split("\n")[:3], need_prefix=True))
    text = _body_text(raw, title, author)
    language = meta["language"] or detect_language(f"{title}\n{text}")
    published = meta["published"] or written_date(meta["date_texts"] + [raw[:DATE_SCAN_CHARS]], meta["region"])
    if published is None and doc is not None and doc.date:
        published = _parse_time(doc.date)
    return ArticlePage(clean_title(title), text[:MAX_TEXT], meta["canonical"], published,
                       clean_title(author)[:200], language)


def parse_html(body: bytes | str, headers: dict[str, str] | None = None):
    """Body -> lxml tree, honouring a charset given in the HTTP header; None if there is no document."""
    from trafilatura.utils import load_html

    if isinstance(body, bytes):
        m = re.search(r"charset=[\"']?([\w.:-]+)", (headers or {}).get("content-type", ""), re.I)
        if m:
            try:
                body = body.decode(m.group(1), "replace")
            except LookupError:
                pass
    if isinstance(body, str):
        body = re.sub(r"^\s*<\?xml[^>]*\?>", "", body)  # lxml refuses str input with an encoding declaration
    if not body or not body.strip():
        return None
    try:
        return load_html(body)
    except Exception:  # lxml raises a variety of errors on hostile or empty documents
        return None


# --------------------------------------------------------------------------- text


def _body_text(text: str, title: str, author: str = "") -> str:
    """Extractor output -> stored text: paragraphs separated by blank lines, without the headline,
    byline and dateline lines that lead it or the copyright lines that close it."""
    lines = [line.strip() for line in (text or "").split("\n")]
    lines = [line for line in lines if line]
    while lines and _is_heading_line(lines[0], title, author):
        lines.pop(0)
    while lines and _COPYRIGHT.search(lines[-1]) and len(lines[-1]) < 300:
        lines.pop()
    return _tidy("\n\n".join(lines))


_COPYRIGHT = re.compile(r"(©|\(c\)|\bcopyright\b|all rights reserved|derechos reservados)", re.I)
_BYLINE = re.compile(r"^(by|por|de)\s+\w", re.I)


def _is_heading_line(line: str, title: str, author: str) -> bool:
    """The headline, a byline or a dateline repeated at the top of the text (not article prose)."""
    if len(line) > 160:
        return False
    if title and _same_words(line, title):
        return True
    words = re.findall(r"\w+", line.casefold())
    if author and words and words == re.findall(r"\w+", author.casefold()):
        return True
    if _BYLINE.match(line) and len(words) <= 12 and not line.endswith("."):
        return True
    dated = _first_date(line, False)
    if dated is not None:
        rest = _DAY_MONTH_YEAR.sub(" ", _MONTH_DAY_YEAR.sub(" ", _NUMERIC.sub(" ", line)))
        return len(re.findall(r"[^\W\d_]+", rest)) <= 4  # a date, perhaps with a place or weekday
    return False


def _same_words(a: str, b: str) -> bool:
    return re.findall(r"\w+", a.casefold()) == re.findall(r"\w+", b.casefold())


LAYOUT_CELL_WORDS = 60


def unwrap_layout_tables(tree) -> None:
    """Turn tables used for page layout into plain blocks, so that the menu cell and the text cell are
    judged separately instead of as one table. A table is layout when it has no header cells and
    one of its own cells holds running text (many words, or <br>/<p> breaks); data tables are kept."""
    for table in tree.xpath("//table"):
        if table.xpath(".//th"):
            continue
        cells = [td for td in table.xpath(".//td") if td.xpath("ancestor::table[1]")[0] is table]
        layout = any(len(td.text_content().split()) >= LAYOUT_CELL_WORDS or len(td.xpath("./br|./p")) >= 2
                     for td in cells)
        if not layout:
            continue
        own = [el for el in table.xpath(".//tbody|.//thead|.//tfoot|.//tr|.//td")
               if el.xpath("ancestor::table[1]")[0] is table]
        for el in [table, *own]:
            el.tag = "div"


# --------------------------------------------------------------------------- metadata


def _page_metadata(tree, url: str) -> dict:
    """What the page says about itself: canonical URL, title, author, dates, language."""
    out = {"canonical": None, "title": "", "author": "", "published": None, "date_texts": [], "byline_texts": [],
           "language": None, "region": ""}
    for href in tree.xpath("//link[@href][contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href")[:1]:
        canonical = urljoin(url, scrub(href).strip())
        if urlsplit(canonical).scheme in ("http", "https"):
            out["canonical"] = canonical
    metas = {}
    for m in tree.xpath("//meta[@content]"):
        key = (m.get("property") or m.get("name") or m.get("itemprop") or m.get("http-equiv") or "").strip().lower()
        if key and key not in metas:
            metas[key] = m.get("content", "").strip()
    ld = _json_ld(tree)
    h1 = [" ".join(h.text_content().split()) for h in tree.xpath("//h1")]
    h1 = [h for h in h1 if h]
    og_title = metas.get("og:title") or metas.get("twitter:title") or ld.get("headline") or ""
    # The article's <h1>, unless the page has several and another title source names one of them.
    if len(h1) == 1:
        out["title"] = h1[0]
    elif og_title:
        out["title"] = next((h for h in h1 if _same_words(h, og_title)), og_title)
    out["author"] = clean_author(ld.get("author") or metas.get("author") or metas.get("article:author") or "")
    for value in (ld.get("datePublished"), metas.get("article:published_time"), metas.get("datepublished"),
                  metas.get("og:published_time"), metas.get("date"), metas.get("dc.date"), metas.get("dc.date.issued"),
                  metas.get("pubdate"), metas.get("publishdate")):
        published = _iso_date(value)
        if published:
            out["published"] = published
            break
    if out["published"] is None:
        for value in tree.xpath("//*[@itemprop='datePublished']/@datetime|//time[@datetime]/@datetime"
                                "|//*[@itemprop='datePublished']/@content"):
            published = _iso_date(value)
            if published:
                out["published"] = published
                break
    lang = (tree.xpath("string(/html/@lang)") or tree.xpath("string(/html/@xml:lang)")
            or metas.get("content-language") or metas.get("og:locale") or "").strip().replace("_", "-").lower()
    m = re.match(r"([a-z]{2,3})(?:-([a-z]{2}))?\b", lang)
    if m:
        out["language"], out["region"] = m.group(1), m.group(2) or ""
    dated = tree.xpath(
        "//time|//*[contains(translate(concat(@class, ' ', @id, ' ', @itemprop), 'DATEFCHUBLISOYN', 'datefchublisoyn'),"
        " 'date') or contains(translate(concat(@class, ' ', @id), 'FECHA', 'fecha'), 'fecha')"
        " or contains(translate(concat(@class, ' ', @id), 'PUBLISHED', 'published'), 'publi')"
        " or contains(translate(concat(@class, ' ', @id), 'BYLINE', 'byline'), 'byline')"
        " or contains(translate(concat(@class, ' ', @id), 'META', 'meta'), 'meta')]")
    out["date_texts"] = [" ".join(e.text_content().split())[:300] for e in dated[:20] if e.tag not in ("meta", "script")]
    marked = tree.xpath(
        "//*[contains(translate(concat(@class, ' ', @id, ' ', @itemprop, ' ', @rel, ' ', @data-testid),"
        " 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), 'byline')"
        " or contains(translate(concat(@class, ' ', @id, ' ', @itemprop, ' ', @rel),"
        " 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), 'autor')"
        " or contains(translate(concat(@class, ' ', @id, ' ', @itemprop, ' ', @rel),"
        " 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), 'author')"
        " or contains(translate(concat(@class, ' ', @id), 'FIRMA', 'firma'), 'firma')]")
    out["byline_texts"] = [" ".join(e.text_content().split())[:200] for e in marked[:10]
                           if e.tag not in ("meta", "script", "link") and not e.xpath("ancestor::*[contains(@class, 'comment')]")]
    return out


_BYLINE_PREFIX = re.compile(r"^\s*(?:by|por|de|written by|escrito por)\s*:?\s+", re.I)
_BYLINE_CUT = re.compile(r"\s+[-|·•/–—]\s+|\s*[|·•,(]\s*|\s+(?:on|el|updated|actualizado|publicado|published)\s+", re.I)


def byline_author(texts: list[str], need_prefix: bool = False) -> str:
    """The author's name from byline texts ("By Jane Doe | Nov. 20, 2026", "Por María López - 20 de ...").
    With ``need_prefix`` (text that is not marked as a byline) only "By ..."/"Por ..." lines count."""
    for text in texts:
        text = " ".join((text or "").split())
        if not text or len(text) > 200:
            continue
        prefixed = _BYLINE_PREFIX.match(text)
        if need_prefix and not prefixed:
            continue
        name = _BYLINE_CUT.split(text[prefixed.end():] if prefixed else text, maxsplit=1)[0]
        words = []
        for word in name.split():
            if any(c.isdigit() for c in word) or word.strip(".,").lower() in MONTHS:
                break  # the date that follows the name
            words.append(word)
        name = " ".join(words).strip(" .:")
        if 1 <= len(words) <= 6 and name[:1].isupper() and (prefixed or len(words) >= 2):
            return name
    return ""


def clean_author(name: str) -> str:
    """"Por María López" -> "María López"; a URL is not a name."""
    name = " ".join((name or "").split())
    if name.startswith(("http://", "https://")):
        return ""
    return _BYLINE_PREFIX.sub("", name, count=1)


def _json_ld(tree) -> dict:
    """headline, datePublished and author name from the page's JSON-LD NewsArticle (or similar)."""
    found: dict = {}
    for script in tree.xpath("//script[@type='application/ld+json']")[:10]:
        try:
            data = json.loads(script.text or "")
        except (ValueError, RecursionError):
            continue
        stack = [data]
        while stack and len(stack) < 1000:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                if "@graph" in item:
                    stack.append(item["@graph"])
                kind = item.get("@type")
                kinds = kind if isinstance(kind, list) else [kind]
                if any(isinstance(k, str) and ("Article" in k or k in ("Report", "WebPage")) for k in kinds):
                    for key in ("headline", "datePublished"):
                        if isinstance(item.get(key), str) and key not in found:
                            found[key] = item[key]
                    author = item.get("author")
                    author = author[0] if isinstance(author, list) and author else author
                    name = author.get("name") if isinstance(author, dict) else author
                    if isinstance(name, str) and "author" not in found:
                        found["author"] = name
    return found


def _iso_date(value) -> dt.datetime | None:
    """An ISO-8601 date or timestamp from metadata; None if it is not one."""
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(value[:10])
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # 9999-12-31T23:59:59-01:00 and friends: no usable date
        return None


# --------------------------------------------------------------------------- dates written in words

MONTHS = {
    # Spanish
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
    "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
    "ene": 1, "feb": 2, "mar": 3, "abr": 4, "may": 5, "jun": 6, "jul": 7, "ago": 8, "sep": 9, "sept": 9,
    "set": 9, "oct": 10, "nov": 11, "dic": 12,
    # English
    "january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "apr": 4, "aug": 8, "dec": 12,
}
_MONTH = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:º|o|st|nd|rd|th)?\s+(?:de\s+)?{_MONTH}\s*(?:de|del|,)?\s+(\d{{4}})\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?:de\s+)?(\d{{4}})\b", re.I)
_NUMERIC = re.compile(r"\b(\d{1,2})([./-])(\d{1,2})\2(\d{4})\b")
_ISO_IN_TEXT = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def written_date(texts: list[str], region: str = "") -> dt.datetime | None:
    """The first date written in these texts (earliest text first), as midnight UTC.

    Numeric dates are read day-first (11/12/2026 = 11 December), as in Spanish and most of the
    world, unless ``region`` is "us" (a page declaring en-US) or only month-first is valid.
    """
    for text in texts:
        found = _first_date(text or "", month_first=region == "us")
        if found:
            return found
    return None


def _first_date(text: str, month_first: bool) -> dt.datetime | None:
    best = None
    for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR, _NUMERIC, _ISO_IN_TEXT):
        for m in pattern.finditer(text):
            parsed = _date_from_match(pattern, m, month_first)
            if parsed and (best is None or m.start() < best[0]):
                best = (m.start(), parsed)
            if parsed:
                break
    return best[1] if best else None


def _date_from_match(pattern, m, month_first: bool) -> dt.datetime | None:
    if pattern is _DAY_MONTH_YEAR:
        day, month, year = int(m.group(1)), MONTHS[m.group(2).lower()], int(m.group(3))
        candidates = [(year, month, day)]
    elif pattern is _MONTH_DAY_YEAR:
        month, day, year = MONTHS[m.group(1).lower()], int(m.group(2)), int(m.group(3))
        candidates = [(year, month, day)]
    elif pattern is _NUMERIC:
        a, b, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        candidates = [(year, a, b), (year, b, a)] if month_first else [(year, b, a), (year, a, b)]
    else:
        candidates = [(int(m.group(1)), int(m.group(2)), int(m.group(3)))]
    for year, month, day in candidates:
        if 1990 <= year <= 2100:
            try:
                return dt.datetime(year, month, day, tzinfo=UTC)
            except ValueError:
                continue
    return None


# --------------------------------------------------------------------------- language

# The most frequent function words of the languages borderwatch's sources write in, and of the
# neighbours they could be mistaken for. Words shared by several lists count for each.
STOPWORDS = {
    "en": set("the of and to in is that for on with as was by at from it be this are have has an were said "
              "which its their not but will been who would they had or after about".split()),
    "es": set("el la de que y a en los del las se por un una con no para es al lo como más pero sus le ya fue "
              "este ha sobre entre también dijo desde cuando muy sin porque esta son tras según".split()),
    "pt": set("o a de que e do da em um para é com não uma os no se na por mais as dos como mas foi ao "
              "ele das tem à seu sua ou ser quando muito há nos já está também pelo pela após".split()),
    "fr": set("le la les de des et en un une du que est pour qui dans par sur pas au plus ce il elle ne "
              "sont avec ont été cette aux son ses mais selon après".split()),
    "it": set("il di che e la per un una in del della non sono è con le gli dei delle alla nel anche più "
              "come ma ha dopo secondo".split()),
    "de": set("der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
              "werden aus er hat dass sie nach bei".split()),
}
MIN_LANGUAGE_HITS = 2


_LETTERS = re.compile(r"[^\W\d_]+")


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of a text's language, by counting frequent function words (en, es, pt, fr, it,
    de); None when too few of them occur or two languages tie. Measured on the evaluation set's
    articles (bench/extract.py): title alone right 20 of 24 (3 unsure, 1 wrong), title and first
    paragraph right 24 of 24, 0.01-0.03 ms each. py3langid (a 97-language model) was as accurate on
    title and paragraph and right on 23 titles, but 10-20x slower per call, and its model (numpy)
    costs about 80 MiB and a second or more to load in every process. A page's declared language
    comes first."""
    words = _LETTERS.findall((text or "")[:2000].casefold())
    if not words:
        return None
    # map(set.__contains__) counts in C: the same sums as a generator over the words, 4x faster
    scores = sorted(((sum(map(stop.__contains__, words)), lang) for lang, stop in STOPWORDS.items()), reverse=True)
    (best, lang), (second, _) = scores[0], scores[1]
    return lang if best >= MIN_LANGUAGE_HITS and best > second else None


# --------------------------------------------------------------------------- files and URLs (the `extract` command)

FETCH_TIMEOUT = 20.0


def extract_inputs(inputs: list[str], base_url: str | None = None, timeout: float = FETCH_TIMEOUT,
                   stdin: bytes | None = None) -> list[dict]:
    """What borderwatch would store for each input (a file, ``-`` for stdin, or an http(s) URL), as
    ``{"input", "url", "title", "text", "published", "author", "language", "error"}`` records in
    input order. URLs are fetched with the polls' fetcher (robots.txt, size cap, redirect and
    address checks, total deadline); ``base_url`` is the address of the files (for relative links).
    An input that fails has ``error`` set (one line) and the other fields empty."""
    import asyncio

    urls = [i for i in inputs if i.startswith(("http://", "https://"))]
    fetched = asyncio.run(_fetch_all(urls, timeout)) if urls else {}
    return [_record(item, base_url, fetched, stdin) for item in inputs]


def _record(item: str, base_url: str | None, fetched: dict, stdin: bytes | None) -> dict:
    from .dedup import canonical_url
    from .store import iso

    out = {"input": item, "url": None, "title": None, "text": None, "published": None, "author": None,
           "language": None, "error": None}
    headers: dict[str, str] = {}
    if item in fetched:
        resp, refusal = fetched[item]
        if refusal or not resp.ok:
            out["error"] = refusal or resp.error or f"HTTP {resp.status}"
            return out
        body, where, headers = resp.body, resp.final_url or item, resp.headers
    elif item == "-":
        body, where = stdin or b"", base_url
    else:
        try:
            with open(item, "rb") as f:
                body = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            out["error"] = f"cannot read {item}: {exc.strerror or exc}"
            return out
        if len(body) > MAX_FILE_BYTES:
            out["error"] = f"{item} is larger than {MAX_FILE_BYTES:,} bytes; not an article page"
            return out
        where = base_url
    page = extract_article(body, where or "", headers)
    address = page.canonical or where  # rel=canonical is absolute here (relative ones need a base URL)
    out.update(url=canonical_url(address) if address else None, title=page.title, text=page.text,
               published=iso(page.published), author=page.author or None, language=page.language)
    if not page.text:
        out["error"] = "no article text found in the page"
    return out


MAX_FILE_BYTES = 10_000_000


async def _fetch_all(urls: list[str], timeout: float) -> dict:
    from .fetch import Fetcher, Policy, origin

    async with Fetcher() as fetcher:
        async def one(url: str):
            policy = Policy(timeout=timeout, own_origin=origin(url))  # the origin the user typed may be local
            refusal = await fetcher.robots.refusal(fetcher, url, policy)
            if refusal:
                return url, (None, refusal)
            return url, (await fetcher.get(url, policy), None)

        import asyncio

        return dict(await asyncio.gather(*(one(u) for u in dict.fromkeys(urls))))
