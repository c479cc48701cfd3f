"""Registers the `loyalty` member section (points, tier, coupons, orders) for the member centre, 360 view and export."""

from __future__ import annotations

from member import sections
from member.selectors import loyalty

sections.register("loyalty", me=loyalty.summary, staff=loyalty.staff_view, export=loyalty.export_view)
