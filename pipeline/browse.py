"""`borderwatch browse`: Datasette over the hit database, with titles, column notes and canned queries."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

CANNED = {
    "latest_hits": {
        "title": "Latest hits",
        "sql": "select a.published, a.source, h.rule, a.title, a.url, h.snippet from hits h join articles a on a.id = h.article"
               " order by a.published desc limit 200",
    },
    "hits_by_rule": {
        "title": "Hits for one rule",
        "sql": "select a.published, a.source, a.title, a.url, h.terms, h.snippet from hits h join articles a on a.id = h.article"
               " where h.rule = :rule order by a.published desc limit 500",
    },
    "search_articles": {
        "title": "Search articles (full text)",
        "sql": "select a.published, a.source, a.title, a.url, snippet(articles_fts, 1, '[', ']', '…', 20) as excerpt"
               " from articles_fts join articles a on a.id = articles_fts.rowid where articles_fts match :query"
               " order by rank limit 100",
    },
    "source_health": {
        "title": "Source health",
        "sql": "select id, name, last_poll, last_success, consecutive_failures, last_error, items_seen, next_poll"
               " from sources order by consecutive_failures desc, id",
    },
    "hits_per_rule_per_week": {
        "title": "Hits per rule per week",
        "sql": "select strftime('%Y-W%W', a.published) as week, h.rule, count(*) as hits from hits h"
               " join articles a on a.id = h.article group by week, h.rule order by week desc, hits desc",
    },
}

COLUMNS = {
    "articles": {"url": "Canonical URL (tracking parameters removed)", "fingerprint": "Hash of the folded text",
                 "story": "Syndicated copies of one text share a story id", "published": "UTC; fetch time if the source gave none"},
    "hits": {"rule": "Rule id from keywords.yaml", "terms": "Matched terms (JSON list)",
             "snippet": "Text around the first match", "marks": "Highlighted spans in the snippet",
             "backfilled": "1 if added by `rules backtest --apply` (never emailed)"},
    "sources": {"consecutive_failures": "Failures since the last success", "next_poll": "When the scheduler polls next (UTC)"},
    "deliveries": {"status": "pending, sending, committing, sent, failed or unknown (see README)"},
}


def metadata(db_name: str) -> dict:
    return {
        "title": "borderwatch",
        "description": "Articles, keyword hits and source health from borderwatch.",
        "databases": {db_name: {
            "queries": CANNED,
            "tables": {t: {"columns": cols} for t, cols in COLUMNS.items()},
        }},
    }


def serve_command(db_path: str, host: str, port: int, open_browser: bool = True) -> list[str]:
    if importlib.util.find_spec("datasette") is None:
        raise MissingExtra("Datasette is not installed: pip install 'borderwatch[browse]'")
    meta = Path(tempfile.mkdtemp(prefix="borderwatch-")) / "metadata.json"
    meta.write_text(json.dumps(metadata(Path(db_path).stem)), encoding="utf-8")
    exe = shutil.which("datasette")
    cmd = [exe] if exe else [sys.executable, "-m", "datasette"]
    cmd += ["serve", db_path, "--metadata", str(meta), "--host", host, "--port", str(port)]
    if open_browser:
        cmd.append("--open")
    return cmd
