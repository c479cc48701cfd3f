"""Legacy staff API: upload an import, follow its progress, download its error report, work the conflict queue."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from member.legacy import selectors
from member.legacy.errors import BindingNotFound, ConflictNotFound, UnreadableFile
from member.legacy.models import BindingConflict, ImportBatch, LegacyBinding
from member.legacy.schemas import (
    BatchSchema,
    BindingRateArgsSchema,
    BindingRatePointSchema,
    BindingSchema,
    ConflictQueryArgsSchema,
    ConflictResolveSchema,
    ConflictSchema,
    ImportUploadFileSchema,
    ImportUploadFormSchema,
    ReasonSchema,
)
from member.legacy.services.batches import get_batch, open_batch, start_import
from member.legacy.services.binding import unbind
from member.legacy.services.conflicts import reopen_conflict, resolve_conflict
from scrm import audit
from scrm.context import db_session, ext
from scrm.db import paginate
from scrm.errors import DomainError, InvalidInput
from scrm.guards import current_staff, staff_actor
from scrm.http import PageArgsSchema, accepts_upload, page_schema, staff_route

legacy_bp = Blueprint(
    "legacy", __name__, url_prefix="/api/v1/staff/legacy", description="Legacy CRM import and binding conflicts"
)

_ALLOWED_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm")


def _batch_view(batch: ImportBatch, *, created: bool | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {name: getattr(batch, name) for name in BatchSchema().fields if hasattr(batch, name)}
    view["rows"] = batch.valid_count + batch.invalid_count
    view["progress"] = selectors.batch_progress(batch)
    if created is not None:
        view["created"] = created
    return view


def _store_upload(upload: Any) -> tuple[Path, str]:
    """Stream the upload to the upload directory, named by its content hash (never by the client's file name)."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in _ALLOWED_SUFFIXES:
        raise UnreadableFile("upload a .csv or .xlsx file", details={"allowed": list(_ALLOWED_SUFFIXES)})
    directory = Path(ext().config.legacy_upload_dir)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(dir=directory, suffix=".part")
    with os.fdopen(handle, "wb") as out:
        while block := upload.stream.read(1024 * 1024):
            digest.update(block)
            out.write(block)
    target = directory / f"{digest.hexdigest()}{suffix}"
    os.replace(temp_name, target)
    return target, digest.hexdigest()


def _upload_form() -> dict[str, Any]:
    try:
        return ImportUploadFormSchema().load(request.form.to_dict())
    except ma.ValidationError as exc:
        fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise InvalidInput(
            "The request did not pass validation: " + ", ".join(sorted(fields)), details={"fields": fields}
        ) from None


@legacy_bp.route("/imports")
@accepts_upload
class ImportsView(MethodView):
    @staff_route(legacy_bp, "analyst", args=PageArgsSchema, location="query", schema=page_schema(BatchSchema))
    def get(self, page: dict[str, Any]) -> Any:
        """Import batches, newest first, with counts, status and progress (admin, analyst)."""
        items, total = paginate(db_session(), selectors.batches_query(), **page)
        return {"items": [_batch_view(batch) for batch in items], "page": {**page, "total": total}}

    @staff_route(legacy_bp, "admin", args=ImportUploadFileSchema, location="files", status=202, schema=BatchSchema)
    def post(self, files: dict[str, Any]) -> Any:
        """Upload a CSV or XLSX legacy file (multipart `file`, optional `mapping` JSON, `dry_run`, `orders_of`) (admin).

        The import runs as a job on the default queue; read its progress at /imports/<id>. Uploading a file
        again returns its batch (`created` false) and adds nothing; an unfinished batch resumes. With
        `orders_of`, the file is the order history of that (finished) members batch: each order becomes an
        order of the member its legacy record binds to, at the bind or at once if it is bound already.
        """
        form = _upload_form()
        upload = files["file"]
        stored, digest = _store_upload(upload)
        session = db_session()
        try:
            handle = open_batch(
                session,
                path=stored,
                filename=Path(upload.filename or stored.name).name,
                mapping=form.get("mapping"),
                dry_run=form["dry_run"],
                created_by=current_staff().id,
                digest=digest,
                orders_of=form.get("orders_of"),
            )
        except DomainError:
            # A refused upload leaves no file behind, unless an earlier batch of the same content reads it.
            if not selectors.file_in_use(session, str(stored)):
                stored.unlink(missing_ok=True)
            raise
        batch = handle.batch
        if batch.status != "done":
            start_import(session, batch)
        audit.record(
            session,
            staff_actor(),
            "legacy.import.dry_run" if batch.dry_run else "legacy.import.upload",
            target_type="import_batch",
            target_id=batch.id,
            after={"filename": batch.filename, "created": handle.created, "status": batch.status},
        )
        session.commit()
        return _batch_view(session.get(ImportBatch, batch.id) or batch, created=handle.created)


@legacy_bp.route("/imports/<int:batch_id>")
class ImportView(MethodView):
    @staff_route(legacy_bp, "analyst", schema=BatchSchema)
    def get(self, batch_id: int) -> Any:
        """One batch: progress while it runs; counts and the dry-run or bind-pass report when done."""
        return _batch_view(get_batch(db_session(), batch_id))


@legacy_bp.route("/imports/<int:batch_id>/errors.csv")
class ImportErrorsView(MethodView):
    @staff_route(
        legacy_bp, "admin", description="CSV: row_number, kind (invalid | duplicate_phone), reasons, group, raw"
    )
    def get(self, batch_id: int) -> Any:
        """Download the error report: bad rows with their reasons, then the rows of phones the file holds twice.

        The raw rows hold personal data, so the download is audited (admin).
        """
        session = db_session()
        batch = get_batch(session, batch_id)
        audit.record(session, staff_actor(), "legacy.errors.download", target_type="import_batch", target_id=batch.id)
        session.commit()
        return Response(
            stream_with_context(selectors.error_report_csv(session, batch_id)),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="legacy-batch-{batch_id}-errors.csv"'},
        )


@legacy_bp.route("/conflicts")
class ConflictsView(MethodView):
    @legacy_bp.arguments(ConflictQueryArgsSchema, location="query", as_kwargs=True)
    @staff_route(legacy_bp, "analyst", args=PageArgsSchema, location="query", schema=page_schema(ConflictSchema))
    def get(self, page: dict[str, Any], **filters: Any) -> Any:
        """The conflict queue, newest first; filter by status, kind, phone, member or batch."""
        items, total = paginate(db_session(), selectors.conflicts_query(**filters), **page)
        return {"items": items, "page": {**page, "total": total}}


@legacy_bp.route("/conflicts/<int:conflict_id>")
class ConflictView(MethodView):
    @staff_route(legacy_bp, "analyst", schema=ConflictSchema)
    def get(self, conflict_id: int) -> Any:
        """One conflict."""
        conflict = db_session().get(BindingConflict, conflict_id)
        if conflict is None:
            raise ConflictNotFound()
        return conflict


@legacy_bp.route("/conflicts/<int:conflict_id>/resolve")
class ConflictResolveView(MethodView):
    @staff_route(
        legacy_bp, "admin", args=ConflictResolveSchema, schema=ConflictSchema, errors={409: "The conflict is not open"}
    )
    def post(self, data: dict[str, Any], conflict_id: int) -> Any:
        """Decide a conflict: `bind` one record, `merge` the records, or `reject` (audited; undo with /reopen)."""
        session = db_session()
        conflict = resolve_conflict(session, conflict_id, actor=staff_actor(), **data)
        session.commit()
        return conflict


@legacy_bp.route("/conflicts/<int:conflict_id>/reopen")
class ConflictReopenView(MethodView):
    @staff_route(legacy_bp, "admin", args=ReasonSchema, schema=ConflictSchema)
    def post(self, data: dict[str, Any], conflict_id: int) -> Any:
        """Undo a decision: its bind is reversed (points taken back with a new ledger row) and the conflict reopens."""
        session = db_session()
        conflict = reopen_conflict(session, conflict_id, actor=staff_actor(), reason=data.get("reason"))
        session.commit()
        return conflict


@legacy_bp.route("/bindings/<int:binding_id>")
class BindingView(MethodView):
    @staff_route(legacy_bp, "analyst", schema=BindingSchema)
    def get(self, binding_id: int) -> Any:
        """One bind of a legacy record to a member, with what it carried over."""
        binding = db_session().get(LegacyBinding, binding_id)
        if binding is None:
            raise BindingNotFound()
        return binding


@legacy_bp.route("/bindings/<int:binding_id>/unbind")
class UnbindView(MethodView):
    @staff_route(legacy_bp, "admin", args=ReasonSchema, schema=BindingSchema, errors={409: "Already reversed"})
    def post(self, data: dict[str, Any], binding_id: int) -> Any:
        """Reverse a bind: the legacy record is free again and the carried points are taken back (audited)."""
        session = db_session()
        binding = unbind(session, binding_id, actor=staff_actor(), reason=data.get("reason"))
        session.commit()
        return binding


@legacy_bp.route("/binding-rate")
class BindingRateView(MethodView):
    @staff_route(
        legacy_bp, "analyst", args=BindingRateArgsSchema, location="query", schema=BindingRatePointSchema(many=True)
    )
    def get(self, args: dict[str, Any]) -> Any:
        """Per day: legacy records imported so far, bound so far, and bound / imported."""
        return selectors.binding_rate(db_session(), days=args["days"])
