"""Member-domain tables, one module per concern; import models from here."""

from member.models.identity import APP_KINDS, MEMBER_ROLES, Member, WeChatIdentity
from member.models.messaging import MessageConsent, MessageDelivery

__all__ = ["APP_KINDS", "MEMBER_ROLES", "Member", "MessageConsent", "MessageDelivery", "WeChatIdentity"]

# The legacy sub-package's tables register with the member domain's models.
import member.legacy.models  # noqa: F401
