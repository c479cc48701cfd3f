"""When a verified phone may bind a legacy record at once, and when the number may have been recycled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from member.legacy.models import LegacyMember


@dataclass(frozen=True)
class BindPolicy:
    """R9: a dormant or asset-holding legacy record waits for a second check, because numbers are recycled."""

    #: A record with no activity for longer than this is dormant.
    dormant_days: int = 180
    #: A record holding at least this many points holds assets worth a second check.
    asset_check_points: int = 5000

    @classmethod
    def from_config(cls, config: Any) -> BindPolicy:
        """The policy of a `scrm.config.Config` (SCRM_LEGACY_DORMANT_DAYS, SCRM_LEGACY_ASSET_CHECK_POINTS)."""
        return cls(dormant_days=config.legacy_dormant_days, asset_check_points=config.legacy_asset_check_points)

    def dormant_before(self, at: datetime) -> datetime:
        return at - timedelta(days=self.dormant_days)

    def second_check_reasons(self, record: LegacyMember, at: datetime) -> list[str]:
        reasons: list[str] = []
        last_seen = record.last_active_at or record.joined_at
        if last_seen is not None and last_seen < self.dormant_before(at):
            reasons.append("dormant")
        if record.points >= self.asset_check_points:
            reasons.append("assets")
        return reasons


DEFAULT_POLICY = BindPolicy()
