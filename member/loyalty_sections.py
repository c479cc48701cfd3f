"""Registers the `loyalty` member section (me, 360 view, export), the staff search filter by tier code and the
receivers that carry loyalty through member merges."""

from __future__ import annotations

from member import sections, selectors
from member.selectors import loyalty
from member.services import loyalty_merge  # noqa: F401 - connects the receivers that move loyalty on merges

sections.register("loyalty", me=loyalty.summary, staff=loyalty.staff_view, export=loyalty.export_view)
selectors.register_search_filter("tier", loyalty.with_tier_code)
