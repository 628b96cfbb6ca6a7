"""Digest emails: what is owed to whom (select), how it looks (render), delivery (send)."""

from .send import SendReport, send_due

__all__ = ["SendReport", "send_due"]
