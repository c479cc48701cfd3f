"""HTTP schemas of the member centre and the staff member API; custom-field schemas are built from definitions."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import marshmallow as ma

from member.models import CustomFieldDefinition
from member.models.centre import CONSENT_PURPOSES, FIELD_TYPES, TAG_KINDS
from scrm.schemas import StrictSchema

GENDERS = ("male", "female", "other")
SCOPES = ("snsapi_base", "snsapi_userinfo")


# --- sessions ---


class MiniProgramLoginSchema(StrictSchema):
    appid = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=32))
    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))


class MemberTokenSchema(ma.Schema):
    token = ma.fields.String()
    token_type = ma.fields.String(dump_default="Bearer")
    expires_in = ma.fields.Integer()


class OAuthStartArgsSchema(ma.Schema):
    appid = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=32))
    redirect = ma.fields.String(
        validate=ma.validate.Length(max=500),
        metadata={"description": "Allow-listed front-end URL that receives the token in its fragment"},
    )
    scope = ma.fields.String(load_default="snsapi_base", validate=ma.validate.OneOf(SCOPES))


class OAuthCallbackArgsSchema(ma.Schema):
    appid = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=32))
    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))
    state = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))
    redirect = ma.fields.String(load_default="", validate=ma.validate.Length(max=500))


# --- phone ---


class WeChatPhoneSchema(StrictSchema):
    code = ma.fields.String(
        required=True, validate=ma.validate.Length(min=1, max=128), metadata={"description": "getPhoneNumber code"}
    )


class SmsCodeRequestSchema(StrictSchema):
    phone = ma.fields.String(required=True, validate=ma.validate.Length(min=5, max=20))


class SmsCodeVerifySchema(StrictSchema):
    phone = ma.fields.String(required=True, validate=ma.validate.Length(min=5, max=20))
    code = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[0-9]{6}$"))


class SmsCodeSentSchema(ma.Schema):
    expires_in = ma.fields.Integer()
    resend_after = ma.fields.Integer()


class PhoneBoundSchema(ma.Schema):
    phone = ma.fields.String(metadata={"description": "Masked"})
    phone_verified_method = ma.fields.String()
    token = ma.fields.String(metadata={"description": "A new token when the phone joined this login to a member"})
    expires_in = ma.fields.Integer()


# --- profile ---


class ConsentStateSchema(ma.Schema):
    granted = ma.fields.Boolean()
    policy_version = ma.fields.String()
    at = ma.fields.AwareDateTime()


class ConsentsSchema(ma.Schema):
    marketing_messages = ma.fields.Nested(ConsentStateSchema, allow_none=True)
    profiling = ma.fields.Nested(ConsentStateSchema, allow_none=True)
    policy_version = ma.fields.String(metadata={"description": "The policy version in force"})
    history = ma.fields.List(ma.fields.Dict())


class ConsentsUpdateSchema(StrictSchema):
    marketing_messages = ma.fields.Boolean()
    profiling = ma.fields.Boolean()

    @ma.validates_schema
    def not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError(f"give at least one of {', '.join(CONSENT_PURPOSES)}")


class ProfileSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String(allow_none=True)
    gender = ma.fields.String(allow_none=True)
    birthday = ma.fields.Date(allow_none=True)
    region = ma.fields.String(allow_none=True)
    avatar_url = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True, metadata={"description": "Masked (138****1234)"})
    phone_verified = ma.fields.Boolean()
    phone_verified_at = ma.fields.AwareDateTime(allow_none=True)
    phone_verified_method = ma.fields.String(allow_none=True)
    custom_fields = ma.fields.Dict()
    role = ma.fields.String()
    source = ma.fields.String()
    lifecycle_stage = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    erased = ma.fields.Boolean()


class MeSchema(ProfileSchema):
    consents = ma.fields.Dict()
    sections = ma.fields.Dict(metadata={"description": "Blocks other member concerns contribute (loyalty, …)"})


class ProfileUpdateSchema(StrictSchema):
    """Only what a member may change about themselves; anything else (points, tier, phone, role, id…) is a 422."""

    name = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=80))
    gender = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(GENDERS))
    birthday = ma.fields.Date(allow_none=True)
    region = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=80))
    avatar_url = ma.fields.Url(allow_none=True, schemes={"https"}, validate=ma.validate.Length(max=500))
    custom_fields = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata={"description": "Values of the staff-defined fields the member may edit; null removes a value"},
    )


class IdentitySchema(ma.Schema):
    id = ma.fields.Integer()
    appid = ma.fields.String()
    app_kind = ma.fields.String()
    openid = ma.fields.String(metadata={"description": "Masked"})
    has_unionid = ma.fields.Boolean()
    subscribed = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()


class ExportSchema(ma.Schema):
    profile = ma.fields.Dict()
    identities = ma.fields.List(ma.fields.Dict())
    unionid = ma.fields.String(allow_none=True)
    consents = ma.fields.List(ma.fields.Dict())
    tags = ma.fields.List(ma.fields.Dict())
    sections = ma.fields.Dict()


def _value_field(definition: CustomFieldDefinition) -> ma.fields.Field:
    options: dict[str, Any] = {"allow_none": not definition.required}
    choices: Sequence[str] = [str(choice) for choice in definition.choices or []]
    kind = definition.field_type
    if kind == "text":
        return ma.fields.String(validate=ma.validate.Length(max=500), **options)
    if kind == "number":
        return ma.fields.Float(allow_nan=False, **options)
    if kind == "date":
        return ma.fields.Date(**options)
    if kind == "bool":
        return ma.fields.Boolean(**options)
    if kind == "single_choice":
        return ma.fields.String(validate=ma.validate.OneOf(choices), **options)
    return ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(choices)),
        validate=ma.validate.Length(max=len(choices)),
        **options,
    )


_built: dict[Any, type[ma.Schema]] = {}
_built_lock = threading.Lock()


def custom_fields_schema(version: Any, definitions: Sequence[CustomFieldDefinition]) -> ma.Schema:
    """The strict schema of the member-editable custom fields, built once per definitions `version`."""
    schema_class = _built.get(version)
    if schema_class is None:
        fields = {d.key: _value_field(d) for d in definitions if d.member_editable}
        schema_class = StrictSchema.from_dict(fields, name="CustomFieldsSchema")
        with _built_lock:
            if len(_built) > 32:
                _built.clear()
            _built[version] = schema_class
    return schema_class()


# --- staff ---


class FieldDefinitionSchema(ma.Schema):
    id = ma.fields.Integer()
    key = ma.fields.String()
    label = ma.fields.String()
    field_type = ma.fields.String()
    choices = ma.fields.List(ma.fields.String(), allow_none=True)
    required = ma.fields.Boolean()
    member_editable = ma.fields.Boolean()


class FieldDefinitionCreateSchema(StrictSchema):
    key = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$"))
    label = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    field_type = ma.fields.String(required=True, validate=ma.validate.OneOf(FIELD_TYPES))
    choices = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=80)), validate=ma.validate.Length(max=100)
    )
    required = ma.fields.Boolean(load_default=False)
    member_editable = ma.fields.Boolean(load_default=True)


class FieldDefinitionUpdateSchema(StrictSchema):
    label = ma.fields.String(validate=ma.validate.Length(min=1, max=80))
    choices = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=80)), validate=ma.validate.Length(max=100)
    )
    required = ma.fields.Boolean()
    member_editable = ma.fields.Boolean()


class TagSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()
    rule = ma.fields.Dict(allow_none=True)


class TagCreateSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=40))
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(TAG_KINDS))
    rule = ma.fields.Dict(
        allow_none=True,
        metadata={
            "description": 'e.g. {"kind": "ordered_within_days", "days": 30}, {"kind": "region_is", "region": "上海"}, '
            '{"kind": "custom_field_is", "key": "k", "value": "v"}, {"kind": "followed_oa", "appid": "wx…"}'
        },
    )


class MemberTagSchema(StrictSchema):
    tag_id = ma.fields.Integer(required=True)


class TagChangeSchema(ma.Schema):
    changed = ma.fields.Boolean()


class MergeSchema(StrictSchema):
    survivor_id = ma.fields.Integer(required=True)
    source_id = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=200))


class UnmergeSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=200))


class MergeResultSchema(ma.Schema):
    id = ma.fields.Integer()
    survivor_id = ma.fields.Integer()
    source_id = ma.fields.Integer()
    moved = ma.fields.Dict()
    merged_at = ma.fields.AwareDateTime()
    unmerged_at = ma.fields.AwareDateTime(allow_none=True)


class RevealSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=500))


class RevealedPhoneSchema(ma.Schema):
    phone = ma.fields.String(allow_none=True)


class MemberSearchArgsSchema(ma.Schema):
    phone = ma.fields.String(validate=ma.validate.Length(min=5, max=20))
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=80))
    tag = ma.fields.String(validate=ma.validate.Length(min=1, max=40))
    stage = ma.fields.String(validate=ma.validate.OneOf(("new", "active", "silent", "churned")))
    tier = ma.fields.String(
        validate=ma.validate.Length(min=1, max=40), metadata={"description": "Tier code (with the loyalty module)"}
    )


class MemberRowSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True, metadata={"description": "Masked"})
    lifecycle_stage = ma.fields.String(allow_none=True)
    source = ma.fields.String()
    created_at = ma.fields.AwareDateTime()


class Member360Schema(ProfileSchema):
    merged_into_id = ma.fields.Integer(allow_none=True)
    last_active_at = ma.fields.AwareDateTime(allow_none=True)
    last_order_at = ma.fields.AwareDateTime(allow_none=True)
    identities = ma.fields.List(ma.fields.Dict())
    tags = ma.fields.List(ma.fields.Dict())
    consents = ma.fields.Dict()
    merges = ma.fields.List(ma.fields.Dict())
    sections = ma.fields.Dict()
    timeline = ma.fields.List(ma.fields.Dict())
