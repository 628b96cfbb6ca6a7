"""The cluster's own state in PostgreSQL (beside borderwatch's tables and procrastinate's queue).

- ``borderwatch_config``: the feeds.yaml and keywords.yaml every member runs with, as text, with a
  version that goes up by one on each change and the file's modification time (a member whose
  local file is older than the stored one never overwrites it).
- procrastinate's schema, applied once: under a transaction-level advisory lock, and only when its
  jobs table is missing from the current schema, so members starting together do not race.
- host slots: session-level advisory locks, one per (host, slot number), held while a poll talks to
  that host. PostgreSQL drops them with the session, so a member killed with -9 holds nothing.
- the poll jobs in procrastinate's table: which sources have one waiting or running, and cancelling
  the waiting ones of sources whose config changed (reconcile defers them again at once).

psycopg 3 is used directly: this module is only imported by the cluster runtime.
"""

from __future__ import annotations

import hashlib
import socket
import zlib
from dataclasses import dataclass

import psycopg

from ..errors import StorageError

SETUP_LOCK = 0x62770001  # pg_advisory_xact_lock key: one member at a time creates the cluster's tables
HOST_SLOT_CLASS = 0x6277  # first key of pg_try_advisory_lock(int, int): borderwatch's host slots
POLL_LOCK_PREFIX = "poll:"  # procrastinate queueing_lock of a source's poll job

CONFIG_SCHEMA = """
CREATE TABLE IF NOT EXISTS borderwatch_config (
    name text PRIMARY KEY,              -- 'feeds' or 'keywords'
    version bigint NOT NULL,            -- goes up by one on every change
    body text NOT NULL,                 -- the file's text, byte for byte
    digest text NOT NULL,               -- sha256 of body
    file_mtime double precision NOT NULL,  -- modification time (POSIX) of the file it came from
    loaded_by text NOT NULL,            -- host and pid of the member that stored it
    loaded_at timestamptz NOT NULL DEFAULT now()
)"""


class ClusterUnavailable(StorageError):
    """PostgreSQL cannot be reached or refused the cluster's statements."""


def connect(url: str) -> psycopg.Connection:
    """A plain autocommit connection for the cluster's bookkeeping."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="borderwatch-cluster")
    except psycopg.Error as exc:
        raise ClusterUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {one_line(exc)}") from None


async def connect_async(url: str) -> psycopg.AsyncConnection:
    try:
        return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10,
                                                     application_name="borderwatch-cluster")
    except psycopg.Error as exc:
        raise ClusterUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {one_line(exc)}") from None


def redact(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts._replace(query=""))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def setup(conn: psycopg.Connection, queue_schema_sql: str) -> bool:
    """Create the cluster's config table and procrastinate's schema if missing. Members starting at the
    same moment take turns (advisory lock); the second finds the tables and does nothing. Returns
    whether procrastinate's schema was applied now."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
        conn.execute(CONFIG_SCHEMA)
        exists = conn.execute("SELECT 1 FROM pg_tables WHERE schemaname = current_schema()"
                              " AND tablename = 'procrastinate_jobs'").fetchone()
        if exists:
            return False
        conn.execute(queue_schema_sql)  # no parameters: sent as one multi-statement script
        return True


# --------------------------------------------------------------------------- shared config


@dataclass(frozen=True)
class StoredConfig:
    name: str
    version: int
    body: str
    digest: str
    file_mtime: float
    loaded_by: str


def digest_of(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def config_versions(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, version FROM borderwatch_config").fetchall())


def stored_config(conn: psycopg.Connection, name: str) -> StoredConfig | None:
    row = conn.execute("SELECT name, version, body, digest, file_mtime, loaded_by FROM borderwatch_config"
                       " WHERE name = %s", (name,)).fetchone()
    return StoredConfig(*row) if row else None


def publish_config(conn: psycopg.Connection, name: str, body: str, file_mtime: float,
                   loaded_by: str | None = None) -> tuple[bool, StoredConfig]:
    """Store ``body`` as the cluster's ``name`` config unless the stored one is the same text or
    comes from a file modified at the same time or later. Returns (stored now?, the current row)."""
    digest = digest_of(body)
    loaded_by = loaded_by or f"{socket.gethostname()} pid {__import__('os').getpid()}"
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
        current = stored_config(conn, name)
        if current is not None and (current.digest == digest or current.file_mtime >= file_mtime):
            return False, current
        version = (current.version if current else 0) + 1
        conn.execute("INSERT INTO borderwatch_config (name, version, body, digest, file_mtime, loaded_by, loaded_at)"
                     " VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET"
                     " version = excluded.version, body = excluded.body, digest = excluded.digest,"
                     " file_mtime = excluded.file_mtime, loaded_by = excluded.loaded_by, loaded_at = now()",
                     (name, version, body, digest, file_mtime, loaded_by))
        return True, StoredConfig(name, version, body, digest, file_mtime, loaded_by)


# --------------------------------------------------------------------------- poll jobs


def poll_lock(source_id: str) -> str:
    return POLL_LOCK_PREFIX + source_id


def sources_with_polls(conn: psycopg.Connection) -> set[str]:
    """Sources that have a poll job waiting ('todo') or running ('doing')."""
    rows = conn.execute("SELECT queueing_lock FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
                        " AND queueing_lock LIKE %s", (POLL_LOCK_PREFIX + "%",)).fetchall()
    return {r[0][len(POLL_LOCK_PREFIX):] for r in rows}


def cancel_waiting_polls(conn: psycopg.Connection, source_ids: list[str]) -> int:
    """Cancel (and delete) the waiting poll jobs of these sources; returns how many."""
    if not source_ids:
        return 0
    rows = conn.execute("SELECT procrastinate_cancel_job_v1(id, false, true) FROM procrastinate_jobs"
                        " WHERE status = 'todo' AND queueing_lock = ANY(%s)",
                        ([poll_lock(s) for s in source_ids],)).fetchall()
    return len(rows)


def live_members(conn: psycopg.Connection, within: float) -> list[tuple[int, str]]:
    """procrastinate workers (cluster members) with a heartbeat in the last ``within`` seconds:
    (id, last heartbeat as ISO text)."""
    rows = conn.execute("SELECT id, to_char(last_heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                        " FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => %s)"
                        " ORDER BY last_heartbeat", (within,)).fetchall()
    return [(r[0], r[1]) for r in rows]


def members_line(url: str, within: float) -> tuple[str, str]:
    """The cluster's members as `status` shows the scheduler: ('running' | 'not running', a line)."""
    try:
        with connect(url) as conn:
            if conn.execute("SELECT to_regclass('procrastinate_workers')").fetchone()[0] is None:
                return "not running", "not running (no cluster member has started on this database)"
            members = live_members(conn, within)
            jobs = queue_counts(conn)
    except ClusterUnavailable as exc:
        return "not running", f"unknown ({exc})"
    if not members:
        return "not running", f"not running (no cluster member with a heartbeat in the last {within:.0f}s)"
    return "running", (f"running: {len(members)} cluster member(s), last heartbeat {members[-1][1].replace('T', ' ')}; "
                       f"jobs waiting {jobs.get('todo', 0)}, running {jobs.get('doing', 0)}, failed {jobs.get('failed', 0)}")


def queue_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Jobs by status (what `status` shows about the queue)."""
    return dict(conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status").fetchall())


# --------------------------------------------------------------------------- host slots


def slot_key(host: str, slot: int) -> int:
    """A stable int4 for (host, slot): the second key of the host slot's advisory lock."""
    return zlib.crc32(f"{host}#{slot}".encode()) - 2**31


async def try_host_slot(conn: psycopg.AsyncConnection, host: str, slot: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (HOST_SLOT_CLASS, slot_key(host, slot)))
    return bool((await cur.fetchone())[0])


async def release_host_slot(conn: psycopg.AsyncConnection, host: str, slot: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (HOST_SLOT_CLASS, slot_key(host, slot)))
