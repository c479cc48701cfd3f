"""Subscribe-message consent and message delivery reports, as WeChat's events tell them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from member.models.messaging import MessageConsent, MessageDelivery
from member.services.identity import ensure_identity

CONSENT_STATUSES = ("accept", "reject", "ban", "filter")


def record_consent(
    session: Session,
    *,
    appid: str,
    openid: str,
    template_id: str,
    status: str,
    at: datetime,
    popup_scene: int | None = None,
    app_kind: str = "oa",
) -> MessageConsent:
    """Record a user's answer for one template; each `accept` allows one more one-time message."""
    if status not in CONSENT_STATUSES:
        raise ValueError(f"unknown consent status {status!r}")
    identity = ensure_identity(session, appid=appid, openid=openid, app_kind=app_kind, source="oa_follow")
    consent = session.scalar(
        select(MessageConsent)
        .where(
            MessageConsent.appid == appid, MessageConsent.openid == openid, MessageConsent.template_id == template_id
        )
        .with_for_update()
    )
    if consent is None:
        consent = MessageConsent(
            member_id=identity.member_id,
            appid=appid,
            openid=openid,
            template_id=template_id,
            status=status,
            remaining_sends=0,
            created_at=at,
        )
        session.add(consent)
    consent.status = status
    consent.popup_scene = popup_scene
    consent.updated_at = at
    if status == "accept":
        consent.remaining_sends += 1
    else:
        # A rejection, a ban or a filtered template withdraws whatever was granted before.
        consent.remaining_sends = 0
    session.flush()
    return consent


def record_delivery(
    session: Session,
    *,
    appid: str,
    msg_id: str,
    kind: str,
    status: str,
    at: datetime,
    openid: str | None = None,
    template_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> MessageDelivery:
    """Upsert the delivery state of one sent message (template, subscribe or mass send)."""
    delivery = session.scalar(
        select(MessageDelivery)
        .where(MessageDelivery.appid == appid, MessageDelivery.msg_id == msg_id)
        .with_for_update()
    )
    if delivery is None:
        delivery = MessageDelivery(appid=appid, msg_id=msg_id, kind=kind, created_at=at, status=status)
        session.add(delivery)
    delivery.status = status
    delivery.openid = openid or delivery.openid
    delivery.template_id = template_id or delivery.template_id
    delivery.detail = detail
    delivery.updated_at = at
    session.flush()
    return delivery
