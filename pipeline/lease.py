"""Who holds the scheduler lease (one `run` per database), and whether that owner is still alive.

The lease row records the owner's host, pid and process start time. A new `run` on the
same host takes over at once when that process is gone (or the pid now belongs to another
process); on another host it waits for the heartbeat to grow old (``TTL``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket

TTL = 120.0  # a heartbeat older than this is stale
RENEW = 30.0


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def new_owner() -> str:
    """This process as a lease owner (a JSON string stored in the lease row)."""
    pid = os.getpid()
    return json.dumps({"host": socket.gethostname(), "pid": pid, "proc_start": _process_start(pid),
                       "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "token": secrets.token_hex(4)}, sort_keys=True)


def describe(owner: str) -> dict:
    try:
        data = json.loads(owner)
        return data if isinstance(data, dict) else {"owner": owner}
    except ValueError:  # a lease written by an older version: "host:pid:token"
        return {"owner": owner}


def owner_gone(owner: str) -> bool:
    """True when the owner ran on this host and its process no longer exists."""
    info = describe(owner)
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False  # another host (or an unknown format): only the heartbeat can tell
    pid = info["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        pass
    started = info.get("proc_start")
    now_started = _process_start(pid)
    return bool(started and now_started and started != now_started)  # the pid was reused


def state(owner: str, heartbeat: dt.datetime, now: dt.datetime | None = None) -> str:
    """'running', or 'stale' (its process is gone, or no heartbeat for longer than TTL)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if owner_gone(owner) or heartbeat + dt.timedelta(seconds=TTL) < now:
        return "stale"
    return "running"


def label(owner: str) -> str:
    info = describe(owner)
    if "pid" in info:
        return f"{info.get('host')} pid {info['pid']}, started {info.get('started')}"
    return info.get("owner", owner)
