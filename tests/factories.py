"""factory_boy factories; they flush into the test's session (never commit), which the test's rollback undoes."""

from __future__ import annotations

import factory
from factory.alchemy import SQLAlchemyModelFactory

from member.models import Member, WeChatIdentity
from scrm.auth import hash_password
from scrm.models import StaffUser


class BaseFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


def bind_factories(session) -> None:
    """Point every factory at `session` (the `factories` fixture does this per test)."""
    for factory_class in (StaffUserFactory, MemberFactory, WeChatIdentityFactory):
        factory_class._meta.sqlalchemy_session = session


class StaffUserFactory(BaseFactory):
    class Meta:
        model = StaffUser

    username = factory.Sequence(lambda n: f"staff-{n}")
    password_hash = factory.LazyFunction(lambda: hash_password("correct horse battery"))
    role = "analyst"


class MemberFactory(BaseFactory):
    class Meta:
        model = Member

    source = "oa_follow"

    class Params:
        with_unionid = factory.Trait(unionid=factory.Sequence(lambda n: f"uTEST{n:08d}"))


class WeChatIdentityFactory(BaseFactory):
    class Meta:
        model = WeChatIdentity

    appid = "wxTESTOA000000001"
    openid = factory.Sequence(lambda n: f"oTESTuser{n:010d}")
    app_kind = "oa"
    member = factory.SubFactory(MemberFactory)
    member_id = factory.SelfAttribute("member.id")
