"""Coupons: staff templates, idempotent grants against optional stock, single-use redemption, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from member.errors import (
    CouponMinimumSpend,
    CouponNotFound,
    CouponNotRedeemable,
    CouponOutOfStock,
    CouponTemplateConflict,
    CouponTemplateNotFound,
    IdempotencyKeyReused,
    MemberNotFound,
)
from member.models import Coupon, CouponTemplate, Member
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.errors import InvalidInput

TEMPLATE_FIELDS = (
    "code",
    "name",
    "kind",
    "amount_off_fen",
    "percent_off",
    "min_spend_fen",
    "valid_from",
    "valid_until",
    "valid_days",
    "total_stock",
    "is_active",
)


def create_template(session: Session, *, actor: Actor, **fields: Any) -> CouponTemplate:
    template = CouponTemplate(**{name: fields[name] for name in TEMPLATE_FIELDS if name in fields})
    _check_template(template)
    _save(session, template)
    audit.record(
        session,
        actor,
        "coupon_template.create",
        target_type="coupon_template",
        target_id=template.id,
        after=template_view(template),
    )
    return template


def update_template(session: Session, template_id: int, *, actor: Actor, **changes: Any) -> CouponTemplate:
    template = session.get(CouponTemplate, template_id, with_for_update=True)
    if template is None:
        raise CouponTemplateNotFound()
    before = template_view(template)
    for name in TEMPLATE_FIELDS:
        if name in changes:
            setattr(template, name, changes[name])
    _check_template(template)
    if template.total_stock is not None and template.total_stock < template.granted_count:
        raise InvalidInput(
            "total_stock is below the coupons already granted",
            details={"fields": {"total_stock": [f"Must be at least {template.granted_count}."]}},
        )
    template.updated_at = utcnow()
    _save(session, template)
    audit.record(
        session,
        actor,
        "coupon_template.update",
        target_type="coupon_template",
        target_id=template.id,
        before=before,
        after=template_view(template),
    )
    return template


def _check_template(template: CouponTemplate) -> None:
    # The HTTP schema checks single bodies; this checks the row a PATCH leaves behind.
    fields: dict[str, list[str]] = {}
    if template.kind == "amount" and (template.amount_off_fen is None or template.percent_off is not None):
        fields["amount_off_fen"] = ["An amount coupon needs amount_off_fen and no percent_off."]
    if template.kind == "percent" and (template.percent_off is None or template.amount_off_fen is not None):
        fields["percent_off"] = ["A percent coupon needs percent_off and no amount_off_fen."]
    if template.valid_until is None and template.valid_days is None:
        fields["valid_until"] = ["Give valid_until or valid_days."]
    if template.valid_from and template.valid_until and template.valid_until <= template.valid_from:
        fields["valid_until"] = ["Must be after valid_from."]
    if fields:
        raise InvalidInput("the coupon template is not consistent", details={"fields": fields})


def _save(session: Session, template: CouponTemplate) -> None:
    try:
        with session.begin_nested():
            session.add(template)
            session.flush()
    except IntegrityError:
        raise CouponTemplateConflict() from None


def template_view(template: CouponTemplate) -> dict[str, Any]:
    view = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    for name in ("valid_from", "valid_until"):
        view[name] = view[name].isoformat() if view[name] else None
    return view


def grant(
    session: Session,
    *,
    template_id: int,
    member_id: int,
    key: str,
    reason: str,
    source: str,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> tuple[Coupon, bool]:
    """Grant a coupon of `template_id`; a replay of `key` returns the first coupon. Returns (coupon, created).

    Stock is taken with one conditional UPDATE, so concurrent grants never exceed `total_stock`.
    """
    now = now or utcnow()
    existing = session.scalar(select(Coupon).where(Coupon.key == key))
    if existing is not None:
        if existing.member_id != member_id or existing.template_id != template_id:
            raise IdempotencyKeyReused(details={"key": key})
        return existing, False
    template = session.get(CouponTemplate, template_id)
    if template is None:
        raise CouponTemplateNotFound()
    if session.get(Member, member_id) is None:
        raise MemberNotFound()
    expires_at = _expiry(template, now)
    if expires_at <= now:
        raise CouponOutOfStock("this coupon template's validity has ended", code="coupon_template_ended")
    try:
        with session.begin_nested():
            taken = session.execute(
                update(CouponTemplate)
                .where(
                    CouponTemplate.id == template_id,
                    CouponTemplate.is_active.is_(True),
                    (CouponTemplate.total_stock.is_(None))
                    | (CouponTemplate.granted_count < CouponTemplate.total_stock),
                )
                .values(granted_count=CouponTemplate.granted_count + 1)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:
                raise CouponOutOfStock()
            coupon = Coupon(
                template_id=template_id,
                member_id=member_id,
                key=key,
                state="available",
                reason=reason,
                source=source,
                valid_from=template.valid_from,
                expires_at=expires_at,
                granted_at=now,
            )
            session.add(coupon)
            session.flush()
    except IntegrityError:
        # A concurrent grant with the same key won; the savepoint gave the stock back.
        existing = session.scalar(select(Coupon).where(Coupon.key == key))
        if existing is None or existing.member_id != member_id or existing.template_id != template_id:
            raise IdempotencyKeyReused(details={"key": key}) from None
        return existing, False
    session.refresh(template, ["granted_count"])
    if actor is not None:
        audit.record(
            session,
            actor,
            "coupon.grant",
            target_type="coupon",
            target_id=coupon.id,
            after={"member_id": member_id, "template_id": template_id, "key": key},
            reason=reason,
        )
    return coupon, True


def _expiry(template: CouponTemplate, now: datetime) -> datetime:
    candidates = []
    if template.valid_until is not None:
        candidates.append(template.valid_until)
    if template.valid_days is not None:
        candidates.append(now + timedelta(days=template.valid_days))
    return min(candidates)


def redeem(
    session: Session,
    *,
    coupon_id: int,
    member_id: int | None,
    redeemed_by: str,
    order_amount_fen: int | None = None,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> Coupon:
    """Redeem a coupon once. `member_id` (member routes) limits it to that member's coupons: others are a 404.

    One conditional UPDATE (`WHERE state = 'available'`) decides: of concurrent redemptions exactly one
    changes the row, the others find it redeemed and get a 409.
    """
    now = now or utcnow()
    coupon = session.get(Coupon, coupon_id)
    if coupon is None or (member_id is not None and coupon.member_id != member_id):
        raise CouponNotFound()
    template = session.get_one(CouponTemplate, coupon.template_id)
    if order_amount_fen is not None and order_amount_fen < template.min_spend_fen:
        raise CouponMinimumSpend(details={"min_spend_fen": template.min_spend_fen})
    changed = session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon_id,
            Coupon.state == "available",
            Coupon.expires_at > now,
            (Coupon.valid_from.is_(None)) | (Coupon.valid_from <= now),
        )
        .values(state="redeemed", redeemed_at=now, redeemed_by=redeemed_by)
        .execution_options(synchronize_session=False)
    )
    session.refresh(coupon)
    if changed.rowcount != 1:
        raise CouponNotRedeemable(details={"state": coupon.state})
    if actor is not None:
        audit.record(
            session,
            actor,
            "coupon.redeem",
            target_type="coupon",
            target_id=coupon.id,
            before={"state": "available"},
            after={"state": "redeemed", "order_amount_fen": order_amount_fen},
        )
    return coupon


def expire_due(session: Session, *, now: datetime | None = None) -> int:
    """Mark available coupons past their expiry as expired; returns how many. Safe to run twice."""
    now = now or utcnow()
    result = session.execute(
        update(Coupon)
        .where(Coupon.state == "available", Coupon.expires_at <= now)
        .values(state="expired")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def discount_fen(template: CouponTemplate, order_amount_fen: int) -> int:
    """What the coupon takes off an order of `order_amount_fen` (never more than the order)."""
    if template.kind == "amount":
        return min(order_amount_fen, template.amount_off_fen or 0)
    return order_amount_fen * (template.percent_off or 0) // 100
