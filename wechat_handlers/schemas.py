"""HTTP schemas of the staff callback API: auto-reply rules and the inbox."""

from __future__ import annotations

import marshmallow as ma

from scrm.schemas import StrictSchema
from wechat_handlers.models import REPLY_TYPES, RULE_TRIGGERS


class AutoReplyRuleSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    appid = ma.fields.String(allow_none=True)
    trigger = ma.fields.String()
    pattern = ma.fields.String(allow_none=True)
    reply_type = ma.fields.String()
    reply = ma.fields.Dict()
    priority = ma.fields.Integer()
    is_active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime(dump_only=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)


class AutoReplyRuleCreateSchema(StrictSchema):
    appid = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=32))
    trigger = ma.fields.String(required=True, validate=ma.validate.OneOf(RULE_TRIGGERS))
    pattern = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    reply_type = ma.fields.String(required=True, validate=ma.validate.OneOf(REPLY_TYPES))
    reply = ma.fields.Dict(required=True)
    priority = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=0, max=10_000))
    is_active = ma.fields.Boolean(load_default=True)


class AutoReplyRuleUpdateSchema(StrictSchema):
    trigger = ma.fields.String(validate=ma.validate.OneOf(RULE_TRIGGERS))
    pattern = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    reply_type = ma.fields.String(validate=ma.validate.OneOf(REPLY_TYPES))
    reply = ma.fields.Dict()
    priority = ma.fields.Integer(validate=ma.validate.Range(min=0, max=10_000))
    is_active = ma.fields.Boolean()


class RuleQueryArgsSchema(ma.Schema):
    appid = ma.fields.String()


class InboxMessageSchema(ma.Schema):
    id = ma.fields.Integer()
    appid = ma.fields.String()
    openid = ma.fields.String()
    msg_type = ma.fields.String()
    event = ma.fields.String(allow_none=True)
    event_key = ma.fields.String(allow_none=True)
    create_time = ma.fields.Integer()
    status = ma.fields.String()
    handler = ma.fields.String(allow_none=True)
    received_at = ma.fields.AwareDateTime()
    handled_at = ma.fields.AwareDateTime(allow_none=True)
    raw_xml = ma.fields.String()


class InboxQueryArgsSchema(ma.Schema):
    appid = ma.fields.String()
    openid = ma.fields.String()
    msg_type = ma.fields.String(validate=ma.validate.Length(max=32))
    event = ma.fields.String(validate=ma.validate.Length(max=64))
    received_from = ma.fields.AwareDateTime()
    received_to = ma.fields.AwareDateTime()


class MenuButtonSchema(ma.Schema):
    """One button of WeChat's custom menu; WeChat validates the rest (types, URLs, mini-program pages)."""

    class Meta:
        unknown = ma.INCLUDE

    type = ma.fields.String(validate=ma.validate.Length(max=32))
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=60))
    key = ma.fields.String(validate=ma.validate.Length(max=128))
    url = ma.fields.String(validate=ma.validate.Length(max=1024))
    sub_button = ma.fields.List(ma.fields.Dict(), validate=ma.validate.Length(max=5))


class MenuSchema(StrictSchema):
    """WeChat's custom menu: up to 3 top-level buttons, each with up to 5 sub-buttons."""

    button = ma.fields.List(
        ma.fields.Nested(MenuButtonSchema), required=True, validate=ma.validate.Length(min=1, max=3)
    )
