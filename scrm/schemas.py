"""HTTP schemas of the kernel's own routes (staff sessions, staff users, audit log, health)."""

from __future__ import annotations

import marshmallow as ma

from scrm.models import STAFF_ROLES


class StrictSchema(ma.Schema):
    """Unknown fields are an error (422), so mass assignment is refused, not silently dropped."""

    class Meta:
        unknown = ma.RAISE


class StaffLoginSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=1, max=256))


class StaffUserSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    role = ma.fields.String()
    display_name = ma.fields.String(allow_none=True)
    is_active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()
    last_login_at = ma.fields.AwareDateTime(allow_none=True)


class StaffTokenSchema(ma.Schema):
    token = ma.fields.String()
    token_type = ma.fields.String(dump_default="Bearer")
    expires_in = ma.fields.Integer()
    user = ma.fields.Nested(StaffUserSchema)


class StaffUserCreateSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[A-Za-z0-9._@-]{3,80}$"))
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=10, max=256))
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(STAFF_ROLES))
    display_name = ma.fields.String(validate=ma.validate.Length(max=120))


class StaffUserUpdateSchema(StrictSchema):
    role = ma.fields.String(validate=ma.validate.OneOf(STAFF_ROLES))
    display_name = ma.fields.String(validate=ma.validate.Length(max=120))
    is_active = ma.fields.Boolean()
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(min=10, max=256))


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    actor_type = ma.fields.String()
    actor_id = ma.fields.Integer(allow_none=True)
    action = ma.fields.String()
    target_type = ma.fields.String()
    target_id = ma.fields.String(allow_none=True)
    before = ma.fields.Dict(allow_none=True)
    after = ma.fields.Dict(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    request_id = ma.fields.String(allow_none=True)
    at = ma.fields.AwareDateTime()


class AuditQueryArgsSchema(ma.Schema):
    action = ma.fields.String()
    target_type = ma.fields.String()
    target_id = ma.fields.String()
    actor_id = ma.fields.Integer()


class WeChatAppSchema(ma.Schema):
    """An app as staff see it: never the secret, the token or the AES key."""

    appid = ma.fields.String()
    kind = ma.fields.String()
    name = ma.fields.String(allow_none=True)
    original_id = ma.fields.String(allow_none=True)
    mode = ma.fields.String()
    is_active = ma.fields.Boolean()
    has_token = ma.fields.Boolean()
    has_aes_key = ma.fields.Boolean()
    callback_path = ma.fields.String()


class WeChatAppRegisterSchema(StrictSchema):
    appid = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=32))
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(("oa", "miniprogram")))
    secret = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=1, max=128))
    token = ma.fields.String(load_only=True, validate=ma.validate.Length(min=3, max=32))
    aes_key = ma.fields.String(load_only=True, validate=ma.validate.Length(equal=43))
    mode = ma.fields.String(load_default="safe", validate=ma.validate.OneOf(("safe", "compat", "plain")))
    original_id = ma.fields.String(validate=ma.validate.Length(max=32))
    name = ma.fields.String(validate=ma.validate.Length(max=80))


class WeChatAppUpdateSchema(StrictSchema):
    is_active = ma.fields.Boolean(required=True)
