"""Staff member API: search, the 360 view, phone reveal, tags, custom field definitions, merge and unmerge."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from member import selectors
from member.errors import MemberNotFound
from member.models import Member, MemberMerge, Tag
from member.phones import to_e164
from member.schemas.centre import (
    FieldDefinitionCreateSchema,
    FieldDefinitionSchema,
    FieldDefinitionUpdateSchema,
    Member360Schema,
    MemberRowSchema,
    MemberSearchArgsSchema,
    MemberTagSchema,
    MergeResultSchema,
    MergeSchema,
    RevealedPhoneSchema,
    RevealSchema,
    TagChangeSchema,
    TagCreateSchema,
    TagSchema,
    UnmergeSchema,
)
from member.services import merge as merge_services
from member.services import profile, tags
from scrm import audit
from scrm.context import db_session
from scrm.db import paginate
from scrm.guards import staff_actor
from scrm.http import PageArgsSchema, page_schema, staff_route

staff_members_bp = Blueprint(
    "staff_members",
    __name__,
    url_prefix="/api/v1/staff",
    description="Members for staff: search, 360 view, tags, custom fields, merges",
)

#: Roles that change tags (admin always may).
TAGGING_ROLES = ("campaign_manager",)


def _member_or_404(member_id: int) -> Member:
    member = db_session().get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    return member


@staff_members_bp.route("/members")
class MemberSearchView(MethodView):
    @staff_members_bp.arguments(MemberSearchArgsSchema, location="query", as_kwargs=True)
    @staff_route(staff_members_bp, args=PageArgsSchema, location="query", schema=page_schema(MemberRowSchema))
    def get(self, page: dict[str, Any], **filters: Any) -> Any:
        """Search members by phone (exact), name (prefix), tag, lifecycle stage or tier code; phones masked."""
        if filters.get("phone"):
            filters["phone"] = to_e164(filters["phone"])
        items, total = paginate(db_session(), selectors.search_query(**filters), **page)
        return {"items": [selectors.search_row(member) for member in items], "page": {**page, "total": total}}


@staff_members_bp.route("/members/<int:member_id>")
class Member360View(MethodView):
    @staff_route(staff_members_bp, schema=Member360Schema, errors={404: "No such member"})
    def get(self, member_id: int) -> Any:
        """The 360 view: profile, identities, tags, lifecycle, consents, merges, other concerns' blocks, timeline."""
        return selectors.staff_view(db_session(), _member_or_404(member_id))


@staff_members_bp.route("/members/<int:member_id>/phone/reveal")
class PhoneRevealView(MethodView):
    @staff_route(staff_members_bp, "admin", args=RevealSchema, schema=RevealedPhoneSchema)
    def post(self, data: dict[str, Any], member_id: int) -> Any:
        """Show a member's full phone number (admin); every reveal is audited with its reason."""
        session = db_session()
        member = _member_or_404(member_id)
        audit.record(
            session,
            staff_actor(),
            "member.phone_reveal",
            target_type="member",
            target_id=member.id,
            reason=data["reason"],
        )
        session.commit()
        return {"phone": member.phone}


@staff_members_bp.route("/members/<int:member_id>/tags")
class MemberTagsView(MethodView):
    @staff_route(staff_members_bp, *TAGGING_ROLES, args=MemberTagSchema, schema=TagChangeSchema)
    def post(self, data: dict[str, Any], member_id: int) -> Any:
        """Give a member a manual tag (giving it again changes nothing)."""
        session = db_session()
        changed = tags.tag_member(session, member_id, data["tag_id"], actor=staff_actor())
        session.commit()
        return {"changed": changed}


@staff_members_bp.route("/members/<int:member_id>/tags/<int:tag_id>")
class MemberTagView(MethodView):
    @staff_route(staff_members_bp, *TAGGING_ROLES, schema=TagChangeSchema)
    def delete(self, member_id: int, tag_id: int) -> Any:
        """Take a manual tag away."""
        session = db_session()
        changed = tags.untag_member(session, member_id, tag_id, actor=staff_actor())
        session.commit()
        return {"changed": changed}


@staff_members_bp.route("/member-tags")
class TagsView(MethodView):
    @staff_route(staff_members_bp, schema=TagSchema(many=True))
    def get(self) -> Any:
        """Every tag, manual and rule-based."""
        return list(db_session().scalars(select(Tag).order_by(Tag.name)))

    @staff_route(staff_members_bp, *TAGGING_ROLES, args=TagCreateSchema, status=201, schema=TagSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a manual tag or a rule tag (the hourly job gives rule tags to matching members)."""
        session = db_session()
        tag = tags.create_tag(session, name=data["name"], kind=data["kind"], rule=data.get("rule"), actor=staff_actor())
        session.commit()
        return tag


@staff_members_bp.route("/member-fields")
class FieldDefinitionsView(MethodView):
    @staff_route(staff_members_bp, schema=FieldDefinitionSchema(many=True))
    def get(self) -> Any:
        """The custom profile fields."""
        return profile.list_definitions(db_session())

    @staff_route(staff_members_bp, "admin", args=FieldDefinitionCreateSchema, status=201, schema=FieldDefinitionSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Define a custom profile field (admin)."""
        session = db_session()
        definition = profile.create_definition(session, actor=staff_actor(), **data)
        session.commit()
        return definition


@staff_members_bp.route("/member-fields/<int:definition_id>")
class FieldDefinitionView(MethodView):
    @staff_route(staff_members_bp, "admin", args=FieldDefinitionUpdateSchema, schema=FieldDefinitionSchema)
    def patch(self, data: dict[str, Any], definition_id: int) -> Any:
        """Change a field's label, choices, required or member-editable flag (admin)."""
        session = db_session()
        definition = profile.update_definition(session, definition_id, actor=staff_actor(), **data)
        session.commit()
        return definition

    @staff_route(staff_members_bp, "admin", status=204)
    def delete(self, definition_id: int) -> None:
        """Remove a field definition (admin)."""
        session = db_session()
        profile.delete_definition(session, definition_id, actor=staff_actor())
        session.commit()


@staff_members_bp.route("/member-merges")
class MergesView(MethodView):
    @staff_route(
        staff_members_bp,
        "admin",
        args=MergeSchema,
        status=201,
        schema=MergeResultSchema,
        errors={409: "Same member, or a merged or erased member"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Merge `source_id` into `survivor_id` (admin, audited; undo with unmerge)."""
        session = db_session()
        merge = merge_services.merge_members(session, actor=staff_actor(), **data)
        session.commit()
        return merge


@staff_members_bp.route("/member-merges/<int:merge_id>/unmerge")
class UnmergeView(MethodView):
    @staff_route(
        staff_members_bp,
        "admin",
        args=UnmergeSchema,
        schema=MergeResultSchema,
        errors={409: "Already undone, or the survivor changed since"},
    )
    def post(self, data: dict[str, Any], merge_id: int) -> Any:
        """Undo a merge: both members are restored (admin, audited)."""
        session = db_session()
        merge = merge_services.unmerge_members(session, merge_id, actor=staff_actor(), reason=data["reason"])
        session.commit()
        return session.get(MemberMerge, merge.id)
