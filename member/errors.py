"""Member-domain errors."""

from __future__ import annotations

from scrm.errors import Conflict, NotFound


class MemberNotFound(NotFound):
    """Member not found."""

    code = "member_not_found"


class IdentityConflict(Conflict):
    """This WeChat identity belongs to another member."""

    code = "identity_conflict"
