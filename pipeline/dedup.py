"""Duplicates and stories: canonical URLs, content fingerprints, shingle sketches.

- ``canonical_url``: one spelling per article URL (w3lib's canonical form: sorted
  parameters, normalised percent-encoding and dot segments; tracking parameters,
  fragments and default ports removed).
- ``fingerprint``: a hash of the article's folded words; the same text under
  another URL is the same article.
- ``sketch``: a content-defined sample of 5-word shingles (Manber-style anchors:
  a shingle is kept when its first word's hash is 0 mod 8). Sampling depends only
  on the words themselves, so an excerpt's sketch is a subset of the full text's
  sketch, which lets containment (shared / smaller sketch) find excerpts and
  republications with other headlines and boilerplate, while two different
  articles about the same event share almost no 5-word shingles.
"""

from __future__ import annotations

import hashlib
import zlib
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

SHINGLE = 5
ANCHOR_MASK = 7  # keep 1 in 8 positions
MIN_SHARED = 3
MIN_CONTAINMENT = 0.5

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


def fingerprint(words: list[str]) -> str:
    """Hash of the folded word sequence: equal for the same text however it is spaced or cased."""
    return hashlib.blake2b(" ".join(words).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def sketch(words: list[str]) -> list[int]:
    """Sorted distinct signed 63-bit hashes of the anchored 5-word shingles."""
    if len(words) < SHINGLE:
        return []
    if len(_ANCHOR) > 500_000:
        _ANCHOR.clear()
    starts = words[: len(words) - SHINGLE + 1]
    get = _ANCHOR.get
    flags = [get(w) for w in starts]
    if None in flags:
        for i, w in enumerate(starts):
            if flags[i] is None:
                flags[i] = _ANCHOR[w] = not zlib.crc32(w.encode("utf-8", "surrogatepass")) & ANCHOR_MASK
    out = set()
    for i in [i for i, anchor in enumerate(flags) if anchor]:
        data = " ".join(words[i:i + SHINGLE]).encode("utf-8", "surrogatepass")
        out.add((zlib.crc32(data) << 31) ^ zlib.adler32(data))  # 63 bits, stable across processes
    return sorted(out)


_ANCHOR: dict[str, bool] = {}  # word -> is an anchor (a cache: the vocabulary repeats)


def same_story(shared: int, mine: int, theirs: int) -> bool:
    """Decide from sketch overlap whether two texts are copies of one story."""
    smaller = min(mine, theirs)
    return smaller > 0 and shared >= MIN_SHARED and shared / smaller >= MIN_CONTAINMENT
