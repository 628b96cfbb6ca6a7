"""SQLiteStore: the Store interface over one SQLite connection (the SQL itself is in sqlite.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidQuery
from ..models import Delivery, HitRow, Snippet, Subscriber
from . import sqlite as sql

FTS_SYNTAX = "https://sqlite.org/fts5.html#full_text_query_syntax"


class SQLiteStore:
    """One connection to a borderwatch database: a SQLite file, or PostgreSQL for a ``postgresql://`` path
    (``sql.connect`` picks). ``readonly`` opens an existing file for reading only
    (never creating or migrating it); otherwise the file is created and migrated as needed."""

    def __init__(self, path: str, readonly: bool = False):
        self.path = str(path)
        self.readonly = readonly
        self.db = sql.connect_readonly(self.path) if readonly else sql.connect(self.path)

    @classmethod
    def wrap(cls, db) -> "SQLiteStore":
        """A Store over an already open connection (the caller keeps ownership of it)."""
        st = cls.__new__(cls)
        st.path, st.readonly, st.db = sql.db_path(db), False, db
        return st

    def close(self) -> None:
        if self.db is not None:
            self.db.conn.close()
            self.db = None

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # sources
    def sync_sources(self, sources) -> None:
        sql.sync_sources(self.db, sources)

    def source_states(self, ids: list[str] | None = None) -> dict[str, dict]:
        return sql.source_states(self.db, ids)

    # ingest
    def known_keys(self, source: str, guids: list[str], urls: list[str]) -> tuple[set[str], set[str]]:
        return sql.known_keys(self.db, source, guids, urls)

    def save_polls(self, outcomes: list, same_story) -> list[list]:
        return sql.save_polls(self.db, outcomes, same_story)

    # hits and backtests
    def hits(self, query: sql.HitQuery) -> list[HitRow]:
        try:
            rows = sql.query_hits(self.db, query)
        except sqlite3.OperationalError as exc:
            if query.search and not any(w in str(exc) for w in ("locked", "busy", "readonly", "disk")):  # malformed FTS
                raise InvalidQuery(f"invalid search query ({exc}); see {FTS_SYNTAX}", "search") from None
            raise
        return [HitRow(r["id"], r["url"], r["title"], r["source"], r["source_name"], r["published"], r["fetched"],
                       r["rules"], Snippet.of(r["snippet"], r["marks"]), r["story"], r.get("rule_versions"),
                       r.get("rules_mtime"), r.get("language")) for r in rows]

    def article_by_url(self, url: str) -> dict | None:
        return sql.article_by_url(self.db, url)

    def articles_for_backtest(self, since: str | None) -> Iterator[dict]:
        return sql.articles_for_backtest(self.db, since)

    def stored_hits(self, since: str | None) -> set[tuple[int, str]]:
        return sql.stored_hits(self.db, since)

    def article_titles(self, ids: list[int]) -> dict[int, dict]:
        return sql.article_titles(self.db, ids)

    def backfill_hits(self, hits: list[tuple[int, Any]]) -> int:
        return sql.backfill_hits(self.db, hits)

    def hit_rules(self) -> list[str]:
        return sql.hit_rules(self.db)

    def prunable(self, older_than: str) -> int:
        return sql.prunable(self.db, older_than)

    def prune(self, older_than: str) -> int:
        return sql.prune(self.db, older_than)

    def counts(self) -> dict[str, int]:
        return sql.counts(self.db)

    # subscribers
    def subscribers(self, email: str | None = None) -> list[Subscriber]:
        return [Subscriber.from_row(r) for r in sql.subscribers(self.db, email)]

    def add_subscriber(self, email: str, rules: list[str] | None, tags: list[str] | None, cadence: str, hour: int,
                       weekday: int, tz: str) -> None:
        sql.add_subscriber(self.db, email, rules, tags, cadence, hour, weekday, tz)

    def find_subscriber(self, target: str) -> Subscriber | None:
        row = sql.find_subscriber(self.db, target)
        return Subscriber.from_row(row) if row else None

    def update_subscriber(self, email: str, changes: dict[str, Any]) -> None:
        sql.update_subscriber(self.db, email, changes)

    def remove_subscriber(self, target: str) -> str | None:
        return sql.remove_subscriber(self.db, target)

    # the outbox
    def delivery_summary(self) -> dict[str, int]:
        return sql.delivery_summary(self.db)

    def delivery_problems(self, limit: int = 20) -> list[Delivery]:
        return [Delivery.from_row(r) for r in sql.delivery_problems(self.db, limit)]

    # lease and meta
    def lease_holder(self) -> tuple[str, str] | None:
        return sql.lease_holder(self.db)

    def get_meta(self, key: str) -> tuple[str, str] | None:
        return sql.get_meta(self.db, key)


def as_store(db) -> "SQLiteStore":
    """A Store for either a Store or a raw connection (stages not yet moved onto the interface pass those)."""
    return db if isinstance(db, SQLiteStore) else SQLiteStore.wrap(db)


def open_store(path: str, readonly: bool = False) -> SQLiteStore:
    """The Store for a ``db`` setting: a SQLite file path, or a ``postgresql://`` URL (the same SQL through
    store/postgres.py)."""
    return SQLiteStore(path, readonly)
