"""The audit log: every change made by staff (and sensitive reads such as phone reveals) leaves a row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from scrm.logs import request_id_var
from scrm.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user, a member, or the system (jobs)."""

    type: str
    id: int | None = None
    role: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls("system")


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Append an audit row in the caller's transaction (it commits or rolls back with the change)."""
    entry = AuditEntry(
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=before,
        after=after,
        reason=reason,
        request_id=request_id_var.get(),
    )
    session.add(entry)
    session.flush()
    return entry
