"""The brand's earn and tier rules (one settings row): points per yuan, the refund window, expiry, tier periods."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from member.models import LoyaltySettings
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow

SETTINGS_ID = 1
EDITABLE = ("points_per_yuan", "pending_days", "points_valid_days", "tier_period_days", "tier_grace_days")


def get_settings(session: Session) -> LoyaltySettings:
    """The settings row, created with the defaults on first use."""
    settings = session.get(LoyaltySettings, SETTINGS_ID)
    if settings is not None:
        return settings
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    defaults = {name: LoyaltySettings.__table__.c[name].default.arg for name in EDITABLE}
    session.execute(
        builder(LoyaltySettings).values(id=SETTINGS_ID, **defaults).on_conflict_do_nothing(index_elements=["id"])
    )
    return session.get_one(LoyaltySettings, SETTINGS_ID)


def update_settings(session: Session, *, actor: Actor, **changes: Any) -> LoyaltySettings:
    """Change some rules; audited with before and after."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    settings = get_settings(session)
    before = settings_view(settings)
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "loyalty.settings.update",
        target_type="loyalty_settings",
        target_id=SETTINGS_ID,
        before=before,
        after=settings_view(settings),
    )
    return settings


def settings_view(settings: LoyaltySettings) -> dict[str, int]:
    return {name: getattr(settings, name) for name in EDITABLE}


def order_points(amount_fen: int, *, points_per_yuan: int, multiplier_pct: int) -> int:
    """Points an order of `amount_fen` earns: whole points, rounded down (fen * rate * multiplier% / 10 000)."""
    return amount_fen * points_per_yuan * multiplier_pct // 10_000
