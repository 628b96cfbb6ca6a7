"""The borderwatch command line: parse options, call one library function, print."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import click

from . import __version__
from .app import Borderwatch
from .errors import BorderwatchError, ConfigError, InvalidArgument
from .models import WEEKDAYS
from .settings import Settings

EXIT_RUNTIME, EXIT_CONFIG = 1, 2


def face(*, feeds: bool = True, keywords: bool = True, db: bool = True):
    """Add --feeds/--keywords/--db (defaults from Settings.from_env()) and pass the command an open
    Borderwatch as its first argument, closed when the command ends (reader's pass_reader)."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, feeds_path=None, keywords_path=None, db_path=None, **kwargs):
            settings = Settings.from_env(feeds=feeds_path, keywords=keywords_path, db=db_path)
            with Borderwatch(settings) as bw:
                return fn(bw, *args, **kwargs)

        if db:
            inner = click.option("--db", "db_path", metavar="PATH|URL",
                                 help="SQLite database file, or postgresql://USER@HOST/DB for the cluster set-up "
                                      "(env BORDERWATCH_DB; default borderwatch.db).")(inner)
        if keywords:
            inner = click.option("--keywords", "keywords_path", metavar="PATH",
                                 help="Rule file (env BORDERWATCH_KEYWORDS; default keywords.yaml).")(inner)
        if feeds:
            inner = click.option("--feeds", "feeds_path", metavar="PATH",
                                 help="Source list (env BORDERWATCH_FEEDS; default feeds.yaml).")(inner)
        return inner

    return wrap


# C0 and C1 controls (ESC sequences, OSC titles, BEL, CSI), DEL, and bidi overrides/isolates
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value, lines: bool = False) -> str:
    """Text from feeds, servers or the database made safe to print for people (terminal, CSV):
    control characters become U+FFFD, and line breaks and tabs a space (kept with ``lines``).
    One character for one, so highlight offsets stay right."""
    if value is None:
        return ""
    text = str(value)
    pattern = _CONTROLS_BUT_LINES if lines else _CONTROLS
    return pattern.sub(lambda m: " " if m.group() in "\t\n\r\x0b\x0c" else "\ufffd", text)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def setup_logging(level: str, fmt: str) -> None:
    from .logs import configure

    configure(level, fmt)


class Main(click.Group):
    """The command group, and the one place errors become messages and exit codes: a
    BorderwatchError is one line on stderr (ConfigError: one FILE:LINE line per problem) and its
    exit_code (2 for configuration and usage, 1 otherwise); never a traceback for what is not a bug."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for issue in exc.issues:
                click.echo(str(issue), err=True)
            sys.exit(EXIT_CONFIG)
        except InvalidArgument as exc:
            hint = exc.param if not exc.param or exc.param.isupper() else f"--{exc.param.replace('_', '-')}"
            raise click.BadParameter(str(exc), param_hint=hint) from None
        except BorderwatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except sqlite3.Error as exc:
            click.echo(f"error: database: {exc}; check --db and that no other process holds it", err=True)
            sys.exit(EXIT_RUNTIME)
        except Exception as exc:
            if not type(exc).__module__.startswith("psycopg"):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # PostgreSQL (the cluster set-up)
            click.echo(f"error: database: {first}; check --db and that the PostgreSQL server is reachable", err=True)
            sys.exit(EXIT_RUNTIME)
        except OSError as exc:
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            click.echo(f"error:{where}: {exc.strerror or exc}; check the path and its permissions", err=True)
            sys.exit(EXIT_RUNTIME)


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="borderwatch")
def main() -> None:
    """borderwatch: watch news sources on US-Mexico security and migration, match keyword
    rules, store hits in SQLite, and email digests.

    Start with `borderwatch demo` (offline), then `borderwatch run --once`.
    """


# --------------------------------------------------------------------------- run


@main.command()
@face()
@click.option("--once", is_flag=True, help="Poll every source once, send due digests, print a summary, exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the summary as JSON.")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port (needs the metrics extra).")
@click.option("--no-digests", is_flag=True, help="Do not send digests (poll only).")
def run(bw: Borderwatch, once: bool, as_json: bool, log_format: str, log_level: str, metrics_port: int | None,
        no_digests: bool) -> None:
    """Poll sources on their schedules and send digests, until SIGINT/SIGTERM.

    With --once: one full cycle (poll all enabled sources, match, store, send the
    digests that are due) and a summary, then exit; status 1 if every source failed
    or a digest could not be delivered.
    """
    setup_logging(log_level, log_format)
    if not once:
        stuck = bw.run_forever(metrics_port=metrics_port, send_digests=not no_digests)
        if stuck:  # e.g. an extraction that cannot be interrupted: its poll was never written, the next run redoes it
            import logging

            logging.getLogger("borderwatch").warning("exiting without waiting for %d busy worker thread(s); "
                                                     "their polls were not stored and are redone next time", stuck)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return
    summary = bw.poll_once(send_digests=not no_digests, progress=sys.stderr.isatty() and not as_json)
    if as_json:
        echo_json(summary)
    else:
        _print_summary(summary)
    d = summary.get("digests") or {}
    sys.exit(EXIT_RUNTIME if (summary["sources"] and summary["ok"] == 0) or d.get("retry") or d.get("failed")
             or d.get("unknown") else 0)


def _print_summary(s: dict) -> None:
    click.echo(f"sources: {s['ok']} ok ({s['not_modified']} unchanged), {s['failed']} failed of {s['sources']}; "
               f"new articles: {s['new_articles']}; new hits: {s['new_hits']}; {s['seconds']}s")
    for f in s.get("failures", []):
        click.echo(printable(f"  failed {f['source']}: {f['error']}"))
    for h in s.get("health", []):
        click.echo(printable(f"  source health: {h['source']} {'recovered' if h['event'] == 'recovered' else h['event']}"
                             + (f" ({h['detail']})" if h["detail"] else "")))
    d = s.get("digests")
    if d:
        click.echo(f"digests: {d['created']} new, {d['sent']} sent, {d['retry']} to retry, {d['failed']} failed"
                   + (f"; files: {', '.join(d['files'])}" if d["files"] else ""))
        for e in d.get("errors", []):
            click.echo(f"  delivery failed: {e}", err=True)


# --------------------------------------------------------------------------- check


@main.command()
@face(db=False)
def check(bw: Borderwatch) -> None:
    """Validate feeds.yaml and keywords.yaml; print every problem as FILE:LINE: message.

    Exit status 2 if any problem was found.
    """
    report = bw.check()
    for p in report.problems:
        click.echo(str(p), err=True)
    if report.problems:
        n = len(report.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        sys.exit(EXIT_CONFIG)
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    click.echo(f"ok: {bw.settings.feeds} ({n(report.sources, 'source')}), {bw.settings.keywords} ({n(report.rules, 'rule')})")


# --------------------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Try rules on text, URLs or files, and backtest edits against stored articles."""


@rules.command("test")
@face(feeds=False)
@click.option("--text", help="Text to match (the first line is taken as the title).")
@click.option("--url", help="Fetch this article page and match its title and main text.")
@click.option("--article", "article_url", help="A stored article (by its URL) from the database.")
@click.option("--explain", is_flag=True, help="For every rule, say why it matched or why not (missing group, "
              "exclusion, distance for near, nearest term).")
@click.option("--json", "as_json", is_flag=True, help='Print {"matches": [{"rule", "terms", "snippets"}]} '
              '(with --explain also "explain": [{"rule", "matched", "reason", "groups", "nearest", ...}]).')
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def rules_test(bw: Borderwatch, text: str | None, url: str | None, article_url: str | None, explain: bool,
               as_json: bool, files: tuple[str, ...]) -> None:
    """Show which rules match a text, a URL, a stored article or files, with the terms and
    highlighted snippets; with --explain, why each rule matched or did not."""
    bw.matcher  # report a broken keywords.yaml before fetching anything
    docs: list[tuple[str, str, str]] = []
    if text is not None:
        title, _, body = text.partition("\n")
        docs.append(("--text", title, body))
    if url:
        title, body = bw.extract(url)
        docs.append((url, title, body))
    if article_url:
        stored = bw.article(article_url)
        docs.append((stored["url"], stored["title"] or "", stored["text"] or ""))
    for f in files:
        title, _, body = Path(f).read_text(encoding="utf-8", errors="replace").partition("\n")
        docs.append((f, title, body))
    if not docs:
        if sys.stdin.isatty():
            raise click.UsageError("give --text, --url, --article or FILE (or pipe text on stdin)")
        title, _, body = sys.stdin.read().partition("\n")
        docs.append(("stdin", title, body))
    matches = [(name, hit) for name, title, body in docs for hit in bw.match(title, body)]
    explained = [(name, e) for name, title, body in docs for e in bw.explain(title, body)] if explain else []
    if as_json:
        out = {"matches": [{"rule": h.rule, "terms": h.terms, "snippets": [h.highlighted]} for _, h in matches]}
        if explain:
            out["explain"] = [{**e.as_dict(), **({"input": name} if len(docs) > 1 else {})} for name, e in explained]
        echo_json(out)
        return
    if explain:
        for name, e in explained:
            label = f" [{name}]" if len(docs) > 1 else ""
            click.echo(click.style(e.rule, bold=True) + label + ": " + ("MATCH" if e.matched else "no match")
                       + " — " + e.reason)
            if e.snippet:
                click.echo("    " + e.snippet)
        return
    if not matches:
        click.echo("no rule matches")
        return
    for name, hit in matches:
        label = f" [{name}]" if len(docs) > 1 else ""
        click.echo(click.style(hit.rule, bold=True) + printable(label + ": " + ", ".join(hit.terms)))
        click.echo("    " + printable(hit.highlighted))


@rules.command("backtest")
@face(feeds=False)
@click.option("--since", help="Only articles published since WHEN (24h, 7d, or an ISO date).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--apply", is_flag=True, help="Store the added hits, marked as backfilled (never emailed).")
@click.option("--show", default=10, show_default=True, help="How many added/removed examples to list per rule.")
def rules_backtest(bw: Borderwatch, since: str | None, as_json: bool, apply: bool, show: int) -> None:
    """Run the (edited) rules over stored articles; show what would be added and removed."""
    result = bw.backtest(since=since, apply=apply)
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"{result.articles} articles checked: {len(result.added)} hits would be added, "
               f"{len(result.removed)} removed, {result.kept} unchanged")
    for rule, c in result.per_rule().items():
        click.echo(f"  {rule}: +{c['added']} -{c['removed']}")
        for a, h in [x for x in result.added if x[1].rule == rule][:show]:
            click.echo(printable(f"    + {result.title(a)[:90]}  ({', '.join(h.terms)})"))
        for a, _ in [x for x in result.removed if x[1] == rule][:show]:
            click.echo(printable(f"    - {result.title(a)[:90]}"))
    if apply:
        click.echo(f"stored {result.applied} backfilled hits (they will not be emailed)")


# --------------------------------------------------------------------------- hits


@main.command()
@face(feeds=False)
@click.option("--rule", "rule_ids", multiple=True, help="Only hits of this rule (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only hits of rules with this tag (repeatable).")
@click.option("--source", help="Only articles from this source id.")
@click.option("--since", help="Published since WHEN: 24h, 7d or an ISO date.")
@click.option("--until", help="Published before WHEN.")
@click.option("--search", help="Full-text query over titles and texts (SQLite FTS5 syntax).")
@click.option("--language", help="Only articles in this language (ISO 639-1 code: en, es, ...).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--suggested", is_flag=True,
              help="Show the semantic layer's suggestions (likely keyword misses, never emailed unless the rule "
                   "says `suggest: email`) instead of the rules' hits.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per line; "rule_versions" gives the version of each rule that made the hit.')
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
def hits(bw: Borderwatch, rule_ids, tags, source, since, until, search, language, limit, suggested, as_json, as_csv) -> None:
    """Query stored hits, newest first."""
    rows = bw.hits(rules=list(rule_ids) or None, tags=list(tags) or None, source=source, since=since, until=until,
                   search=search, limit=limit, suggested=suggested, language=language)
    if as_json:
        for row in rows:
            echo_json(row.as_dict())
    elif as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(["published", "source", "rules", "title", "url", "story", "snippet"])
        for r in rows:
            w.writerow([printable(v) for v in (r.published, r.source, " ".join(r.rules), r.title, r.url, r.story,
                                                r.snippet.marked())])
    else:
        _hits_table(rows)


def _hits_table(rows: list) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=shutil.get_terminal_size((120, 24)).columns)
    if not rows:
        console.print("no hits")
        return
    table = Table(show_lines=False, expand=True)
    for col, kwargs in (("published (UTC)", {"no_wrap": True, "max_width": 16}), ("source", {"max_width": 18}),
                        ("rules", {"max_width": 18}), ("title and URL", {"ratio": 2}), ("snippet", {"ratio": 3})):
        table.add_column(col, overflow="ellipsis" if col != "title and URL" else "fold", **kwargs)
    for r in rows:
        snippet = Text.assemble(*((printable(piece), "bold yellow") if marked else printable(piece)
                                  for piece, marked in r.snippet.spans()))
        title = Text(printable(r.title))
        title.append("\n" + printable(r.url), style="dim")
        table.add_row(Text(printable(r.published)[:16].replace("T", " ")), Text(printable(r.source)),
                      Text(printable(", ".join(r.rules))), title, snippet)
    console.print(table)


# --------------------------------------------------------------------------- extract


@main.command()
@face(feeds=False, keywords=False, db=False)
@click.argument("inputs", nargs=-1, required=True, metavar="FILE_OR_URL...")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per input per line: {"input", "url", "title", "text", "published", "author", '
                   '"language", "error"}.')
@click.option("--base-url", help="The address the FILEs were saved from (resolves their relative links).")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(0.1), help="Seconds per URL.")
def extract(bw: Borderwatch, inputs: tuple[str, ...], as_json: bool, base_url: str | None, timeout: float) -> None:
    """Show the article text borderwatch would store for each page: its title, main text, published
    date, author and language. FILE is a saved HTML page (- for stdin); a URL is fetched like a
    poll would (robots.txt, size cap, timeouts). Exit status 1 if any input failed."""
    stdin = sys.stdin.buffer.read() if "-" in inputs else None
    records = bw.extract_pages(list(inputs), base_url, timeout, stdin)
    for rec in records:
        if rec["error"]:
            click.echo(f"error: {rec['input']}: {rec['error']}", err=True)
        if as_json:
            echo_json(rec)
        elif rec["text"] is not None:
            if len(records) > 1:
                click.echo(click.style(f"== {rec['input']}", bold=True))
            click.echo(click.style(rec["title"] or "(no title)", bold=True))
            facts = [f"{k}: {rec[k]}" for k in ("url", "published", "author", "language") if rec[k]]
            if facts:
                click.echo("  ".join(facts))
            click.echo()
            click.echo(rec["text"])
            click.echo()
    if any(rec["error"] for rec in records):
        sys.exit(EXIT_RUNTIME)


# --------------------------------------------------------------------------- status


@main.command()
@face(keywords=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sources.")
@click.option("--check", "health", is_flag=True,
              help="Health check: exit 1 if the scheduler is not running or most sources are failing.")
@click.option("--deliveries", is_flag=True,
              help="Digests owed with an error, failed or of unknown outcome: last error and next attempt.")
def status(bw: Borderwatch, as_json: bool, health: bool, deliveries: bool) -> None:
    """Every source with its last poll, last success, failures, last error and next poll.

    Times are UTC. Digests that could not be delivered are listed after the sources
    (with --deliveries: only them; with --json: a JSON array of them).
    """
    report = bw.status()
    if deliveries:
        if as_json:
            echo_json([d.as_dict() for d in report.delivery_problems])
        else:
            _delivery_lines(report)
        return
    if report.feeds_error and not as_json:
        click.echo(f"warning: {bw.settings.feeds} is invalid; showing stored sources\n{report.feeds_error}", err=True)
    if health:
        for p in report.problems:
            click.echo(f"unhealthy: {p}", err=True)
        if report.healthy:
            click.echo("healthy")
        sys.exit(0 if report.healthy else EXIT_RUNTIME)
    if as_json:
        echo_json([s.as_dict() for s in report.sources])
        return
    _status_table(report)


def _status_table(report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=shutil.get_terminal_size((140, 24)).columns)
    wide = console.width >= 120  # narrower: errors go under the table, wrapped, instead of a squeezed column
    table = Table(expand=True, caption="times in UTC", caption_justify="left")
    columns = ["id", "last poll", "last success", "fails", "items", "backlog", "next poll"] + (["health / last error"] if wide else [])
    for col in columns:
        table.add_column(col, overflow="fold" if col == "health / last error" else "ellipsis",
                         no_wrap=col != "health / last error")
    fmt = lambda v: (v or "-")[:16].replace("T", " ")  # noqa: E731
    notes = []
    for r in report.sources:
        style = "red" if r.consecutive_failures or r.problem in ("failing", "selector") else (
            "yellow" if r.problem == "silent" else None)
        note = r.last_error or ""
        if r.problem == "silent":
            note = f"silent since {fmt(r.silent_since)}"
        elif r.problem == "selector":
            note = "selector matched nothing" + (f"; {note}" if note else "")
        if not r.enabled:
            note, style = "disabled (`borderwatch sources enable " + r.id + "`)", "dim"
        note = printable(note)
        cells = [Text(printable(r.id)), fmt(r.last_poll), fmt(r.last_success), str(r.consecutive_failures), str(r.items_seen),
                 str(r.backlog) + (f" ({r.gave_up} given up)" if r.gave_up else ""), fmt(r.next_poll)]
        table.add_row(*cells, *([Text(note)] if wide else []), style=style)
        if note and not wide:
            notes.append((printable(r.id), note, style))
    console.print(table)
    for sid, note, style in notes:
        console.print(Text(f"{sid}: {note}", style=style or ""))
    console.print(f"{len(report.sources)} sources, {report.failing} failing; scheduler: {report.scheduler}", highlight=False)
    if report.config_errors:
        console.print(f"[red]configuration errors[/red] (seen by run at {report.config_errors[1]}; "
                      "the last valid version is in force):")
        console.print(Text(printable(report.config_errors[0], lines=True)))
    _delivery_lines(report)


def _delivery_lines(report) -> None:
    """Delivery counts, then each digest that is owed with an error, failed or unknown, with the reason."""
    if report.deliveries:
        click.echo("deliveries: " + ", ".join(f"{k} {v}" for k, v in sorted(report.deliveries.items())))
    for d in report.delivery_problems:
        when = (f"; next attempt {d.next_attempt.replace('T', ' ').rstrip('Z')} UTC"
                if d.status == "pending" and d.next_attempt else "")
        click.echo(printable(f"  {d.status} {d.subscriber} ({d.period}, {d.attempts} attempts): "
                             f"{d.last_error or 'no error recorded'}{when}"))
        if d.status == "unknown":
            click.echo(f"    the server may have it: check that mailbox, then `borderwatch digest resend {d.id}` "
                       "sends it again")


# --------------------------------------------------------------------------- subscribers


@main.group()
def subscribers() -> None:
    """Add, list and remove digest subscribers."""


def _subscription_options(update: bool):
    """--rules, --tags, --cadence, --hour, --weekday, --tz: defaults for add; for update, only what is given changes."""

    def default(value):
        return {} if update else {"default": value, "show_default": True}

    def wrap(fn):
        for opt in reversed([
            click.option("--rules", "rule_ids", help="Comma-separated rule ids to follow (default: all rules)."),
            click.option("--tags", help="Comma-separated rule tags to follow."),
            click.option("--cadence", type=click.Choice(["immediate", "hourly", "daily", "weekly"]), **default("daily")),
            click.option("--hour", type=click.IntRange(0, 23), help="Local hour for daily/weekly digests.", **default(7)),
            click.option("--weekday", type=click.Choice(WEEKDAYS), help="Day for weekly digests.", **default("mon")),
            click.option("--tz", help="Time zone for hours and dates, e.g. America/Mexico_City.", **default("UTC")),
        ]):
            fn = opt(fn)
        return fn

    return wrap


def _describe(email, rules_list, tag_list, cadence, hour, tz) -> str:
    what = ", ".join((rules_list or []) + [f"tag:{t}" for t in tag_list or []]) or "all rules"
    return f"{email}: {what}, {cadence}" + (f" at {hour:02d}:00 {tz}" if cadence in ("daily", "weekly") else "")


def _describe(sub) -> str:
    return f"{sub.email}: {sub.follows}, {sub.cadence}" + (f" at {sub.hour:02d}:00 {sub.tz}" if sub.cadence in ("daily", "weekly") else "")


@subscribers.command("add")
@face(feeds=False)
@click.argument("email")
@_subscription_options(update=False)
def subscribers_add(bw: Borderwatch, email, rule_ids, tags, cadence, hour, weekday, tz) -> None:
    """Subscribe EMAIL: an email address (one subscriber whatever its case), or an Apprise URL
    for a chat or webhook channel (slack://..., msteams://..., tgram://..., json://host/path;
    needs pip install 'borderwatch[notify]').

    An existing subscriber is refused: change it with `subscribers update`.
    The first digest goes out at the first scheduled slot after subscribing.
    """
    click.echo("subscribed " + _describe(bw.subscribe(email, rule_ids, tags, cadence, hour, weekday, tz)))


@subscribers.command("update")
@face(feeds=False)
@click.argument("email")
@_subscription_options(update=True)
def subscribers_update(bw: Borderwatch, email, rule_ids, tags, cadence, hour, weekday, tz) -> None:
    """Change an existing subscription: only the options given change (--rules '' follows all rules)."""
    click.echo("updated " + _describe(bw.update_subscriber(email, rule_ids, tags, cadence, hour, weekday, tz)))


@subscribers.command("list")
@face(feeds=False, keywords=False)
@click.option("--json", "as_json", is_flag=True)
def subscribers_list(bw: Borderwatch, as_json: bool) -> None:
    """List subscribers."""
    subs = bw.subscribers()
    if as_json:
        echo_json([s.as_dict() for s in subs])
        return
    if not subs:
        click.echo("no subscribers (add one with `borderwatch subscribers add EMAIL`)")
    for s in subs:
        click.echo(f"{s.email}\t{s.cadence}\t{s.follows}\t{s.tz}")


@subscribers.command("remove")
@face(feeds=False, keywords=False)
@click.argument("target")
def subscribers_remove(bw: Borderwatch, target: str) -> None:
    """Unsubscribe TARGET: an address (any case) or the unsubscribe token from a digest
    (its List-Unsubscribe header or footer). Its delivery history is removed too."""
    click.echo(f"removed {bw.unsubscribe(target)}")


# --------------------------------------------------------------------------- digest


@main.group()
def digest() -> None:
    """Preview and send digest emails."""


@digest.command("preview")
@face(feeds=False)
@click.option("--subscriber", "email", help="Whose digest (default: the first subscriber).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the HTML here instead of printing the text version.")
def digest_preview(bw: Borderwatch, email: str | None, out: str | None) -> None:
    """Render what the next digest would contain; sends and marks nothing."""
    if out and not Path(out).resolve().parent.is_dir():
        raise click.BadParameter(f"directory {Path(out).parent} does not exist; create it first", param_hint="--out")
    if not email and not bw.subscribers():
        click.echo("nothing to preview: there are no subscribers (add one with `borderwatch subscribers add`)", err=True)
        return
    result = bw.preview(email)
    if result is None:
        who = email.strip().lower() if email else "any subscriber"
        click.echo(f"nothing to preview: no new hits for {who} since their last digest (or since subscribing)", err=True)
        return
    if out:
        Path(out).write_text(result.html, encoding="utf-8")
        click.echo(f"wrote {out}: {result.subject}")
    else:
        click.echo(f"Subject: {result.subject}\n\n{result.text}")


@digest.command("send")
@face(feeds=False)
@click.option("--subscriber", "email", help="Only this subscriber.")
@click.option("--dry-run", is_flag=True, help="Show who is due and how many hits, send nothing.")
@click.option("--outbox", default="outbox", show_default=True, help="Directory for .eml files when SMTP_HOST is unset.")
@click.option("--json", "as_json", is_flag=True)
def digest_send(bw: Borderwatch, email: str | None, dry_run: bool, outbox: str, as_json: bool) -> None:
    """Send the digests that are due now (SMTP from the environment, else .eml files in ./outbox/)."""
    if dry_run:
        due = bw.due_digests(email)
        if as_json:
            echo_json(due)
        else:
            for d in due:
                click.echo(f"{d['subscriber']}: {d['period']}, {d['stories']} stories")
            click.echo(f"{len(due)} digest(s) due; nothing sent (dry run)")
        return
    report = bw.send_digests(email, outbox=outbox)
    if as_json:
        echo_json(report.as_dict())
    elif report.busy:
        click.echo(f"another process ({report.busy}) is delivering digests now; it sends what is due, "
                   "so this one sent nothing")
    else:
        click.echo(f"digests: {report.created} new, {report.sent} sent, {report.retry} to retry, "
                   f"{report.failed} failed, {report.unknown} unknown")
        for e in report.errors:
            click.echo(printable(f"  {e}"), err=True)
        for f in report.files:
            click.echo(f"  wrote {f}")
    sys.exit(EXIT_RUNTIME if report.retry or report.failed else 0)


@digest.command("resend")
@face(feeds=False, keywords=False)
@click.argument("delivery_id", type=int)
@click.option("--outbox", default="outbox", show_default=True, help="Directory for .eml files when SMTP_HOST is unset.")
@click.option("--json", "as_json", is_flag=True)
def digest_resend(bw: Borderwatch, delivery_id: int, outbox: str, as_json: bool) -> None:
    """Send again the digest DELIVERY_ID whose outcome is unknown (the connection broke after the
    server had the whole message: check the recipient's mailbox first) or that failed.
    `borderwatch status` lists such deliveries with their ids."""
    report = bw.resend(delivery_id, outbox=outbox)
    if as_json:
        echo_json(report.as_dict())
    elif report.busy:
        click.echo(f"error: another process ({report.busy}) is delivering digests now; try again when it is done", err=True)
    elif report.sent:
        click.echo(f"delivery {delivery_id}: sent" + (f" ({report.files[0]})" if report.files else ""))
    else:
        click.echo(f"delivery {delivery_id}: not sent: {'; '.join(report.errors)}", err=True)
    sys.exit(0 if report.sent else EXIT_RUNTIME)


# --------------------------------------------------------------------------- serve


@main.command()
@face()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 to expose it).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
def serve(bw: Borderwatch, host: str, port: int) -> None:
    """The web surface (pip install 'borderwatch[serve]'): dashboard at /, Atom feeds at
    /rules/ID.atom and /tags/TAG.atom, unsubscribe links at /unsubscribe/TOKEN, /healthz, /metrics.

    Links in feeds and digests use BORDERWATCH_PUBLIC_URL (e.g. https://watch.example.org)
    when set. Reads never create the database; no page lists subscribers.
    """
    try:
        from .web.app import WebConfig, serve as run_server
    except ImportError as exc:
        click.echo(f"error: serve needs the serve extra ({exc.name} is missing): pip install 'borderwatch[serve]'", err=True)
        sys.exit(EXIT_RUNTIME)
    s = bw.settings
    if not s.db_is_url and not Path(s.db).exists():
        click.echo(f"note: no database at {s.db} yet; pages will say so until `borderwatch run` creates it", err=True)
    run_server(WebConfig(s.db, s.feeds, s.keywords, s.public_url), host, port)


# --------------------------------------------------------------------------- misc


@main.command()
@face(feeds=False, keywords=False)
@click.option("--older-than", default="365d", show_default=True, help="Delete articles fetched before this (e.g. 365d).")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def prune(bw: Borderwatch, older_than: str, dry_run: bool) -> None:
    """Delete old articles that have no hits (hits are never deleted), then VACUUM."""
    n, cutoff = bw.prune(older_than, dry_run=dry_run)
    if dry_run:
        click.echo(f"would delete {n} articles without hits fetched before {cutoff} (dry run: nothing deleted)")
    else:
        click.echo(f"deleted {n} articles without hits fetched before {cutoff}")


@main.command()
@face(feeds=False, keywords=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True)
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
def browse(bw: Borderwatch, host: str, port: int, no_open: bool) -> None:
    """Open the database in Datasette with canned queries (pip install 'borderwatch[browse]')."""
    cmd = bw.browse_command(host, port, open_browser=not no_open)
    bw.close()
    os.execvp(cmd[0], cmd)


@main.group()
def opml() -> None:
    """Import and export the feed list as OPML."""


@opml.command("export")
@face(keywords=False, db=False)
def opml_export(bw: Borderwatch) -> None:
    """Print feeds.yaml as OPML."""
    click.echo(bw.export_opml(), nl=False)


@opml.command("import")
@face(keywords=False, db=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--print", "print_only", is_flag=True, help="Print the YAML of the new sources instead of adding them.")
@click.option("--strict", is_flag=True, help="Import nothing if any entry is rejected.")
@click.option("--json", "as_json", is_flag=True, help='Print {"added": [...], "rejected": [...], "known": N}.')
def opml_import(bw: Borderwatch, file: str, print_only: bool, strict: bool, as_json: bool) -> None:
    """Add the feeds (and exported page sources) of an OPML FILE to feeds.yaml.

    Each entry is checked first; rejected entries are listed with the reason and the valid
    ones are added (with --strict: none if any is rejected). feeds.yaml keeps its comments,
    the whole result is validated before it is written, and the write is atomic.
    Exit status 1 if an entry was rejected.
    """
    from .opml import sources_yaml

    result, written = bw.import_opml(file, write=not print_only, strict=strict)
    for what, why in result.rejected:
        click.echo(f"rejected {what}: {why}", err=True)
    if print_only and result.new:
        click.echo(sources_yaml(result.new), nl=False)
    if as_json:
        echo_json({"added": [c.__dict__ for c in result.new] if written else [],
                   "rejected": [{"entry": w, "reason": r} for w, r in result.rejected], "known": result.known})
    elif not print_only:
        n = len(result.new)
        verdict = (f"added {n} source{'s' if n != 1 else ''} to {bw.settings.feeds}" if written
                   else "nothing added" + (" (--strict: some entries were rejected)" if strict and result.rejected and n else ""))
        click.echo(f"{verdict}; {len(result.rejected)} rejected, {result.known} already present")
    sys.exit(EXIT_RUNTIME if result.rejected else 0)


# --------------------------------------------------------------------------- sources


@main.group()
def sources() -> None:
    """Add, disable, enable and test sources; feeds.yaml is edited in place (comments kept,
    validated before writing, written atomically)."""


@sources.command("add")
@face(keywords=False, db=False)
@click.argument("url")
@click.option("--id", "source_id", help="Source id ([a-z0-9-]; default: from the site's name).")
@click.option("--name", help="Display name (default: the feed's or page's title).")
@click.option("--json", "as_json", is_flag=True, help="Print the added source as JSON.")
def sources_add(bw: Borderwatch, url: str, source_id: str | None, name: str | None, as_json: bool) -> None:
    """Add the site at URL: its feed (the URL itself, the page's <link rel="alternate">, or a common
    feed path such as /feed), or a page source with a guessed link_selector when it has no feed."""
    added = bw.add_source(url, source_id, name)
    if as_json:
        echo_json(added)
        return
    click.echo(f"added {added['id']} to {bw.settings.feeds}: {added['type']} {added['url']}"
               + (f" (link_selector {added['link_selector']!r})" if added["link_selector"] else ""))
    click.echo(f"  {added['how']}; {added['items']} items there now. Try it: borderwatch sources test {added['id']}")


@sources.command("disable")
@face(keywords=False, db=False)
@click.argument("source_id", metavar="ID")
def sources_disable(bw: Borderwatch, source_id: str) -> None:
    """Stop polling source ID (sets enabled: false; a running `run` picks it up within seconds)."""
    bw.set_source_enabled(source_id, False)
    click.echo(f"disabled {source_id} in {bw.settings.feeds} (kept with its history; `borderwatch sources enable` "
               "brings it back)")


@sources.command("enable")
@face(keywords=False, db=False)
@click.argument("source_id", metavar="ID")
def sources_enable(bw: Borderwatch, source_id: str) -> None:
    """Poll source ID again."""
    bw.set_source_enabled(source_id, True)
    click.echo(f"enabled {source_id} in {bw.settings.feeds}")


@sources.command("test")
@face()
@click.argument("target", metavar="ID|URL")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def sources_test(bw: Borderwatch, target: str, as_json: bool) -> None:
    """Poll a source (an ID from feeds.yaml, or a URL) once and show what would be new and what
    would match; stores nothing. Exit status 1 if the poll failed."""
    source, result = bw.test_source(target)
    new = [{"title": a.title, "url": a.url, "published": a.published,
            "matches": [{"rule": h.rule, "terms": h.terms} for h in a.hits]} for a in result.new]
    if as_json:
        echo_json({"source": source.id, "url": source.url, "type": source.type, "ok": result.ok, "error": result.error,
                   "items": result.items, "already_stored": result.already_stored, "new": new})
    elif not result.ok:
        click.echo(f"{source.id} ({source.url}): failed: {result.error}", err=True)
    else:
        matching = sum(1 for a in new if a["matches"])
        click.echo(f"{source.id} ({source.type} {source.url}): ok, {result.items} items, {len(new)} would be new "
                   f"({matching} matching a rule), {result.already_stored} already stored; nothing was stored")
        for a in new:
            click.echo(f"  new: {a['title'][:100]}  {a['url']}")
            for m in a["matches"]:
                click.echo(f"    matches {m['rule']}: {', '.join(m['terms'])}")
    sys.exit(0 if result.ok else EXIT_RUNTIME)


@main.command()
@click.option("--dir", "directory", default=".", show_default=True, help="Where to put demo.db and outbox/.")
@click.option("--keywords", "keywords_path", default=None,
              help="Rule file (env BORDERWATCH_KEYWORDS; default: ./keywords.yaml if present, else the bundled one).")
def demo(directory: str, keywords_path: str | None) -> None:
    """Offline tour: serve bundled sample feeds on 127.0.0.1, run one cycle into a fresh
    database, write the digest to ./outbox/, and say where to look."""
    from .demo import run_demo

    setup_logging("warning", "human")
    env_keywords = Settings.from_env().keywords
    run_demo(Path(directory), keywords_path or (env_keywords if env_keywords != Settings().keywords else None),
             echo=click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
