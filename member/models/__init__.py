"""Member-domain tables, one module per concern; import models from here."""

from member.models.identity import APP_KINDS, MEMBER_ROLES, Member, WeChatIdentity
from member.models.loyalty import (
    Coupon,
    CouponTemplate,
    LoyaltyAccount,
    LoyaltySettings,
    Order,
    OrderRefund,
    PointsEntry,
    Tier,
    TierChange,
)
from member.models.messaging import MessageConsent, MessageDelivery

__all__ = ["APP_KINDS", "MEMBER_ROLES", "Member", "MessageConsent", "MessageDelivery", "WeChatIdentity"]
__all__ += [
    "Coupon",
    "CouponTemplate",
    "LoyaltyAccount",
    "LoyaltySettings",
    "Order",
    "OrderRefund",
    "PointsEntry",
    "Tier",
    "TierChange",
]
