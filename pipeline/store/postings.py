"""The story postings' storage format, shared by the SQLite and PostgreSQL stores.

The postings (table ``sketches``: hash, article) are keyed by hash: the story lookup asks which
stored articles hold a text's hashes. Each article's own hashes, with their word positions and
whether each is a winnowed one, are kept once more, packed, in ``sketch_articles.hashes``: read for
the candidates of a lookup (the articles sharing enough hashes), a recheck after boilerplate is
learnt, and prune. Postings are most of a first cycle's writes: an index of them by article cost
a second B-tree insert per posting, and positions in the postings' rows made the table (and the
pages rewritten at each commit) larger.
"""

from __future__ import annotations

import sys
from array import array


def migrate(conn) -> None:
    """Schema 13 (SQLite and PostgreSQL): sketch_articles.hashes filled from the postings, then the
    postings table rebuilt as (hash, article): no positions, no index by article, no foreign key."""
    postgresql = getattr(conn, "dialect", "sqlite") == "postgresql"
    conn.execute("ALTER TABLE sketch_articles ADD COLUMN hashes " + ("BYTEA" if postgresql else "BLOB"))
    rows = conn.execute("SELECT article, hash, pos, sampled FROM sketches ORDER BY article, hash").fetchall()
    packed = []
    for i, (article, *_) in enumerate(rows):
        if i + 1 == len(rows) or rows[i + 1][0] != article:
            start = i
            while start > 0 and rows[start - 1][0] == article:
                start -= 1
            mine = rows[start:i + 1]
            packed.append((pack([r[1] for r in mine], {r[1]: r[2] for r in mine if r[2] is not None},
                                 {r[1] for r in mine if r[3]}), article))
    conn.executemany("UPDATE sketch_articles SET hashes = ? WHERE article = ?", packed)
    conn.execute("CREATE TABLE sketches_new (hash BIGINT NOT NULL, article BIGINT NOT NULL, PRIMARY KEY (hash, article))"
                 + ("" if postgresql else " WITHOUT ROWID"))
    conn.execute("INSERT INTO sketches_new (hash, article) SELECT s.hash, s.article"
                 " FROM sketches s JOIN sketch_articles m ON m.article = s.article")
    conn.execute("DROP TABLE sketches")
    conn.execute("ALTER TABLE sketches_new RENAME TO sketches")


def pack(hashes: list[int], positions: dict[int, int], sampled) -> bytes:
    """An article's stored hashes with their word positions and whether each is winnowed, as bytes:
    the hashes (int64), then per hash (position + 1) * 2 + sampled (int32; position unknown: 0)."""
    meta = array("i", [((positions[h] + 1) << 1 if h in positions else 0) | (h in sampled) for h in hashes])
    keys = array("q", hashes)
    if sys.byteorder == "big":  # stored little-endian
        keys.byteswap()
        meta.byteswap()
    return keys.tobytes() + meta.tobytes()


def unpack(data: bytes | None) -> list[tuple[int, int | None, bool]]:
    """(hash, word position or None, sampled) per stored hash of an article (the inverse of _pack)."""
    if not data:
        return []
    n = len(data) // 12
    keys, meta = array("q"), array("i")
    keys.frombytes(bytes(data[:8 * n]))
    meta.frombytes(bytes(data[8 * n:]))
    if sys.byteorder == "big":
        keys.byteswap()
        meta.byteswap()
    return [(h, (m >> 1) - 1 if m >> 1 else None, bool(m & 1)) for h, m in zip(keys, meta)]
