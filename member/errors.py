"""Member-domain errors."""

from __future__ import annotations

from scrm.errors import Conflict, Forbidden, InvalidInput, NotFound


class MemberNotFound(NotFound):
    """Member not found."""

    code = "member_not_found"


class IdentityConflict(Conflict):
    """This WeChat identity belongs to another member."""

    code = "identity_conflict"


class PhoneTaken(Conflict):
    """This phone number is verified for another WeChat user."""

    code = "phone_taken"


class AppNotUsable(InvalidInput):
    """The appid is not an active app of the kind this login needs."""

    code = "app_not_usable"


class OAuthStateInvalid(InvalidInput):
    """The OAuth state is forged, expired or was used before."""

    code = "oauth_state_invalid"


class RedirectNotAllowed(InvalidInput):
    """The redirect target is not on the allow-list."""

    code = "redirect_not_allowed"


class SnapshotUser(Forbidden):
    """WeChat opened a snapshot page: the identity is virtual and cannot log in."""

    code = "snapshot_user"


class MergeRefused(Conflict):
    """These members cannot be merged or unmerged in their current state."""

    code = "merge_refused"


class FieldDefinitionNotFound(NotFound):
    """Custom field definition not found."""

    code = "field_not_found"


class TagNotFound(NotFound):
    """Tag not found."""

    code = "tag_not_found"


# --- loyalty: points, tiers, coupons, orders ---


class InsufficientPoints(Conflict):
    """The member's available points do not cover this."""

    code = "insufficient_points"


class IdempotencyKeyReused(Conflict):
    """This idempotency key was already used for a different request."""

    code = "idempotency_key_reused"


class EntryNotFound(NotFound):
    """Points entry not found."""

    code = "points_entry_not_found"


class TierNotFound(NotFound):
    """Tier not found."""

    code = "tier_not_found"


class TierConflict(Conflict):
    """Another tier already has this code or rank."""

    code = "tier_conflict"


class CouponTemplateNotFound(NotFound):
    """Coupon template not found."""

    code = "coupon_template_not_found"


class CouponTemplateConflict(Conflict):
    """Another coupon template already has this code."""

    code = "coupon_template_conflict"


class CouponOutOfStock(Conflict):
    """This coupon template has no stock left, or is inactive."""

    code = "coupon_out_of_stock"


class CouponNotFound(NotFound):
    """Coupon not found."""

    code = "coupon_not_found"


class CouponNotRedeemable(Conflict):
    """This coupon was already redeemed, has expired or is not valid yet."""

    code = "coupon_not_redeemable"


class CouponMinimumSpend(InvalidInput):
    """The order does not reach the coupon's minimum spend."""

    code = "coupon_minimum_spend"


class OrderNotFound(NotFound):
    """Order not found."""

    code = "order_not_found"


class OrderConflict(Conflict):
    """An order (or refund) with this external id exists with different content."""

    code = "order_conflict"


class RefundTooLarge(InvalidInput):
    """The refund exceeds what is left of the order."""

    code = "refund_too_large"
