"""Callback jobs: the outbox handler that processes a stored message on the callbacks queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from member import signals as member_signals
from scrm import outbox
from wechat_handlers import services


@outbox.handler(services.PROCESS_INBOX, queue=outbox.QUEUE_CALLBACKS)
def process_inbox(session: Session, payload: dict[str, Any]) -> None:
    """Process one inbox row (safe to run twice: a done row is skipped)."""
    services.process_message(session, int(payload["inbox_id"]))


@member_signals.member_erased.connect
def erase_member_messages(member_id: int, *, session: Session, openids: list[tuple[str, str, str]], **_kw: Any) -> None:
    """Scrub the erased member's callbacks in the same transaction as the erasure."""
    services.erase_member_messages(session, openids)
