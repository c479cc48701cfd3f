"""Legacy staff API: upload → background import through the outbox, progress, error report, dry run, conflict
queue with filters, decisions and undo over HTTP, binding rate; validation and roles."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import func, select

from member.legacy.models import LegacyMember
from member.models import Order
from scrm.clock import utcnow
from scrm.models import AuditEntry
from tests.conftest import make_config
from tests.member.legacy.files import legacy_rows, write_csv

API = "/api/v1/staff/legacy"


@pytest.fixture
def config(tmp_path):
    return make_config(legacy_upload_dir=str(tmp_path / "uploads"), legacy_chunk_rows=700)


@pytest.fixture
def crm_csv(tmp_path):
    rows, expected = legacy_rows(2000)
    return write_csv(tmp_path / "crm.csv", rows).read_bytes(), expected


def upload(client, headers, content, *, name="crm.csv", **form):
    data = {"file": (io.BytesIO(content), name), **form}
    return client.post(f"{API}/imports", data=data, headers=headers, content_type="multipart/form-data")


def test_upload_imports_in_the_background_and_binds_verified_members(client, staff, session, factories, crm_csv):
    content, expected = crm_csv
    member = factories.MemberFactory(phone="+8613900000001", phone_verified_at=utcnow())
    session.commit()
    admin = staff.headers("admin")
    response = upload(client, admin, content)
    assert response.status_code == 202, response.json
    batch = response.json
    assert batch["created"] is True

    shown = client.get(f"{API}/imports/{batch['id']}", headers=staff.headers("analyst")).json
    assert shown["status"] == "done"
    assert (shown["rows"], shown["valid_count"], shown["invalid_count"]) == (2000, expected.valid, expected.invalid)
    assert shown["invalid_by_reason"] == expected.invalid_by_reason
    assert shown["duplicate_groups"] == expected.duplicate_groups
    assert shown["bound_count"] == 1
    assert shown["progress"]["fraction"] == 1.0
    assert shown["mapping"]["columns"]["手机号"] == "phone"
    assert shown["mapping"]["columns"]["喜好"] == "custom:喜好"
    assert session.scalar(select(LegacyMember.bound_member_id).where(LegacyMember.legacy_id == "L0000001")) == member.id

    again = upload(client, admin, content, name="renamed.csv")
    assert again.status_code == 202
    assert (again.json["id"], again.json["created"]) == (batch["id"], False)
    assert session.scalar(select(func.count()).select_from(LegacyMember)) == expected.valid

    listed = client.get(f"{API}/imports", headers=admin).json
    assert [item["id"] for item in listed["items"]] == [batch["id"]]
    assert listed["page"]["total"] == 1


def test_error_report_downloads_as_csv_and_is_audited(client, staff, session, crm_csv):
    content, expected = crm_csv
    admin = staff.headers("admin")
    batch_id = upload(client, admin, content).json["id"]
    response = client.get(f"{API}/imports/{batch_id}/errors.csv", headers=admin)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "row_number,kind,reasons,group,phone,raw"
    invalid = [line for line in lines if ",invalid," in line]
    assert [int(line.split(",")[0]) for line in invalid] == expected.bad_rows
    assert sum(",duplicate_phone," in line for line in lines) == expected.duplicate_rows
    assert "13900000499" not in response.get_data(as_text=True).split("duplicate_phone", 1)[1].split("\n")[0]
    assert session.scalar(select(AuditEntry.action).where(AuditEntry.action == "legacy.errors.download"))
    assert client.get(f"{API}/imports/{batch_id}/errors.csv", headers=staff.headers("analyst")).status_code == 403


def test_error_report_writes_formula_cells_as_text(client, staff):
    admin = staff.headers("admin")
    content = '会员编号,手机号,姓名\n=HYPERLINK("http://x"),12345,@SUM(A1)\n'.encode()
    batch_id = upload(client, admin, content).json["id"]
    report = client.get(f"{API}/imports/{batch_id}/errors.csv", headers=admin).get_data(as_text=True)
    [row] = list(csv.reader(io.StringIO(report.lstrip("\ufeff"))))[1:]
    assert row[:3] == ["2", "invalid", "invalid_phone"]
    assert row[5] == "'" + '=HYPERLINK("http://x")\t12345\t@SUM(A1)'


def test_dry_run_upload_reports_and_writes_no_records(client, staff, session, factories, crm_csv):
    content, expected = crm_csv
    factories.MemberFactory(phone="+8613900000001", phone_verified_at=utcnow())
    session.commit()
    response = upload(client, staff.headers("admin"), content, dry_run="true")
    assert response.status_code == 202
    shown = client.get(f"{API}/imports/{response.json['id']}", headers=staff.headers("admin")).json
    assert shown["dry_run"] is True
    assert shown["status"] == "done"
    report = shown["report"]
    assert (report["rows"], report["valid"], report["invalid"]) == (2000, expected.valid, expected.invalid)
    assert (report["matches_verified_members"], report["would_bind"]) == (1, 1)
    assert session.scalar(select(func.count()).select_from(LegacyMember)) == 0


def test_upload_validation(client, staff, tmp_path):
    admin = staff.headers("admin")
    content = "手机号,姓名\n13800138000,张三\n".encode()
    unknown = upload(client, admin, content, colour="red")
    assert unknown.status_code == 422
    assert "colour" in unknown.json["error"]["details"]["fields"]
    bad_mapping = upload(client, admin, content, mapping=json.dumps({"姓名": "surname"}))
    assert bad_mapping.status_code == 422
    assert bad_mapping.json["error"]["code"] == "legacy_invalid_mapping"
    no_phone = upload(client, admin, "姓名,城市\n张三,上海\n".encode())
    assert no_phone.json["error"]["code"] == "legacy_invalid_mapping"
    wrong_kind = upload(client, admin, b"%PDF-1.4", name="crm.pdf")
    assert wrong_kind.status_code == 422
    missing = client.post(f"{API}/imports", data={}, headers=admin, content_type="multipart/form-data")
    assert missing.status_code == 422
    assert upload(client, staff.headers("analyst"), content).status_code == 403
    mapped = upload(client, admin, "电话号码,name\n13800138000,张三\n".encode(), mapping='{"电话号码": "phone"}')
    assert mapped.status_code == 202


def test_conflict_queue_decide_and_undo_over_http(client, staff, session, factories, tmp_path):
    content = "会员编号,手机号,积分\nA1,13800138000,10\nA2,13800138000,20\nA3,13700137000,5\n".encode()
    admin = staff.headers("admin")
    member = factories.MemberFactory(phone="+8613800138000", phone_verified_at=utcnow())
    session.commit()
    upload(client, admin, content)
    queue = client.get(f"{API}/conflicts", query_string={"status": "open"}, headers=staff.headers("analyst")).json
    [conflict] = queue["items"]
    assert (conflict["kind"], conflict["member_id"], conflict["phone"]) == (
        "multiple_records",
        member.id,
        "+86138****8000",
    )
    assert client.get(f"{API}/conflicts", query_string={"kind": "second_check"}, headers=admin).json["items"] == []
    assert client.get(f"{API}/conflicts", query_string={"kind": "nope"}, headers=admin).status_code == 422

    url = f"{API}/conflicts/{conflict['id']}"
    assert client.post(f"{url}/resolve", json={"action": "bind"}, headers=staff.headers("analyst")).status_code == 403
    assert client.post(f"{url}/resolve", json={"action": "bind", "x": 1}, headers=admin).status_code == 422
    chosen = conflict["candidate_ids"][1]
    resolved = client.post(f"{url}/resolve", json={"action": "bind", "legacy_member_id": chosen}, headers=admin)
    assert resolved.status_code == 200, resolved.json
    assert resolved.json["status"] == "resolved"
    binding_id = resolved.json["resolution"]["binding_id"]
    assert client.post(f"{url}/resolve", json={"action": "reject"}, headers=admin).status_code == 409
    binding = client.get(f"{API}/bindings/{binding_id}", headers=admin).json
    assert (binding["legacy_member_id"], binding["points_carried"], binding["status"]) == (chosen, 20, "active")

    reopened = client.post(f"{url}/reopen", json={"reason": "wrong record"}, headers=admin)
    assert reopened.json["status"] == "open"
    assert client.get(f"{API}/bindings/{binding_id}", headers=admin).json["status"] == "reversed"
    assert client.post(f"{API}/bindings/{binding_id}/unbind", json={}, headers=admin).status_code == 409
    assert client.get(f"{API}/conflicts/999999", headers=admin).status_code == 404

    rate = client.get(f"{API}/binding-rate", query_string={"days": 7}, headers=admin).json
    assert len(rate) == 7
    assert rate[-1]["imported"] == 3
    assert rate[-1]["bound"] == 0


def test_order_history_upload_reaches_bound_members(client, staff, session, factories):
    admin = staff.headers("admin")
    member = factories.MemberFactory(phone="+8613800138000", phone_verified_at=utcnow())
    session.commit()
    members = upload(client, admin, "会员编号,手机号\nA1,13800138000\nA2,13700137000\n".encode()).json
    members = client.get(f"{API}/imports/{members['id']}", headers=admin).json
    assert (members["kind"], members["parent_id"], members["bound_count"]) == ("members", None, 1)
    orders = "订单号,会员编号,金额,下单时间\nO1,A1,12.50,2024-01-02\nO2,A2,8,2024-01-03\nO3,A7,1,2024-01-03\n"

    response = upload(client, admin, orders.encode(), name="orders.csv", orders_of=str(members["id"]))
    assert response.status_code == 202, response.json
    shown = client.get(f"{API}/imports/{response.json['id']}", headers=admin).json
    assert (shown["kind"], shown["parent_id"], shown["status"]) == ("orders", members["id"], "done")
    assert (shown["valid_count"], shown["invalid_count"], shown["bound_count"]) == (2, 1, 1)
    assert shown["invalid_by_reason"] == {"unknown_member": 1}
    mine = client.get(f"{API}/imports/{response.json['id']}/errors.csv", headers=admin)
    assert "4,invalid,unknown_member,,,O3\tA7\t1\t2024-01-03" in mine.get_data(as_text=True)
    carried = session.execute(
        select(Order.external_id, Order.amount_fen).where(Order.member_id == member.id, Order.source == "legacy")
    ).all()
    assert carried == [(f"{members['id']}:O1", 1250)]

    refused = upload(client, admin, orders.encode() + b"O4,A1,1,2024-01-04\n", name="o.csv", orders_of="999999")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "legacy_invalid_orders_parent"
    no_amount = upload(client, admin, "订单号,会员编号\nO1,A1\n".encode(), name="o.csv", orders_of=str(members["id"]))
    assert no_amount.status_code == 422
    assert no_amount.json["error"]["details"]["missing"] == ["amount", "paid_at"]
    assert upload(client, admin, orders.encode(), orders_of="x").status_code == 422


def test_a_refused_upload_leaves_no_file_but_keeps_one_a_batch_reads(client, staff, config):
    from pathlib import Path

    admin = staff.headers("admin")
    uploads = Path(config.legacy_upload_dir)
    assert upload(client, admin, "姓名,城市\n张三,上海\n".encode()).status_code == 422
    assert list(uploads.glob("*.csv")) == []
    content = "会员编号,手机号\nA1,13800138000\n".encode()
    assert upload(client, admin, content).status_code == 202
    kept = list(uploads.glob("*.csv"))
    # The same content again, refused this time (an unknown mapping field): the batch's file stays.
    refused = upload(client, admin, content, mapping=json.dumps({"手机号": "mobile_no"}))
    assert refused.status_code == 422
    assert list(uploads.glob("*.csv")) == kept
