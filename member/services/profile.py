"""Member profile, staff-defined custom fields and per-purpose consent. Services flush; the caller commits."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from member.errors import FieldDefinitionNotFound
from member.models import ConsentRecord, CustomFieldDefinition, Member
from member.models.centre import CONSENT_PURPOSES, FIELD_TYPES
from scrm import audit
from scrm.clock import utcnow
from scrm.errors import Conflict, InvalidInput

#: Profile columns a member may change about themselves (everything else is refused by the schema).
PROFILE_FIELDS = ("name", "gender", "birthday", "region", "avatar_url")
CHOICE_TYPES = ("single_choice", "multi_choice")


def list_definitions(session: Session) -> list[CustomFieldDefinition]:
    return list(session.scalars(select(CustomFieldDefinition).order_by(CustomFieldDefinition.id)))


def definitions_version(session: Session) -> tuple[int, str]:
    """Changes whenever a definition is added, changed or removed (the cache key of the built schemas)."""
    count, last_id, last_change = session.execute(
        select(
            func.count(CustomFieldDefinition.id),
            func.max(CustomFieldDefinition.id),
            func.max(func.coalesce(CustomFieldDefinition.updated_at, CustomFieldDefinition.created_at)),
        )
    ).one()
    return int(count or 0), f"{last_id}:{last_change}"


def _definition_snapshot(definition: CustomFieldDefinition) -> dict[str, Any]:
    return {
        "key": definition.key,
        "label": definition.label,
        "field_type": definition.field_type,
        "choices": definition.choices,
        "required": definition.required,
        "member_editable": definition.member_editable,
    }


def _check_choices(field_type: str, choices: list[Any] | None) -> None:
    if field_type not in FIELD_TYPES:
        raise InvalidInput(f"field_type must be one of {', '.join(FIELD_TYPES)}")
    if field_type in CHOICE_TYPES and not choices:
        raise InvalidInput("choice fields need choices", details={"fields": {"choices": ["required"]}})
    if field_type not in CHOICE_TYPES and choices:
        raise InvalidInput("only choice fields take choices", details={"fields": {"choices": ["not allowed"]}})


def create_definition(session: Session, *, actor: audit.Actor, **fields: Any) -> CustomFieldDefinition:
    """Define a custom field.

    Raises:
        Conflict: the key is taken (also by a built-in profile field).
        InvalidInput: choices missing for a choice field, or given for another type.
    """
    key = fields["key"]
    if key in PROFILE_FIELDS or session.scalar(
        select(CustomFieldDefinition.id).where(CustomFieldDefinition.key == key)
    ):
        raise Conflict(f"field key {key!r} is taken", code="field_key_taken")
    _check_choices(fields["field_type"], fields.get("choices"))
    definition = CustomFieldDefinition(**fields)
    session.add(definition)
    session.flush()
    audit.record(
        session,
        actor,
        "member_field.create",
        target_type="member_field",
        target_id=definition.id,
        after=_definition_snapshot(definition),
    )
    return definition


def update_definition(
    session: Session, definition_id: int, *, actor: audit.Actor, **changes: Any
) -> CustomFieldDefinition:
    definition = session.get(CustomFieldDefinition, definition_id)
    if definition is None:
        raise FieldDefinitionNotFound()
    before = _definition_snapshot(definition)
    for name, value in changes.items():
        setattr(definition, name, value)
    _check_choices(definition.field_type, definition.choices)
    definition.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "member_field.update",
        target_type="member_field",
        target_id=definition.id,
        before=before,
        after=_definition_snapshot(definition),
    )
    return definition


def delete_definition(session: Session, definition_id: int, *, actor: audit.Actor) -> None:
    """Remove a definition; members' stored values under its key stay until they next save their profile."""
    definition = session.get(CustomFieldDefinition, definition_id)
    if definition is None:
        raise FieldDefinitionNotFound()
    before = _definition_snapshot(definition)
    session.delete(definition)
    session.flush()
    audit.record(
        session, actor, "member_field.delete", target_type="member_field", target_id=definition_id, before=before
    )


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def update_profile(session: Session, member: Member, changes: dict[str, Any]) -> Member:
    """Apply validated changes: built-in profile fields and `custom_fields` (merged key by key; None removes)."""
    for name in PROFILE_FIELDS:
        if name in changes:
            setattr(member, name, changes[name])
    custom = changes.get("custom_fields")
    if custom:
        merged = dict(member.custom_fields or {})
        for key, value in custom.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = _json_value(value)
        member.custom_fields = merged
    member.last_active_at = utcnow()
    session.flush()
    return member


def _current_consents(session: Session, member_id: int) -> dict[str, ConsentRecord]:
    latest = (
        select(func.max(ConsentRecord.id))
        .where(ConsentRecord.member_id == member_id)
        .group_by(ConsentRecord.purpose)
        .scalar_subquery()
    )
    return {row.purpose: row for row in session.scalars(select(ConsentRecord).where(ConsentRecord.id.in_(latest)))}


def set_consents(session: Session, member_id: int, answers: dict[str, bool], *, policy_version: str) -> None:
    """Record each answer that differs from the current one (same answer, same policy: nothing new, so retries
    are harmless); history is kept."""
    current = _current_consents(session, member_id)
    now = utcnow()
    for purpose, granted in answers.items():
        if purpose not in CONSENT_PURPOSES:
            raise InvalidInput(f"unknown consent purpose {purpose!r}")
        row = current.get(purpose)
        if row is not None and row.granted == granted and row.policy_version == policy_version:
            continue
        session.add(
            ConsentRecord(member_id=member_id, purpose=purpose, granted=granted, policy_version=policy_version, at=now)
        )
    session.flush()
