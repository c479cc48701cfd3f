"""Member-domain tables, one module per concern; import models from here."""

from member.models.centre import (
    ConsentRecord,
    CustomFieldDefinition,
    MemberMerge,
    MemberTag,
    OAuthStateUse,
    PhoneCode,
    Tag,
)
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

__all__ = [
    "APP_KINDS",
    "MEMBER_ROLES",
    "ConsentRecord",
    "Coupon",
    "CouponTemplate",
    "CustomFieldDefinition",
    "LoyaltyAccount",
    "LoyaltySettings",
    "Member",
    "MemberMerge",
    "MemberTag",
    "MessageConsent",
    "MessageDelivery",
    "OAuthStateUse",
    "Order",
    "OrderRefund",
    "PhoneCode",
    "PointsEntry",
    "Tag",
    "Tier",
    "TierChange",
    "WeChatIdentity",
]

# The legacy sub-package's tables register with the member domain's models.
import member.legacy.models  # noqa: F401
