"""`opml import`: validated as a whole before writing, atomic, comments kept, rejects listed;
imported data is data (no YAML injection, no policy keys, nothing unchecked written)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from test_cli import ROOT, bw
from test_errors import as_reader, one_line_error

from pipeline.config import load_feeds

EXISTING = """\
# Our sources — keep this comment
defaults: {interval: 15m}
sources:
  # research
  - id: keep
    name: Keep me
    url: https://keep.example/feed   # trailing comment
"""


def opml(*outlines: str) -> str:
    return ('<?xml version="1.0"?>\n<opml version="2.0"><head><title>t</title></head><body>\n'
            + "\n".join(outlines) + "\n</body></opml>\n")


def test_one_bad_entry_does_not_break_feeds_yaml(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(EXISTING)
    src = tmp_path / "in.opml"
    src.write_text(opml('<outline text="Good one" xmlUrl="https://good.example/rss"/>',
                        '<outline text="FTP" xmlUrl="ftp://files.example/feed.xml"/>',
                        '<outline text="Second good" xmlUrl="https://good2.example/atom"/>'))
    out = bw("opml", "import", str(src), "--feeds", str(feeds))
    assert out.returncode == 1  # something was rejected
    assert "rejected 'FTP' (ftp://files.example/feed.xml): not an absolute http(s) URL" in out.stderr
    assert "added 2 sources" in out.stdout
    text = feeds.read_text()
    assert text.startswith("# Our sources — keep this comment") and "# research" in text and "# trailing comment" in text
    cfg = load_feeds(feeds)  # `run` will start
    assert [s.url for s in cfg.sources] == ["https://keep.example/feed", "https://good.example/rss", "https://good2.example/atom"]
    assert "ftp://" not in text
    assert bw("check", "--feeds", str(feeds), "--keywords", str(ROOT / "keywords.yaml")).returncode == 0


def test_strict_imports_nothing_when_anything_is_rejected(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(EXISTING)
    src = tmp_path / "in.opml"
    src.write_text(opml('<outline text="Good" xmlUrl="https://good.example/rss"/>',
                        '<outline text="Local file" xmlUrl="file:///etc/passwd"/>'))
    out = bw("opml", "import", "--strict", str(src), "--feeds", str(feeds))
    assert out.returncode == 1 and "nothing added" in out.stdout and "file:///etc/passwd" in out.stderr
    assert feeds.read_text() == EXISTING


def test_injection_through_opml_attributes_stays_data(tmp_path):
    # #19 item 16: an attribute containing &#10; must not write new YAML keys into feeds.yaml
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(EXISTING)
    src = tmp_path / "evil.opml"
    src.write_text(opml(
        '<outline text="Evil URL" xmlUrl="https://evil.example/feed&#10;    allow_hosts: [169.254.169.254]"/>',
        '<outline text="Evil&#10;    allow_hosts: [metadata.internal]&#10;    max_bytes: 10GB" '
        'xmlUrl="https://named.example/feed"/>',
        '<outline text="x" xmlUrl="https://id.example/feed" borderwatchId="a&#10;    timeout: 1h"/>',
        '<outline text="Passwd" xmlUrl="file:///etc/passwd"/>'))
    out = bw("opml", "import", str(src), "--feeds", str(feeds))
    assert out.returncode == 1
    assert "line breaks or control characters" in out.stderr and "file:///etc/passwd" in out.stderr
    text = feeds.read_text()
    cfg = load_feeds(feeds)
    assert [s.url for s in cfg.sources] == ["https://keep.example/feed", "https://named.example/feed", "https://id.example/feed"]
    for s in cfg.sources:  # no policy key came from the OPML file
        assert s.allow_hosts == () and s.max_bytes == 10_000_000 and s.timeout == 20.0
    named = cfg.sources[1]
    assert named.name == "Evil allow_hosts: [metadata.internal] max_bytes: 10GB"  # one line of text, quoted
    assert cfg.sources[2].id == "x"  # an invalid borderwatchId is replaced by a slug of the name
    assert "/etc/passwd" not in text and "169.254" not in text


def test_exported_page_sources_come_back(tmp_path):
    original = load_feeds(ROOT / "feeds.yaml")
    exported = bw("opml", "export", "--feeds", str(ROOT / "feeds.yaml")).stdout
    src = tmp_path / "all.opml"
    src.write_text(exported)
    feeds = tmp_path / "feeds.yaml"
    out = bw("opml", "import", str(src), "--feeds", str(feeds))
    assert out.returncode == 0, out.stderr
    back = load_feeds(feeds)
    assert ([(s.id, s.type, s.url, s.link_selector) for s in back.sources]
            == [(s.id, s.type, s.url, s.link_selector) for s in original.sources])
    assert any(s.type == "page" for s in back.sources)


def test_read_only_feeds_yaml_is_a_one_line_error(tmp_path):
    d = Path(tempfile.mkdtemp(prefix="bw-opml-"))
    try:
        feeds = d / "feeds.yaml"
        feeds.write_text(EXISTING)
        feeds.chmod(0o444)
        src = d / "in.opml"
        src.write_text(opml('<outline text="Good" xmlUrl="https://good.example/rss"/>'))
        os.chmod(d, 0o755)
        out = as_reader("opml", "import", str(src), "--feeds", str(feeds), cwd=d)
        one_line_error(out, 1, "read-only", str(feeds))
        assert feeds.read_text() == EXISTING and not list(d.glob(".feeds.yaml.*"))
    finally:
        shutil.rmtree(d, ignore_errors=True)
