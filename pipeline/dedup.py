"""Duplicates and stories: canonical URLs, content fingerprints, shingle sketches, the story decision.

- ``canonical_url``: one spelling per article URL (w3lib's canonical form: sorted
  parameters, normalised percent-encoding and dot segments; tracking parameters,
  fragments and default ports removed).
- ``fingerprint``: a hash of the article's folded words; the same text under
  another URL is the same article.
- ``sketch``: the winnowed 5-word shingles of a text (Schleimer et al.): of every
  ``WINDOW`` consecutive shingle hashes the smallest is kept. Selection depends only
  on the words, so an excerpt's sketch is a subset of its full text's sketch, and
  every shared run of ``WINDOW + 4`` words yields at least one shared hash (a
  guarantee that anchor sampling lacks). Every shingle of the lead (the first
  ``LEAD_WORDS`` words) is kept too: feed summaries and excerpts are leads, and a
  lead excerpt then finds all of its shingles, not the few a sample leaves it.
  ``shingle_sketch`` also returns every shingle of a short text: a text left short
  once its source's boilerplate is taken out is stored and compared whole.
- The story decision (``join_stories``): an article joins every story holding a
  stored article it overlaps enough with (containment, ``same_story``); when it
  matches several stories they become one. The relation is symmetric and storage
  returns every overlapping article (no ranking, no small LIMIT), so the same
  articles give the same stories whatever their arrival order.
- Boilerplate: a shingle shared by articles of one source in different stories
  (a site's header, footer, newsletter pitch) says nothing about which story an
  article belongs to; ``batch_boilerplate`` and ``is_boilerplate`` say when a
  shingle is one. Nor does a stock phrase found in many stories of many sources
  (``is_common``). Storage keeps them (per source; stock phrases under ``*``) and
  leaves them out of the overlaps, which also bounds the cost of a lookup.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

SHINGLE = 5
WINDOW = 12  # winnowing window: 2/13 of the shingles kept; any shared run of 16 words shares a hash
SHORT_WORDS = 300  # every shingle is computed for texts up to this long (boilerplate may leave them short)
LEAD_WORDS = 60  # every shingle of a text's first 60 words is in its sketch (feed summaries are leads)
SHORT = 80  # a text with at most this many shingles outside its source's boilerplate is kept whole
MIN_SHARED = 3
MIN_CONTAINMENT = 0.5
BOILERPLATE_STORIES = 2  # a shingle already in this many other stories of the same source is boilerplate
BATCH_BOILERPLATE = 3  # ... or in this many articles (and half or more) of one poll of the source
COMMON_POSTINGS = 64  # postings kept per shingle; one held by this many articles of many stories is a stock phrase
ALIGN_SLACK = 10  # words of drift allowed between the shared hashes of a short text and its match
MIN_RUN = 15  # ... and the words they must span: shorter shared runs are within reach of stock phrasing
MAX_GAPS = 0.25  # ... with at most this share of the longer text's hashes inside the run missing from the short one
SKETCH_DAYS = 30  # sketches are kept (and stories formed) over this window; `prune` drops older ones

TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "ocid", "cmpid", "cmp", "ref_src", "ref_url", "smid", "sr_share", "mkt_tok", "s_cid", "ito",
    "spm", "__twitter_impression", "taid", "sh", "rss", "feature",
}
TRACKING_PREFIXES = ("utm_", "hsa_", "pk_", "mtm_", "at_", "vero_", "oly_")


def canonical_url(url: str, base: str | None = None) -> str:
    """Normalise an article URL so that the same page always has the same key.

    w3lib's ``canonicalize_url`` sorts query parameters, normalises percent-encoding
    (and IDNA hosts), resolves ``.``/``..`` segments and drops the fragment; on top of
    that the host is lower-cased, default ports (:80, :443) are dropped, and tracking
    parameters are removed. Idempotent: ``canonical_url(canonical_url(u)) == canonical_url(u)``.
    """
    from w3lib.url import canonicalize_url  # (imported on first use: commands that read the database never need it)

    url = (url or "").strip()
    if base:
        url = urljoin(base, url)
    try:
        url = canonicalize_url(url)
    except (ValueError, UnicodeError):  # an odd port or host: keep the plain normalisation below
        pass
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    query = "&".join(p for p in parts.query.split("&") if p and not _tracking(p.split("=", 1)[0]))
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def _tracking(key: str) -> bool:
    key = unquote_plus(key).lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


MIN_FINGERPRINT_WORDS = 25  # shorter texts ("Read more…", a one-line teaser) are shared by different articles


def fingerprint(words: list[str], title: list[str] = ()) -> str:
    """Hash of the folded title and text: equal for the same article however it is spaced or cased.

    Empty (never equal to anything) when the text is too short to identify an article: many
    different items share a short description such as "Read more…". The title is part of the
    hash, so items whose titles differ are never one article by fingerprint (copies under another
    headline still join the same *story* through their sketches)."""
    if len(words) < MIN_FINGERPRINT_WORDS:
        return ""
    data = " ".join(title) + "\n" + " ".join(words)
    return hashlib.blake2b(data.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def shingle_hashes(words: list[str]) -> list[int]:
    """One stable 63-bit hash per 5-word shingle, in text order.

    Tabulation hashing: each word has five random 63-bit values (from BLAKE2b of the
    word), one per place in a shingle, and a shingle's hash XORs its words' values.
    Stable across processes and versions, uniform enough for winnowing's minimum."""
    if len(words) < SHINGLE:
        return []
    if len(_WORD_HASH) > 500_000:
        _WORD_HASH.clear()
    get = _WORD_HASH.get
    table = [get(w) or _word_values(w) for w in words]
    t0, t1, t2, t3, t4 = zip(*table)
    return [a ^ b ^ c ^ d ^ e for a, b, c, d, e in zip(t0, t1[1:], t2[2:], t3[3:], t4[4:])]


def _word_values(word: str) -> tuple[int, ...]:
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=40).digest()
    values = _WORD_HASH[word] = tuple(int.from_bytes(digest[i:i + 8], "little") >> 1 for i in range(0, 40, 8))
    return values


_WORD_HASH: dict[str, tuple[int, ...]] = {}  # a cache: the vocabulary repeats


def winnow(hashes: list[int], window: int = WINDOW) -> set[int]:
    """The smallest hash of every run of ``window`` consecutive hashes.

    The minimum is carried from one run to the next (at its rightmost place) and looked for again
    only when it leaves the run: about one ``min`` over a run per ``window / 2`` hashes, a comparison
    for the others (a monotonic deque in Python cost 2x more)."""
    n = len(hashes)
    if n <= window:
        return {min(hashes)} if hashes else set()
    first = hashes[:window]
    low = min(first)
    at = window - 1 - first[::-1].index(low)
    out = {low}
    for i in range(window, n):
        h = hashes[i]
        if h <= low:
            low, at = h, i
            out.add(h)
        elif at <= i - window:  # the minimum left the run: find the new one
            run = hashes[i - window + 1:i + 1]
            low = min(run)
            at = i - run[::-1].index(low)
            out.add(low)
    return out


def shingle_sketch(words: list[str]) -> tuple[list[int], list[int], dict[int, int], list[int]]:
    """(sketch, whole, positions, lead): the winnowed hashes; every shingle hash when the text is
    short enough; the word position where each returned hash first occurs; and the lead's shingles
    that winnowing did not pick (evidence for excerpts, not counted in the sketch's size)."""
    hashes = shingle_hashes(words)
    whole = sorted(set(hashes)) if len(words) <= SHORT_WORDS else []
    win = winnow(hashes)
    lead = set(hashes[:LEAD_WORDS - SHINGLE + 1]) - win
    first = dict(zip(reversed(hashes), range(len(hashes) - 1, -1, -1)))  # hash -> first place (built in C)
    if whole:  # every hash is kept
        positions = first
    else:
        keep = win | lead
        positions = {h: i for h, i in first.items() if h in keep}
    return sorted(win), whole, positions, sorted(lead)


def sketch(words: list[str]) -> list[int]:
    """Sorted distinct winnowed shingle hashes of a folded word sequence."""
    return shingle_sketch(words)[0]


def same_story(shared: int, mine: int, theirs: int) -> bool:
    """Decide from sketch overlap whether two texts are copies of one story (symmetric)."""
    smaller = min(mine, theirs)
    return smaller > 0 and shared >= MIN_SHARED and shared / smaller >= MIN_CONTAINMENT


def whole_to_sketch_size(whole: int) -> int:
    """How many winnowed hashes a text with ``whole`` shingles has, on average (2/(WINDOW+1) of them)."""
    return max(1, round(whole * 2 / (WINDOW + 1))) if whole else 0


@dataclass(frozen=True)
class StoredForm:
    """What an article is compared and stored by: hashes outside its source's boilerplate."""

    hashes: list[int]  # looked up and stored
    size: int  # in sketch units (winnowed hashes)
    whole: int  # the count of shingles when the text is kept whole, else 0
    sampled: frozenset[int] = frozenset()  # the winnowed ones among ``hashes`` (the others: the lead's)
    positions: tuple[int, ...] = ()  # word positions of ``hashes`` (those known)


def stored_form(sketch: list[int], whole: list[int], boilerplate: set[int] | frozenset[int] = frozenset(),
                lead: list[int] = (), positions: dict[int, int] | None = None) -> StoredForm:
    """A text short enough once boilerplate is out is kept whole; a longer one by its sketch and its lead."""
    sampled = frozenset(sketch).difference(boilerplate) if boilerplate else frozenset(sketch)
    where = positions or {}
    if whole:
        kept = [h for h in whole if h not in boilerplate] if boilerplate else list(whole)
        if len(kept) <= SHORT:
            return StoredForm(kept, whole_to_sketch_size(len(kept)), len(kept), sampled, _positions(kept, where))
    kept = sorted(sampled.union(lead).difference(boilerplate) if boilerplate else sampled.union(lead))
    return StoredForm(kept, len(sampled), 0, sampled, _positions(kept, where))


def _positions(hashes: list[int], where: dict[int, int]) -> tuple[int, ...]:
    """The sorted word positions of those of ``hashes`` whose position is known (C-level iteration)."""
    return tuple(sorted(map(where.__getitem__, filter(where.__contains__, hashes))))


@dataclass(frozen=True)
class Overlap:
    """A stored article sharing hashes with a new one (what storage returns for the decision)."""

    article: int
    story: int
    shared: int  # distinct winnowed hashes in common (winnowed in both), neither source's boilerplate
    size: int  # the stored article's sketch size
    whole: int  # its shingle count when stored whole, else 0
    # per shared hash, winnowed or from a lead: (word position in the new text, in the stored one); None: unknown
    positions: tuple[tuple[int | None, int | None], ...] = ()
    # when either text is kept whole: the word positions of all the stored text's hashes (shared or not)
    their_positions: tuple[int, ...] = ()


def aligned_run(positions: tuple[tuple[int | None, int | None], ...], side: int, length: int,
                longer: tuple[int, ...] = ()) -> int:
    """Shared hashes that form one run of text covering at least half of a short text (and MIN_RUN words).

    ``side`` says which text is the short one (0: the new text, 1: the stored one), ``length``
    its length in words, ``longer`` the positions of the other text's hashes. An excerpt or a
    copy shares a run: its shared hashes sit at one shift (within ALIGN_SLACK words), their
    shingles cover at least half of the short text's words, and the other text has next to no
    hashes inside that run that the short one lacks. Shingles that different texts share by chance (stock phrases, formulaic
    sentences) are scattered, bunched in one phrase, or have the other text's own words
    between them. Unknown positions count as aligned."""
    known = sorted((there - here, here, there) for here, there in positions if here is not None and there is not None)
    unknown = len(positions) - len(known)
    best: list[tuple[int, int, int]] = []
    lo = 0
    for hi in range(len(known)):
        while known[hi][0] - known[lo][0] > 2 * ALIGN_SLACK:
            lo += 1
        if hi - lo + 1 > len(best):
            best = known[lo:hi + 1]
    if not best:
        return unknown
    covered: set[int] = set()  # words of the short text inside a shared shingle
    for p in best:
        covered.update(range(p[1 + side], p[1 + side] + SHINGLE))
    if len(covered) < max(MIN_CONTAINMENT * length, MIN_RUN):
        return unknown
    on_long = {p[2 - side] for p in best}
    first, last = min(on_long), max(on_long)
    gaps = sum(1 for q in longer if first <= q <= last and q not in on_long)
    return len(best) + unknown if gaps <= MAX_GAPS * len(best) else unknown


def matches(me: StoredForm, other: Overlap) -> bool:
    """Same story? Two whole texts compare shingle by shingle; otherwise in sketch units. When either
    text is short (whole), only hashes shared along one run covering half of the short text count:
    a short text is matched as a run of the other text, not as a scatter of its phrases."""
    shared = other.shared
    if (me.whole or other.whole) and other.positions:
        mine_is_short = bool(me.whole) and (not other.whole or me.whole <= other.whole)
        short = me.whole if mine_is_short else other.whole
        longer = other.their_positions if mine_is_short else me.positions
        shared = aligned_run(other.positions, 0 if mine_is_short else 1, short + SHINGLE - 1, longer)
    if me.whole and other.whole:
        return same_story(shared, me.whole, other.whole)
    return same_story(shared, me.size, other.size)


def join_stories(me: StoredForm, overlaps: list[Overlap]) -> list[int]:
    """The stories a new article belongs to, oldest (smallest id) first.

    Empty: it starts a new story. Several: it bridges them, and they become one story
    under the first id. The decision depends only on the pairwise overlaps, so the
    stories that come out do not depend on the order in which articles arrive.
    """
    return sorted({o.story for o in overlaps if matches(me, o)})


def is_boilerplate(other_stories: int) -> bool:
    """A shingle that articles of one source carry in this many other stories is that source's boilerplate."""
    return other_stories >= BOILERPLATE_STORIES


def is_common(postings: int, stories: int) -> bool:
    """A stock phrase of the language ("said in a statement on"): stored for COMMON_POSTINGS articles
    of many different stories. (Copies of one story share their hashes however many there are.)"""
    return postings >= COMMON_POSTINGS and stories >= COMMON_POSTINGS // 2


def batch_boilerplate(texts: list[set[int]]) -> set[int]:
    """Shingles that recur across one poll of a source: in 3 or more of its articles and at least half of them."""
    if len(texts) < BATCH_BOILERPLATE:
        return set()
    need = max(BATCH_BOILERPLATE, (len(texts) + 1) // 2)
    counts = Counter(chain.from_iterable(texts))
    return {h for h, n in counts.items() if n >= need}
