"""Settings: paths and deployment knobs. ``Settings.from_env()`` is the only reader of the environment.

Every other module receives a ``Settings`` (or the values it needs) from its caller; nothing else
in borderwatch reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from .errors import ConfigError, ConfigIssue

# Variable -> what it sets (documented in README.md).
ENV = {
    "BORDERWATCH_FEEDS": "source list (feeds.yaml)",
    "BORDERWATCH_KEYWORDS": "rule file (keywords.yaml)",
    "BORDERWATCH_DB": "SQLite database",
    "BORDERWATCH_METRICS_ADDR": "address of the Prometheus metrics server (run --metrics-port)",
    "BORDERWATCH_RETENTION_DAYS": "articles without hits older than this are pruned by `run` (default 365)",
    "BORDERWATCH_PUBLIC_URL": "public base URL of `borderwatch serve` (unsubscribe links in digests, links in feeds)",
    "BORDERWATCH_SEMANTIC": "off: do not use the semantic layer even when the extra is installed (default on)",
    "BORDERWATCH_CLUSTER_HEARTBEAT": "cluster members (run with a PostgreSQL --db): seconds between heartbeats; a member "
                                     "silent for 4 of them is dead and its unfinished polls are redone (default 5)",
    "DIGEST_FROM": "From: address of digests",
    "SMTP_HOST": "SMTP server (unset: digests are written to ./outbox/ as .eml files)",
    "SMTP_PORT": "SMTP port (default 587; 465 with SMTP_TLS=ssl; 25 with none)",
    "SMTP_USER": "SMTP login",
    "SMTP_PASSWORD": "SMTP password",
    "SMTP_TLS": "starttls | ssl | none",
}


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int = 587
    user: str | None = None
    password: str | None = None
    tls: str = "starttls"  # starttls | ssl | none
    timeout: float = 30.0  # per network operation
    deadline: float = 120.0  # total per message, connecting included (a server cannot drip forever)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SMTPSettings | None":
        """SMTP settings from SMTP_* variables; None when SMTP_HOST is unset."""
        return Settings.from_env(env).smtp


def is_database_url(value) -> bool:
    """Whether a ``db`` setting names a PostgreSQL database (postgresql://...) rather than a SQLite file."""
    return str(value or "").startswith(("postgresql://", "postgres://"))


@dataclass
class Settings:
    """Paths resolved from options, environment and defaults (SPEC §1), and deployment settings."""

    feeds: str = "feeds.yaml"
    keywords: str = "keywords.yaml"
    db: str = "borderwatch.db"
    digest_from: str | None = None
    public_url: str | None = None
    metrics_addr: str = "127.0.0.1"
    retention_days: int = 365
    semantic: bool = False  # use the optional semantic layer (from_env: on unless BORDERWATCH_SEMANTIC=off)
    cluster_heartbeat: float = 5.0  # seconds between a cluster member's heartbeats
    smtp: SMTPSettings | None = None
    extra: dict[str, str] = field(default_factory=dict, repr=False)  # other BORDERWATCH_* variables, by name

    @property
    def db_is_url(self) -> bool:
        """Whether ``db`` names a PostgreSQL database (postgresql://...) rather than a SQLite file."""
        return is_database_url(self.db)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Read the environment once; ``overrides`` that are not None win (command-line options)."""
        env = os.environ if env is None else env
        get = lambda key: (env.get(key) or "").strip() or None  # noqa: E731
        s = cls()
        s.feeds = get("BORDERWATCH_FEEDS") or s.feeds
        s.keywords = get("BORDERWATCH_KEYWORDS") or s.keywords
        s.db = get("BORDERWATCH_DB") or s.db
        s.digest_from = get("DIGEST_FROM")
        s.public_url = get("BORDERWATCH_PUBLIC_URL")
        s.metrics_addr = get("BORDERWATCH_METRICS_ADDR") or s.metrics_addr
        semantic = (get("BORDERWATCH_SEMANTIC") or "on").lower()
        if semantic not in ("on", "off"):
            raise ConfigError([ConfigIssue("environment", 0, f"BORDERWATCH_SEMANTIC must be on or off, got {semantic!r}")])
        s.semantic = semantic == "on"
        beat = get("BORDERWATCH_CLUSTER_HEARTBEAT")
        if beat is not None:
            try:
                s.cluster_heartbeat = float(beat)
            except ValueError:
                s.cluster_heartbeat = -1.0
            if not 0.5 <= s.cluster_heartbeat <= 300:
                raise ConfigError([ConfigIssue("environment", 0, "BORDERWATCH_CLUSTER_HEARTBEAT must be a number of "
                                                                  f"seconds from 0.5 to 300, got {beat!r}")])
        days = get("BORDERWATCH_RETENTION_DAYS")
        if days is not None:
            if not days.isdigit() or int(days) < 1:
                raise ConfigError([ConfigIssue("environment", 0, f"BORDERWATCH_RETENTION_DAYS must be a positive "
                                                                  f"number of days, got {days!r}")])
            s.retention_days = int(days)
        host = get("SMTP_HOST")
        if host:
            tls = (get("SMTP_TLS") or "starttls").lower()
            if tls not in ("starttls", "ssl", "none"):
                raise ConfigError([ConfigIssue("environment", 0, f"SMTP_TLS must be starttls, ssl or none, got {tls!r}")])
            port = get("SMTP_PORT")
            if port is not None and not port.isdigit():
                raise ConfigError([ConfigIssue("environment", 0, f"SMTP_PORT must be a port number, got {port!r}")])
            s.smtp = SMTPSettings(host, int(port) if port else {"ssl": 465, "none": 25}.get(tls, 587),
                                  get("SMTP_USER"), get("SMTP_PASSWORD"), tls)
        s.extra = {k: v for k, v in env.items() if k.startswith("BORDERWATCH_") and k not in ENV}
        return s.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> "Settings":
        """A copy with the given values replaced; None values are ignored (an option not given)."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def passive_openmp() -> None:
    """Ask OpenMP (used by the semantic layer's engine) not to spin its threads between calls, unless
    the environment says otherwise; the one place borderwatch writes the environment."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
