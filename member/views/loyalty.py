"""Loyalty routes: the member's points, coupons and orders, and the staff API for rules, tiers, coupons and orders."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from member import loyalty_sections  # noqa: F401 - the loyalty section exists wherever these routes do
from member.errors import MemberNotFound
from member.models import Coupon, CouponTemplate, Member
from member.schemas.loyalty import (
    CouponGrantSchema,
    CouponListArgsSchema,
    CouponRedeemSchema,
    CouponSchema,
    CouponTemplateCreateSchema,
    CouponTemplateSchema,
    CouponTemplateUpdateSchema,
    LoyaltySettingsSchema,
    LoyaltySettingsUpdateSchema,
    OrderCreateSchema,
    OrderSchema,
    PointsAdjustmentResultSchema,
    PointsAdjustmentSchema,
    PointsPageSchema,
    RefundCreateSchema,
    RefundSchema,
    StaffCouponSchema,
    StaffOrderSchema,
    TierCreateSchema,
    TierSchema,
    TierUpdateSchema,
)
from member.selectors import loyalty as reads
from member.services import coupons, ledger, loyalty_rules, orders, tiers
from member.views.centre import current_member
from scrm.context import db_session
from scrm.db import paginate
from scrm.guards import staff_actor
from scrm.http import PageArgsSchema, member_route, page_schema, staff_route

member_loyalty_bp = Blueprint(
    "member_loyalty",
    __name__,
    url_prefix="/api/v1/member",
    description="The member's points, coupons and orders (member token)",
)
staff_loyalty_bp = Blueprint(
    "staff_loyalty",
    __name__,
    url_prefix="/api/v1/staff",
    description="Loyalty administration: earn rules, tiers, coupons, orders, point adjustments",
)

#: Loyalty administration is admin-only; the order system logs in as an admin staff user (no dedicated role yet).
ADMIN = "admin"


def _member_id() -> int:
    # The token's member followed through merges, as the member centre does: a merged member's points,
    # coupons and orders are the survivor's.
    return current_member(db_session()).id


def _staff_source() -> str:
    actor = staff_actor()
    return f"staff:{actor.id}"


# --- member routes ---


@member_loyalty_bp.route("/points")
class MemberPointsView(MethodView):
    @member_route(member_loyalty_bp, args=PageArgsSchema, location="query", schema=PointsPageSchema)
    def get(self, page: dict[str, Any]) -> Any:
        """The member's points balance and ledger, newest first."""
        return _points_page(db_session(), _member_id(), page)


@member_loyalty_bp.route("/coupons")
class MemberCouponsView(MethodView):
    @member_loyalty_bp.arguments(CouponListArgsSchema, location="query", as_kwargs=True)
    @member_route(member_loyalty_bp, args=PageArgsSchema, location="query", schema=page_schema(CouponSchema))
    def get(self, page: dict[str, Any], state: str | None = None) -> Any:
        """The member's coupons, newest first (optionally one state)."""
        session = db_session()
        items, total = paginate(session, reads.coupons_query(_member_id(), state=state), **page)
        return {"items": reads.coupon_views(session, items), "page": {**page, "total": total}}


@member_loyalty_bp.route("/coupons/<int:coupon_id>/redeem")
class MemberCouponRedeemView(MethodView):
    @member_route(
        member_loyalty_bp,
        args=CouponRedeemSchema,
        schema=CouponSchema,
        errors={404: "No such coupon of this member", 409: "Already redeemed, expired or not valid yet"},
    )
    def post(self, data: dict[str, Any], coupon_id: int) -> Any:
        """Redeem one of the member's coupons (once)."""
        session = db_session()
        coupon = coupons.redeem(
            session,
            coupon_id=coupon_id,
            member_id=_member_id(),
            redeemed_by="member",
            order_amount_fen=data.get("order_amount_fen"),
        )
        session.commit()
        return _coupon_out(coupon)


@member_loyalty_bp.route("/orders")
class MemberOrdersView(MethodView):
    @member_route(member_loyalty_bp, args=PageArgsSchema, location="query", schema=page_schema(OrderSchema))
    def get(self, page: dict[str, Any]) -> Any:
        """The member's orders, latest paid first."""
        items, total = paginate(db_session(), reads.orders_query(_member_id()), **page)
        return {"items": [reads.order_view(order) for order in items], "page": {**page, "total": total}}


def _points_page(session: Any, member_id: int, page: dict[str, Any]) -> dict[str, Any]:
    entries, total = paginate(session, reads.points_query(member_id), **page)
    account = reads.account(session, member_id)
    return {
        "balance": account.points_balance if account else 0,
        "pending": account.points_pending if account else 0,
        "items": [reads.entry_view(entry) for entry in entries],
        "page": {**page, "total": total},
    }


def _coupon_out(coupon: Coupon) -> dict[str, Any]:
    template = db_session().get_one(CouponTemplate, coupon.template_id)
    return {**reads.coupon_view(coupon, template), "member_id": coupon.member_id}


# --- staff: rules and tiers ---


@staff_loyalty_bp.route("/loyalty/settings")
class LoyaltySettingsView(MethodView):
    @staff_route(staff_loyalty_bp, ADMIN, schema=LoyaltySettingsSchema)
    def get(self) -> Any:
        """The earn and tier rules."""
        session = db_session()
        settings = loyalty_rules.get_settings(session)
        session.commit()
        return loyalty_rules.settings_view(settings)

    @staff_route(staff_loyalty_bp, ADMIN, args=LoyaltySettingsUpdateSchema, schema=LoyaltySettingsSchema)
    def patch(self, data: dict[str, Any]) -> Any:
        """Change the earn and tier rules (admin, audited)."""
        session = db_session()
        settings = loyalty_rules.update_settings(session, actor=staff_actor(), **data)
        session.commit()
        return loyalty_rules.settings_view(settings)


@staff_loyalty_bp.route("/tiers")
class TiersView(MethodView):
    @staff_route(staff_loyalty_bp, ADMIN, schema=TierSchema(many=True))
    def get(self) -> Any:
        """Every tier, lowest rank first."""
        return list(db_session().scalars(reads.tiers_query()))

    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=TierCreateSchema,
        status=201,
        schema=TierSchema,
        errors={409: "Code or rank taken"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Define a tier (admin, audited)."""
        session = db_session()
        tier = tiers.create_tier(session, actor=staff_actor(), **data)
        session.commit()
        return tier


@staff_loyalty_bp.route("/tiers/<int:tier_id>")
class TierView(MethodView):
    @staff_route(staff_loyalty_bp, ADMIN, args=TierUpdateSchema, schema=TierSchema, errors={404: "No such tier"})
    def patch(self, data: dict[str, Any], tier_id: int) -> Any:
        """Change a tier; deactivate it with is_active=false (admin, audited)."""
        session = db_session()
        tier = tiers.update_tier(session, tier_id, actor=staff_actor(), **data)
        session.commit()
        return tier


# --- staff: coupons ---


@staff_loyalty_bp.route("/coupon-templates")
class CouponTemplatesView(MethodView):
    @staff_route(
        staff_loyalty_bp, ADMIN, args=PageArgsSchema, location="query", schema=page_schema(CouponTemplateSchema)
    )
    def get(self, page: dict[str, Any]) -> Any:
        """Coupon templates, oldest first."""
        items, total = paginate(db_session(), reads.templates_query(), **page)
        return {"items": items, "page": {**page, "total": total}}

    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=CouponTemplateCreateSchema,
        status=201,
        schema=CouponTemplateSchema,
        errors={409: "Code taken"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Create a coupon template (admin, audited)."""
        session = db_session()
        template = coupons.create_template(session, actor=staff_actor(), **data)
        session.commit()
        return template


@staff_loyalty_bp.route("/coupon-templates/<int:template_id>")
class CouponTemplateView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=CouponTemplateUpdateSchema,
        schema=CouponTemplateSchema,
        errors={404: "No such template"},
    )
    def patch(self, data: dict[str, Any], template_id: int) -> Any:
        """Change a coupon template (admin, audited)."""
        session = db_session()
        template = coupons.update_template(session, template_id, actor=staff_actor(), **data)
        session.commit()
        return template


@staff_loyalty_bp.route("/coupon-templates/<int:template_id>/grants")
class CouponGrantsView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=CouponGrantSchema,
        status=201,
        schema=StaffCouponSchema,
        replay="Replay of a grant key",
        errors={409: "Out of stock, or the key was used for another grant"},
    )
    def post(self, data: dict[str, Any], template_id: int) -> Any:
        """Grant a coupon to a member, idempotent on `key` (admin, audited)."""
        session = db_session()
        coupon, created = coupons.grant(
            session,
            template_id=template_id,
            member_id=data["member_id"],
            key=f"staff:{data['key']}",
            reason=data["reason"],
            source=_staff_source(),
            actor=staff_actor(),
        )
        session.commit()
        return _coupon_out(coupon), 201 if created else 200


@staff_loyalty_bp.route("/coupons/<int:coupon_id>/redeem")
class StaffCouponRedeemView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=CouponRedeemSchema,
        schema=StaffCouponSchema,
        errors={404: "No such coupon", 409: "Already redeemed, expired or not valid yet"},
    )
    def post(self, data: dict[str, Any], coupon_id: int) -> Any:
        """Redeem a member's coupon at the counter (admin, audited)."""
        session = db_session()
        coupon = coupons.redeem(
            session,
            coupon_id=coupon_id,
            member_id=None,
            redeemed_by=_staff_source(),
            order_amount_fen=data.get("order_amount_fen"),
            actor=staff_actor(),
        )
        session.commit()
        return _coupon_out(coupon)


# --- staff: orders and points ---


@staff_loyalty_bp.route("/orders")
class StaffOrdersView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=OrderCreateSchema,
        status=201,
        schema=StaffOrderSchema,
        replay="Replay of the same order",
        errors={409: "Same (source, external_id) with a different body"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Record a paid order from the brand's order system; earns points; idempotent on (source, external_id)."""
        session = db_session()
        order, created = orders.place_order(session, actor=staff_actor(), **data)
        session.commit()
        return _order_out(order), 201 if created else 200


@staff_loyalty_bp.route("/orders/<int:order_id>/refunds")
class StaffOrderRefundsView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=RefundCreateSchema,
        status=201,
        schema=RefundSchema,
        replay="Replay of the same refund",
        errors={404: "No such order", 409: "Same refund external_id with another amount"},
    )
    def post(self, data: dict[str, Any], order_id: int) -> Any:
        """Refund part or all of an order, reversing its points in proportion; idempotent on external_id."""
        session = db_session()
        refund, created = orders.refund_order(session, order_id=order_id, actor=staff_actor(), **data)
        session.commit()
        return {**reads.refund_view(refund), "order_id": refund.order_id}, 201 if created else 200


@staff_loyalty_bp.route("/members/<int:member_id>/points")
class StaffMemberPointsView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        "analyst",
        "auditor",
        args=PageArgsSchema,
        location="query",
        schema=PointsPageSchema,
        errors={404: "No such member"},
    )
    def get(self, page: dict[str, Any], member_id: int) -> Any:
        """A member's whole points ledger with the balance, newest first (admin, analyst, auditor)."""
        session = db_session()
        if session.get(Member, member_id) is None:
            raise MemberNotFound()
        return _points_page(session, member_id, page)


@staff_loyalty_bp.route("/members/<int:member_id>/points/adjustments")
class PointsAdjustmentsView(MethodView):
    @staff_route(
        staff_loyalty_bp,
        ADMIN,
        args=PointsAdjustmentSchema,
        status=201,
        schema=PointsAdjustmentResultSchema,
        errors={404: "No such member", 409: "Not enough points, or the key was used for another request"},
    )
    def post(self, data: dict[str, Any], member_id: int) -> Any:
        """Credit or debit a member's points with a reason (admin, audited); idempotent on `key`."""
        session = db_session()
        if session.get(Member, member_id) is None:
            raise MemberNotFound()
        entry = ledger.adjust(
            session,
            member_id=member_id,
            points=data["points"],
            key=f"staff:{data['key']}",
            reason=data["reason"],
            actor=staff_actor(),
            expires_at=data.get("expires_at"),
        )
        session.commit()
        return {"entry": reads.entry_view(entry), "balance": ledger.balance(session, member_id)}


def _order_out(order: Any) -> dict[str, Any]:
    return {**reads.order_view(order), "member_id": order.member_id, "items": order.items}
