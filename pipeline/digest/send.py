"""Delivery: the outbox state machine over SMTP or .eml files. The only module that knows SMTP.

A digest is rendered and recorded (``pending``) with the hits it carries before any
attempt, so nothing owed is lost. Each attempt moves it through states committed to
the database one by one::

    pending -> sending (envelope and body going out) -> committing (final dot sent) -> sent
               | 4xx / connection lost before the final dot: back to pending, retried with back-off
               | 5xx for the recipient: failed
               | connection lost after the final dot: unknown (`digest resend ID` to send it again)

After a crash, ``sending`` is safe to retry (the server never got the final dot, so it
accepted nothing). ``committing`` is the window SMTP leaves open (RFC 1047: a connection
lost after the final dot leaves the outcome unknown): it is NOT resent, but marked
``unknown`` and reported by ``status``, so a crash never produces a duplicate. With the
outbox directory transport there is no window: the .eml file's existence says whether
it was written.

One process delivers at a time: ``send_due`` holds the ``digest-sender`` lease in the
database (renewed before each delivery), so two ``digest send`` (or one and ``run``)
never both deliver, nor does one's crash recovery take back the other's in-flight
delivery. Every SMTP message has a total deadline, and a stop request (SIGTERM) aborts
an attempt that has not reached the final dot.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import os
import re
import select
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Protocol

from .. import lease as leases
from .. import store
from ..errors import DeliveryError, NotFound, PermanentError, TransientError, UnknownOutcome
from ..settings import Settings, SMTPSettings
from ..config import RuleSet
from ..subscribers import display_target, is_channel
from . import render
from .chat import ChatMessage, list_message, story_message
from .select import due_digests

log = logging.getLogger("borderwatch.digest")

RETRY_BASE = 60.0
RETRY_CAP = 6 * 3600.0
RETRY_CAP_IMMEDIATE = 300.0  # an immediate alert waits minutes, not hours, once SMTP is back
STOP_GRACE = 5.0  # after a stop request, how long a message past its final dot may wait for the reply
SENDER_LEASE = "digest-sender"


Unknown = UnknownOutcome  # the connection broke after the message was handed over: outcome unknown


class _Guard:
    """Bounds one SMTP attempt: past ``deadline`` seconds, or once ``stop`` is set, the socket is
    shut down, which makes the blocked smtplib call fail at once. After the final dot a stop
    request leaves the reply STOP_GRACE seconds (aborting there would make the outcome unknown)."""

    def __init__(self, transport: "SMTPTransport", deadline: float, stop: threading.Event | None):
        self.transport = transport
        self.end = time.monotonic() + deadline
        self.stop = stop
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="smtp-deadline", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            now = time.monotonic()
            if self.stop is not None and self.stop.is_set():
                if not self.transport.after_dot:
                    return self._kill("stopping (SIGTERM)")
                self.end = min(self.end, now + STOP_GRACE)
            if now >= self.end:
                return self._kill(f"no answer within the {self.transport.settings.deadline:g}s deadline per message")
            self._done.wait(min(self.end - now, 0.1 if self.stop is not None else self.end - now))

    def _kill(self, reason: str) -> None:
        self.reason = reason
        sock = getattr(self.transport._smtp_raw, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._done.set()
        self._thread.join()


class Transport(Protocol):
    """How a rendered digest leaves: SMTPTransport, OutboxTransport (.eml files), ChannelTransport (Apprise).

    ``send`` raises TransientError (retry later), PermanentError (give up) or UnknownOutcome (the message
    may have arrived); it calls ``on_committing()`` just before the point of no return (SMTP's final dot)."""

    def send(self, sender: str, to: str, data: bytes, on_committing) -> None: ...

    def close(self) -> None: ...


class SMTPTransport:
    """One connection per send_due run, opened lazily; every message under a total deadline."""

    def __init__(self, settings: SMTPSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None  # connected and ready for MAIL FROM
        self._smtp_raw: smtplib.SMTP | None = None  # the object being connected or used (the guard's target)
        self.after_dot = False
        self.idle = True  # False while a message is in flight: then close() must not say QUIT into DATA
        self.stop: threading.Event | None = None

    @property
    def deadline(self) -> float:
        return self.settings.deadline

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.tls == "ssl":
                smtp = smtplib.SMTP_SSL(timeout=s.timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(timeout=s.timeout)
            self._smtp_raw = smtp
            smtp.connect(s.host, s.port)
            if s.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo_or_helo_if_needed()
            if s.user:
                smtp.login(s.user, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise TransientError(f"SMTP authentication failed: {exc.smtp_code} {exc.smtp_error!r}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TransientError(f"cannot connect to SMTP server {s.host}:{s.port}: {exc}") from None
        return smtp

    def send(self, sender: str, to: str, data: bytes, on_committing) -> None:
        self.after_dot, self.idle = False, False
        guard = _Guard(self, self.settings.deadline, self.stop)
        try:
            self._send(sender, to, data, on_committing)
            self.idle = True
        except (TransientError, Unknown) as exc:
            if guard.reason:  # the guard cut the connection: say why, keep the before/after-dot verdict
                raise type(exc)(f"{guard.reason}: {'the server may have the message' if isinstance(exc, Unknown) else 'nothing was handed over'}") from None
            raise
        finally:
            guard.close()

    def _send(self, sender: str, to: str, data: bytes, on_committing) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        try:
            code, resp = smtp.mail(_addr(sender))
            if code != 250:
                self._reset()
                raise (PermanentError if code >= 500 else TransientError)(f"MAIL FROM refused: {code} {resp!r}")
            code, resp = smtp.rcpt(to)
            if code not in (250, 251):
                self._reset()
                raise (PermanentError if code >= 500 else TransientError)(f"recipient refused: {code} {resp!r}")
            smtp.putcmd("data")
            code, resp = smtp.getreply()
            if code != 354:
                self._reset()
                raise (PermanentError if code >= 500 else TransientError)(f"DATA refused: {code} {resp!r}")
            body = re.sub(rb"(?m)^\.", b"..", data)
            smtp.send(body if body.endswith(b"\r\n") else body + b"\r\n")
            if _hung_up(smtp):  # the server answered or hung up during the body: it has accepted nothing
                raise smtplib.SMTPServerDisconnected("the server closed the connection during the message body")
            on_committing()
            smtp.send(b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TransientError(f"SMTP connection lost before the end of the message (nothing was accepted; "
                                 f"retrying): {exc}") from None
        self.after_dot = True
        try:
            code, resp = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise Unknown(f"connection lost after the message was sent, before the server confirmed it: {exc}") from None
        if code != 250:
            self._reset()
            raise (PermanentError if code >= 500 else TransientError)(f"message refused: {code} {resp!r}")

    def _reset(self) -> None:
        try:
            self._smtp.rset()
            self.idle = True
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        """Close the socket without QUIT (the session is in an unknown state)."""
        smtp, self._smtp, self._smtp_raw = self._smtp_raw, None, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass

    def close(self) -> None:
        if self._smtp is not None and self.idle:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None
        self._drop()

    def delivered(self, message_id: str) -> bool | None:
        return None  # SMTP cannot tell


def _hung_up(smtp: smtplib.SMTP) -> bool:
    """True if the server has sent something (an error or EOF) while it should be reading the body."""
    try:
        readable, _, _ = select.select([smtp.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class OutboxTransport:
    """Writes each digest as an .eml file (0600, in a 0700 directory): temp file, fsync, rename."""

    deadline = 60.0

    def __init__(self, directory: str | os.PathLike = "outbox"):
        self.dir = Path(directory)
        self.stop: threading.Event | None = None

    def path_for(self, message_id: str) -> Path:
        return self.dir / f"digest-{hashlib.sha1(message_id.encode()).hexdigest()[:12]}.eml"

    def send(self, sender: str, to: str, data: bytes, on_committing) -> None:
        msg_id = message_from_bytes(data, policy=policy.default)["Message-ID"]
        target = self.path_for(msg_id)
        tmp = target.with_suffix(".tmp")
        on_committing()
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TransientError(f"disk full: cannot write {target} (free some space; the digest stays owed "
                                     "and is retried)") from None
            raise TransientError(f"cannot write {target}: {exc.strerror or exc}") from None

    def delivered(self, message_id: str) -> bool | None:
        return self.path_for(message_id).exists()

    def close(self) -> None:
        pass


class ChannelTransport:
    """Chat and webhook channels through Apprise (Slack, Teams, Telegram, json://host/path, ...).

    Apprise reports success or failure per message: a reported success is final (never sent
    again), a failure is retried with back-off. A crash while Apprise is sending leaves the
    delivery ``committing``, settled as ``unknown`` (not resent), as for SMTP.
    """

    deadline = 60.0  # Apprise's own connect and read timeouts bound each request
    stop = None

    def send(self, sender: str, to: str, data: bytes, on_committing) -> None:
        try:
            import apprise
        except ImportError:
            raise TransientError("chat targets need Apprise: pip install 'borderwatch[notify]'") from None
        scheme = to.split("://", 1)[0]
        msg = ChatMessage.decode(data)
        channel = apprise.Apprise()
        if not channel.add(to):
            raise PermanentError(f"Apprise does not understand this {scheme}:// URL")
        on_committing()
        # Plain text: Apprise escapes it for the service's own markup (Slack, Markdown, HTML).
        if not channel.notify(body=msg.body, title=msg.title, body_format=apprise.NotifyFormat.TEXT):
            raise TransientError(f"the {scheme}:// channel did not accept the message (unreachable or refused)")

    def delivered(self, message_id: str) -> bool | None:
        return None  # a channel cannot be asked afterwards

    def close(self) -> None:
        pass


_CHANNELS = ChannelTransport()


def _pick(transport, to: str):
    """The transport for a target: Apprise for a channel URL, else the mail transport."""
    return _CHANNELS if is_channel(to) else transport


def _addr(sender: str) -> str:
    m = re.search(r"<([^>]+)>", sender)
    return m.group(1) if m else sender.strip()


def transport_for(settings: Settings, outbox: str = "outbox"):
    """SMTP when the settings have an SMTP host, else .eml files in ``outbox``."""
    return SMTPTransport(settings.smtp) if settings.smtp else OutboxTransport(outbox)


def transport_from_env(outbox: str = "outbox"):
    return transport_for(Settings.from_env(), outbox)


@dataclass
class SendReport:
    created: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    busy: str | None = None  # another process holds the sender lease: it delivers, this one did nothing
    alerts: int = 0  # source health alerts sent to operators

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("created", "sent", "retry", "failed", "unknown", "recovered", "errors",
                                              "files", "busy", "alerts")}


def recover(db, transport) -> int:
    """Settle deliveries left mid-flight by a crash (call only while holding the sender lease).
    Returns how many were touched."""
    touched = 0
    for d in store.deliveries_in(db, ("sending", "committing")):
        touched += 1
        if d["status"] == "sending":
            store.set_delivery(db, d["id"], "pending", "interrupted before the message was handed over; retrying")
            continue
        known = _pick(transport, d["subscriber"]).delivered(d["message_id"])
        if known is True:
            store.set_delivery(db, d["id"], "sent")
        elif known is False:
            store.set_delivery(db, d["id"], "pending", "interrupted before the file was written; retrying")
        else:
            store.set_delivery(db, d["id"], "unknown", "interrupted after the message was handed to the SMTP server: "
                               "outcome unknown, not resent (see README, 'Delivery guarantees')")
            log.warning("delivery %s to %s: outcome unknown after a crash; not resent", d["message_id"], d["subscriber"])
    return touched


class _SenderLease:
    """The database lease that makes this process the only one delivering digests."""

    def __init__(self, db, transport):
        self.db = db
        self.owner = leases.new_owner()
        self.ttl = 2 * float(getattr(transport, "deadline", 120.0)) + 60  # renewed at least once per message

    def take(self) -> str | None:
        """None when this process holds the lease (taken or renewed), else who does. A holder on this
        host whose process is gone is replaced at once; elsewhere, when its lease is ``ttl`` old."""
        holder = store.acquire_lease(self.db, self.owner, self.ttl, key=SENDER_LEASE, gone=leases.owner_gone)
        return leases.label(holder) if holder else None

    def release(self) -> None:
        store.release_lease(self.db, self.owner, key=SENDER_LEASE)


def prepare_due(db, rules: RuleSet, now: dt.datetime, sender: str, email: str | None = None,
                unsubscribe_base: str | None = None) -> int:
    """Render and record (as pending) the digests due now; returns how many were created."""
    created = 0
    for sub, period, groups in due_digests(db, rules, now, email):
        if is_channel(sub["email"]):
            created += _prepare_chat(db, sub, period, groups, now, unsubscribe_base)
            continue
        message_id = _message_id(sub["email"], period, sender)
        unsub = render.unsubscribe_header(sender, sub["token"], unsubscribe_base)
        rendered = render.render(groups, sub, now, unsub)
        msg = render.build_message(rendered, sub["email"], sender, message_id, unsub, now)
        hits = [(h, i.story) for g in groups for i in g.items for h in i.hit_ids]
        if store.create_delivery(db, sub["email"], period, message_id, rendered.subject, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")), hits,
                                 store.iso(now)) is not None:
            created += 1
    return created


def _prepare_chat(db, sub: dict, period: str, groups, now: dt.datetime, unsubscribe_base: str | None) -> int:
    """Channel subscribers: one message per story for `immediate` (its period is the story, so a
    story is never sent twice), else one compact list for the period."""
    unsub = render.unsubscribe_url(unsubscribe_base, sub["token"]) if unsubscribe_base and render.safe_link(unsubscribe_base) else None
    owed = []
    if sub["cadence"] == "immediate":
        for g in groups:
            for item in g.items:
                key = f"story:{item.story}" if item.story is not None else f"hit:{item.hit}"
                owed.append((key, story_message(item, g, sub, unsub), [(h, item.story) for h in item.hit_ids]))
    else:
        owed.append((period, list_message(groups, sub, unsub),
                     [(h, i.story) for g in groups for i in g.items for h in i.hit_ids]))
    created = 0
    for key, msg, hits in owed:
        digest = hashlib.sha256(f"{sub['email']}|{key}".encode()).hexdigest()[:24]
        message_id = f"<chat.{digest}@borderwatch>"
        if store.create_delivery(db, sub["email"], key, message_id, msg.title, msg.encode(), hits, store.iso(now)) is not None:
            created += 1
    return created


def _message_id(email: str, period: str, sender: str) -> str:
    domain = _addr(sender).rsplit("@", 1)[-1] or "borderwatch.local"
    token = hashlib.sha256(f"{email}|{period}".encode()).hexdigest()[:24]
    return f"<digest.{token}@{render.header_safe(domain, 100).replace(' ', '')}>"


def send_due(db, rules: RuleSet, now: dt.datetime | None = None, transport=None, email: str | None = None,
             sender: str | None = None, dry_run: bool = False, settings: Settings | None = None,
             stop: threading.Event | None = None) -> SendReport:
    """Create the digests due now and deliver every owed one; never raises for delivery errors.

    If another process is delivering (it holds the sender lease), nothing is done and
    ``report.busy`` names it. ``stop`` (set by a signal handler) ends the run after the
    attempt in flight, which is aborted if it has not reached the final dot.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    settings = settings or Settings.from_env()
    transport = transport or transport_for(settings)
    sender = render.sender_address(sender or settings.digest_from)
    report = SendReport()
    if dry_run:
        return report
    lease = _SenderLease(db, transport)
    report.busy = lease.take()
    if report.busy:
        return report
    transport.stop = stop
    try:
        report.recovered = recover(db, transport) + recover_health_alerts(db, transport, sender)
        report.created = prepare_due(db, rules, now, sender, email, settings.public_url)
        attempted = set()
        for d in store.due_deliveries(db, store.iso(now), email):
            if not _may_go_on(lease, stop):
                return report
            attempted.add(d["id"])
            _deliver(db, transport, d, sender, now, report)
        if report.sent:  # the server works again: what is still backing off goes out now
            for d in store.due_deliveries(db, store.iso(now), email, waiting=True):
                if d["id"] not in attempted:
                    if not _may_go_on(lease, stop):
                        return report
                    _deliver(db, transport, d, sender, now, report)
        if email is None:
            deliver_health_alerts(db, transport, sender, now, report, lambda: _may_go_on(lease, stop))
    finally:
        transport.close()
        lease.release()
    return report


def _may_go_on(lease: _SenderLease, stop: threading.Event | None) -> bool:
    """False when stopping, or when the lease was lost (this process stalled past its TTL): leave the rest."""
    return not (stop is not None and stop.is_set()) and lease.take() is None


def resend(db, delivery_id: int, transport=None, sender: str | None = None,
           now: dt.datetime | None = None, settings: Settings | None = None) -> SendReport:
    """Send again a delivery whose outcome is ``unknown`` (or that ``failed``): the operator's decision.

    Raises NotFound if there is no such delivery, DeliveryError if it is in another state."""
    now = now or dt.datetime.now(dt.timezone.utc)
    settings = settings or Settings.from_env()
    transport = transport or transport_for(settings)
    sender = render.sender_address(sender or settings.digest_from)
    report = SendReport()
    lease = _SenderLease(db, transport)
    report.busy = lease.take()
    if report.busy:
        return report
    try:
        d = store.delivery(db, delivery_id)
        if d is None:
            raise NotFound(f"no delivery {delivery_id} (see `borderwatch status`)")
        if not store.requeue_delivery(db, delivery_id, store.iso(now), ("unknown", "failed")):
            raise DeliveryError(f"delivery {delivery_id} is {d['status']}: only an unknown or failed delivery can be resent")
        _deliver(db, transport, store.delivery(db, delivery_id), sender, now, report)
    finally:
        transport.close()
        lease.release()
    return report


def retry_delay(attempts: int, cadence: str | None) -> float:
    """Exponential back-off after ``attempts`` failed tries, capped (much lower for immediate alerts)."""
    cap = RETRY_CAP_IMMEDIATE if cadence == "immediate" else RETRY_CAP
    return min(RETRY_BASE * 2 ** min(attempts, 20), cap)


def _deliver(db, transport, d: dict, sender: str, now: dt.datetime, report: SendReport) -> None:
    """One attempt at one digest delivery (email or channel), its states committed one by one."""
    def mark(status: str, error: str | None = None, next_attempt: str | None = None, attempted: bool = False) -> None:
        store.set_delivery(db, d["id"], status, error, next_attempt, attempted=attempted)

    transport = _pick(transport, d["subscriber"])
    if _attempt(transport, mark, sender, d["subscriber"], d["message"], retry_delay(d["attempts"], d.get("cadence")),
                now, report) and isinstance(transport, OutboxTransport):
        report.files.append(str(transport.path_for(d["message_id"])))


def _attempt(transport, mark, sender: str, to: str, data: bytes, delay: float, now: dt.datetime,
             report: SendReport) -> bool:
    """The outbox state machine for one message: sending -> committing -> sent, or back to pending
    (retried after ``delay``), failed, or unknown. True when sent."""
    who = display_target(to)
    mark("sending", attempted=True)
    try:
        transport.send(sender, to, data, on_committing=lambda: mark("committing"))
    except TransientError as exc:
        mark("pending", str(exc), store.iso(now + dt.timedelta(seconds=delay)))
        report.retry += 1
        report.errors.append(f"{who}: {exc} (retry in {delay:.0f}s)")
        return False
    except PermanentError as exc:
        mark("failed", str(exc))
        report.failed += 1
        report.errors.append(f"{who}: {exc}")
        return False
    except Unknown as exc:
        mark("unknown", str(exc))
        report.unknown += 1
        report.errors.append(f"{who}: {exc}")
        return False
    mark("sent")
    report.sent += 1
    return True


# --------------------------------------------------------------------------- health alerts to operators


def recover_health_alerts(db, transport, sender: str) -> int:
    """Settle health alerts left mid-flight by a crash, like digests (see ``recover``)."""
    touched = 0
    for a in store.health_alerts_in(db, ("sending", "committing")):
        touched += 1
        if a["status"] == "sending":
            store.set_health_alert(db, a["id"], "pending", "interrupted before the message was handed over; retrying")
            continue
        known = _pick(transport, a["target"]).delivered(_alert_message_id(a, sender))
        if known is True:
            store.set_health_alert(db, a["id"], "sent")
        elif known is False:
            store.set_health_alert(db, a["id"], "pending", "interrupted before the file was written; retrying")
        else:
            store.set_health_alert(db, a["id"], "unknown", "interrupted while being handed over: outcome unknown, not resent")
    return touched


def _alert_message_id(a: dict, sender: str) -> str:
    domain = _addr(sender).rsplit("@", 1)[-1] or "borderwatch.local"
    token = hashlib.sha256(f"{a['id']}|{a['target']}|{a['source']}|{a['event']}|{a['created']}".encode()).hexdigest()[:24]
    return f"<health.{token}@{render.header_safe(domain, 100).replace(' ', '')}>"


def _alert_data(a: dict, sender: str, now: dt.datetime) -> bytes:
    if is_channel(a["target"]):
        return ChatMessage(a["subject"], a["body"]).encode()
    from email.message import EmailMessage
    from email.utils import format_datetime

    msg = EmailMessage()
    msg["Subject"] = render.header_safe(a["subject"])
    msg["From"] = render.header_safe(sender)
    msg["To"] = render.header_safe(a["target"])
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = _alert_message_id(a, sender)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(a["body"])
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def deliver_health_alerts(db, transport, sender: str, now: dt.datetime, report: SendReport,
                          may_go_on=lambda: True) -> None:
    """Send the source health alerts owed to operators (same transports, back-off and states as digests)."""
    for a in store.due_health_alerts(db, store.iso(now)):
        if not may_go_on():
            return

        def mark(status: str, error: str | None = None, next_attempt: str | None = None, attempted: bool = False,
                 _id: int = a["id"]) -> None:
            store.set_health_alert(db, _id, status, error, next_attempt, attempted=attempted)

        sent_before = report.sent
        _attempt(_pick(transport, a["target"]), mark, sender, a["target"], _alert_data(a, sender, now),
                 retry_delay(a["attempts"], "immediate"), now, report)
        if report.sent > sent_before:  # counted apart from digests
            report.sent -= 1
            report.alerts += 1
