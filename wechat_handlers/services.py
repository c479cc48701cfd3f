"""Callback writes: store a verified message in the inbox (once), process it, manage auto-reply rules."""

from __future__ import annotations

import functools
import logging
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scrm import audit, outbox
from scrm.clock import utcnow
from scrm.db import Database
from scrm.errors import InvalidInput, NotFound
from wechat_handlers.handlers import HandlerContext, dispatcher
from wechat_handlers.models import INBOX_DONE, INBOX_PENDING, REPLY_TYPES, RULE_TRIGGERS, AutoReplyRule, InboxMessage
from wechat_handlers.parsing import CallbackMessage, message_from_fields, parse_callback_xml

log = logging.getLogger(__name__)

PROCESS_INBOX = "wechat.process_inbox"


def store_message(
    session: Session,
    *,
    appid: str,
    message: CallbackMessage,
    replay_key: str | None = None,
    body_digest: str | None = None,
) -> int | None:
    """Insert the message into the inbox and queue its processing, in the caller's transaction.

    The row is refused (None) when the message is already stored or when its signed query was already used;
    `selectors.replayed_with_another_body` then tells a WeChat retry from a replay. On PostgreSQL one prebuilt
    statement writes the inbox row and, only if that row is new, its outbox row.

    Args:
        replay_key: ``pipeline.replay_digest`` of the request's signed query, when it came over HTTP.
        body_digest: ``pipeline.body_digest`` of the raw request body.

    Returns:
        The inbox id, or None when nothing was stored: nothing is queued.
    """
    params = _store_params(appid, message, replay_key, body_digest)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        inbox_id = session.execute(_store_statement(), params).scalar_one_or_none()
        if inbox_id is not None:
            outbox.note_emitted(session, PROCESS_INBOX)
        return inbox_id
    # Without a conflict target: either unique key (message or signed query) already taken means "do nothing".
    stmt: Any = sqlite.insert(_INBOX).on_conflict_do_nothing() if dialect == "sqlite" else insert(_INBOX)
    inbox_id = session.execute(stmt.values(params).returning(_INBOX.c.id)).scalar_one_or_none()
    if inbox_id is not None:
        outbox.emit(session, PROCESS_INBOX, {"inbox_id": inbox_id})
    return inbox_id


def store_message_committed(
    db: Database, *, appid: str, message: CallbackMessage, replay_key: str, body_digest: str
) -> int | None:
    """`store_message` as one autocommitted statement (PostgreSQL, ``db.autocommit_writes``): the hot path.

    The callback's only write is this one statement, so it is its own transaction: the inbox row and its outbox
    row are committed when this returns, without a session, BEGIN or COMMIT. The caller tells the relay
    (``runner.notify([outbox.queue_of(PROCESS_INBOX)])``) when an id comes back.

    Returns:
        The inbox id, or None when nothing was stored (already stored, or the signed query already used).
    """
    return db.execute_autocommit(_store_statement(), _store_params(appid, message, replay_key, body_digest))


def _store_params(appid: str, message: CallbackMessage, replay_key: str | None, body_digest: str | None) -> dict:
    return {
        "appid": appid,
        "dedup_key": message.dedup_key,
        "openid": message.from_user[:64],
        "msg_type": message.msg_type[:32],
        "event": (message.event or None) and message.event[:64],
        "event_key": (message.event_key or None) and message.event_key[:400],
        "create_time": message.create_time,
        "raw_xml": message.raw_xml,
        "replay_key": replay_key,
        "body_digest": body_digest,
        "status": INBOX_PENDING,
        "received_at": utcnow(),
    }


_INBOX = InboxMessage.__table__
_STORED_COLUMNS = (
    "appid",
    "dedup_key",
    "openid",
    "msg_type",
    "event",
    "event_key",
    "create_time",
    "raw_xml",
    "replay_key",
    "body_digest",
    "status",
    "received_at",
)


@functools.cache
def _store_statement() -> Any:
    # Built once (the handler registry must be loaded first): the inbox INSERT … ON CONFLICT DO NOTHING (on either
    # unique key) as a CTE, and the outbox row selected from it, so a duplicate or a replay inserts nothing at all.
    values = {name: bindparam(name, type_=_INBOX.c[name].type) for name in _STORED_COLUMNS}
    new_inbox = (
        postgresql.insert(_INBOX).values(values).on_conflict_do_nothing().returning(_INBOX.c.id).cte("new_inbox")
    )
    return outbox.emit_for_each(PROCESS_INBOX, new_inbox, payload_key="inbox_id", at=values["received_at"])


def process_message(session: Session, inbox_id: int) -> str | None:
    """Run the handler of a stored message once; a second run of a done message does nothing.

    Returns:
        What the handler did (also kept on the row), or None when the row was already done or is gone.
    """
    row = session.scalar(select(InboxMessage).where(InboxMessage.id == inbox_id).with_for_update())
    if row is None or row.status == INBOX_DONE:
        return None
    message = message_from_fields(parse_callback_xml(row.raw_xml), raw_xml=row.raw_xml)
    outcome = dispatcher.dispatch(message, HandlerContext(session=session, appid=row.appid))
    row.status = INBOX_DONE
    row.handler = (outcome or "none")[:64]
    row.handled_at = utcnow()
    session.flush()
    return outcome


def rule_snapshot(rule: AutoReplyRule) -> dict[str, Any]:
    return {
        "appid": rule.appid,
        "trigger": rule.trigger,
        "pattern": rule.pattern,
        "reply_type": rule.reply_type,
        "reply": rule.reply,
        "priority": rule.priority,
        "is_active": rule.is_active,
    }


def _check_rule(trigger: str, pattern: str | None, reply_type: str, reply: dict[str, Any]) -> None:
    fields: dict[str, list[str]] = {}
    if trigger not in RULE_TRIGGERS:
        fields["trigger"] = [f"must be one of {', '.join(RULE_TRIGGERS)}"]
    if trigger in ("keyword_exact", "keyword_contains", "scan", "click") and not (pattern or "").strip():
        fields["pattern"] = [f"a {trigger} rule needs a pattern"]
    if reply_type not in REPLY_TYPES:
        fields["reply_type"] = [f"must be one of {', '.join(REPLY_TYPES)}"]
    elif reply_type == "text" and not str(reply.get("content") or "").strip():
        fields["reply"] = ["a text reply needs content"]
    elif reply_type == "image" and not str(reply.get("media_id") or "").strip():
        fields["reply"] = ["an image reply needs media_id"]
    elif reply_type == "news" and not (isinstance(reply.get("articles"), list) and 1 <= len(reply["articles"]) <= 8):
        fields["reply"] = ["a news reply needs 1 to 8 articles"]
    if fields:
        raise InvalidInput("invalid auto-reply rule", details={"fields": fields})


def create_rule(
    session: Session,
    *,
    actor: audit.Actor,
    trigger: str,
    reply_type: str,
    reply: dict[str, Any],
    appid: str | None = None,
    pattern: str | None = None,
    priority: int = 100,
    is_active: bool = True,
) -> AutoReplyRule:
    """Create an auto-reply rule; audited."""
    _check_rule(trigger, pattern, reply_type, reply)
    rule = AutoReplyRule(
        appid=appid,
        trigger=trigger,
        pattern=pattern,
        reply_type=reply_type,
        reply=reply,
        priority=priority,
        is_active=is_active,
    )
    session.add(rule)
    session.flush()
    audit.record(
        session,
        actor,
        "auto_reply_rule.create",
        target_type="auto_reply_rule",
        target_id=rule.id,
        after=rule_snapshot(rule),
    )
    return rule


def update_rule(session: Session, rule_id: int, *, actor: audit.Actor, **changes: Any) -> AutoReplyRule:
    """Change an auto-reply rule; audited with before and after."""
    rule = session.get(AutoReplyRule, rule_id, with_for_update=True)
    if rule is None:
        raise NotFound("auto-reply rule not found")
    before = rule_snapshot(rule)
    for name, value in changes.items():
        setattr(rule, name, value)
    _check_rule(rule.trigger, rule.pattern, rule.reply_type, rule.reply)
    rule.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "auto_reply_rule.update",
        target_type="auto_reply_rule",
        target_id=rule.id,
        before=before,
        after=rule_snapshot(rule),
    )
    return rule


def delete_rule(session: Session, rule_id: int, *, actor: audit.Actor) -> None:
    rule = session.get(AutoReplyRule, rule_id, with_for_update=True)
    if rule is None:
        raise NotFound("auto-reply rule not found")
    before = rule_snapshot(rule)
    session.delete(rule)
    session.flush()
    audit.record(
        session, actor, "auto_reply_rule.delete", target_type="auto_reply_rule", target_id=rule_id, before=before
    )


def record_menu_published(
    session: Session, *, appid: str, menu: dict[str, Any], previous: dict[str, Any] | None, actor: audit.Actor
) -> None:
    """Audit a menu publication (the menu itself lives at WeChat)."""
    audit.record(
        session, actor, "wechat_menu.publish", target_type="wechat_app", target_id=appid, before=previous, after=menu
    )


ERASED_XML = "<xml><Erased>1</Erased></xml>"


def erase_member_messages(session: Session, openids: list[tuple[str, str, str]]) -> int:
    """PIPL erasure of a member's callbacks: each (appid, openid, pseudonym) gets its openid replaced in the inbox
    and its raw XML (which holds what the user wrote) dropped; returns the rows changed."""
    changed = 0
    for appid, openid, pseudonym in openids:
        result = session.execute(
            update(InboxMessage)
            .where(InboxMessage.appid == appid, InboxMessage.openid == openid)
            .values(
                openid=pseudonym,
                dedup_key=func.replace(InboxMessage.dedup_key, openid, pseudonym),
                raw_xml=ERASED_XML,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        changed += int(result.rowcount or 0)
    return changed
