"""Untrusted CPU work under limits: article extraction.

An article page is hostile input for an extractor: a page nested 100,000 elements deep makes a
tree-building extractor quadratic (8,000 levels took 10 s with BeautifulSoup). So extraction runs
in a worker process (``Sandbox``) under a deadline: a call that overruns gets an error, the
process is killed and replaced, and the cycle goes on. In the worker, ``nesting_depth`` first
refuses a page nested deeper than MAX_DEPTH (a linear scan that stops at the limit). Either way
the page fails alone; the cycle records it (see cycle.Poller._fetch_articles).
"""

from __future__ import annotations

import multiprocessing
import re
import threading

EXTRACT_DEADLINE = 10.0  # seconds for one article page (a normal page takes 10-30 ms)
MAX_DEPTH = 512  # element nesting; real pages stay under ~100, libxml2 itself stops at 256
WORKER_MEMORY = 2 << 30  # address-space limit of the worker process

_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
_RAW_TEXT = {b"script", b"style", b"textarea", b"title", b"xmp", b"noscript", b"template"}
_VOID = {b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta", b"param",
         b"source", b"track", b"wbr", b"keygen", b"frame", b"basefont", b"isindex"}
# elements whose end tag HTML lets authors omit: not counted (an unclosed <p> or <li> is not nesting)
_OPTIONAL_END = {b"p", b"li", b"dt", b"dd", b"tr", b"td", b"th", b"thead", b"tbody", b"tfoot", b"option",
                 b"optgroup", b"rb", b"rt", b"rp", b"rtc", b"colgroup", b"caption", b"html", b"head", b"body"}


class GuardError(Exception):
    """The work was refused or cut off; the message says why."""


def nesting_depth(body: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep the page nests elements, counted up to ``limit + 1`` (then the scan stops).

    Void, self-closed and optional-end-tag elements do not count; an end tag closes the
    nearest open element of its name (and whatever was left open inside it); the content
    of script, style and similar elements is skipped."""
    stack: list[bytes] = []
    pos = deepest = 0
    while True:
        m = _TAG.search(body, pos)
        if m is None:
            return deepest
        pos = m.end()
        closing, name, selfclose = m.group(1), m.group(2).lower(), m.group(3)
        if closing:
            if name in stack:
                while stack.pop() != name:
                    pass
            continue
        if name in _RAW_TEXT:
            end = re.compile(rb"</" + re.escape(name) + rb"\s*>", re.I).search(body, pos)
            pos = end.end() if end else len(body)
            continue
        if selfclose or name in _VOID or name in _OPTIONAL_END:
            continue
        stack.append(name)
        deepest = max(deepest, len(stack))
        if deepest > limit:
            return deepest


def extract_guarded(body: bytes, url: str, headers: dict[str, str] | None = None):
    """The article extractor behind the depth limit (runs in the worker process)."""
    from .extract import extract_article

    depth = nesting_depth(body, MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise GuardError(f"the page nests elements more than {MAX_DEPTH} deep (hostile or broken page)")
    return extract_article(body, url, headers)


def _serve(conn, memory: int) -> None:  # the worker process
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):
        pass
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send((True, fn(*args)))
        except MemoryError:
            conn.send((False, "ran out of memory (limit reached)"))
        except Exception as exc:  # the caller gets the reason; the worker stays up
            detail = str(exc) if isinstance(exc, GuardError) else f"{type(exc).__name__}: {exc}"
            conn.send((False, detail[:300]))


class Sandbox:
    """One long-lived worker process; ``call`` runs a module-level function there with a deadline.
    A call that overruns or kills the process raises GuardError, and the process is replaced."""

    def __init__(self, name: str, memory: int = WORKER_MEMORY) -> None:
        self.name = name
        self.memory = memory
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.memory), daemon=True, name=self.name)
        self._proc.start()
        child.close()
        self._conn = parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None

    def call(self, fn, args: tuple, timeout: float):
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            try:
                self._conn.send((fn, args))
                if not self._conn.poll(timeout):
                    self._kill()
                    raise GuardError(f"took longer than {timeout:g}s (hostile or pathological page)")
                ok, value = self._conn.recv()
            except (EOFError, OSError):
                self._kill()
                raise GuardError("the worker process died (out of memory or hostile page)") from None
        if not ok:
            raise GuardError(value)
        return value

    def close(self) -> None:
        with self._lock:
            self._kill()


EXTRACTOR = Sandbox("borderwatch-extract")
