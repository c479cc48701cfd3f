"""Registry of member read-model sections that other member concerns and higher packages contribute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

SectionReader = Callable[[Session, int], Any]
Audience = Literal["me", "staff", "export"]


@dataclass(frozen=True, slots=True)
class Section:
    """One named block of a member's data, readable for some audiences."""

    name: str
    me: SectionReader | None = None
    staff: SectionReader | None = None
    export: SectionReader | None = None


_sections: dict[str, Section] = {}


def register(
    name: str,
    *,
    me: SectionReader | None = None,
    staff: SectionReader | None = None,
    export: SectionReader | None = None,
) -> None:
    """Declare a section; the member centre (`me`), the staff 360 view (`staff`) and the PIPL export
    (`export`) each read the sections that have a reader for them. Registering a name twice replaces it,
    so module reloads in tests stay harmless."""
    _sections[name] = Section(name=name, me=me, staff=staff, export=export)


def read(session: Session, member_id: int, audience: Audience) -> dict[str, Any]:
    """Every registered section's data for `audience`, keyed by section name, in registration order."""
    out: dict[str, Any] = {}
    for section in _sections.values():
        reader = getattr(section, audience)
        if reader is not None:
            out[section.name] = reader(session, member_id)
    return out
