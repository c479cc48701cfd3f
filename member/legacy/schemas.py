"""HTTP schemas of the legacy staff API."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma

from member.legacy.models import CONFLICT_KINDS, CONFLICT_STATUSES
from member.legacy.selectors import mask_phone
from member.legacy.services.conflicts import RESOLUTIONS
from scrm.schemas import StrictSchema


class MappingField(ma.fields.Field):
    """A column mapping sent as a JSON object, or as JSON text in a multipart form field."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ma.ValidationError('must be a JSON object {"<column header>": "<field>"}') from None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ma.ValidationError('must be a JSON object {"<column header>": "<field>"}')
        return value


class ImportUploadFormSchema(StrictSchema):
    mapping = MappingField(
        metadata={
            "description": 'JSON {"<column header>": "<field>"}; field is one of '
            "legacy_id, phone, name, tier, points, spend, joined_at, last_active_at, "
            "custom:<name>, ignore"
        }
    )
    dry_run = ma.fields.Boolean(load_default=False)
    orders_of = ma.fields.Integer(
        strict=False,
        # A batch id is a bigint: a larger number is refused here, not overflowing the query (a 500).
        validate=ma.validate.Range(min=1, max=2**63 - 1),
        metadata={"description": "The file is the order history of this members batch"},
    )


class ImportUploadFileSchema(StrictSchema):
    """The multipart body as documented; `mapping` and `dry_run` are read from the form by ImportUploadFormSchema
    (flask-smorest documents one multipart location per route)."""

    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    mapping = ma.fields.Raw(load_only=True, metadata={"type": "string", "description": "Column mapping, JSON text"})
    dry_run = ma.fields.Raw(load_only=True, metadata={"type": "boolean"})
    orders_of = ma.fields.Raw(
        load_only=True, metadata={"type": "integer", "description": "Members batch whose order history this is"}
    )


class BatchProgressSchema(ma.Schema):
    fraction = ma.fields.Float()
    rows_per_s = ma.fields.Float()
    eta_s = ma.fields.Float()


class BatchSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"description": "members, or orders (the order history of `parent_id`)"})
    parent_id = ma.fields.Integer(allow_none=True)
    filename = ma.fields.String()
    file_format = ma.fields.String()
    dry_run = ma.fields.Boolean()
    status = ma.fields.String()
    created = ma.fields.Boolean(metadata={"description": "False when this file's batch already existed"})
    mapping = ma.fields.Dict()
    rows_done = ma.fields.Integer()
    rows = ma.fields.Integer(metadata={"description": "Data rows read (valid + invalid)"})
    valid_count = ma.fields.Integer()
    invalid_count = ma.fields.Integer()
    inserted_count = ma.fields.Integer()
    invalid_by_reason = ma.fields.Dict()
    duplicate_rows = ma.fields.Integer()
    duplicate_groups = ma.fields.Integer()
    bound_count = ma.fields.Integer(
        metadata={"description": "members: records bound; orders: orders carried to already-bound members"}
    )
    conflict_count = ma.fields.Integer()
    report = ma.fields.Dict()
    progress = ma.fields.Nested(BatchProgressSchema)
    error_message = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    started_at = ma.fields.AwareDateTime(allow_none=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True)


class ConflictQueryArgsSchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(CONFLICT_STATUSES))
    kind = ma.fields.String(validate=ma.validate.OneOf(CONFLICT_KINDS))
    phone = ma.fields.String(validate=ma.validate.Regexp(r"^\+\d{6,15}$"))
    member_id = ma.fields.Integer()
    batch_id = ma.fields.Integer()


class ConflictSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    status = ma.fields.String()
    phone = ma.fields.Function(lambda conflict: mask_phone(conflict.phone))
    member_id = ma.fields.Integer()
    holder_member_id = ma.fields.Integer(allow_none=True)
    candidate_ids = ma.fields.List(ma.fields.Integer())
    reasons = ma.fields.List(ma.fields.String())
    verified_via = ma.fields.String()
    resolution = ma.fields.Dict()
    resolved_by = ma.fields.Integer(allow_none=True)
    resolved_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class ConflictResolveSchema(StrictSchema):
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(RESOLUTIONS))
    legacy_member_id = ma.fields.Integer()
    reason = ma.fields.String(validate=ma.validate.Length(max=500))


class ReasonSchema(StrictSchema):
    reason = ma.fields.String(validate=ma.validate.Length(max=500))


class BindingSchema(ma.Schema):
    id = ma.fields.Integer()
    legacy_member_id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    status = ma.fields.String()
    via = ma.fields.String()
    merged_legacy_ids = ma.fields.List(ma.fields.Integer())
    points_carried = ma.fields.Integer()
    tier_carried = ma.fields.String(allow_none=True)
    carryover = ma.fields.Dict()
    bound_at = ma.fields.AwareDateTime()
    reversed_at = ma.fields.AwareDateTime(allow_none=True)


class BindingRateArgsSchema(ma.Schema):
    days = ma.fields.Integer(load_default=30, validate=ma.validate.Range(min=1, max=366))


class BindingRatePointSchema(ma.Schema):
    day = ma.fields.String()
    imported = ma.fields.Integer()
    bound = ma.fields.Integer()
    rate = ma.fields.Float()
