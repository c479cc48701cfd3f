"""Member-domain errors."""

from __future__ import annotations

from scrm.errors import Conflict, Forbidden, InvalidInput, NotFound


class MemberNotFound(NotFound):
    """Member not found."""

    code = "member_not_found"


class IdentityConflict(Conflict):
    """This WeChat identity belongs to another member."""

    code = "identity_conflict"


class PhoneTaken(Conflict):
    """This phone number is verified for another WeChat user."""

    code = "phone_taken"


class AppNotUsable(InvalidInput):
    """The appid is not an active app of the kind this login needs."""

    code = "app_not_usable"


class OAuthStateInvalid(InvalidInput):
    """The OAuth state is forged, expired or was used before."""

    code = "oauth_state_invalid"


class RedirectNotAllowed(InvalidInput):
    """The redirect target is not on the allow-list."""

    code = "redirect_not_allowed"


class SnapshotUser(Forbidden):
    """WeChat opened a snapshot page: the identity is virtual and cannot log in."""

    code = "snapshot_user"


class MergeRefused(Conflict):
    """These members cannot be merged or unmerged in their current state."""

    code = "merge_refused"


class FieldDefinitionNotFound(NotFound):
    """Custom field definition not found."""

    code = "field_not_found"


class TagNotFound(NotFound):
    """Tag not found."""

    code = "tag_not_found"
