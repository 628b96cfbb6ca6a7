"""Delivery: the outbox state machine over SMTP or .eml files. The only module that knows SMTP.

A digest is rendered and recorded (``pending``) with the hits it carries before any
attempt, so nothing owed is lost. Each attempt moves it through states committed to
the database one by one::

    pending -> sending (envelope accepted) -> committing (DATA sent) -> sent
               | 4xx / connection lost before DATA: back to pending, retried with back-off
               | 5xx for the recipient: failed

After a crash, ``sending`` is safe to retry (the server never got the final dot).
``committing`` is the window SMTP leaves open (RFC 1047: a connection lost after the
final dot leaves the outcome unknown): it is NOT resent, but marked ``unknown`` and
reported, so a crash never produces a duplicate. With the outbox directory transport
there is no window: the .eml file's existence says whether it was written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

from .. import store
from ..errors import PermanentError, TransientError, UnknownOutcome
from ..settings import Settings, SMTPSettings
from ..config import RuleSet
from . import render
from .select import due_digests

log = logging.getLogger("borderwatch.digest")

RETRY_BASE = 60.0
RETRY_CAP = 6 * 3600.0
RETRY_CAP_IMMEDIATE = 300.0  # an immediate alert waits minutes, not hours, once SMTP is back


Unknown = UnknownOutcome  # the connection broke after the message was handed over: outcome unknown


class SMTPTransport:
    """One connection per send_due run, opened lazily."""

    def __init__(self, settings: SMTPSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.tls == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo_or_helo_if_needed()
            if s.user:
                smtp.login(s.user, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientError(f"SMTP authentication failed: {exc.smtp_code} {exc.smtp_error!r}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot connect to SMTP server {s.host}:{s.port}: {exc}") from None
        return smtp

    def send(self, sender: str, to: str, data: bytes, on_committing) -> None:
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
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise TransientError(f"SMTP connection lost: {exc}") from None
        on_committing()
        try:
            code, resp = smtp.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise (PermanentError if exc.smtp_code >= 500 else TransientError)(f"message refused: {exc.smtp_code} {exc.smtp_error!r}") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise Unknown(f"connection lost during DATA: {exc}") from None
        if code != 250:
            self._reset()
            raise (PermanentError if code >= 500 else TransientError)(f"message refused: {code} {resp!r}")

    def _reset(self) -> None:
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None

    def delivered(self, message_id: str) -> bool | None:
        return None  # SMTP cannot tell


class OutboxTransport:
    """Writes each digest as an .eml file (atomically: temp file then rename)."""

    def __init__(self, directory: str | os.PathLike = "outbox"):
        self.dir = Path(directory)

    def path_for(self, message_id: str) -> Path:
        return self.dir / f"digest-{hashlib.sha1(message_id.encode()).hexdigest()[:12]}.eml"

    def send(self, sender: str, to: str, data: bytes, on_committing) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        msg_id = message_from_bytes(data, policy=policy.default)["Message-ID"]
        target = self.path_for(msg_id)
        tmp = target.with_suffix(".tmp")
        on_committing()
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def delivered(self, message_id: str) -> bool | None:
        return self.path_for(message_id).exists()

    def close(self) -> None:
        pass


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

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("created", "sent", "retry", "failed", "unknown", "recovered", "errors", "files")}


def recover(db, transport) -> int:
    """Settle deliveries left mid-flight by a crash. Returns how many were touched."""
    touched = 0
    for d in store.deliveries_in(db, ("sending", "committing")):
        touched += 1
        if d["status"] == "sending":
            store.set_delivery(db, d["id"], "pending", "interrupted before the message was handed over; retrying")
            continue
        known = transport.delivered(d["message_id"])
        if known is True:
            store.set_delivery(db, d["id"], "sent")
        elif known is False:
            store.set_delivery(db, d["id"], "pending", "interrupted before the file was written; retrying")
        else:
            store.set_delivery(db, d["id"], "unknown", "interrupted after the message was handed to the SMTP server: "
                               "outcome unknown, not resent (see README, 'Delivery guarantees')")
            log.warning("delivery %s to %s: outcome unknown after a crash; not resent", d["message_id"], d["subscriber"])
    return touched


def prepare_due(db, rules: RuleSet, now: dt.datetime, sender: str, email: str | None = None,
                unsubscribe_base: str | None = None) -> int:
    """Render and record (as pending) the digests due now; returns how many were created."""
    created = 0
    for sub, period, groups in due_digests(db, rules, now, email):
        message_id = _message_id(sub["email"], period, sender)
        unsub = render.unsubscribe_header(sender, sub["token"], unsubscribe_base)
        rendered = render.render(groups, sub, now, unsub)
        msg = render.build_message(rendered, sub["email"], sender, message_id, unsub, now)
        hits = [(h, i.story) for g in groups for i in g.items for h in i.hit_ids]
        if store.create_delivery(db, sub["email"], period, message_id, rendered.subject, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")), hits,
                                 store.iso(now)) is not None:
            created += 1
    return created


def _message_id(email: str, period: str, sender: str) -> str:
    domain = _addr(sender).rsplit("@", 1)[-1] or "borderwatch.local"
    token = hashlib.sha256(f"{email}|{period}".encode()).hexdigest()[:24]
    return f"<digest.{token}@{render.header_safe(domain, 100).replace(' ', '')}>"


def send_due(db, rules: RuleSet, now: dt.datetime | None = None, transport=None, email: str | None = None,
             sender: str | None = None, dry_run: bool = False, settings: Settings | None = None) -> SendReport:
    """Create the digests due now and deliver every owed one; never raises for delivery errors."""
    now = now or dt.datetime.now(dt.timezone.utc)
    settings = settings or Settings.from_env()
    transport = transport or transport_for(settings)
    sender = render.sender_address(sender or settings.digest_from)
    report = SendReport()
    if dry_run:
        return report
    report.recovered = recover(db, transport)
    report.created = prepare_due(db, rules, now, sender, email, settings.public_url)
    try:
        attempted = set()
        for d in store.due_deliveries(db, store.iso(now), email):
            attempted.add(d["id"])
            _deliver(db, transport, d, sender, now, report)
        if report.sent:  # the server works again: what is still backing off goes out now
            for d in store.due_deliveries(db, store.iso(now), email, waiting=True):
                if d["id"] not in attempted:
                    _deliver(db, transport, d, sender, now, report)
    finally:
        transport.close()
    return report


def retry_delay(attempts: int, cadence: str | None) -> float:
    """Exponential back-off after ``attempts`` failed tries, capped (much lower for immediate alerts)."""
    cap = RETRY_CAP_IMMEDIATE if cadence == "immediate" else RETRY_CAP
    return min(RETRY_BASE * 2 ** min(attempts, 20), cap)


def _deliver(db, transport, d: dict, sender: str, now: dt.datetime, report: SendReport) -> None:
    store.set_delivery(db, d["id"], "sending", attempted=True)
    try:
        transport.send(sender, d["subscriber"], d["message"],
                       on_committing=lambda: store.set_delivery(db, d["id"], "committing"))
    except TransientError as exc:
        delay = retry_delay(d["attempts"], d.get("cadence"))
        store.set_delivery(db, d["id"], "pending", str(exc), store.iso(now + dt.timedelta(seconds=delay)))
        report.retry += 1
        report.errors.append(f"{d['subscriber']}: {exc} (retry in {delay:.0f}s)")
        return
    except PermanentError as exc:
        store.set_delivery(db, d["id"], "failed", str(exc))
        report.failed += 1
        report.errors.append(f"{d['subscriber']}: {exc}")
        return
    except Unknown as exc:
        store.set_delivery(db, d["id"], "unknown", str(exc))
        report.unknown += 1
        report.errors.append(f"{d['subscriber']}: {exc}")
        return
    store.set_delivery(db, d["id"], "sent")
    report.sent += 1
    if isinstance(transport, OutboxTransport):
        report.files.append(str(transport.path_for(d["message_id"])))
