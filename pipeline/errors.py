"""One exception hierarchy for borderwatch: callers catch by kind, the CLI maps each to a message and exit code.

    BorderwatchError
    ├── ConfigError          feeds.yaml / keywords.yaml problems, each as FILE:LINE: message (exit 2)
    ├── InvalidArgument      a value given by the caller is wrong (exit 2)
    │   └── InvalidQuery     a malformed --search (FTS5) query
    ├── NotFound             no such subscriber / source (exit 1)
    ├── AlreadyExists        adding what exists already, e.g. a subscriber (exit 2)
    ├── AlreadyRunning       another `run` holds the scheduler lease of this database (exit 1)
    ├── MissingExtra         an optional extra (datasette, prometheus-client, ...) is not installed
    ├── StorageError         the database cannot be opened or written (exit 1)
    ├── FetchError(kind)     one HTTP request failed; ``kind`` says how (exit 1)
    │   └── Blocked          the SSRF policy refused the target (kind "blocked")
    └── DeliveryError        sending one digest failed
        ├── TransientError   worth retrying later (connection refused, 4xx replies)
        ├── PermanentError   the server refused for good (5xx replies)
        └── UnknownOutcome   the connection dropped after DATA: the message may or may not have arrived
"""

from __future__ import annotations

from dataclasses import dataclass


class BorderwatchError(Exception):
    """Base of every error borderwatch raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(BorderwatchError):
    """Raised with every issue found in a config file."""

    exit_code = 2

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class InvalidArgument(BorderwatchError, ValueError):
    """A value passed by the caller is wrong; ``param`` names it (for the CLI's --option hint)."""

    exit_code = 2

    def __init__(self, message: str, param: str | None = None):
        self.param = param
        super().__init__(message)


class InvalidQuery(InvalidArgument):
    """A full-text search query SQLite FTS5 cannot parse."""


class NotFound(BorderwatchError):
    """The subscriber, source or article asked for does not exist."""


class AlreadyExists(BorderwatchError):
    """What is being added exists already (e.g. a subscriber): change it instead."""

    exit_code = 2


class AlreadyRunning(BorderwatchError):
    """Another `borderwatch run` holds the scheduler lease of this database."""


class MissingExtra(BorderwatchError):
    """An optional dependency (a pip extra) needed for this is not installed."""


class StorageError(BorderwatchError):
    """The database cannot be opened, read or written."""


FETCH_KINDS = ("timeout", "dns", "connect", "blocked", "url", "redirects", "too_large", "encoding", "http", "status",
               "robots", "io")


class FetchError(BorderwatchError):
    """One request failed. ``kind`` is one of FETCH_KINDS, for callers that react by kind."""

    def __init__(self, message: str, kind: str = "http"):
        self.kind = kind
        super().__init__(message)


class Blocked(FetchError):
    """A target the SSRF policy refuses."""

    def __init__(self, message: str, kind: str = "blocked"):
        super().__init__(message, kind)


class DeliveryError(BorderwatchError):
    """Sending one digest failed."""


class TransientError(DeliveryError):
    """Worth retrying later."""


class PermanentError(DeliveryError):
    """The server refused this message for good."""


class UnknownOutcome(DeliveryError):
    """The connection was lost after the message was sent: it may or may not have been delivered."""
