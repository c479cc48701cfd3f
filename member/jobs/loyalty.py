"""Loyalty jobs: unlock and expire points, expire coupons, evaluate tiers; each commits its own batches."""

from __future__ import annotations

from datetime import datetime

from member import loyalty_sections  # noqa: F401 - every process that runs jobs also serves the section
from member.services import coupons, ledger, tiers
from scrm.context import ext
from scrm.jobs import PeriodicJob, periodic

POINTS_MAINTENANCE = periodic(
    PeriodicJob(name="member-points-maintenance", func="member.jobs.loyalty.points_maintenance", every_s=900)
)
COUPON_EXPIRY = periodic(
    PeriodicJob(name="member-coupon-expiry", func="member.jobs.loyalty.expire_coupons", every_s=900)
)
TIER_EVALUATION = periodic(
    PeriodicJob(name="member-tier-evaluation", func="member.jobs.loyalty.evaluate_tiers", every_s=3600)
)


def points_maintenance(now: datetime | None = None) -> dict[str, int]:
    """Unlock pending points whose refund window passed, then expire lots past their date (safe to run twice)."""
    db = ext().db
    unlocked = expired = 0
    while True:
        with db.transaction() as session:
            step = ledger.unlock_due(session, now=now)
        unlocked += step
        if not step:
            break
    while True:
        with db.transaction() as session:
            step = ledger.expire_due(session, now=now)
        expired += step
        if not step:
            break
    return {"unlocked_lots": unlocked, "expired_points": expired}


def expire_coupons(now: datetime | None = None) -> dict[str, int]:
    """Mark coupons past their expiry as expired (safe to run twice)."""
    with ext().db.transaction() as session:
        return {"expired_coupons": coupons.expire_due(session, now=now)}


def evaluate_tiers(now: datetime | None = None) -> dict[str, int]:
    """Evaluate every member's tier in batches: upgrades, renewals, downgrades after the grace period."""
    after = 0
    batches = 0
    while True:
        with ext().db.transaction() as session:
            after = tiers.evaluate_all(session, now=now, after_member_id=after)
        batches += 1
        if not after:
            return {"batches": batches}
