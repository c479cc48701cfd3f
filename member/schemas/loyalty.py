"""HTTP schemas of the loyalty routes: points, tiers, coupons, orders and the earn rules."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from member.models.loyalty import COUPON_KINDS, COUPON_STATES, THRESHOLD_KINDS
from scrm.http import PageMetaSchema
from scrm.schemas import StrictSchema

KEY = ma.validate.Regexp(r"^[A-Za-z0-9._:@/-]{1,120}$", error="1-120 letters, digits or ._:@/-")
EXTERNAL_ID = ma.validate.Regexp(r"^[A-Za-z0-9._:@/-]{1,80}$", error="1-80 letters, digits or ._:@/-")
CODE = ma.validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$", error="1-32 letters, digits, _ or -")
MAX_FEN = 10**13
MAX_POINTS = 10**9


# --- points ---


class PointsEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"description": "earn, adjust, spend, reverse or restate"})
    delta = ma.fields.Integer()
    state = ma.fields.String(metadata={"description": "pending, available, expired or reversed"})
    reason = ma.fields.String()
    source = ma.fields.String()
    available_at = ma.fields.String(allow_none=True)
    expires_at = ma.fields.String(allow_none=True)
    created_at = ma.fields.String()


class PointsPageSchema(ma.Schema):
    balance = ma.fields.Integer(metadata={"description": "Spendable points"})
    pending = ma.fields.Integer(metadata={"description": "Points in the refund window"})
    items = ma.fields.List(ma.fields.Nested(PointsEntrySchema))
    page = ma.fields.Nested(PageMetaSchema)


class PointsAdjustmentSchema(StrictSchema):
    points = ma.fields.Integer(
        required=True,
        validate=[
            ma.validate.Range(min=-MAX_POINTS, max=MAX_POINTS),
            ma.validate.NoneOf([0], error="Must not be 0."),
        ],
    )
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=120))
    key = ma.fields.String(required=True, validate=KEY, metadata={"description": "Idempotency key"})
    expires_at = ma.fields.AwareDateTime(metadata={"description": "Credits only: when the points expire"})


class PointsAdjustmentResultSchema(ma.Schema):
    entry = ma.fields.Nested(PointsEntrySchema)
    balance = ma.fields.Integer()


# --- tiers ---


class TierSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    rank = ma.fields.Integer()
    threshold_kind = ma.fields.String()
    threshold = ma.fields.Integer()
    benefits = ma.fields.String(allow_none=True)
    points_multiplier_pct = ma.fields.Integer()
    is_active = ma.fields.Boolean()


class TierCreateSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=CODE)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    rank = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0, max=1000))
    threshold_kind = ma.fields.String(required=True, validate=ma.validate.OneOf(THRESHOLD_KINDS))
    threshold = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0, max=MAX_FEN))
    benefits = ma.fields.String(validate=ma.validate.Length(max=2000))
    points_multiplier_pct = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=0, max=1000))
    is_active = ma.fields.Boolean(load_default=True)


class TierUpdateSchema(StrictSchema):
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=80))
    rank = ma.fields.Integer(validate=ma.validate.Range(min=0, max=1000))
    threshold_kind = ma.fields.String(validate=ma.validate.OneOf(THRESHOLD_KINDS))
    threshold = ma.fields.Integer(validate=ma.validate.Range(min=0, max=MAX_FEN))
    benefits = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=2000))
    points_multiplier_pct = ma.fields.Integer(validate=ma.validate.Range(min=0, max=1000))
    is_active = ma.fields.Boolean()


class LoyaltySettingsSchema(ma.Schema):
    points_per_yuan = ma.fields.Integer()
    pending_days = ma.fields.Integer()
    points_valid_days = ma.fields.Integer()
    tier_period_days = ma.fields.Integer()
    tier_grace_days = ma.fields.Integer()


class LoyaltySettingsUpdateSchema(StrictSchema):
    points_per_yuan = ma.fields.Integer(validate=ma.validate.Range(min=0, max=1000))
    pending_days = ma.fields.Integer(validate=ma.validate.Range(min=0, max=365))
    points_valid_days = ma.fields.Integer(
        validate=ma.validate.Range(min=0, max=3650), metadata={"description": "0: order points never expire"}
    )
    tier_period_days = ma.fields.Integer(validate=ma.validate.Range(min=1, max=3650))
    tier_grace_days = ma.fields.Integer(validate=ma.validate.Range(min=0, max=365))


# --- coupons ---


class CouponTemplateSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    amount_off_fen = ma.fields.Integer(allow_none=True)
    percent_off = ma.fields.Integer(allow_none=True)
    min_spend_fen = ma.fields.Integer()
    valid_from = ma.fields.AwareDateTime(allow_none=True)
    valid_until = ma.fields.AwareDateTime(allow_none=True)
    valid_days = ma.fields.Integer(allow_none=True)
    total_stock = ma.fields.Integer(allow_none=True)
    granted_count = ma.fields.Integer()
    is_active = ma.fields.Boolean()


class _TemplateFields(StrictSchema):
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=80))
    amount_off_fen = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(min=1, max=MAX_FEN))
    percent_off = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(min=1, max=100))
    min_spend_fen = ma.fields.Integer(validate=ma.validate.Range(min=0, max=MAX_FEN))
    valid_from = ma.fields.AwareDateTime(allow_none=True)
    valid_until = ma.fields.AwareDateTime(allow_none=True)
    valid_days = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(min=1, max=3650))
    total_stock = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(min=0, max=10**9))
    is_active = ma.fields.Boolean()


class CouponTemplateCreateSchema(_TemplateFields):
    code = ma.fields.String(required=True, validate=CODE)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(COUPON_KINDS))
    min_spend_fen = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=MAX_FEN))

    @ma.validates_schema
    def check_discount(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["kind"] == "amount" and not data.get("amount_off_fen"):
            raise ma.ValidationError("Required for an amount coupon.", "amount_off_fen")
        if data["kind"] == "amount" and data.get("percent_off") is not None:
            raise ma.ValidationError("Only for a percent coupon.", "percent_off")
        if data["kind"] == "percent" and not data.get("percent_off"):
            raise ma.ValidationError("Required for a percent coupon.", "percent_off")
        if data["kind"] == "percent" and data.get("amount_off_fen") is not None:
            raise ma.ValidationError("Only for an amount coupon.", "amount_off_fen")
        if data.get("valid_until") is None and data.get("valid_days") is None:
            raise ma.ValidationError("Give valid_until or valid_days.", "valid_until")


class CouponTemplateUpdateSchema(_TemplateFields):
    pass


class CouponGrantSchema(StrictSchema):
    member_id = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1))
    key = ma.fields.String(required=True, validate=KEY, metadata={"description": "Idempotency key of the grant"})
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=120))


class CouponSchema(ma.Schema):
    id = ma.fields.Integer()
    template_code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    amount_off_fen = ma.fields.Integer(allow_none=True)
    percent_off = ma.fields.Integer(allow_none=True)
    min_spend_fen = ma.fields.Integer()
    state = ma.fields.String()
    valid_from = ma.fields.String(allow_none=True)
    expires_at = ma.fields.String()
    granted_at = ma.fields.String()
    redeemed_at = ma.fields.String(allow_none=True)


class StaffCouponSchema(CouponSchema):
    member_id = ma.fields.Integer()


class CouponListArgsSchema(ma.Schema):
    state = ma.fields.String(validate=ma.validate.OneOf(COUPON_STATES))


class CouponRedeemSchema(StrictSchema):
    order_amount_fen = ma.fields.Integer(
        validate=ma.validate.Range(min=0, max=MAX_FEN), metadata={"description": "Checked against the minimum spend"}
    )


# --- orders ---


class OrderItemSchema(StrictSchema):
    sku = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    name = ma.fields.String(validate=ma.validate.Length(max=200))
    quantity = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=100_000))
    price_fen = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0, max=MAX_FEN))


class OrderCreateSchema(StrictSchema):
    source = ma.fields.String(required=True, validate=CODE, metadata={"description": "The order system, e.g. shop"})
    external_id = ma.fields.String(required=True, validate=EXTERNAL_ID)
    member_id = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1))
    amount_fen = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=MAX_FEN))
    paid_at = ma.fields.AwareDateTime(required=True)
    items = ma.fields.List(ma.fields.Nested(OrderItemSchema), validate=ma.validate.Length(max=500))


class OrderSchema(ma.Schema):
    id = ma.fields.Integer()
    source = ma.fields.String()
    external_id = ma.fields.String()
    amount_fen = ma.fields.Integer()
    refunded_fen = ma.fields.Integer()
    status = ma.fields.String()
    paid_at = ma.fields.String()
    points_earned = ma.fields.Integer()
    points_reversed = ma.fields.Integer()


class StaffOrderSchema(OrderSchema):
    member_id = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Dict(), allow_none=True)


class RefundCreateSchema(StrictSchema):
    external_id = ma.fields.String(required=True, validate=EXTERNAL_ID)
    amount_fen = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=MAX_FEN))
    refunded_at = ma.fields.AwareDateTime()


class RefundSchema(ma.Schema):
    id = ma.fields.Integer()
    order_id = ma.fields.Integer()
    external_id = ma.fields.String()
    amount_fen = ma.fields.Integer()
    points_reversed = ma.fields.Integer()
    points_shortfall = ma.fields.Integer(metadata={"description": "Points already spent that could not be reversed"})
    refunded_at = ma.fields.String()
