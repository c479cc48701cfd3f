"""Registers the `loyalty` member section (me, 360 view, export) and the staff search filter by tier code."""

from __future__ import annotations

from member import sections, selectors
from member.selectors import loyalty

sections.register("loyalty", me=loyalty.summary, staff=loyalty.staff_view, export=loyalty.export_view)
selectors.register_search_filter("tier", loyalty.with_tier_code)
