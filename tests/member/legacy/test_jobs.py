"""Legacy jobs: every handler run twice has one effect; with Redis the import runs on rq workers through the
outbox, and its progress is readable while it runs."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from member.legacy import jobs
from member.legacy.models import ImportBatch, LegacyBinding, LegacyMember
from member.legacy.services.batches import open_batch
from scrm import jobs as scrm_jobs
from scrm import outbox
from scrm.clock import utcnow
from scrm.models import OutboxMessage
from tests.conftest import StaffAuth
from tests.member.legacy.files import legacy_rows, write_csv


def test_each_legacy_job_run_twice_has_one_effect(app, session, factories, tmp_path):
    rows, expected = legacy_rows(1500)
    factories.MemberFactory(phone="+8613900000001", phone_verified_at=utcnow())
    batch = open_batch(session, path=write_csv(tmp_path / "crm.csv", rows), filename="crm.csv").batch
    with app.app_context():
        payload = {"batch_id": batch.id, "start_row": 0}
        jobs.import_chunk(session, payload)
        after_once = session.scalar(select(func.count()).select_from(LegacyMember))
        jobs.import_chunk(session, payload)
        assert session.scalar(select(func.count()).select_from(LegacyMember)) == after_once
        while session.get(ImportBatch, batch.id).status != "done":
            jobs.import_chunk(
                session, {"batch_id": batch.id, "start_row": session.get(ImportBatch, batch.id).rows_done}
            )
        assert session.scalar(select(func.count()).select_from(LegacyMember)) == expected.valid
        jobs.bind_batch_job(session, {"batch_id": batch.id})
        jobs.bind_batch_job(session, {"batch_id": batch.id})
        assert session.scalar(select(func.count()).select_from(LegacyBinding)) == 1
        member_id = session.scalar(select(LegacyBinding.member_id))
        retry = {"member_id": member_id, "phone": "+8613900000001", "method": "wechat", "at": utcnow().isoformat()}
        jobs.bind_phone_job(session, retry)
        jobs.bind_phone_job(session, retry)
        assert session.scalar(select(func.count()).select_from(LegacyBinding)) == 1


def test_upload_runs_on_rq_through_the_outbox_with_progress_readable_midway(committed_app, tmp_path):
    committed_app.extensions["scrm"].config = committed_app.extensions["scrm"].config.replace(
        legacy_upload_dir=str(tmp_path / "uploads"), legacy_chunk_rows=500
    )
    rows, expected = legacy_rows(2000)
    content = write_csv(tmp_path / "crm.csv", rows).read_bytes()
    client = committed_app.test_client()
    admin = StaffAuth(committed_app).headers("admin")
    response = client.post(
        "/api/v1/staff/legacy/imports",
        data={"file": (io.BytesIO(content), "crm.csv")},
        headers=admin,
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.json
    batch_id = response.json["id"]
    assert response.json["status"] == "queued"
    db = committed_app.extensions["scrm"].db
    with committed_app.app_context():
        outbox.drain(db, "default", max_batches=1)  # one chunk, as one relay pass of a worker would
    midway = client.get(f"/api/v1/staff/legacy/imports/{batch_id}", headers=admin).json
    assert midway["status"] == "running"
    assert 0 < midway["progress"]["fraction"] < 1
    assert midway["rows_done"] == 500

    scrm_jobs.run_worker(committed_app, ["default"], burst=True, with_scheduler=False)
    with committed_app.app_context():
        scrm_jobs.sweep(committed_app)
    scrm_jobs.run_worker(committed_app, ["default"], burst=True, with_scheduler=False)
    done = client.get(f"/api/v1/staff/legacy/imports/{batch_id}", headers=admin).json
    assert (done["status"], done["valid_count"], done["invalid_count"]) == ("done", expected.valid, expected.invalid)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LegacyMember)) == expected.valid
        pending = session.scalar(select(func.count()).where(OutboxMessage.status == "pending"))
        assert pending == 0
