"""Editing feeds.yaml in place: `sources add/disable/enable` and `opml import`.

Every edit is a round trip through ruamel.yaml, so comments, order and formatting stay as
the operator wrote them. New values are written as quoted scalars by the serializer (never
pasted into YAML text), the whole resulting file is validated with the same checks as
`borderwatch check` before it replaces the old one, and the replacement is atomic (a temp
file in the same directory, fsync, rename): a failed or invalid edit leaves feeds.yaml as it was.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from .config import ConfigError, ConfigIssue, FeedsConfig, load_feeds
from .errors import BorderwatchError

T = TypeVar("T")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


class EditError(BorderwatchError):
    """feeds.yaml cannot be edited (read-only, missing directory, ...): one line for people."""


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


def clean_text(value: str, limit: int = 200) -> str:
    """A name from outside (OPML, a web page): control characters become spaces, length capped."""
    value = " ".join(_CONTROL.sub(" ", value or "").split())
    return value[:limit]


def new_source(sid: str, url: str, name: str, type_: str = "feed", link_selector: str | None = None) -> CommentedMap:
    """A source entry whose values are quoted scalars: data can never become YAML structure."""
    entry = CommentedMap()
    entry["id"] = sid
    entry["name"] = DoubleQuotedScalarString(clean_text(name) or sid)
    entry["url"] = DoubleQuotedScalarString(url)
    entry["type"] = type_
    if link_selector:
        entry["link_selector"] = DoubleQuotedScalarString(link_selector)
    return entry


def current(path: str | os.PathLike) -> FeedsConfig | None:
    """The valid config in ``path``, None if the file does not exist; ConfigError if it is invalid
    (an edit never starts from a broken file)."""
    if not Path(path).exists():
        return None
    return load_feeds(path)


def edit(path: str | os.PathLike, change: Callable[[CommentedMap], T]) -> tuple[T, FeedsConfig]:
    """Apply ``change`` to the parsed document, validate the whole result, write it atomically.

    Returns what ``change`` returned and the new, validated config."""
    path = Path(path)
    current(path)  # refuse to edit an invalid file: fix it first (`borderwatch check` lists why)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    y = _yaml()
    doc = y.load(text) if text.strip() else None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError([ConfigIssue(str(path), 1, "top level must be a mapping with a 'sources' list")])
    if doc.get("sources") is None:
        doc["sources"] = CommentedSeq()
    result = change(doc)
    out = io.StringIO()
    y.dump(doc, out)
    return result, write_validated(path, out.getvalue())


def write_validated(path: Path, text: str) -> FeedsConfig:
    """Validate ``text`` as feeds.yaml and atomically replace ``path`` with it."""
    if not path.parent.is_dir():
        raise EditError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.exists():
        try:
            with open(path, "r+b"):
                pass
        except PermissionError:
            raise EditError(f"cannot write {path}: the file is read-only; nothing was changed "
                            "(make it writable, or use --print and paste the entries yourself)") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError:
        raise EditError(f"cannot write {path}: its directory is read-only; nothing was changed") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            cfg = load_feeds(tmp)
        except ConfigError as exc:  # report against the real file name
            raise ConfigError([ConfigIssue(str(path), i.line, i.message) for i in exc.issues]) from None
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
        tmp = None
        return FeedsConfig(cfg.sources, str(path), cfg.concurrency, cfg.per_host)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def append_sources(doc: CommentedMap, entries: list[CommentedMap]) -> None:
    for e in entries:
        doc["sources"].append(e)


def set_enabled(doc: CommentedMap, source_id: str, enabled: bool) -> bool:
    """Set ``enabled`` on one source; False if no such id. Enabling removes the key (true is the default)."""
    for entry in doc["sources"]:
        if isinstance(entry, dict) and entry.get("id") == source_id:
            if enabled:
                entry.pop("enabled", None)
            else:
                entry["enabled"] = False
            return True
    return False


def source_ids(doc: CommentedMap) -> list[Any]:
    return [e.get("id") for e in doc["sources"] if isinstance(e, dict)]
