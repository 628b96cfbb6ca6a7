"""Load and validate feeds.yaml and keywords.yaml into typed objects.

Every problem is reported as a :class:`ConfigIssue` carrying the file and line,
so ``borderwatch check`` can print ``FILE:LINE: message`` for all of them at once.
Only ``yaml.SafeLoader`` is used: a ``!!python/...`` tag is a config error.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError, ConfigIssue  # noqa: F401 (re-exported: config is where callers look)
from .settings import Settings  # noqa: F401 (re-exported)

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


# --------------------------------------------------------------------------- YAML with lines


class LineDict(dict):
    """A mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


MAX_ALIAS_NODES = 100_000  # values that aliases may add by expansion (an alias bomb adds billions)


class _Loader(yaml.SafeLoader):
    first_alias: yaml.Mark | None = None

    def compose_node(self, parent, index):
        if self.first_alias is None and self.check_event(yaml.AliasEvent):
            self.first_alias = self.peek_event().start_mark
        return super().compose_node(parent, index)


def _expanded_size(root: yaml.Node, cap: int) -> tuple[int, int]:
    """(distinct nodes, nodes once every alias is expanded, counted up to ``cap + 1``) without
    expanding anything: each shared node's size is computed once. A node that contains
    itself (a recursive alias) counts as ``cap + 1``."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return list(node.value) if isinstance(node, yaml.SequenceNode) else []

    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = min(cap + 1, 1 + sum(sizes[id(c)] for c in children(node)))
            continue
        if key in sizes:
            continue
        if key in on_path:
            return len(sizes), cap + 1
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children(node) if id(c) not in sizes)
    return len(sizes), sizes[id(root)]


def _show(value: Any, limit: int = 60) -> str:
    """A value for an error message, bounded whatever its size (never the repr of a whole structure)."""
    if isinstance(value, str):
        return repr(value[:limit]) + (f" (+{len(value) - limit:,} more characters)" if len(value) > limit else "")
    if value is None or isinstance(value, (bool, float)) or (isinstance(value, int) and abs(value) < 10**limit):
        return repr(value)
    if isinstance(value, dict):
        return f"a mapping of {len(value):,} keys"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value):,} items"
    return f"a {type(value).__name__}"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain word or number",
                                                    key_node.start_mark)
        if key in result:
            loader.duplicate_keys.append((line, key))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | os.PathLike, text: str | None = None) -> tuple[Any, list[ConfigIssue]]:
    """Parse a YAML file safely (or ``text``, named ``path`` in messages: the cluster's copy of the
    file held in the database); return (data, issues). Data is None on a syntax error."""
    name = str(path)
    try:
        if text is None:
            text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigIssue(name, 0, "file not found")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ConfigIssue(name, 0, f"cannot read: {exc}")]
    loader = _Loader(text)
    loader.duplicate_keys = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        if loader.first_alias is not None:  # refuse an alias bomb before building any value
            distinct, expanded = _expanded_size(node, distinct_cap := MAX_ALIAS_NODES + _node_count(text))
            if expanded > distinct_cap or expanded - distinct > MAX_ALIAS_NODES:
                return None, [ConfigIssue(name, loader.first_alias.line + 1,
                                          f"YAML aliases (*name) here expand to more than {MAX_ALIAS_NODES:,} extra "
                                          "values, or refer to themselves: write the values out instead")]
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or str(exc)
        if "could not determine a constructor" in problem:
            problem = "unsafe or unknown YAML tag " + problem.split("tag", 1)[-1].strip()[:80] + " (only plain YAML is allowed)"
        return None, [ConfigIssue(name, line, f"YAML error: {problem[:300]}")]
    except yaml.YAMLError as exc:
        return None, [ConfigIssue(name, 0, f"YAML error: {str(exc)[:300]}")]
    except RecursionError:
        return None, [ConfigIssue(name, 0, "YAML error: nested too deeply")]
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return None, [ConfigIssue(name, 0, f"YAML error: {str(exc)[:200]}")]
    finally:
        loader.dispose()
    issues = [ConfigIssue(name, line, f"duplicate key {_show(key)}") for line, key in loader.duplicate_keys]
    return data, issues


def _node_count(text: str) -> int:
    """An upper bound on the nodes a document of this size can hold without aliases."""
    return len(text) // 2 + 1


def parse_duration(value: Any) -> float | None:
    """'15m' -> 900.0; numbers are seconds; None if unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = DURATION_RE.match(value)
    if not m:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_size(value: Any) -> int | None:
    """'10MB' / '512KB' / 1000 -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", value, re.I)
    if not m:
        return None
    unit = (m.group(2) or "b").lower()
    mult = {"b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}[unit]
    return int(float(m.group(1)) * mult)


class _Checker:
    """Collects issues against one file while validating its structure."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[ConfigIssue] = []

    def add(self, line: int, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line, message))

    def unknown_keys(self, mapping: LineDict, allowed: set[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(mapping.line_of(key), f"unknown key {_show(key)} in {what} (allowed: {', '.join(sorted(allowed))})")


def _entry_id(chk: _Checker, raw: LineDict, seen: dict[str, int], what: str) -> str | None:
    """A source's or rule's id: well-formed and unique (``seen`` maps ids to their lines)."""
    value = raw.get("id")
    if not isinstance(value, str) or not ID_RE.match(value):
        chk.add(raw.line_of("id"), f"{what} id must match [a-z0-9-], got {_show(value)}")
        return None
    if value in seen:
        chk.add(raw.line_of("id"), f"duplicate {what} id {_show(value)} (first at line {seen[value]})")
        return None
    seen[value] = raw.line_of("id")
    return value


# --------------------------------------------------------------------------- feeds.yaml


@dataclass(frozen=True)
class Source:
    id: str
    url: str
    name: str = ""
    type: str = "feed"  # feed | page
    interval: float = 900.0
    timeout: float = 20.0  # total deadline per request
    link_selector: str | None = None
    fetch_articles: bool = False
    enabled: bool = True
    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = 10_000_000
    failing_after: int | None = None  # health alerts: overrides alerts.failing_after
    silent_after: float | None = None  # health alerts: overrides alerts.silent_after (seconds)
    line: int = 0
    connect_timeout: float | None = None  # default: the total timeout
    read_timeout: float | None = None  # default: the total timeout

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True)
class AlertPolicy:
    """feeds.yaml `alerts:`: who hears about broken sources, and when a source counts as broken."""

    to: tuple[str, ...] = ()
    failing_after: int = 3  # consecutive failed polls
    silent_after: float | None = None  # seconds without a new item; None: learned per source


@dataclass(frozen=True)
class FeedsConfig:
    sources: tuple[Source, ...]
    path: str = "feeds.yaml"
    concurrency: int = 20
    per_host: int = 4
    alerts: AlertPolicy = AlertPolicy()

    def enabled(self) -> list[Source]:
        return [s for s in self.sources if s.enabled]

    def get(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)


_SOURCE_KEYS = {"id", "name", "url", "type", "interval", "timeout", "link_selector", "fetch_articles",
                "enabled", "allow_hosts", "max_bytes", "tags", "notes", "alerts"}
_DEFAULT_KEYS = {"interval", "timeout", "max_bytes", "concurrency", "per_host", "fetch_articles", "allow_hosts"}


def _check_url(chk: _Checker, line: int, url: Any) -> bool:
    if not isinstance(url, str) or not url.strip():
        chk.add(line, "url is required and must be a string")
        return False
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        chk.add(line, f"url must be an absolute http(s) URL, got {_show(url)}")
        return False
    return True


def _duration_field(chk: _Checker, mapping: LineDict, key: str, default: float, minimum: float = 0.0) -> float:
    if key not in mapping:
        return default
    value = parse_duration(mapping[key])
    if value is None or value < minimum:
        chk.add(mapping.line_of(key), f"{key} must be a duration like 30s, 15m, 2h (minimum {minimum:g}s), got {_show(mapping[key])}")
        return default
    return value


_TIMEOUT_KEYS = ("connect", "read", "total")


def _timeout_field(chk: _Checker, mapping: LineDict, default: tuple[float, float | None, float | None]
                   ) -> tuple[float, float | None, float | None]:
    """``timeout: 60s`` (connect, read and total) or ``timeout: {connect: 10s, read: 30s, total: 60s}``.

    Returns (total, connect, read); connect/read None mean "the total"."""
    if "timeout" not in mapping:
        return default
    value = mapping["timeout"]
    line = mapping.line_of("timeout")
    if not isinstance(value, dict):
        total = parse_duration(value)
        if total is None or total < 0.1:
            chk.add(line, f"timeout must be a duration like 20s (minimum 0.1s) or a mapping of connect/read/total, got {_show(value)}")
            return default
        return total, None, None
    chk.unknown_keys(value, set(_TIMEOUT_KEYS), "timeout")
    found: dict[str, float | None] = {}
    for key in _TIMEOUT_KEYS:
        if key in value:
            seconds = parse_duration(value[key])
            if seconds is None or seconds < 0.1:
                chk.add(value.line_of(key), f"timeout {key} must be a duration like 20s (minimum 0.1s), got {_show(value[key])}")
                seconds = None
            found[key] = seconds
    total = found.get("total") or max([v for v in (found.get("connect"), found.get("read")) if v] or [default[0]])
    return total, found.get("connect"), found.get("read")


def _bool_field(chk: _Checker, mapping: LineDict, key: str, default: bool) -> bool:
    value = mapping.get(key, default)
    if not isinstance(value, bool):
        chk.add(mapping.line_of(key), f"{key} must be true or false, got {_show(value)}")
        return default
    return value


def allowed_entry(entry: str) -> tuple[str | None, str, int | None] | None:
    """An ``allow_hosts`` entry as (scheme or None, host, port or None); None if malformed."""
    entry = entry.strip().lower()
    has_scheme = "://" in entry
    if entry.count(":") > 1 and not has_scheme and not entry.startswith("["):
        entry = f"[{entry}]"  # a bare IPv6 address
    parts = urlsplit(entry if has_scheme else "//" + entry)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or (has_scheme and parts.scheme not in ("http", "https")) or parts.path not in ("", "/"):
        return None
    return (parts.scheme if has_scheme else None), parts.hostname, port


def _hosts_field(chk: _Checker, mapping: LineDict, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        chk.add(mapping.line_of(key), f"{key} must be a list of host names")
        return default
    for i, v in enumerate(value):
        if allowed_entry(v) is None:
            chk.add(value.line_of(i) if isinstance(value, LineList) else mapping.line_of(key),
                    f"{key} entry {_show(v)} must be a host (its default ports), host:port or http(s)://host:port")
            return default
    return tuple(v.strip().lower() for v in value)


def parse_feeds(data: Any, file: str) -> tuple[FeedsConfig | None, list[ConfigIssue]]:
    chk = _Checker(file)
    if not isinstance(data, LineDict):
        chk.add(getattr(data, "line", 1), "top level must be a mapping with a 'sources' list")
        return None, chk.issues
    chk.unknown_keys(data, {"defaults", "sources", "alerts"}, "feeds file")
    alerts = _alert_policy(chk, data)
    defaults = data.get("defaults") or LineDict()
    if not isinstance(defaults, LineDict):
        chk.add(data.line_of("defaults"), "defaults must be a mapping")
        defaults = LineDict()
    chk.unknown_keys(defaults, _DEFAULT_KEYS, "defaults")
    d_interval = _duration_field(chk, defaults, "interval", 900.0, minimum=1)
    d_timeout = _timeout_field(chk, defaults, (20.0, None, None))
    d_fetch = _bool_field(chk, defaults, "fetch_articles", False)
    d_hosts = _hosts_field(chk, defaults, "allow_hosts", ())
    d_max = parse_size(defaults.get("max_bytes", 10_000_000))
    if d_max is None:
        chk.add(defaults.line_of("max_bytes"), "max_bytes must be a size like 10MB")
        d_max = 10_000_000
    concurrency, per_host = defaults.get("concurrency", 20), defaults.get("per_host", 4)
    for key, val in (("concurrency", concurrency), ("per_host", per_host)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            chk.add(defaults.line_of(key), f"{key} must be a positive integer")
    sources_raw = data.get("sources")
    if not isinstance(sources_raw, LineList):
        chk.add(data.line_of("sources") if "sources" in data else data.line, "'sources' must be a list")
        return None, chk.issues
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(sources_raw):
        line = sources_raw.line_of(i)
        if not isinstance(raw, LineDict):
            chk.add(line, "each source must be a mapping with id and url")
            continue
        chk.unknown_keys(raw, _SOURCE_KEYS, "source")
        sid = _entry_id(chk, raw, seen, "source")
        if sid is None:
            continue
        ok = _check_url(chk, raw.line_of("url"), raw.get("url"))
        stype = raw.get("type", "feed")
        if stype not in ("feed", "page"):
            chk.add(raw.line_of("type"), f"type must be 'feed' or 'page', got {_show(stype)}")
            continue
        selector = raw.get("link_selector")
        if stype == "page" and not selector:
            chk.add(raw.line, f"source {sid!r}: type 'page' needs a link_selector (CSS selector for article links)")
        if selector is not None:
            selector = _check_selector(chk, raw.line_of("link_selector"), selector)
        max_bytes = parse_size(raw.get("max_bytes", d_max))
        if max_bytes is None:
            chk.add(raw.line_of("max_bytes"), "max_bytes must be a size like 10MB")
            max_bytes = d_max
        name = raw.get("name", sid)
        if not isinstance(name, str):
            chk.add(raw.line_of("name"), "name must be a string")
            name = sid
        if not ok:
            continue
        total, connect, read = _timeout_field(chk, raw, d_timeout)
        sources.append(Source(
            id=sid, url=raw["url"].strip(), name=name, type=stype,
            interval=_duration_field(chk, raw, "interval", d_interval, minimum=1),
            timeout=total, connect_timeout=connect, read_timeout=read,
            link_selector=selector,
            fetch_articles=_bool_field(chk, raw, "fetch_articles", True if stype == "page" else d_fetch),
            enabled=_bool_field(chk, raw, "enabled", True),
            allow_hosts=_hosts_field(chk, raw, "allow_hosts", d_hosts),
            max_bytes=max_bytes, line=line, **_source_alerts(chk, raw),
        ))
    cfg = FeedsConfig(tuple(sources), file,
                      concurrency if isinstance(concurrency, int) else 20,
                      per_host if isinstance(per_host, int) else 4, alerts)
    return cfg, chk.issues


def _failing_after(chk: _Checker, mapping: LineDict, default: int | None) -> int | None:
    value = mapping.get("failing_after", default)
    if value is not default and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        chk.add(mapping.line_of("failing_after"), f"failing_after must be a positive number of polls, got {_show(value)}")
        return default
    return value


def _alert_policy(chk: _Checker, data: LineDict) -> AlertPolicy:
    raw = data.get("alerts")
    if raw is None:
        return AlertPolicy()
    if not isinstance(raw, LineDict):
        chk.add(data.line_of("alerts"), "alerts must be a mapping like {to: [ops@example.org], failing_after: 3, silent_after: 7d}")
        return AlertPolicy()
    chk.unknown_keys(raw, {"to", "failing_after", "silent_after"}, "alerts")
    to = raw.get("to", [])
    if isinstance(to, str):
        to = [to]
    targets = []
    if not isinstance(to, list):
        chk.add(raw.line_of("to"), "alerts.to must be a list of email addresses or Apprise URLs")
        to = []
    from .addresses import validate_target

    for item in to:
        try:
            targets.append(validate_target(str(item)))
        except ValueError as exc:
            chk.add(raw.line_of("to"), f"alerts.to: {exc}")
    silent = _duration_field(chk, raw, "silent_after", -1.0, minimum=60) if "silent_after" in raw else None
    return AlertPolicy(tuple(targets), _failing_after(chk, raw, 3), silent if silent and silent > 0 else None)


def _source_alerts(chk: _Checker, raw: LineDict) -> dict:
    """A source's own `alerts: {failing_after: N, silent_after: D}` overrides."""
    value = raw.get("alerts")
    if value is None:
        return {}
    if not isinstance(value, LineDict):
        chk.add(raw.line_of("alerts"), "a source's alerts must be a mapping like {failing_after: 5, silent_after: 30d}")
        return {}
    chk.unknown_keys(value, {"failing_after", "silent_after"}, "source alerts")
    silent = _duration_field(chk, value, "silent_after", -1.0, minimum=60) if "silent_after" in value else None
    return {"failing_after": _failing_after(chk, value, None),
            "silent_after": silent if silent and silent > 0 else None}


def _check_selector(chk: _Checker, line: int, selector: Any) -> str | None:
    if not isinstance(selector, str) or not selector.strip():
        chk.add(line, "link_selector must be a non-empty CSS selector")
        return None
    import soupsieve

    try:
        soupsieve.compile(selector)
    except Exception as exc:  # soupsieve raises SelectorSyntaxError and friends
        chk.add(line, f"invalid CSS selector {_show(selector)}: {str(exc).splitlines()[0]}")
        return None
    return selector


def load_feeds(path: str | os.PathLike, text: str | None = None) -> FeedsConfig:
    """Load feeds.yaml (or ``text`` named ``path``); raise ConfigError listing every problem."""
    data, issues = load_yaml(path, text)
    cfg = None
    if data is not None:
        cfg, more = parse_feeds(data, str(path))
        issues += more
    if issues or cfg is None:
        raise ConfigError(issues or [ConfigIssue(str(path), 0, "empty file")])
    return cfg


# --------------------------------------------------------------------------- keywords.yaml
# The rule model lives here (it is configuration); pipeline.rules compiles it.


@dataclass(frozen=True)
class Term:
    text: str
    case: bool = False
    regex: bool = False
    line: int = 0

    @property
    def label(self) -> str:
        return f"/{self.text}/" if self.regex else self.text


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    tags: tuple[str, ...] = ()
    any: tuple[Term, ...] = ()
    all: tuple[tuple[Term, ...], ...] = ()
    none: tuple[Term, ...] = ()
    near: int | None = None
    line: int = 0
    about: str = ""  # what the rule is about, in prose: the semantic layer compares articles with it
    suggest: str = "store"  # semantic suggestions for this rule: "store" (shown, never emailed), "email", "off"

    @property
    def version(self) -> str:
        """A short hash of the rule's definition (not of its position in the file): hits record it."""
        import hashlib
        import json

        definition = [self.id, self.title, list(self.tags), [t.__dict__ | {"line": 0} for t in self.any],
                      [[t.__dict__ | {"line": 0} for t in g] for g in self.all],
                      [t.__dict__ | {"line": 0} for t in self.none], self.near, self.about, self.suggest]
        return hashlib.sha256(json.dumps(definition, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:10]

    def groups(self) -> list[tuple[Term, ...]]:
        """The positive groups: `any` (if given) then each `all` group."""
        return ([self.any] if self.any else []) + list(self.all)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    path: str = "keywords.yaml"
    digest: str = ""
    mtime: str = ""  # the file's modification time (UTC, ISO 8601) when loaded

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


_RULE_KEYS = {"id", "title", "tags", "any", "all", "none", "near", "notes", "description", "about", "suggest"}
SUGGEST_MODES = ("store", "email", "off")
MAX_ABOUT = 2000
_TERM_KEYS = {"term", "regex", "case"}


def _parse_term(chk: _Checker, item: Any, line: int) -> Term | None:
    if isinstance(item, bool) or item is None:
        chk.add(line, f"a term must be a word or phrase, got {_show(item)}")
        return None
    if isinstance(item, (str, int, float)):
        return _validate_term(chk, Term(str(item), line=line))
    if isinstance(item, LineDict):
        chk.unknown_keys(item, _TERM_KEYS, "term")
        if ("term" in item) == ("regex" in item):
            chk.add(item.line, "a term mapping needs exactly one of 'term' or 'regex'")
            return None
        case = item.get("case", False)
        if not isinstance(case, bool):
            chk.add(item.line_of("case"), "case must be true or false")
            case = False
        kind = "regex" if "regex" in item else "term"
        value = item[kind]
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            chk.add(item.line_of(kind), f"{kind} must be a word, phrase or pattern, got {_show(value)}")
            return None
        if "regex" in item:
            return _validate_regex(chk, Term(str(item["regex"]), case=case, regex=True, line=item.line_of("regex")))
        return _validate_term(chk, Term(str(item["term"]), case=case, line=item.line_of("term")))
    chk.add(line, f"a term must be a string or a mapping, got a {type(item).__name__}")
    return None


def _validate_term(chk: _Checker, term: Term) -> Term | None:
    from .fold import term_words

    text = term.text.strip()
    if not text:
        chk.add(term.line, "empty term")
        return None
    if "*" in text.rstrip("*") or text.endswith("**"):
        chk.add(term.line, f"term {_show(text)}: '*' is only allowed once, at the end of the last word")
        return None
    if not term_words(text.rstrip("*")):
        chk.add(term.line, f"term {_show(text)} has no letters or digits to match")
        return None
    if text.endswith("*") and len(term_words(text.rstrip("*"))[-1]) < 3:
        chk.add(term.line, f"term {_show(text)}: a wildcard needs at least 3 letters before '*' (it would match almost anything)")
        return None
    return Term(text, term.case, False, term.line)


MAX_REGEX_LEN = 1000
MAX_TITLE_LEN = 500


def _validate_regex(chk: _Checker, term: Term) -> Term | None:
    import re2

    if not term.text:
        chk.add(term.line, "empty regex")
        return None
    if len(term.text) > MAX_REGEX_LEN:
        chk.add(term.line, f"regex longer than {MAX_REGEX_LEN} characters")
        return None
    try:
        opts = re2.Options()
        opts.max_mem = 8 << 20
        opts.log_errors = False  # RE2 would print its own copy of the error on stderr
        re2.compile(term.text, opts)
    except Exception as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        chk.add(term.line, f"invalid regex {_show(term.text)}: {detail} (regexes use RE2 syntax: no backreferences or lookaround)")
        return None
    return term


def _parse_terms(chk: _Checker, raw: Any, line: int, what: str) -> tuple[Term, ...]:
    if isinstance(raw, (str, int, float, LineDict)) and not isinstance(raw, bool):
        raw_list = LineList([raw])
        raw_list.line, raw_list.item_lines = line, [line]
        raw = raw_list
    if not isinstance(raw, LineList):
        chk.add(line, f"{what} must be a list of terms")
        return ()
    if not raw:
        chk.add(line, f"{what} is an empty list: give at least one term")
        return ()
    terms = [_parse_term(chk, item, raw.line_of(i)) for i, item in enumerate(raw)]
    return tuple(t for t in terms if t is not None)


def _parse_all(chk: _Checker, raw: Any, line: int) -> tuple[tuple[Term, ...], ...]:
    if not isinstance(raw, LineList) or not raw:
        chk.add(line, "all must be a non-empty list of groups ({any: [...]}) or terms")
        return ()
    groups = []
    for i, item in enumerate(raw):
        item_line = raw.line_of(i)
        if isinstance(item, LineDict) and "any" in item:
            chk.unknown_keys(item, {"any"}, "all-group")
            group = _parse_terms(chk, item["any"], item.line_of("any"), "any")
        else:
            group = _parse_terms(chk, item, item_line, "all item")  # a single term, or a list of terms
        if group:
            groups.append(group)
    return tuple(groups)


def parse_rules(data: Any, file: str) -> tuple[RuleSet | None, list[ConfigIssue]]:
    chk = _Checker(file)
    if not isinstance(data, LineDict) or not isinstance(data.get("rules"), LineList):
        chk.add(getattr(data, "line", 1), "top level must be a mapping with a 'rules' list")
        return None, chk.issues
    chk.unknown_keys(data, {"rules"}, "keywords file")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    raw_rules = data["rules"]
    for i, raw in enumerate(raw_rules):
        line = raw_rules.line_of(i)
        if not isinstance(raw, LineDict):
            chk.add(line, "each rule must be a mapping with an id")
            continue
        before = len(chk.issues)
        chk.unknown_keys(raw, _RULE_KEYS, "rule")
        rid = _entry_id(chk, raw, seen, "rule")
        if rid is None:
            continue
        any_terms = _parse_terms(chk, raw["any"], raw.line_of("any"), "any") if "any" in raw else ()
        all_groups = _parse_all(chk, raw["all"], raw.line_of("all")) if "all" in raw else ()
        none_terms = _parse_terms(chk, raw["none"], raw.line_of("none"), "none") if "none" in raw else ()
        if "any" not in raw and "all" not in raw:
            chk.add(raw.line, f"rule {rid!r} needs 'any' or 'all' terms")
        near = raw.get("near")
        if near is not None:
            if not isinstance(near, int) or isinstance(near, bool) or near < 1:
                chk.add(raw.line_of("near"), "near must be a positive number of words")
                near = None
            elif "all" not in raw or len(([any_terms] if any_terms else []) + list(all_groups)) < 2:
                chk.add(raw.line_of("near"), f"rule {rid!r}: near needs 'all' with at least two groups in total (any + all groups)")
                near = None
        tags = raw.get("tags", [])
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            chk.add(raw.line_of("tags"), "tags must be a list of words")
            tags = []
        title = raw.get("title", rid)
        if isinstance(title, (int, float)) and not isinstance(title, bool):
            title = str(title)
        if not isinstance(title, str) or len(title) > MAX_TITLE_LEN:
            chk.add(raw.line_of("title"), f"title must be text of at most {MAX_TITLE_LEN} characters, got {_show(title)}")
        about = raw.get("about", "")
        if not isinstance(about, str) or ("about" in raw and not about.strip()) or len(about) > MAX_ABOUT:
            chk.add(raw.line_of("about"), f"rule {rid!r}: about must be a paragraph of text (1 to {MAX_ABOUT} characters) "
                                          "saying what the rule is about")
            about = ""
        suggest = raw.get("suggest", "store")
        if not isinstance(suggest, str) or suggest not in SUGGEST_MODES:
            chk.add(raw.line_of("suggest"), f"rule {rid!r}: suggest must be one of {', '.join(SUGGEST_MODES)} "
                                            "(store: shown by `hits --suggested`, email: also sent to subscribers)")
            suggest = "store"
        if len(chk.issues) == before:
            rules.append(Rule(rid, title, tuple(tags), any_terms, all_groups, none_terms, near, line,
                              " ".join(about.split()), suggest))
    return RuleSet(tuple(rules), file), chk.issues


def load_rules(path: str | os.PathLike, text: str | None = None, mtime: float | None = None) -> RuleSet:
    """Load keywords.yaml (or ``text`` named ``path``, last modified at ``mtime``, a POSIX time);
    raise ConfigError listing every problem."""
    data, issues = load_yaml(path, text)
    rules = None
    if data is not None:
        rules, more = parse_rules(data, str(path))
        issues += more
    if issues or rules is None:
        raise ConfigError(issues or [ConfigIssue(str(path), 0, "empty file")])
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes() if text is None else text.encode()).hexdigest()[:16]
    stamp = os.stat(path).st_mtime if mtime is None else mtime
    return RuleSet(rules.rules, str(path), digest,
                   dt.datetime.fromtimestamp(stamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
