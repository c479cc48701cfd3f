"""Member-domain signals; higher packages (referral, influence) connect receivers to them.

Every signal is sent inside the sender's transaction with `session=` among its keyword arguments:
receivers write through that session (flush, never commit), so their changes commit or roll back
with the change that caused them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

wechat_followed = _signals.signal("wechat-followed")
"""A WeChat user followed an official account or scanned one of its QR codes.

Sender: the member id. Kwargs: `session`, `identity` (WeChatIdentity), `scene_str` (the QR scene or None),
`is_new_follow` (True for `subscribe`, False for `SCAN` by a follower), `first_ever` (first follow of
this identity), `at` (event time).
"""

wechat_unfollowed = _signals.signal("wechat-unfollowed")
"""A WeChat user unfollowed an official account. Sender: the member id. Kwargs: `session`, `identity`, `at`."""

member_registered = _signals.signal("member-registered")
"""A member row was created. Sender: the member id. Kwargs: `session`, `source`."""

phone_verified = _signals.signal("phone-verified")
"""A member's phone number was verified (WeChat phone API or SMS code).

Sender: the member id. Kwargs: `session`, `phone` (E.164), `method` ("wechat" | "sms"), `at`.
"""

members_merged = _signals.signal("members-merged")
"""Member `source_id` was merged into the sender (the survivor). Kwargs: `session`, `source_id`."""

members_unmerged = _signals.signal("members-unmerged")
"""A merge was undone: member `source_id` is its own member again. Sender: the survivor id. Kwargs: `session`,
`source_id`, `merge_id`, `moved` (what went back: identity ids, member-tag ids, phone/unionid flags)."""

member_erased = _signals.signal("member-erased")
"""A member's personal data was erased (PIPL). Sender: the member id. Kwargs: `session`, `openids` (list of
(appid, openid, pseudonym) triples the member held), `at`. Receivers scrub or pseudonymise their own rows."""
order_paid = _signals.signal("order-paid")
"""A paid order was recorded (sent once, on first recording; replays are silent).

Sender: the member id. Kwargs: `session`, `order` (Order), `points` (points the order earned, maybe pending).
"""

order_refunded = _signals.signal("order-refunded")
"""An order was refunded in full or in part (sent once per refund).

Sender: the member id. Kwargs: `session`, `order` (Order, `refunded_fen` already updated), `refund` (OrderRefund),
`full` (True once nothing of the order is left).
"""
