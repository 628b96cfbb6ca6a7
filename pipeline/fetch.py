"""HTTP fetching: polite, bounded, and safe. The only module that knows httpx.

- one ``httpx.AsyncClient`` per host (its pool is the per-host limit) plus a global
  semaphore, because a single client slows down with many requests pending;
- a total deadline per request (``asyncio.timeout``), not only per-read timeouts;
- the size cap is applied to *decompressed* bytes while streaming (``iter_raw`` and
  incremental gzip/deflate/brotli decoders with a max output length);
- redirects are followed by hand: at most 5 hops, http(s) only, and every hop's host
  is resolved once and checked (no loopback/private/link-local/multicast targets
  unless it is the source's own origin, scheme + host + port, or listed in ``allow_hosts``); the connection
  then goes to that checked address, so DNS rebinding cannot swap it;
- conditional GET (ETag / Last-Modified), ``Retry-After``, robots.txt for pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import socket
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import brotli
import httpx
from protego import Protego

from . import USER_AGENT
from .config import allowed_entry
from .errors import Blocked, FetchError  # noqa: F401 (Blocked re-exported)

MAX_REDIRECTS = 5
ROBOTS_TTL = 6 * 3600
RETRY_AFTER_CAP = 24 * 3600
ACCEPT = "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"


@dataclass
class Response:
    url: str  # as requested
    final_url: str = ""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    error_kind: str | None = None  # one of errors.FETCH_KINDS when error is set
    elapsed_ms: float = 0.0
    retry_after: float | None = None  # seconds, when the server asked us to wait

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        return self.error is None and self.status == 304

    def raise_for_error(self) -> None:
        """Raise the failure as a FetchError carrying its kind (for callers that want exceptions)."""
        if self.error is not None:
            raise FetchError(self.error, self.error_kind or "http")


@dataclass(frozen=True)
class Policy:
    """What one request may do."""

    timeout: float = 20.0  # total deadline for the whole request (redirects and body included)
    max_bytes: int = 10_000_000
    own_origin: str = ""  # the source's own scheme://host:port, exempt from the address check
    allow_hosts: tuple[str, ...] = ()  # "host" (its default ports), "host:port" or "scheme://host:port"
    connect: float | None = None  # to open a connection; default: the total
    read: float | None = None  # longest wait for the next bytes; default: the total

    def httpx_timeout(self) -> httpx.Timeout:
        """Per-request httpx limits: without them httpx applies its own 5 s default."""
        connect = min(self.connect or self.timeout, self.timeout)
        read = min(self.read or self.timeout, self.timeout)
        return httpx.Timeout(connect=connect, read=read, write=read, pool=self.timeout)


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (default port filled in): what the SSRF exemption is keyed on."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ""
    return _origin(parts.scheme, (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80))


def _origin(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{host}:{port}"


def _exempt(policy: Policy, scheme: str, host: str, port: int) -> bool:
    """The source's own origin, or an allow_hosts entry: a bare host covers its default ports only."""
    if policy.own_origin and _origin(scheme, host, port) == policy.own_origin:
        return True
    for entry in policy.allow_hosts:
        parsed = allowed_entry(entry)
        if parsed is None or parsed[1] != host.strip("[]"):
            continue
        e_scheme, _, e_port = parsed
        if e_scheme is not None and e_scheme != scheme:
            continue
        if e_port is not None and e_port == port:
            return True
        if e_port is None and port == {"http": 80, "https": 443}.get(e_scheme or scheme):
            return True
    return False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, min(when - (now or time.time()), RETRY_AFTER_CAP))


class _Decoder:
    """Incremental, bounded decoder for one Content-Encoding."""

    def __init__(self, encoding: str):
        encs = [e.strip().lower() for e in encoding.split(",") if e.strip() and e.strip().lower() != "identity"]
        if len(encs) > 1:
            raise FetchError(f"unsupported stacked Content-Encoding {encoding!r}", "encoding")
        self.kind = encs[0] if encs else ""
        if self.kind in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.kind == "deflate":
            self._z = None  # zlib-wrapped or raw: decided on the first bytes
        elif self.kind == "br":
            self._br = brotli.Decompressor()
        elif self.kind:
            raise FetchError(f"unsupported Content-Encoding {encoding!r}", "encoding")

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; return at most ``limit + 1`` bytes (one more tells 'over the cap')."""
        if not self.kind:
            return data[: limit + 1]
        if self.kind == "br":
            out = [self._br.process(data, output_buffer_limit=limit + 1)]
            size = len(out[0])
            while size <= limit and not self._br.can_accept_more_data():
                more = self._br.process(b"", output_buffer_limit=limit + 1 - size)
                if not more:
                    break
                out.append(more)
                size += len(more)
            return b"".join(out)[: limit + 1]
        if self.kind == "deflate" and self._z is None:
            raw = not (len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)
            self._z = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out = [self._z.decompress(data, limit + 1)]
        size = len(out[0])
        while size <= limit and self._z.unconsumed_tail:
            more = self._z.decompress(self._z.unconsumed_tail, limit + 1 - size)
            out.append(more)
            size += len(more)
        return b"".join(out)


class Robots:
    """robots.txt rules per origin (protego: longest match wins, ``*`` and ``$`` wildcards),
    cached for ROBOTS_TTL seconds. A missing file (4xx) allows everything; an unreachable
    one (5xx, network error) disallows everything until it answers (RFC 9309)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Protego | bool, str | None]] = {}

    async def refusal(self, fetcher: "Fetcher", url: str, policy: Policy) -> str | None:
        """None if ``url`` may be fetched, else why not."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        cached = self._cache.get(origin)
        if cached is None or time.time() - cached[0] > ROBOTS_TTL:
            resp = await fetcher.get(origin + "/robots.txt", Policy(min(policy.timeout, 10), 500_000, policy.own_origin, policy.allow_hosts))
            reason = None
            if resp.ok:
                rules: Protego | bool = Protego.parse(resp.body.decode("utf-8", "replace"))
            elif 400 <= resp.status < 500:  # no robots.txt: everything is allowed
                rules = True
            else:  # unreachable: RFC 9309 says assume disallowed, retry later
                rules = False
                reason = f"robots.txt unreachable ({resp.error}); not fetching pages until it answers"
            cached = (time.time(), rules, reason)
            self._cache[origin] = cached
        rules = cached[1]
        if rules is True or (rules is not False and robots_allow(rules, url)):
            return None
        return cached[2] or "disallowed by robots.txt"


ROBOTS_TOKEN = "borderwatch"  # the product token robots.txt groups name (not the whole User-Agent)


def robots_allow(rules: Protego, url: str) -> bool:
    """Whether robots.txt rules let borderwatch fetch ``url``."""
    return bool(rules.can_fetch(url, ROBOTS_TOKEN))


class Fetcher:
    """Async fetcher for one cycle (or one long run). Use as ``async with Fetcher() as f``."""

    def __init__(self, concurrency: int = 20, per_host: int = 4, user_agent: str = USER_AGENT,
                 robots: Robots | None = None, host_gate=None):
        self.concurrency = concurrency
        # host_gate(host) -> async context manager held around each request to that host, on top of the
        # per-host semaphore (a cluster member passes its cluster-wide host slots here)
        self.host_gate = host_gate
        self.per_host = per_host
        self.user_agent = user_agent
        self.robots = robots or Robots()
        self._global = asyncio.Semaphore(concurrency)
        self._hosts: dict[str, _Host] = {}
        self._dns: dict[tuple[str, int], tuple[float, str]] = {}
        self._ssl = httpx.create_ssl_context()  # loading CA certificates costs ~20 ms: once, not per host

    async def __aenter__(self) -> "Fetcher":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients = [c for h in self._hosts.values() for c in h.clients]
        self._hosts.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    def _host(self, host: str) -> "_Host":
        entry = self._hosts.get(host)
        if entry is None:
            # The per-host limit is the semaphore; the connections are spread over clients of at most
            # SHARD connections each: httpcore's pool looks at every connection and every waiting
            # request on each change, so one client of 50 connections to one host cost more CPU
            # than the requests themselves (a poll cycle of 2,000 feeds on one host: 39 s of CPU in
            # the main process against 22 s for the same feeds on 10 hosts).
            size = min(SHARD, self.per_host)
            clients = [httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate, br"},
                trust_env=False,
                verify=self._ssl,
            ) for _ in range(-(-self.per_host // size))]
            entry = _Host(clients, [0] * len(clients), asyncio.Semaphore(self.per_host))
            self._hosts[host] = entry
        return entry

    async def _resolve(self, scheme: str, host: str, port: int, policy: Policy) -> str:
        """Resolve once and apply the SSRF policy to the address we will connect to."""
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
            addr = str(ip)
        except ValueError:
            cached = self._dns.get((host, port))
            if cached and time.monotonic() - cached[0] < 300:
                addr = cached[1]
            else:
                loop = asyncio.get_running_loop()
                try:
                    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except socket.gaierror as exc:
                    raise FetchError(f"DNS lookup failed for {host}: {exc.strerror or exc}", "dns") from None
                if not infos:
                    raise FetchError(f"DNS lookup for {host} returned no address", "dns")
                addr = infos[0][4][0]
                self._dns[(host, port)] = (time.monotonic(), addr)
            ip = ipaddress.ip_address(addr)
        if not _is_public(ip) and not _exempt(policy, scheme, host, port):
            shown = f"{host}:{port}" if port not in (80, 443) else host
            raise Blocked(f"blocked request to {shown} ({addr}): not a public address "
                          f"(add {shown} to allow_hosts if this is intended)")
        return addr

    async def get(self, url: str, policy: Policy = Policy(), etag: str | None = None,
                  last_modified: str | None = None) -> Response:
        """GET ``url`` following up to 5 redirects; never raises, errors are in ``Response.error``."""
        started = time.perf_counter()
        resp = Response(url=url)
        try:
            async with self._global, asyncio.timeout(policy.timeout):
                await self._get(url, policy, etag, last_modified, resp)
        except TimeoutError:
            resp.error, resp.error_kind = f"timed out after {policy.timeout:g}s (total deadline)", "timeout"
        except httpx.ConnectTimeout:
            resp.error = f"timed out after {policy.httpx_timeout().connect:g}s connecting (connect timeout)"
            resp.error_kind = "timeout"
        except (httpx.ReadTimeout, httpx.WriteTimeout):
            resp.error = f"timed out after {policy.httpx_timeout().read:g}s without data (read timeout)"
            resp.error_kind = "timeout"
        except httpx.PoolTimeout:
            resp.error = f"timed out after {policy.timeout:g}s waiting for a free connection (pool timeout)"
            resp.error_kind = "timeout"
        except FetchError as exc:  # includes Blocked (SSRF policy)
            resp.error, resp.error_kind = str(exc), exc.kind
        except httpx.ConnectError as exc:
            resp.error, resp.error_kind = f"connection failed: {_reason(exc)}", "connect"
        except httpx.HTTPError as exc:
            resp.error, resp.error_kind = f"HTTP error: {_reason(exc)}", "http"
        except (OSError, zlib.error, brotli.error) as exc:
            resp.error, resp.error_kind = f"{type(exc).__name__}: {exc}", "io"
        resp.elapsed_ms = (time.perf_counter() - started) * 1000
        if resp.error is None and resp.status >= 400:
            resp.error, resp.error_kind = f"HTTP {resp.status}", "status"
        return resp

    async def _get(self, url: str, policy: Policy, etag: str | None, last_modified: str | None, resp: Response) -> None:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FetchError(f"refusing non-http(s) URL {current!r}", "url")
            host = parts.hostname.lower()
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addr = await self._resolve(parts.scheme, host, port, policy)
            netloc_ip = f"[{addr}]" if ":" in addr else addr
            if parts.port:
                netloc_ip += f":{parts.port}"
            target = urlunsplit((parts.scheme, netloc_ip, parts.path or "/", parts.query, ""))
            headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": ACCEPT}
            if current == url:
                if etag:
                    headers["If-None-Match"] = etag
                if last_modified:
                    headers["If-Modified-Since"] = last_modified
            slot = self._host(f"{parts.scheme}://{host}:{port}")
            extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
            async with slot.sem, (self.host_gate(host) if self.host_gate else contextlib.nullcontext()), slot.client() as client:
                request = client.build_request("GET", target, headers=headers, extensions=extensions,
                                               timeout=policy.httpx_timeout())
                r = await client.send(request, stream=True)
                try:
                    resp.status = r.status_code
                    resp.final_url = current
                    resp.headers = {k.lower(): v for k, v in r.headers.items()}
                    if r.status_code in (301, 302, 303, 307, 308) and "location" in r.headers:
                        current = urljoin(current, r.headers["location"])
                        continue
                    if r.status_code in (429, 503):
                        resp.retry_after = parse_retry_after(r.headers.get("retry-after"))
                    if r.status_code == 200:
                        resp.body = await _read_capped(r, policy.max_bytes)
                    return
                finally:
                    await r.aclose()
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}), last to {current}", "redirects")


SHARD = 8  # connections per httpx client (a host with a higher per-host limit gets several clients)


@dataclass
class _Host:
    """One host's clients (SHARD connections each), requests in flight on each, and its limit."""

    clients: list[httpx.AsyncClient]
    busy: list[int]
    sem: asyncio.Semaphore

    @contextlib.asynccontextmanager
    async def client(self):
        """The least busy client (inside the semaphore one always has a free connection)."""
        i = self.busy.index(min(self.busy))
        self.busy[i] += 1
        try:
            yield self.clients[i]
        finally:
            self.busy[i] -= 1


async def _read_capped(r: httpx.Response, max_bytes: int) -> bytes:
    decoder = _Decoder(r.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    total = 0
    async for raw in r.aiter_raw():
        data = decoder.feed(raw, max_bytes - total)
        total += len(data)
        if total > max_bytes:
            raise FetchError(f"response larger than the {max_bytes:,}-byte cap (cut off, not parsed)", "too_large")
        chunks.append(data)
    return b"".join(chunks)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return f"TLS error: {text}"
    return text
