"""Member-domain tables, one module per concern; import models from here."""

from member.models.centre import (
    ConsentRecord,
    CustomFieldDefinition,
    MemberMerge,
    MemberTag,
    OAuthStateUse,
    PhoneCode,
    Tag,
)
from member.models.identity import APP_KINDS, MEMBER_ROLES, Member, WeChatIdentity
from member.models.messaging import MessageConsent, MessageDelivery

__all__ = ["APP_KINDS", "MEMBER_ROLES", "Member", "MessageConsent", "MessageDelivery", "WeChatIdentity"]
__all__ += [
    "ConsentRecord",
    "CustomFieldDefinition",
    "MemberMerge",
    "MemberTag",
    "OAuthStateUse",
    "PhoneCode",
    "Tag",
]

# The legacy sub-package's tables register with the member domain's models.
import member.legacy.models  # noqa: E402, F401
