"""The store's SQL: the only module that knows table names and speaks SQL.

Written in SQLite's dialect, in forms PostgreSQL also accepts; on a ``postgresql://`` database
(the cluster set-up) ``postgres.PGDatabase`` runs the same statements with a small translation, and
the few places where the dialects differ (schema, transactions, full-text search) branch on it.
For SQLite:

- WAL mode and a busy timeout, so an analyst's query never blocks polling;
- every write runs in ``BEGIN IMMEDIATE`` (a deferred read-then-write transaction
  gets SQLITE_BUSY at once whatever the timeout);
- the schema is a list of migrations; ``PRAGMA user_version`` records how many ran,
  and ``connect`` applies the missing ones, never dropping data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


from ..dedup import (COMMON_POSTINGS, MIN_SHARED, SKETCH_DAYS, Overlap, StoredForm, batch_boilerplate, is_boilerplate,
                     is_common, join_stories, shingle_sketch, stored_form, whole_to_sketch_size)
from ..fold import Folded
from ..errors import StorageError
from ..timestamps import UTC, iso, now_iso, parse_iso  # noqa: F401 (re-exported: store.iso is used widely)
from . import postgres
from .postings import migrate as migrate_postings, pack as pack_hashes, unpack as unpack_hashes
from .postgres import is_postgres  # noqa: F401 (re-exported)


def _pg(db) -> bool:
    return getattr(db, "dialect", "sqlite") == "postgresql"


# --------------------------------------------------------------------------- schema

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: ingestion (the first released schema)
    """
    CREATE TABLE sources (
        id TEXT PRIMARY KEY, name TEXT, url TEXT, type TEXT, enabled INTEGER DEFAULT 1,
        etag TEXT, last_modified TEXT, last_poll TEXT, last_success TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_status INTEGER,
        items_seen INTEGER NOT NULL DEFAULT 0, next_poll TEXT, retry_after_until TEXT, last_ms REAL
    );
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY, title TEXT, first_seen TEXT, copies INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE articles (
        id INTEGER PRIMARY KEY, source TEXT REFERENCES sources(id), guid TEXT, url TEXT NOT NULL UNIQUE,
        title TEXT, text TEXT, author TEXT, published TEXT, fetched TEXT, fingerprint TEXT,
        story INTEGER REFERENCES stories(id), sketch_size INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX articles_fingerprint ON articles(fingerprint);
    CREATE INDEX articles_published ON articles(published);
    CREATE INDEX articles_story ON articles(story);
    CREATE INDEX articles_source ON articles(source, published);
    CREATE TABLE guids (
        source TEXT NOT NULL, guid TEXT NOT NULL, article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        PRIMARY KEY (source, guid)
    ) WITHOUT ROWID;
    CREATE INDEX guids_article ON guids(article);
    CREATE TABLE sketches (
        hash INTEGER NOT NULL, article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        PRIMARY KEY (hash, article)
    ) WITHOUT ROWID;
    CREATE INDEX sketches_article ON sketches(article);
    CREATE TABLE hits (
        id INTEGER PRIMARY KEY, article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        rule TEXT NOT NULL, terms TEXT, snippet TEXT, marks TEXT, created TEXT,
        UNIQUE (article, rule)
    );
    CREATE INDEX hits_rule ON hits(rule, created);
    CREATE INDEX hits_created ON hits(created);
    """,
    # 2: subscribers and the delivery outbox
    """
    ALTER TABLE hits ADD COLUMN backfilled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE subscribers (
        email TEXT PRIMARY KEY, rules TEXT, tags TEXT, cadence TEXT NOT NULL DEFAULT 'daily',
        hour INTEGER NOT NULL DEFAULT 7, weekday INTEGER NOT NULL DEFAULT 0, tz TEXT NOT NULL DEFAULT 'UTC',
        token TEXT NOT NULL, created TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY, subscriber TEXT NOT NULL REFERENCES subscribers(email) ON DELETE CASCADE,
        period TEXT NOT NULL, message_id TEXT NOT NULL UNIQUE, subject TEXT, message BLOB,
        status TEXT NOT NULL DEFAULT 'pending', hit_count INTEGER, created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT, sent TEXT, last_error TEXT,
        UNIQUE (subscriber, period)
    );
    CREATE INDEX deliveries_status ON deliveries(status, next_attempt);
    CREATE TABLE delivery_hits (
        delivery INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        hit INTEGER NOT NULL REFERENCES hits(id) ON DELETE CASCADE,
        story INTEGER,
        PRIMARY KEY (delivery, hit)
    ) WITHOUT ROWID;
    CREATE INDEX delivery_hits_hit ON delivery_hits(hit);
    """,
    # 3: scheduler lease (one `run` per database) and key/value state
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT, updated TEXT);
    """,
    # 4: stored URLs in the current canonical form (sorted parameters, percent-encoding, dot segments)
    lambda conn: recanonicalise_urls(conn),
    # 5: source health (the state behind health alerts) and the operators' alert outbox
    """
    ALTER TABLE sources ADD COLUMN last_entries INTEGER;
    CREATE TABLE source_health (
        source TEXT PRIMARY KEY, problem TEXT, detail TEXT, since TEXT, watching_since TEXT NOT NULL, updated TEXT
    );
    CREATE TABLE health_alerts (
        id INTEGER PRIMARY KEY, target TEXT NOT NULL, source TEXT NOT NULL, event TEXT NOT NULL,
        subject TEXT NOT NULL, body TEXT NOT NULL, created TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT,
        sent TEXT, last_error TEXT
    );
    CREATE INDEX health_alerts_status ON health_alerts(status, next_attempt);
    """,
    # 6: stories: winnowed sketches with per-article sizes, per-source boilerplate, merges
    lambda conn: [conn.execute(statement) for statement in _statements(STORIES_SCHEMA)],
    # 7: shingle positions (a short text matches a run of another text)
    "ALTER TABLE sketches ADD COLUMN pos INTEGER",
    # 8: rule provenance (the version of the rule that made each hit) and semantic suggestions
    """
    ALTER TABLE hits ADD COLUMN rule_version TEXT;
    ALTER TABLE hits ADD COLUMN rules_mtime TEXT;
    ALTER TABLE hits ADD COLUMN suggested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE hits ADD COLUMN similarity REAL;
    """,
    # 9: the backlog: items and article links a poll saw but did not finish (a per-poll cap deferred
    # them, or their article page failed); later polls take them up even when the feed answers 304
    """
    CREATE TABLE backlog (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, guid TEXT NOT NULL, url TEXT NOT NULL, entry TEXT NOT NULL,
        added TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT, last_error TEXT, gave_up TEXT,
        UNIQUE (source, guid)
    );
    CREATE INDEX backlog_due ON backlog(source, gave_up, next_attempt);
    """,
    # 10: lead shingles (sampled = 0) besides winnowed ones; sketches recomputed from the stored text
    lambda conn: _migrate_stories(conn),
    # 11: what `prune` deleted stays known to dedup (GUIDs per source, URLs, fingerprints), so a feed
    # that still lists a pruned item does not bring it back as new
    """
    CREATE TABLE pruned_keys (
        kind TEXT NOT NULL, source TEXT NOT NULL DEFAULT '', value TEXT NOT NULL, pruned TEXT NOT NULL,
        PRIMARY KEY (kind, source, value)
    ) WITHOUT ROWID;
    """,
    # 12: the article's language (ISO 639-1; NULL for articles stored before, or undetermined)
    """
    ALTER TABLE articles ADD COLUMN language TEXT;
    """,
    # 13: the story postings keyed by hash only (no index by article, no foreign key: each posting
    # cost two B-tree inserts, and the postings are most of a first cycle's writes); an article's
    # own hashes live in one packed column of sketch_articles
    lambda conn: migrate_postings(conn),
]

STORIES_SCHEMA = """
    CREATE TABLE sketch_articles (
        article INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
        story INTEGER NOT NULL, source TEXT, size INTEGER NOT NULL, whole INTEGER NOT NULL DEFAULT 0,
        fetched TEXT NOT NULL
    );
    CREATE INDEX sketch_articles_story ON sketch_articles(story);
    CREATE INDEX sketch_articles_fetched ON sketch_articles(fetched);
    CREATE TABLE boilerplate (
        source TEXT NOT NULL, hash INTEGER NOT NULL, seen TEXT NOT NULL, PRIMARY KEY (source, hash)
    ) WITHOUT ROWID;
    CREATE INDEX boilerplate_seen ON boilerplate(seen);
    CREATE INDEX delivery_hits_story ON delivery_hits(story);
    DELETE FROM sketches;
"""  # (migrations 7 and 10 add sketches.pos and .sampled and fill the new tables)


def _migrate_stories(conn: sqlite3.Connection) -> None:
    """Schema 10: recompute the sketches (with positions and lead shingles) of the articles inside the
    window from their stored text, learning each source's boilerplate from its articles in the window.
    Stories are kept."""
    conn.execute("ALTER TABLE sketches ADD COLUMN sampled INTEGER NOT NULL DEFAULT 1")
    conn.execute("DELETE FROM sketches")
    conn.execute("DELETE FROM sketch_articles")
    newest = conn.execute("SELECT max(fetched) FROM articles").fetchone()[0]
    if not newest:
        return
    since = iso(parse_iso(newest) - dt.timedelta(days=SKETCH_DAYS))
    sources = [r[0] for r in conn.execute("SELECT DISTINCT source FROM articles WHERE fetched >= ?", (since,))]
    for source in sources:
        rows = conn.execute("SELECT id, story, text, fetched FROM articles WHERE source IS ? AND fetched >= ?"
                            " AND story IS NOT NULL ORDER BY id", (source, since)).fetchall()
        sketches = {aid: shingle_sketch(Folded.of(text or "").words) for aid, _, text, _ in rows}
        boiler = batch_boilerplate([set(whole) or set(sk).union(lead) for sk, whole, _, lead in sketches.values()])
        if boiler:
            conn.executemany("INSERT OR IGNORE INTO boilerplate (source, hash, seen) VALUES (?, ?, ?)",
                             [(source, h, newest) for h in boiler])
        for aid, story, _, fetched in rows:
            sk, whole, positions, lead = sketches[aid]
            form = stored_form(sk, whole, boiler, lead, positions)
            conn.execute("INSERT INTO sketch_articles (article, story, source, size, whole, fetched) VALUES (?,?,?,?,?,?)",
                         (aid, story, source, form.size, form.whole, fetched))
            conn.executemany("INSERT OR IGNORE INTO sketches (hash, article, pos, sampled) VALUES (?, ?, ?, ?)",
                             [(h, aid, positions.get(h), h in form.sampled) for h in form.hashes])


def _fts(db: Database) -> None:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'articles_fts'").fetchone():
        import sqlite_utils  # only to create the index (its FTS5 table and triggers), once per database

        sqlite_utils.Database(db.conn)["articles"].enable_fts(["title", "text"], create_triggers=True,
                                                               tokenize="unicode61 remove_diacritics 2")
    trigger = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'articles_au'").fetchone()
    if trigger and "UPDATE OF" not in trigger[0]:  # re-index only when the title or text changes (not on story merges)
        with transaction(db) as conn:
            conn.execute("DROP TRIGGER articles_au")
            conn.execute(
                'CREATE TRIGGER "articles_au" AFTER UPDATE OF "title", "text" ON "articles" BEGIN\n'
                '  INSERT INTO "articles_fts" ("articles_fts", rowid, "title", "text") VALUES(\'delete\', old.rowid, old."title", old."text");\n'
                '  INSERT INTO "articles_fts" (rowid, "title", "text") VALUES (new.rowid, new."title", new."text");\nEND')


class StoreError(StorageError):
    """The database cannot be used as asked. The message says what is wrong and what to do;
    ``usage`` is True when the cause is the command line (a wrong --db, exit 2), not the machine (exit 1)."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage
        self.exit_code = 2 if usage else 1


def _check_path(path: str, must_exist: bool) -> None:
    p = Path(path)
    if p.is_dir():
        raise StoreError(f"--db {path} is a directory, not a database file; give the path of a .db file", usage=True)
    if not p.exists():
        if must_exist:
            raise StoreError(f"no database at {path}: check --db (or BORDERWATCH_DB), or create it with "
                             "`borderwatch run --once`", usage=True)
        if not p.parent.is_dir():
            raise StoreError(f"cannot create the database {path}: directory {p.parent} does not exist; "
                             "create it or give --db another path", usage=True)


def _disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def _full(path: str) -> StoreError:
    return StoreError(f"disk full: cannot write {path}; free some space on its filesystem. Nothing stored is lost: "
                      "the write in progress was rolled back and is redone (polls fetch again, digests stay owed)")


def _path_of(conn: sqlite3.Connection) -> str:
    try:
        return conn.execute("PRAGMA database_list").fetchone()[2] or "the database"
    except sqlite3.Error:
        return "the database"


def _explain(exc: sqlite3.Error, path: str, writing: bool) -> StoreError:
    text = str(exc)
    if _disk_full(exc):
        return _full(path)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return StoreError(f"{path} is not a borderwatch database ({text}); check --db", usage=True)
    if "readonly" in text or "read-only" in text:
        return StoreError(f"cannot write {path}: the file or its directory is read-only; read commands (hits, status, "
                          "subscribers list, digest preview) still work, or run this as a user who can write it")
    if "locked" in text or "busy" in text:
        return StoreError(f"{path} is locked by another process (a long write?); try again in a moment")
    if "unable to open" in text:
        return StoreError(f"cannot open {path} ({text}); check the path and its permissions", usage=not writing)
    return StoreError(f"database {path}: {text}")


def _create_private(path: str) -> None:
    """Create a new database file 0600 whatever the umask (it holds subscriber addresses, unsubscribe
    tokens and whole digests); SQLite gives its -wal and -shm files the database file's mode."""
    if path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror or exc}") from None
    os.fchmod(fd, 0o600)
    os.close(fd)


class Database:
    """A SQLite connection with the surface of a sqlite-utils ``Database`` that the store uses
    (``conn``, ``execute``, ``executemany``, ``query``, ``table_names``, ``close``), and the same
    ``recursive_triggers`` setting. sqlite-utils itself is imported only to create the full-text
    index: importing it (numpy, dateutil, click's plugin hooks) cost more than everything else a
    read command such as ``hits`` does; and its ``query`` wraps every read in a savepoint."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        conn.execute("PRAGMA recursive_triggers = on")

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def query(self, sql: str, params: Any = None) -> Iterator[dict]:
        """Rows as dicts; the statement runs now, the rows are read as they are iterated."""
        cursor = self.execute(sql, params if params is not None else ())
        if cursor.description is None:
            raise ValueError("query() can only be used with SQL that returns rows - use execute() for other statements")
        keys = _unique_keys([d[0] for d in cursor.description])
        return (dict(zip(keys, row)) for row in cursor)

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def __getitem__(self, table: str):
        """sqlite-utils' Table, for callers that inspect the schema (imported only then)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)[table]

    def close(self) -> None:
        self.conn.close()


def _unique_keys(keys: list[str]) -> list[str]:
    """Column names made unique as sqlite-utils does (a repeated name gets _2, _3 ...)."""
    if len(set(keys)) == len(keys):
        return keys
    taken, seen, out = set(keys), set(), []
    for key in keys:
        if key in seen:
            new, n = key, 2
            while new in seen or new in taken:
                new, n = f"{key}_{n}", n + 1
            key = new
        seen.add(key)
        out.append(key)
    return out


# Page cache per connection, in KiB (SQLite's default is 2 MiB). The story postings are looked up and
# inserted in random hash order: with 2 MiB nearly every probe was a read(2) from the OS cache, and a
# first cycle at 2,000 feeds spent 42 s in the kernel. The cache fills only as pages are read, so a
# connection that reads little stays small; a bound, so memory does not grow with the database.
CACHE_KIB = 64 * 1024


def connect(path: str | os.PathLike, migrate: bool = True) -> Database:
    """Open (creating if needed) the database, in WAL mode, migrated to the latest schema.
    A ``postgresql://`` URL opens (and creates or migrates the schema of) a PostgreSQL database."""
    path = str(path)
    if is_postgres(path):
        return postgres.connect(path, migrate=migrate)
    _check_path(path, must_exist=False)
    _create_private(path)
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        db = Database(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA wal_autocheckpoint = 16384")  # checkpoint (and fsync) every ~64 MB of WAL, not every 4 MB
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        if migrate:
            apply_migrations(db)
    except sqlite3.Error as exc:
        raise _explain(exc, path, writing=True) from None
    return db


def connect_readonly(path: str | os.PathLike) -> Database:
    """Open an existing database for reading only: never creates one, never migrates, and
    works on a file (and directory) the user cannot write."""
    path = str(path)
    if is_postgres(path):
        return postgres.connect(path, readonly=True)
    _check_path(path, must_exist=True)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "unable to open" not in str(exc):
                raise
            # A WAL database with no -shm file, in a directory we cannot write: no writer is active
            # (it would have created the file), so read it as an immutable file.
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise _explain(exc, path, writing=False) from None
    if version == 0 and not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'articles'").fetchone():
        raise StoreError(f"{path} is not a borderwatch database (no tables); check --db", usage=True)
    if version < len(MIGRATIONS):
        raise StoreError(f"{path} has schema version {version}, this borderwatch needs {len(MIGRATIONS)}: run any "
                         "write command once (e.g. `borderwatch run --once`) as a user who can write it")
    conn.execute("PRAGMA busy_timeout = 30000")
    return Database(conn)


def db_path(db: Database) -> str:
    """The file behind a connection (to open another connection to it), or a PostgreSQL URL."""
    if _pg(db):
        return db.url
    return db.execute("PRAGMA database_list").fetchone()[2]


def schema_version(db: Database) -> int:
    if _pg(db):
        return postgres.schema_version(db)
    return db.execute("PRAGMA user_version").fetchone()[0]


def apply_migrations(db: Database, upto: int | None = None) -> int:
    """Apply the migrations not yet run; returns the new version."""
    target = len(MIGRATIONS) if upto is None else upto
    version = schema_version(db)
    while version < target:
        with transaction(db):
            if schema_version(db) == version:  # another process may have migrated meanwhile
                step = MIGRATIONS[version]
                for statement in ([] if callable(step) else _statements(step)):
                    db.execute(statement)
                if callable(step):
                    step(db.conn)
                db.execute(f"PRAGMA user_version = {version + 1}")
        version = schema_version(db)
    if version >= 1:
        _fts(db)
    return version


def recanonicalise_urls(conn: sqlite3.Connection) -> int:
    """Move stored article URLs to the current ``canonical_url`` form; returns the rows changed.

    Rows whose URLs become equal are one article: the oldest row is kept and the others
    are merged into it (their GUIDs, hits and delivery records move to it; a hit for a rule
    the kept row already has is dropped after its deliveries point at the kept hit), so
    nothing that was sent is sent again. Runs inside the migration's transaction.
    """
    from ..dedup import canonical_url

    groups: dict[str, list[tuple[int, str]]] = {}
    for aid, url in conn.execute("SELECT id, url FROM articles ORDER BY id"):
        groups.setdefault(canonical_url(url), []).append((aid, url))
    changed = 0
    moves: list[tuple[int, str]] = []
    for new, rows in groups.items():
        keep = rows[0][0]
        for dropped, _ in rows[1:]:
            _merge_article(conn, keep, dropped)
            changed += 1
        if rows[0][1] != new:
            moves.append((keep, new))
    # Two steps, so that no intermediate state has two rows with one URL.
    conn.executemany("UPDATE articles SET url = ? WHERE id = ?", [(f"\x00moving:{aid}", aid) for aid, _ in moves])
    conn.executemany("UPDATE articles SET url = ? WHERE id = ?", [(new, aid) for aid, new in moves])
    return changed + len(moves)


def _merge_article(conn: sqlite3.Connection, keep: int, dropped: int) -> None:
    """Fold article ``dropped`` into ``keep`` and delete it."""
    conn.execute("UPDATE OR IGNORE guids SET article = ? WHERE article = ?", (keep, dropped))
    for hit, rule in conn.execute("SELECT id, rule FROM hits WHERE article = ?", (dropped,)).fetchall():
        twin = conn.execute("SELECT id FROM hits WHERE article = ? AND rule = ?", (keep, rule)).fetchone()
        if twin is None:
            conn.execute("UPDATE hits SET article = ? WHERE id = ?", (keep, hit))
        else:
            conn.execute("UPDATE OR IGNORE delivery_hits SET hit = ? WHERE hit = ?", (twin[0], hit))
    story = conn.execute("SELECT story FROM articles WHERE id = ?", (dropped,)).fetchone()[0]
    conn.execute("DELETE FROM articles WHERE id = ?", (dropped,))
    if story is not None:
        conn.execute("UPDATE stories SET copies = max(copies - 1, 1) WHERE id = ?", (story,))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


@contextlib.contextmanager
def transaction(db: Database) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. On PostgreSQL: BEGIN and a
    transaction-level advisory lock, so writes are serialised across the cluster as in SQLite."""
    if _pg(db):
        db.begin()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk does): then there is nothing to undo
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if isinstance(exc, sqlite3.Error) and _disk_full(exc):
            raise _full(_path_of(conn)) from None
        raise


# --------------------------------------------------------------------------- sources


def sync_sources(db: Database, sources) -> None:
    """Make the sources table reflect the config, keeping poll state (reset if the URL changed)."""
    with transaction(db) as conn:
        for s in sources:
            row = conn.execute("SELECT url FROM sources WHERE id = ?", (s.id,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO sources (id, name, url, type, enabled) VALUES (?, ?, ?, ?, ?)",
                             (s.id, s.name, s.url, s.type, int(s.enabled)))
            else:
                reset = row[0] != s.url
                conn.execute(
                    "UPDATE sources SET name = ?, url = ?, type = ?, enabled = ?"
                    + (", etag = NULL, last_modified = NULL, consecutive_failures = 0, next_poll = NULL" if reset else "")
                    + " WHERE id = ?", (s.name, s.url, s.type, int(s.enabled), s.id))
        ids = [s.id for s in sources]
        conn.execute(f"UPDATE sources SET enabled = 0 WHERE id NOT IN ({','.join('?' * len(ids))})", ids)


def source_states(db: Database, ids: list[str] | None = None) -> dict[str, dict]:
    """Poll state by source id: all sources, or only ``ids`` (the scheduler asks for one at a time)."""
    if ids is None:
        return {r["id"]: r for r in db.query("SELECT * FROM sources")}
    out: dict[str, dict] = {}
    for chunk in _chunks(ids):
        out.update((r["id"], r) for r in db.query(f"SELECT * FROM sources WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return out


@dataclass
class PollOutcome:
    """What one poll of one source produced, written in one transaction."""

    source: str
    ok: bool
    status: int = 0
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    items_seen: int = 0
    elapsed_ms: float = 0.0
    next_poll: str | None = None
    retry_after_until: str | None = None
    articles: list["NewArticle"] = field(default_factory=list)
    aliases: list[tuple[str, int | str]] = field(default_factory=list)  # (guid, existing article id or url)
    backlog_put: list["BacklogItem"] = field(default_factory=list)  # deferred or failed: (re)queue
    backlog_done: list[str] = field(default_factory=list)  # guids taken from the backlog and finished


@dataclass
class BacklogItem:
    """An item (or article link) a poll did not finish, as the backlog keeps it."""

    guid: str
    url: str
    entry: str  # the entry as JSON, so that a later poll needs no body
    added: str
    attempts: int = 0
    next_attempt: str | None = None
    last_error: str | None = None
    gave_up: str | None = None  # set after the last attempt failed: kept as the record, never retried


@dataclass
class NewArticle:
    url: str
    guid: str
    title: str
    text: str
    author: str
    published: str
    fetched: str
    fingerprint: str
    sketch: list[int]
    hits: list  # pipeline.rules.Hit
    story_id: int | None = None
    id: int | None = None
    duplicate_of: int | None = None
    shingles: list[int] = field(default_factory=list)  # every shingle hash, for a short text (dedup.shingle_sketch)
    positions: dict[int, int] = field(default_factory=dict)  # hash -> word position of its first occurrence
    lead: list[int] = field(default_factory=list)  # the lead's shingles that are not in the sketch
    language: str | None = None  # ISO 639-1 code


def known_keys(db: Database, source: str, guids: list[str], urls: list[str]) -> tuple[set[str], set[str]]:
    """Which of these GUIDs and canonical URLs this source already stored (or prune removed). A URL
    stored only by another source is decided by content when the poll is written (_resolve_claims)."""
    seen_guids: set[str] = set()
    seen_urls: set[str] = set()
    for chunk in _chunks(guids):
        marks = ",".join("?" * len(chunk))
        seen_guids.update(r[0] for r in db.execute(
            f"SELECT guid FROM guids WHERE source = ? AND guid IN ({marks}) UNION ALL"
            f" SELECT value FROM pruned_keys WHERE kind = 'guid' AND source = ? AND value IN ({marks})",
            [source, *chunk, source, *chunk]))
    for chunk in _chunks(urls):
        marks = ",".join("?" * len(chunk))
        seen_urls.update(r[0] for r in db.execute(
            f"SELECT url FROM articles WHERE source = ? AND url IN ({marks}) UNION ALL"
            f" SELECT value FROM pruned_keys WHERE kind = 'url' AND source = '' AND value IN ({marks})",
            [source, *chunk, *chunk]))
    return seen_guids, seen_urls


def backlog_due(db: Database, source: str, now: str, limit: int) -> list[BacklogItem]:
    """The source's backlog items due now (not given up, back-off over), oldest first."""
    rows = db.execute(
        "SELECT guid, url, entry, added, attempts, next_attempt, last_error FROM backlog WHERE source = ? AND gave_up IS NULL"
        " AND (next_attempt IS NULL OR next_attempt <= ?) ORDER BY id LIMIT ?", (source, now, limit)).fetchall()
    return [BacklogItem(*r) for r in rows]


def backlog_guids(db: Database, source: str, guids: list[str]) -> set[str]:
    """Which of these GUIDs the source's backlog holds (waiting, backing off or given up)."""
    out: set[str] = set()
    for chunk in _chunks(guids):
        out.update(r[0] for r in db.execute(
            f"SELECT guid FROM backlog WHERE source = ? AND guid IN ({','.join('?' * len(chunk))})", [source, *chunk]))
    return out


def backlog_counts(db: Database) -> dict[str, tuple[int, int]]:
    """Per source: (items waiting in the backlog, items given up after their last attempt)."""
    try:
        rows = db.execute("SELECT source, sum(CASE WHEN gave_up IS NULL THEN 1 ELSE 0 END),"
                          " sum(CASE WHEN gave_up IS NULL THEN 0 ELSE 1 END) FROM backlog GROUP BY source").fetchall()
    except sqlite3.OperationalError:  # a database opened read-only before this migration ran
        return {}
    return {r[0]: (r[1], r[2]) for r in rows}


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


Decide = Callable[[StoredForm, list[Overlap]], list[int]]


def save_poll(db: Database, outcome: PollOutcome, decide: Decide = join_stories) -> list[NewArticle]:
    """Write one poll's articles, stories, hits and the source's state atomically."""
    return save_polls(db, [outcome], decide)[0]


def save_polls(db: Database, outcomes: list[PollOutcome], decide: Decide = join_stories) -> list[list[NewArticle]]:
    """Write several polls in one transaction (group commit); each poll is wholly in or out.

    Articles whose URL or fingerprint is already stored (e.g. another source stored
    them earlier in this cycle) are recorded as aliases, not as new articles.
    ``decide`` picks the stories an article belongs to from its overlaps (dedup.join_stories).
    Returns, per poll, the articles actually inserted, with ids and story ids set.
    """
    with transaction(db) as conn:
        return [_save_isolated(conn, outcome, decide) for outcome in outcomes]


# Errors caused by one poll's data (a string SQLite cannot encode, an integer out of range, a
# constraint); anything else (disk, locks, a bug) fails the whole batch as before.
_DATA_ERRORS = (ValueError, OverflowError, sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError,
                postgres.RowError)


def _save_isolated(conn: sqlite3.Connection, outcome: PollOutcome, decide: Decide) -> list[NewArticle]:
    """One poll inside the group transaction, under a savepoint: if its data cannot be stored,
    that poll is undone and recorded as a failure of its source (so `status` shows it and the
    validators are not kept, and the body is fetched again), and the other polls are stored."""
    conn.execute("SAVEPOINT poll")
    try:
        inserted = _save_one(conn, outcome, decide)
    except _DATA_ERRORS as exc:
        conn.execute("ROLLBACK TO poll")
        conn.execute("RELEASE poll")
        detail = " ".join(str(exc).split())[:200].encode("utf-8", "backslashreplace").decode("utf-8")
        outcome.ok, outcome.error = False, f"could not store this poll: {type(exc).__name__}: {detail}"
        for art in outcome.articles:
            art.id = art.story_id = None
        _update_source(conn, outcome, 0)
        return []
    conn.execute("RELEASE poll")
    return inserted


def _save_one(conn: sqlite3.Connection, outcome: PollOutcome, decide: Decide) -> list[NewArticle]:
    inserted: list[NewArticle] = []
    known = _existing(conn, [a.url for a in outcome.articles], [a.fingerprint for a in outcome.articles if a.fingerprint])
    _resolve_claims(conn, outcome.source, outcome.articles, known)
    fresh = {a.fingerprint or a.url: a for a in outcome.articles
             if not (known.get(("url", a.url)) or known.get(("fp", a.fingerprint)))}
    now = now_iso()
    touched = _add_boilerplate(conn, outcome.source,
                               batch_boilerplate([set(a.shingles) or set(a.sketch).union(a.lead) for a in fresh.values()]), now)
    pruned = _pruned_fingerprints(conn, [a.fingerprint for a in outcome.articles if a.fingerprint])
    for art in outcome.articles:
        dup = known.get(("url", art.url)) or known.get(("fp", art.fingerprint))
        if not dup and art.fingerprint in pruned:  # seen before, since pruned: not new
            conn.execute("INSERT OR IGNORE INTO pruned_keys (kind, source, value, pruned) VALUES ('guid', ?, ?, ?)",
                         (outcome.source, art.guid, now))
            continue
        if dup:
            art.duplicate_of = dup
            conn.execute("INSERT OR IGNORE INTO guids (source, guid, article) VALUES (?, ?, ?)",
                         (outcome.source, art.guid, dup))
            continue
        form, overlaps, crowded = story_overlaps(conn, outcome.source, art.sketch, art.shingles, now, art.positions,
                                                 art.lead, touched)
        stories = decide(form, overlaps) or []
        if not stories:
            art.story_id = conn.execute("INSERT INTO stories (title, first_seen) VALUES (?, ?) RETURNING id",
                                        (art.title, art.fetched)).fetchone()[0]
        else:
            art.story_id = stories[0]
            if len(stories) > 1:
                merge_stories(conn, stories[0], stories[1:])
            conn.execute("UPDATE stories SET copies = copies + 1 WHERE id = ?", (art.story_id,))
        art.id = conn.execute(
            "INSERT INTO articles (source, guid, url, title, text, author, published, fetched, fingerprint,"
            " story, sketch_size, language) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (outcome.source, art.guid, art.url, art.title, art.text, art.author, art.published, art.fetched,
             art.fingerprint, art.story_id, form.size, art.language)).fetchone()[0]
        conn.execute("INSERT OR IGNORE INTO guids (source, guid, article) VALUES (?, ?, ?)",
                     (outcome.source, art.guid, art.id))
        _store_sketch(conn, art.id, art.story_id, outcome.source, art.fetched, form, art.positions, crowded)
        conn.executemany(
            "INSERT OR IGNORE INTO hits (article, rule, terms, snippet, marks, created, rule_version, rules_mtime,"
            " suggested, similarity) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [_hit_row(art.id, h, art.fetched) for h in art.hits])
        inserted.append(art)
        known[("url", art.url)] = art.id
        if art.fingerprint:  # an empty fingerprint (too little text) is never a key
            known[("fp", art.fingerprint)] = art.id
    _recheck(conn, touched, decide)
    for guid, url in outcome.aliases:
        row = conn.execute("SELECT id FROM articles WHERE url = ?", (url,)).fetchone()
        if row:
            conn.execute("INSERT OR IGNORE INTO guids (source, guid, article) VALUES (?, ?, ?)",
                         (outcome.source, guid, row[0]))
    conn.executemany("DELETE FROM backlog WHERE source = ? AND guid = ?", [(outcome.source, g) for g in outcome.backlog_done])
    conn.executemany(
        "INSERT INTO backlog (source, guid, url, entry, added, attempts, next_attempt, last_error, gave_up)"
        " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (source, guid) DO UPDATE SET url = excluded.url, entry = excluded.entry,"
        " attempts = excluded.attempts, next_attempt = excluded.next_attempt, last_error = excluded.last_error,"
        " gave_up = excluded.gave_up",
        [(outcome.source, b.guid, b.url, b.entry, b.added, b.attempts, b.next_attempt, b.last_error, b.gave_up)
         for b in outcome.backlog_put])
    _update_source(conn, outcome, len(inserted))
    return inserted


def _pruned_fingerprints(conn: sqlite3.Connection, fingerprints: list[str]) -> set[str]:
    out: set[str] = set()
    for chunk in _chunks(fingerprints):
        out.update(r[0] for r in conn.execute(
            f"SELECT value FROM pruned_keys WHERE kind = 'fp' AND source = '' AND value IN ({','.join('?' * len(chunk))})", chunk))
    return out


def _resolve_claims(conn: sqlite3.Connection, source: str, articles: list[NewArticle], known: dict) -> None:
    """A URL that another source stored with other content does not make this article a duplicate
    (a hostile or mistaken feed could otherwise pre-empt any URL). The same article is: stored by
    this source, or with the same folded title, or the same fingerprint. Otherwise this article is
    stored under its own key, the URL with a ``#from-SOURCE`` fragment (canonical URLs never have
    fragments, so the key cannot collide, and the link still opens the page)."""
    for art in articles:
        if not known.get(("url", art.url)):
            continue
        title = Folded.of(art.title or "").words
        claims = conn.execute("SELECT id, url, source, title, fingerprint FROM articles WHERE url = ? OR (url > ? AND url < ?)"
                              " ORDER BY id", (art.url, art.url + "#from-", art.url + "#from.")).fetchall()
        same = next((c for c in claims if c[2] == source or (art.fingerprint and c[4] == art.fingerprint)
                     or Folded.of(c[3] or "").words == title), None)
        if same is not None:
            art.url = same[1]
            known[("url", art.url)] = same[0]
        else:
            art.url = f"{art.url}#from-{source}"


def _existing(conn: sqlite3.Connection, urls: list[str], fingerprints: list[str]) -> dict[tuple[str, str], int]:
    """Stored article ids by ("url", url) and ("fp", fingerprint), for one batch."""
    found: dict[tuple[str, str], int] = {}
    for column, kind, values in (("url", "url", urls), ("fingerprint", "fp", fingerprints)):
        for chunk in _chunks(values):
            for aid, value in conn.execute(f"SELECT id, {column} FROM articles WHERE {column} IN ({','.join('?' * len(chunk))})", chunk):
                found[(kind, value)] = aid
    return found


# --------------------------------------------------------------------------- stories (the decision is dedup's)

STOCK = "*"  # the boilerplate "source" of stock phrases (source ids are [a-z0-9-])
_POSTINGS = ("SELECT s.hash, s.article, m.source, m.story, m.size, m.whole FROM sketches s"
             " JOIN sketch_articles m ON m.article = s.article WHERE s.hash IN (SELECT value FROM json_each(?))")


def story_overlaps(conn: sqlite3.Connection, source: str, sketch: list[int], whole: list[int],
                   seen: str | None = None, positions: dict[int, int] | None = None, lead: list[int] = (),
                   touched: set[int] | None = None) -> tuple[StoredForm, list[Overlap], set[int]]:
    """Every stored article sharing hashes with this text, with how many it shares.

    Hashes that are boilerplate of ``source`` are left out (those already known, and
    those found now: stored in articles of the source in other stories, which are
    recorded). Returns the text's stored form, the overlaps, and the hashes already
    stored for ``COMMON_POSTINGS`` articles (stock phrases: not stored again). The cost
    depends on the postings of this text's hashes, not on the size of the database.
    Stored articles whose sketches lose hashes to new boilerplate are added to ``touched``.
    """
    positions = positions or {}
    every = sorted(set(sketch).union(whole, lead))
    boiler = {r[0] for r in conn.execute(
        "SELECT hash FROM boilerplate WHERE source IN (?, ?) AND hash IN (SELECT value FROM json_each(?))",
        (source, STOCK, json.dumps(every)))} if every else set()
    while True:
        form = stored_form(sketch, whole, boiler, lead, positions)
        postings: dict[int, list[tuple]] = defaultdict(list)
        if form.hashes:
            for h, *row in conn.execute(_POSTINGS, (json.dumps(form.hashes),)):
                postings[h].append(row)
        found = {h for h, rows in postings.items()
                 if is_boilerplate(len({row[2] for row in rows if row[1] == source}))}
        stock = {h for h, rows in postings.items() if is_common(len(rows), len({row[2] for row in rows}))}
        if not found and not stock:
            break
        changed = _add_boilerplate(conn, source, found, seen or now_iso()) | _add_boilerplate(conn, STOCK, stock, seen or now_iso())
        if touched is not None:
            touched |= changed
        boiler |= found | stock
    overlaps = _overlaps(conn, form, postings, positions, boiler)
    crowded = {h for h, rows in postings.items() if len(rows) >= COMMON_POSTINGS}
    return form, overlaps, crowded


def _overlaps(conn: sqlite3.Connection, form: StoredForm, postings: dict[int, list[tuple]], positions: dict[int, int],
              boiler: set[int]) -> list[Overlap]:
    shared: dict[int, list[int]] = defaultdict(list)
    meta: dict[int, tuple[int, int, int]] = {}
    for h, rows in postings.items():
        for article, _src, story, size, whole_n in rows:
            shared[article].append(h)
            meta[article] = (story, size, whole_n)
    # fewer shared hashes than MIN_SHARED can never make a story: those are not candidates; for the
    # others, the word positions and winnowed marks of their hashes come from their own packed list
    candidates = [a for a, hs in shared.items() if len(hs) >= MIN_SHARED]
    theirs = _own_hashes(conn, candidates)
    out = []
    for a in candidates:
        own = theirs.get(a, {})
        pairs = tuple((positions.get(h), own.get(h, (None, False))[0]) for h in shared[a])
        sampled = sum(1 for h in shared[a] if h in form.sampled and own.get(h, (None, False))[1])
        story, size, whole_n = meta[a]
        out.append(Overlap(a, story, sampled, size, whole_n, pairs,
                           tuple(sorted(pos for h, (pos, _) in own.items() if pos is not None and h not in boiler))
                           if form.whole or whole_n else ()))
    return out


def _own_hashes(conn: sqlite3.Connection, articles: list[int]) -> dict[int, dict[int, tuple[int | None, bool]]]:
    """Per article: its stored hashes, each with its word position and whether it is a winnowed one."""
    out: dict[int, dict[int, tuple[int | None, bool]]] = {}
    for chunk in _chunks(articles):
        for article, packed in conn.execute("SELECT article, hashes FROM sketch_articles WHERE article IN"
                                            " (SELECT value FROM json_each(?))", (json.dumps(chunk),)):
            out[article] = {h: (pos, sampled) for h, pos, sampled in unpack_hashes(packed)}
    return out


def _recheck(conn: sqlite3.Connection, articles: set[int], decide: Decide) -> None:
    """Decide again for stored articles whose sketches lost boilerplate hashes: without them a text
    may now match a story it did not (merges only). So what is learnt later about a site does not
    leave the stories depending on which copy arrived first."""
    for article in sorted(articles):
        meta = conn.execute("SELECT story, size, whole, hashes FROM sketch_articles WHERE article = ?", (article,)).fetchone()
        if meta is None:
            continue
        story, size, whole, packed = meta
        mine = unpack_hashes(packed)
        positions = {h: pos for h, pos, _ in mine if pos is not None}
        form = StoredForm([h for h, _, _ in mine], size, whole, frozenset(h for h, _, sampled in mine if sampled),
                          tuple(sorted(positions.values())))
        postings: dict[int, list[tuple]] = defaultdict(list)
        if form.hashes:
            for h, *row in conn.execute(_POSTINGS, (json.dumps(form.hashes),)):
                if row[0] != article:
                    postings[h].append(row)
        stories = sorted({story, *(decide(form, _overlaps(conn, form, postings, positions, set())) or [])})
        if len(stories) > 1:
            merge_stories(conn, stories[0], stories[1:])


def _store_sketch(conn: sqlite3.Connection, article: int, story: int, source: str | None, fetched: str,
                  form: StoredForm, positions: dict[int, int], crowded: set[int]) -> None:
    hashes = [h for h in form.hashes if h not in crowded] if crowded else form.hashes
    conn.execute("INSERT INTO sketch_articles (article, story, source, size, whole, fetched, hashes) VALUES (?,?,?,?,?,?,?)"
                 " ON CONFLICT (article) DO UPDATE SET story = excluded.story, source = excluded.source,"
                 " size = excluded.size, whole = excluded.whole, fetched = excluded.fetched, hashes = excluded.hashes",
                 (article, story, source, form.size, form.whole, fetched, pack_hashes(hashes, positions, form.sampled)))
    conn.executemany("INSERT OR IGNORE INTO sketches (hash, article) VALUES (?, ?)", [(h, article) for h in hashes])


def _add_boilerplate(conn: sqlite3.Connection, source: str, hashes: set[int], seen: str) -> set[int]:
    """Record hashes as boilerplate of a source (or, under STOCK, stock phrases) and take them out of the
    stored sketches of that source's articles (of every article, for stock phrases), sizes adjusted."""
    if not hashes:
        return set()
    q = json.dumps(sorted(hashes))
    conn.execute("INSERT INTO boilerplate (source, hash, seen) SELECT ?, value, ? FROM json_each(?) WHERE true"
                 " ON CONFLICT (source, hash) DO UPDATE SET seen = excluded.seen", (source, seen, q))
    rows = conn.execute("SELECT DISTINCT m.article, m.size, m.whole, m.hashes FROM sketches s"
                        " JOIN sketch_articles m ON m.article = s.article"
                        " WHERE s.hash IN (SELECT value FROM json_each(?)) AND (m.source = ? OR ? = ?)",
                        (q, source, source, STOCK)).fetchall()
    for article, size, whole, packed in rows:
        conn.execute("DELETE FROM sketches WHERE hash IN (SELECT value FROM json_each(?)) AND article = ?", (q, article))
        own = unpack_hashes(packed)
        kept = [r for r in own if r[0] not in hashes]
        if whole:
            whole = max(whole - (len(own) - len(kept)), 0)
            size = whole_to_sketch_size(whole)
        else:
            size = max(size - sum(1 for h, _, sampled in own if sampled and h in hashes), 0)
        conn.execute("UPDATE sketch_articles SET size = ?, whole = ?, hashes = ? WHERE article = ?",
                     (size, whole, pack_hashes([r[0] for r in kept], {r[0]: r[1] for r in kept if r[1] is not None},
                                               {r[0] for r in kept if r[2]}), article))
    return {r[0] for r in rows}


def merge_stories(conn: sqlite3.Connection, keep: int, others: list[int]) -> None:
    """Make several stories one, under ``keep`` (the oldest): articles (so hits and "also in")
    and delivered hits (so a story sent once is not sent again) follow."""
    q = json.dumps(others)
    for table in ("articles", "sketch_articles", "delivery_hits"):
        conn.execute(f"UPDATE {table} SET story = ? WHERE story IN (SELECT value FROM json_each(?))", (keep, q))
    conn.execute(
        "UPDATE stories SET (copies, first_seen) = (SELECT sum(copies), min(first_seen) FROM stories"
        " WHERE id = ? OR id IN (SELECT value FROM json_each(?))) WHERE id = ?", (keep, q, keep))
    conn.execute("DELETE FROM stories WHERE id IN (SELECT value FROM json_each(?))", (q,))


def _update_source(conn: sqlite3.Connection, o: PollOutcome, new: int) -> None:
    now = now_iso()
    if o.ok:
        conn.execute(
            "UPDATE sources SET last_poll = ?, last_success = ?, consecutive_failures = 0, last_error = NULL,"
            " last_status = ?, etag = coalesce(?, etag), last_modified = coalesce(?, last_modified),"
            " items_seen = items_seen + ?, next_poll = ?, retry_after_until = NULL, last_ms = ?,"
            " last_entries = CASE WHEN ? = 304 THEN last_entries ELSE ? END WHERE id = ?",
            (now, now, o.status, o.etag, o.last_modified, new, o.next_poll, o.elapsed_ms, o.status, o.items_seen, o.source))
    else:
        conn.execute(
            "UPDATE sources SET last_poll = ?, consecutive_failures = consecutive_failures + 1, last_error = ?,"
            " last_status = ?, next_poll = ?, retry_after_until = ?, last_ms = ? WHERE id = ?",
            (now, o.error, o.status or None, o.next_poll, o.retry_after_until, o.elapsed_ms, o.source))


def backfill_hits(db: Database, hits: list[tuple[int, Any]]) -> int:
    """Store hits found by a backtest, marked as backfilled (never emailed)."""
    created = now_iso()
    with transaction(db) as conn:
        return sum(max(conn.execute(
            "INSERT OR IGNORE INTO hits (article, rule, terms, snippet, marks, created, rule_version, rules_mtime,"
            " suggested, similarity, backfilled) VALUES (?,?,?,?,?,?,?,?,?,?,1)", _hit_row(aid, h, created)).rowcount, 0)
            for aid, h in hits)


def _hit_row(article: int, h: Any, created: str) -> tuple:
    return (article, h.rule, json.dumps(h.terms, ensure_ascii=False), h.snippet, json.dumps(h.marks), created,
            getattr(h, "version", "") or None, getattr(h, "rules_mtime", "") or None,
            int(bool(getattr(h, "suggested", False))), getattr(h, "similarity", None))


# --------------------------------------------------------------------------- queries


@dataclass
class HitQuery:
    rules: list[str] | None = None
    source: str | None = None
    since: str | None = None
    until: str | None = None
    search: str | None = None
    limit: int = 50
    suggested: bool = False  # only the semantic layer's suggestions instead of the rules' hits
    language: str | None = None  # ISO 639-1 code, e.g. "es"


SEARCH_WINDOW = 5000  # with --search: the newest-fetched matches considered, then sorted by published


def query_hits(db: Database, q: HitQuery) -> list[dict]:
    """Articles with hits, newest first (by published time), with their rules aggregated.

    The page of article ids is chosen first (published index, EXISTS on hits), and rules and
    snippets are gathered for those rows only, so the cost does not grow with the table.
    """
    if q.rules is not None and not q.rules:
        return []
    rule_in = (f" AND rule IN ({','.join('?' * len(q.rules))})" if q.rules else "") + f" AND suggested = {int(q.suggested)}"
    where, params = [f"EXISTS (SELECT 1 FROM hits WHERE article = a.id{rule_in})"], list(q.rules or [])
    if q.source:
        where.append("a.source = ?")
        params.append(q.source)
    if q.language:
        where.append("a.language = ?")
        params.append(q.language.lower())
    if q.since:
        where.append("a.published >= ?")
        params.append(q.since)
    if q.until:
        where.append("a.published < ?")
        params.append(q.until)
    if q.search and _pg(db):
        condition, terms = postgres.fts_condition(q.search)
        where.append(f"a.id IN (SELECT id FROM articles WHERE {condition} ORDER BY id DESC LIMIT ?)")
        params += [*terms, SEARCH_WINDOW]
    elif q.search:
        where.append("a.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? ORDER BY rowid DESC LIMIT ?)")
        params += [q.search, SEARCH_WINDOW]
    pick = f"article = a.id{rule_in} ORDER BY id LIMIT 1"  # the snippet of the first hit of a filtered rule
    sql = f"""
        WITH page AS (SELECT a.id FROM articles a WHERE {' AND '.join(where)}
                      ORDER BY a.published DESC, a.id DESC LIMIT ?)
        SELECT a.id, a.url, a.title, a.source, s.name AS source_name, a.published, a.fetched, a.story, a.language,
               (SELECT json_group_array(rule) FROM (SELECT rule FROM hits WHERE article = a.id
                                                    AND suggested = {int(q.suggested)} ORDER BY id) AS r) AS rules,
               (SELECT json_group_object(rule, coalesce(rule_version, '')) FROM hits
                WHERE article = a.id AND suggested = {int(q.suggested)}) AS rule_versions,
               (SELECT json_group_object(rule, rules_mtime) FROM hits
                WHERE article = a.id AND suggested = {int(q.suggested)}) AS rules_mtime,
               (SELECT snippet FROM hits WHERE {pick}) AS snippet,
               (SELECT marks FROM hits WHERE {pick}) AS marks
        FROM page JOIN articles a ON a.id = page.id LEFT JOIN sources s ON s.id = a.source
        ORDER BY a.published DESC, a.id DESC"""
    rows = list(db.query(sql, params + [q.limit] + list(q.rules or []) * 2))
    for r in rows:  # (PostgreSQL's json aggregates arrive decoded)
        r["rules"] = _json(r["rules"], [])
        r["marks"] = _json(r["marks"], [])
        r["rule_versions"] = _json(r["rule_versions"], {})
        r["rules_mtime"] = _json(r["rules_mtime"], {})
    return rows


def _json(value, empty):
    return json.loads(value) if isinstance(value, str) else (empty if value is None else value)


def article_by_url(db: Database, url: str) -> dict | None:
    """A stored article by its URL (as given, or in canonical form)."""
    from ..dedup import canonical_url

    for candidate in dict.fromkeys((url, canonical_url(url))):
        row = next(iter(db.query("SELECT id, url, title, text, source, published FROM articles WHERE url = ?",
                                 [candidate])), None)
        if row:
            return row
    return None


def hits_per_rule(db: Database) -> dict[str, int]:
    """How many hits each rule has, most first."""
    return {r[0]: r[1] for r in db.execute("SELECT rule, count(*) FROM hits GROUP BY rule ORDER BY 2 DESC, 1")}


def hit_rules(db: Database) -> list[str]:
    """Rule ids that have stored hits (index-only scan)."""
    return [r[0] for r in db.execute("SELECT DISTINCT rule FROM hits ORDER BY rule")]


def articles_for_backtest(db: Database, since: str | None) -> Iterator[dict]:
    sql = "SELECT id, title, text FROM articles" + (" WHERE published >= ?" if since else "") + " ORDER BY id"
    yield from db.query(sql, [since] if since else [])


def stored_hits(db: Database, since: str | None) -> set[tuple[int, str]]:
    sql = ("SELECT h.article, h.rule FROM hits h JOIN articles a ON a.id = h.article WHERE h.suggested = 0"
           + (" AND a.published >= ?" if since else ""))  # suggestions are not the rules' hits
    return {(r[0], r[1]) for r in db.execute(sql, [since] if since else [])}


def article_titles(db: Database, ids: list[int]) -> dict[int, dict]:
    out = {}
    for chunk in _chunks(ids):
        for r in db.query(f"SELECT id, title, url, source FROM articles WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[r["id"]] = r
    return out


_PRUNABLE = "FROM articles WHERE fetched < ? AND NOT EXISTS (SELECT 1 FROM hits WHERE article = articles.id)"


def prunable(db: Database, older_than: str) -> int:
    """How many articles ``prune`` would delete."""
    return db.execute(f"SELECT count(*) {_PRUNABLE}", (older_than,)).fetchone()[0]


def prune(db: Database, older_than: str, sketches_before: str | None = None) -> int:
    """Delete articles fetched before ``older_than`` that have no hits; VACUUM. Hits are never deleted.
    Their GUIDs, URLs and fingerprints stay in ``pruned_keys``, so dedup still knows them.

    Story sketches and learnt boilerplate older than ``sketches_before`` (default: the
    dedup window, SKETCH_DAYS before now) are dropped too, so the story lookup stays
    the same cost however long the database has run."""
    sketches_before = sketches_before or iso(dt.datetime.now(UTC) - dt.timedelta(days=SKETCH_DAYS))
    with transaction(db) as conn:
        _drop_postings(conn, "fetched < ?", (sketches_before,))
        _drop_postings(conn, f"article IN (SELECT id {_PRUNABLE})", (older_than,))  # (articles deleted below)
        conn.execute("DELETE FROM sketch_articles WHERE fetched < ?", (sketches_before,))
        conn.execute("DELETE FROM boilerplate WHERE seen < ?", (sketches_before,))
        now = now_iso()  # keep what dedup needs, so the next poll does not bring the pruned items back
        conn.execute(f"INSERT OR IGNORE INTO pruned_keys (kind, source, value, pruned) SELECT 'guid', source, guid, ?"
                     f" FROM guids WHERE article IN (SELECT id {_PRUNABLE})", (now, older_than))
        conn.execute(f"INSERT OR IGNORE INTO pruned_keys (kind, source, value, pruned) SELECT 'url', '', url, ? {_PRUNABLE}",
                     (now, older_than))
        conn.execute(f"INSERT OR IGNORE INTO pruned_keys (kind, source, value, pruned) SELECT 'fp', '', fingerprint, ?"
                     f" {_PRUNABLE} AND coalesce(fingerprint, '') != ''", (now, older_than))
        n = conn.execute(f"DELETE {_PRUNABLE}", (older_than,)).rowcount
        conn.execute("DELETE FROM stories WHERE NOT EXISTS (SELECT 1 FROM articles WHERE story = stories.id)")
    if not _pg(db):  # (PostgreSQL: autovacuum reclaims the space)
        db.execute("VACUUM")
    return n


def _drop_postings(conn, where: str, params: tuple) -> None:
    """Delete the story postings of the articles of sketch_articles matching ``where`` (found by their
    own list of hashes: the postings are keyed by hash)."""
    rows = conn.execute(f"SELECT article, hashes FROM sketch_articles WHERE {where}", params).fetchall()
    for chunk in _chunks(rows, 200):
        conn.executemany("DELETE FROM sketches WHERE hash = ? AND article = ?",
                         [(h, article) for article, packed in chunk for h, _, _ in unpack_hashes(packed)])


def counts(db: Database) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("sources", "articles", "stories", "hits")}


# --------------------------------------------------------------------------- subscribers


def add_subscriber(db: Database, email: str, rules: list[str] | None, tags: list[str] | None,
                   cadence: str, hour: int, weekday: int, tz: str, created: str | None = None) -> None:
    import secrets

    with transaction(db) as conn:
        conn.execute(
            "INSERT INTO subscribers (email, rules, tags, cadence, hour, weekday, tz, token, created) VALUES (?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(email) DO UPDATE SET rules = excluded.rules, tags = excluded.tags, cadence = excluded.cadence,"
            " hour = excluded.hour, weekday = excluded.weekday, tz = excluded.tz, active = 1",
            (email, json.dumps(rules) if rules else None, json.dumps(tags) if tags else None, cadence, hour, weekday,
             tz, secrets.token_urlsafe(16), created or now_iso()))


def find_subscriber(db: Database, target: str) -> dict | None:
    """The subscriber with this address (any case) or unsubscribe token."""
    row = db.execute("SELECT email FROM subscribers WHERE lower(email) = lower(?) OR token = ? ORDER BY email LIMIT 1",
                     (target, target)).fetchone()
    return next(iter(subscribers(db, row[0])), None) if row else None


def update_subscriber(db: Database, email: str, changes: dict[str, Any]) -> None:
    """Change only the given fields (rules, tags, cadence, hour, weekday, tz) of one subscriber."""
    allowed = {"rules", "tags", "cadence", "hour", "weekday", "tz"}
    values = {k: (json.dumps(v) if k in ("rules", "tags") and v else v) for k, v in changes.items() if k in allowed}
    if not values:
        return
    with transaction(db) as conn:
        conn.execute(f"UPDATE subscribers SET {', '.join(f'{k} = ?' for k in values)} WHERE email = ?",
                     [*values.values(), email])


def remove_subscriber(db: Database, target: str) -> str | None:
    """Remove the subscriber with this address (any case) or unsubscribe token; returns its address."""
    with transaction(db) as conn:
        row = conn.execute("SELECT email FROM subscribers WHERE lower(email) = lower(?) OR token = ? LIMIT 1",
                           (target, target)).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM subscribers WHERE email = ?", (row[0],))
        return row[0]


def subscribers(db: Database, email: str | None = None) -> list[dict]:
    sql = "SELECT * FROM subscribers WHERE active = 1" + (" AND email = ?" if email else "") + " ORDER BY email"
    rows = list(db.query(sql, [email] if email else []))
    for r in rows:
        r["rules"] = json.loads(r["rules"]) if r["rules"] else None
        r["tags"] = json.loads(r["tags"]) if r["tags"] else None
    return rows


# --------------------------------------------------------------------------- deliveries (the outbox)


def owed_hits(db: Database, email: str, rule_ids: list[str], since: str,
              email_suggested: list[str] | tuple = ()) -> list[dict]:
    """Hits a subscriber has not been sent: their rules, created after they subscribed, not
    backfilled, not a semantic suggestion (unless its rule opts in: ``email_suggested``), and not
    of a story already sent to them (copies show as 'also in')."""
    if not rule_ids:
        return []
    marks = ",".join("?" * len(rule_ids))
    opted = [r for r in email_suggested if r in rule_ids]
    suggested = f"(h.suggested = 0 OR h.rule IN ({','.join('?' * len(opted))}))" if opted else "h.suggested = 0"
    sql = f"""
        SELECT h.id AS hit, h.rule, h.terms, h.snippet, h.marks, h.created, a.id AS article, a.title, a.url,
               a.published, a.story, a.source, coalesce(s.name, a.source) AS source_name
        FROM hits h JOIN articles a ON a.id = h.article LEFT JOIN sources s ON s.id = a.source
        WHERE h.rule IN ({marks}) AND h.backfilled = 0 AND {suggested} AND h.created >= ?
          AND NOT EXISTS (SELECT 1 FROM delivery_hits dh JOIN deliveries d ON d.id = dh.delivery
                          WHERE d.subscriber = ? AND (dh.hit = h.id OR dh.story = a.story))
        ORDER BY a.published DESC, h.id DESC"""
    rows = list(db.query(sql, [*rule_ids, *opted, since, email]))
    for r in rows:
        r["terms"] = json.loads(r["terms"] or "[]")
        r["marks"] = json.loads(r["marks"] or "[]")
    return rows


def story_copies(db: Database, story_ids: list[int]) -> dict[int, list[dict]]:
    """Every stored copy (article) of these stories, oldest first."""
    out: dict[int, list[dict]] = {}
    for chunk in _chunks(story_ids):
        for r in db.query(f"SELECT a.story, a.id, a.url, a.source, coalesce(s.name, a.source) AS source_name"
                          f" FROM articles a LEFT JOIN sources s ON s.id = a.source"
                          f" WHERE a.story IN ({','.join('?' * len(chunk))}) ORDER BY a.id", chunk):
            out.setdefault(r["story"], []).append(r)
    return out


def has_delivery(db: Database, email: str, period: str) -> bool:
    return db.execute("SELECT 1 FROM deliveries WHERE subscriber = ? AND period = ?", (email, period)).fetchone() is not None


def create_delivery(db: Database, email: str, period: str, message_id: str, subject: str,
                    message: bytes, hits: list[tuple[int, int | None]], created: str) -> int | None:
    """Record a rendered digest as owed, with the hits it carries; None if this period already has one."""
    with transaction(db) as conn:
        row = conn.execute(
            "INSERT INTO deliveries (subscriber, period, message_id, subject, message, hit_count, created, next_attempt)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
            (email, period, message_id, subject, message, len(hits), created, created)).fetchone()
        if row is None:
            return None
        delivery = row[0]
        conn.executemany("INSERT OR IGNORE INTO delivery_hits (delivery, hit, story) VALUES (?,?,?)",
                         [(delivery, hit, story) for hit, story in hits])
        return delivery


def due_deliveries(db: Database, now: str, email: str | None = None, waiting: bool = False) -> list[dict]:
    """Pending deliveries whose next attempt is due (or, with ``waiting``, those still backing off),
    with the subscriber's cadence."""
    sql = ("SELECT d.*, s.cadence FROM deliveries d LEFT JOIN subscribers s ON s.email = d.subscriber"
           " WHERE d.status = 'pending' AND "
           + ("d.next_attempt > ?" if waiting else "(d.next_attempt IS NULL OR d.next_attempt <= ?)")
           + " AND d.subscriber IN (SELECT email FROM subscribers WHERE active = 1)"
           + (" AND d.subscriber = ?" if email else "") + " ORDER BY d.id")
    return list(db.query(sql, [now, email] if email else [now]))


def delivery_problems(db: Database, limit: int = 20) -> list[dict]:
    """Deliveries owed with an error, failed or of unknown outcome: what `status` reports."""
    return list(db.query(
        "SELECT id, subscriber, period, status, attempts, last_error, next_attempt, created FROM deliveries"
        " WHERE (status = 'pending' AND last_error IS NOT NULL) OR status IN ('failed', 'unknown')"
        " ORDER BY CASE status WHEN 'pending' THEN 0 WHEN 'failed' THEN 1 ELSE 2 END, id DESC LIMIT ?", [limit]))


def deliveries_in(db: Database, statuses: tuple[str, ...]) -> list[dict]:
    return list(db.query(f"SELECT * FROM deliveries WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY id",
                         list(statuses)))


def set_delivery(db: Database, delivery: int, status: str, error: str | None = None,
                 next_attempt: str | None = None, attempted: bool = False) -> None:
    """Move a delivery to a new state (committed at once: the state machine is the crash record)."""
    with transaction(db) as conn:
        conn.execute(
            "UPDATE deliveries SET status = ?, last_error = coalesce(?, last_error), next_attempt = coalesce(?, next_attempt),"
            " attempts = attempts + ?, sent = CASE WHEN ? = 'sent' THEN ? ELSE sent END WHERE id = ?",
            (status, error, next_attempt, int(attempted), status, now_iso(), delivery))


def delivery(db: Database, delivery_id: int) -> dict | None:
    return next(db.query("SELECT * FROM deliveries WHERE id = ?", [delivery_id]), None)


def requeue_delivery(db: Database, delivery_id: int, now: str, statuses: tuple[str, ...]) -> bool:
    """Put a delivery in one of ``statuses`` back to pending, due at ``now``; False if it is in another state."""
    with transaction(db) as conn:
        return conn.execute(
            f"UPDATE deliveries SET status = 'pending', next_attempt = ? WHERE id = ? AND status IN ({','.join('?' * len(statuses))})",
            (now, delivery_id, *statuses)).rowcount == 1


def delivery_summary(db: Database) -> dict[str, int]:
    return {r[0]: r[1] for r in db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")}


# --------------------------------------------------------------------------- lease (one scheduler per database)


def acquire_lease(db: Database, owner: str, ttl: float, now: dt.datetime | None = None,
                  key: str = "scheduler", gone: Callable[[str], bool] | None = None) -> str | None:
    """Take or renew a lease (``scheduler``: one `run` per database; ``digest-sender``: one process
    delivering digests at a time); return the current holder if someone else has it.

    A holder whose heartbeat is older than ``ttl``, or for which ``gone(holder)`` is true
    (its process died), is replaced at once."""
    now = now or dt.datetime.now(UTC)
    with transaction(db) as conn:
        row = conn.execute("SELECT value, updated FROM meta WHERE key = ?", (key,)).fetchone()
        if (row and row[0] != owner and parse_iso(row[1]) + dt.timedelta(seconds=ttl) > now
                and not (gone and gone(row[0]))):
            return row[0]
        conn.execute("INSERT INTO meta (key, value, updated) VALUES (?, ?, ?)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated", (key, owner, iso(now)))
    return None


def release_lease(db: Database, owner: str, key: str = "scheduler") -> None:
    with transaction(db) as conn:
        conn.execute("DELETE FROM meta WHERE key = ? AND value = ?", (key, owner))


def set_meta(db: Database, key: str, value: str | None) -> None:
    with transaction(db) as conn:
        if value is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            conn.execute("INSERT INTO meta (key, value, updated) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                         " SET value = excluded.value, updated = excluded.updated", (key, value, now_iso()))


def get_meta(db: Database, key: str) -> tuple[str, str] | None:
    row = db.execute("SELECT value, updated FROM meta WHERE key = ?", (key,)).fetchone()
    return (row[0], row[1]) if row else None


def lease_holder(db: Database) -> tuple[str, str] | None:
    row = db.execute("SELECT value, updated FROM meta WHERE key = 'scheduler'").fetchone()
    return (row[0], row[1]) if row else None


# --------------------------------------------------------------------------- the web surface (read-only)


class NoDatabase(Exception):
    """The database file does not exist (reads never create one)."""


def connect_existing(path: str | os.PathLike, readonly: bool = True) -> Database:
    """Open an existing database without creating or migrating it (``serve`` and other readers)."""
    if is_postgres(path):
        return postgres.connect(str(path), readonly=readonly, migrate=False)
    if not os.path.exists(path):
        raise NoDatabase(f"no database at {path} (run `borderwatch run --once` first)")
    uri = "file:" + os.path.abspath(path).replace("?", "%3F").replace("#", "%23") + ("?mode=ro" if readonly else "?mode=rw")
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        conn.execute("PRAGMA foreign_keys = ON")
    return Database(conn)


def hits_per_day(db: Database, since: str, rules: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{rule: {YYYY-MM-DD: stories}} for articles published since ``since`` (backfilled hits excluded),
    counting each story once per rule and day."""
    rows = db.execute(
        "SELECT h.rule, substr(a.published, 1, 10) AS day, count(DISTINCT coalesce(a.story, -a.id))"
        " FROM articles a CROSS JOIN hits h ON h.article = a.id"  # CROSS JOIN: walk the published index, not every hit
        " WHERE a.published >= ? AND h.backfilled = 0 AND h.suggested = 0 GROUP BY h.rule, day", (since,)).fetchall()
    out: dict[str, dict[str, int]] = {}
    for rule, day, n in rows:
        if rules is None or rule in rules:
            out.setdefault(rule, {})[day] = n
    return out


def latest_stories(db: Database, rules: list[str] | None = None, limit: int = 20) -> list[dict]:
    """The newest hits, one row per story (its newest copy with a hit), with the story's other sources."""
    rows = query_hits(db, HitQuery(rules=rules, limit=limit * 4))
    seen, out = set(), []
    for r in rows:
        key = r["story"] if r["story"] is not None else ("article", r["id"])
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
        if len(out) == limit:
            break
    copies = story_copies(db, [r["story"] for r in out if r["story"] is not None])
    for r in out:
        names = [c["source_name"] for c in copies.get(r["story"], []) if c["url"] != r["url"]]
        r["also_in"] = list(dict.fromkeys(n for n in names if n != (r["source_name"] or r["source"])))
    return out


def unsubscribe_state(db: Database, token: str) -> str | None:
    """'active', 'inactive', or None for an unknown token (says nothing about who it belongs to)."""
    row = db.execute("SELECT active FROM subscribers WHERE token = ?", (token,)).fetchone()
    return None if row is None else ("active" if row[0] else "inactive")


def deactivate_by_token(db: Database, token: str) -> bool:
    """Deactivate the subscriber with this token and cancel what is still owed to them.
    Returns False for an unknown token; idempotent for a known one."""
    with transaction(db) as conn:
        row = conn.execute("SELECT email FROM subscribers WHERE token = ?", (token,)).fetchone()
        if row is None:
            return False
        conn.execute("UPDATE subscribers SET active = 0 WHERE token = ?", (token,))
        conn.execute("UPDATE deliveries SET status = 'cancelled', last_error = 'unsubscribed'"
                     " WHERE subscriber = ? AND status = 'pending'", (row[0],))
        return True


def metrics_snapshot(db: Database) -> dict:
    """Counters for /metrics: no personal data, only totals."""
    return {
        "counts": counts(db),
        "hits_by_rule": {r[0]: r[1] for r in db.execute("SELECT rule, count(*) FROM hits GROUP BY rule")},
        "deliveries": delivery_summary(db),
        "subscribers_active": db.execute("SELECT count(*) FROM subscribers WHERE active = 1").fetchone()[0],
    }


# --------------------------------------------------------------------------- source health and its alert outbox


def source_activity(db: Database, ids: list[str], recent: int = 30) -> dict[str, dict]:
    """Per source: when its newest stored article was first seen, and the published times of its
    latest ``recent`` articles (newest first), to learn its usual gap between items."""
    out: dict[str, dict] = {sid: {"last_new": None, "published": []} for sid in ids}
    for sid in ids:
        rows = db.execute("SELECT published, fetched FROM articles WHERE source = ? ORDER BY published DESC LIMIT ?",
                          (sid, recent)).fetchall()
        last = db.execute("SELECT max(fetched) FROM articles WHERE source = ?", (sid,)).fetchone()[0]
        out[sid] = {"last_new": last, "published": [r[0] for r in rows if r[0]]}
    return out


def health_states(db: Database) -> dict[str, dict]:
    try:
        return {r["source"]: r for r in db.query("SELECT * FROM source_health")}
    except sqlite3.OperationalError:  # a database from before migration 4, opened read-only
        return {}


def record_health(db: Database, changes: list[dict], alerts: list[dict]) -> None:
    """Store source health transitions and the alerts they owe, in one transaction."""
    with transaction(db) as conn:
        conn.executemany(
            "INSERT INTO source_health (source, problem, detail, since, watching_since, updated)"
            " VALUES (:source, :problem, :detail, :since, :watching_since, :updated)"
            " ON CONFLICT(source) DO UPDATE SET problem = excluded.problem, detail = excluded.detail,"
            " since = excluded.since, updated = excluded.updated", changes)
        conn.executemany(
            "INSERT INTO health_alerts (target, source, event, subject, body, created, next_attempt)"
            " VALUES (:target, :source, :event, :subject, :body, :created, :created)", alerts)


def due_health_alerts(db: Database, now: str) -> list[dict]:
    return list(db.query("SELECT * FROM health_alerts WHERE status = 'pending' AND (next_attempt IS NULL OR next_attempt <= ?)"
                         " ORDER BY id", [now]))


def health_alerts_in(db: Database, statuses: tuple[str, ...]) -> list[dict]:
    return list(db.query(f"SELECT * FROM health_alerts WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY id",
                         list(statuses)))


def set_health_alert(db: Database, alert: int, status: str, error: str | None = None,
                     next_attempt: str | None = None, attempted: bool = False) -> None:
    with transaction(db) as conn:
        conn.execute(
            "UPDATE health_alerts SET status = ?, last_error = coalesce(?, last_error), next_attempt = coalesce(?, next_attempt),"
            " attempts = attempts + ?, sent = CASE WHEN ? = 'sent' THEN ? ELSE sent END WHERE id = ?",
            (status, error, next_attempt, int(attempted), status, now_iso(), alert))
