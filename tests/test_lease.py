"""The scheduler lease: a crashed `run` does not lock the operator out."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from conftest import wait_until
from test_cli import ROOT, bw

from pipeline import lease, schedule, store


def _holder_pid(db) -> int | None:
    holder = store.lease_holder(db)
    return lease.describe(holder[0]).get("pid") if holder else None


def test_kill_9_of_run_then_a_new_run_takes_over_at_once(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: http://127.0.0.1:9/feed\n    interval: 1h\n")
    common = ["--feeds", str(feeds), "--keywords", str(ROOT / "keywords.yaml"), "--db", str(tmp_path / "k.db")]
    cmd = [sys.executable, "-m", "pipeline", "run", "--no-digests", *common]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = None
    try:
        db = store.connect(tmp_path / "k.db")
        assert wait_until(lambda: _holder_pid(db) == first.pid, timeout=60)
        info = lease.describe(store.lease_holder(db)[0])
        assert info["host"] and info["started"] and info["pid"] == first.pid
        first.kill()  # SIGKILL: no cleanup, the lease row stays
        first.wait(30)
        assert store.lease_holder(db) is not None
        status = bw("status", *common[:2], *common[4:], cwd=tmp_path, env={"COLUMNS": "200"})
        assert "scheduler: stale" in status.stdout and "process is gone" in status.stdout, status.stdout
        second = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # wait for the event (the new owner in the lease row, or the new run giving up), bounded
        # well under the 120 s heartbeat expiry the old code made operators wait for
        assert wait_until(lambda: _holder_pid(db) == second.pid or second.poll() is not None, timeout=60)
        assert second.poll() is None, second.stderr.read()
        status = bw("status", *common[:2], *common[4:], cwd=tmp_path, env={"COLUMNS": "200"})
        assert "scheduler: running (" in status.stdout and f"pid {second.pid}" in status.stdout
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(40)


def test_status_says_stale_when_the_heartbeat_is_old(tmp_path):
    db_path = tmp_path / "s.db"
    db = store.connect(db_path)
    owner = json.dumps({"host": "another-host.invalid", "pid": 4242, "started": "2026-11-20T08:00:00Z", "token": "x"})
    store.acquire_lease(db, owner, lease.TTL, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("sources:\n  - id: a\n    url: http://127.0.0.1:9/feed\n")
    out = bw("status", "--db", str(db_path), "--feeds", str(feeds), env={"COLUMNS": "200"})
    assert "scheduler: stale (another-host.invalid pid 4242" in out.stdout and "no heartbeat since" in out.stdout
    assert bw("status", "--check", "--db", str(db_path), "--feeds", str(feeds)).returncode == 1
    # a live owner elsewhere with a fresh heartbeat is respected
    store.acquire_lease(db, owner, lease.TTL, now=dt.datetime.now(dt.timezone.utc))
    assert store.acquire_lease(db, lease.new_owner(), lease.TTL, gone=lease.owner_gone) == owner


def test_shutdown_drain_fits_dockers_default_stop_grace():
    docker_default_grace = 10.0  # `docker stop` sends SIGKILL 10 s after SIGTERM unless told otherwise
    assert schedule.SHUTDOWN_DEADLINE + schedule.CANCEL_WAIT < docker_default_grace
