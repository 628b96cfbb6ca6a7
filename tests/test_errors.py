"""Bad input and unusable files give one line saying what is wrong and what to do, never a
traceback; read commands work on a database the user cannot write and never create one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import wait_until
from test_cli import ROOT, bw

from pipeline import store

KW = ["--keywords", str(ROOT / "keywords.yaml")]


def one_line_error(out: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error"), out.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("kind", ["missing-dir", "text", "random", "directory"])
def test_unusable_db_paths_are_one_line_errors(tmp_path, kind):
    target = {"missing-dir": tmp_path / "nope" / "x.db", "text": tmp_path / "notes.txt",
              "random": tmp_path / "noise.bin", "directory": tmp_path}[kind]
    if kind == "text":
        target.write_text("these are my notes\n")
    elif kind == "random":
        target.write_bytes(os.urandom(4096))
    word = {"missing-dir": "does not exist", "text": "not a borderwatch database",
            "random": "not a borderwatch database", "directory": "is a directory"}[kind]
    for cmd in (["hits"], ["status"], ["subscribers", "list"], ["subscribers", "add", "a@example.org", *KW],
                ["digest", "preview", *KW], ["run", "--once", "--feeds", str(ROOT / "feeds.yaml"), *KW]):
        out = bw(*cmd, "--db", str(target), cwd=tmp_path)
        one_line_error(out, 2, word if not (kind == "missing-dir" and cmd[0] in ("hits", "status", "digest")
                                            or kind == "missing-dir" and cmd[:2] == ["subscribers", "list"])
                       else "no database at")


def test_read_commands_never_create_a_database(tmp_path):
    out = bw("hits", "--db", str(tmp_path / "typo.db"), cwd=tmp_path)
    one_line_error(out, 2, "no database at", "--db")
    assert not (tmp_path / "typo.db").exists()


def test_digest_preview_into_a_missing_directory(tmp_path):
    assert bw("demo", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    out = bw("digest", "preview", "--out", str(tmp_path / "nope" / "p.html"), "--db", str(tmp_path / "demo.db"), *KW)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "does not exist" in out.stderr


# -- a database the user cannot write -------------------------------------------------------------


def _drop_file_override_capabilities() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from the
    bounding set, so root obeys file modes like any user (a real read-only file for root)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _reader():
    """subprocess arguments that run as a user who cannot write the files: root without the
    capabilities that bypass file modes, or ourselves when we are not root."""
    if os.geteuid() != 0:
        return {}
    return {"preexec_fn": _drop_file_override_capabilities}


@pytest.fixture
def readonly_demo():
    """A demo database in a directory, both read-only for the reader."""
    d = Path(tempfile.mkdtemp(prefix="bw-ro-"))
    try:
        assert bw("demo", "--dir", str(d), cwd=d).returncode == 0
        for extra in ("demo.db-wal", "demo.db-shm"):
            assert not (d / extra).exists()
        (d / "demo.db").chmod(0o444)
        d.chmod(0o555)
        yield d
    finally:
        d.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)


def as_reader(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "BORDERWATCH_"))}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "HOME": str(cwd)}, timeout=120, **_reader())


def test_read_commands_work_on_a_read_only_database(readonly_demo):
    d = readonly_demo
    db = ["--db", str(d / "demo.db")]
    hits = as_reader("hits", "--rule", "cartels", "--json", *db, cwd=d)
    assert hits.returncode == 0 and '"cartels"' in hits.stdout, hits.stderr
    for cmd in (["status"], ["status", "--json"], ["subscribers", "list"], ["digest", "preview", *KW],
                ["rules", "backtest", *KW], ["hits"]):
        out = as_reader(*cmd, *db, cwd=d)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (cmd, out.stderr)
    write = as_reader("subscribers", "add", "new@example.org", *KW, *db, cwd=d)
    one_line_error(write, 1, "read-only")
    assert stat.S_IMODE((d / "demo.db").stat().st_mode) == 0o444


# -- a second process while `run` holds the database ----------------------------------------------


def test_run_once_while_run_holds_the_database(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: http://127.0.0.1:9/feed\n    interval: 1h\n")
    args = ["--feeds", str(feeds), *KW, "--db", str(tmp_path / "one.db")]
    first = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--no-digests", *args], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        db = store.connect(tmp_path / "one.db")
        assert wait_until(lambda: store.lease_holder(db) is not None, timeout=30)
        out = bw("run", "--once", *args, cwd=tmp_path)
        one_line_error(out, 1, "another borderwatch run", "is using this database")
    finally:
        first.terminate()
        first.wait(40)
