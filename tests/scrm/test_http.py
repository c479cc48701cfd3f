"""The HTTP kernel: every error is the JSON envelope with the right 4xx, never a stack trace."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint

from scrm.context import ext
from scrm.guards import current_staff
from scrm.http import member_route, staff_route


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code:
        assert error["code"] == code
    return error


def test_malformed_json_is_400_with_envelope(client):
    response = client.post("/api/v1/staff/session", data="{not json", content_type="application/json")
    assert_envelope(response, 400, "bad_request")


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/api/v1/staff/session", data="username=a&password=b", content_type="application/x-www-form-urlencoded"
    )
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert error["details"]["content_type"] == "application/x-www-form-urlencoded"


def test_oversized_body_is_413(app: Flask, client):
    limit = ext(app).config.max_request_bytes
    response = client.post("/api/v1/staff/session", data="x" * (limit + 1), content_type="application/json")
    assert_envelope(response, 413, "payload_too_large")


def test_unknown_route_is_404_and_wrong_method_is_405(client):
    assert_envelope(client.get("/api/v1/no-such-thing"), 404, "not_found")
    error = assert_envelope(client.put("/healthz"), 405, "method_not_allowed")
    assert "GET" in error["details"]["allowed"]


def test_schema_violation_is_422_naming_the_fields(client):
    response = client.post("/api/v1/staff/session", json={"username": "", "extra": 1})
    error = assert_envelope(response, 422, "invalid_input")
    assert set(error["details"]["fields"]) == {"username", "password", "extra"}


@pytest.mark.parametrize("body", ["[]", "1", '"text"', "null", '{"username": 5, "password": []}'])
def test_json_of_the_wrong_shape_is_4xx(client, body):
    response = client.post("/api/v1/staff/session", data=body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert "error" in response.get_json()


def test_unexpected_exception_is_500_envelope_without_traceback(app: Flask):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert_envelope(response, 500, "internal_error")
    body = response.get_data(as_text=True)
    assert "secret internals" not in body
    assert "Traceback" not in body


def test_request_id_and_security_headers(client):
    response = client.get("/api/v1/staff/users", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    # A hostile request id is replaced, not echoed.
    evil = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert evil.headers["X-Request-ID"] != "<script>"


def test_openapi_document_is_served_and_declares_security(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/staff/session" in spec["paths"]
    assert set(spec["components"]["securitySchemes"]) == {"staffToken", "memberToken"}
    assert "ErrorEnvelope" in spec["components"]["schemas"]


def test_pagination_limit_is_clamped(client, staff):
    headers = staff.headers("admin")
    page = client.get("/api/v1/staff/users?limit=100000", headers=headers).get_json()["page"]
    assert page["limit"] == 100
    page = client.get("/api/v1/staff/users?limit=0", headers=headers).get_json()["page"]
    assert page["limit"] == 1
    assert_envelope(client.get("/api/v1/staff/users?offset=-1", headers=headers), 422)


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok"}


def test_readyz_is_503_when_redis_is_unreachable(app: Flask):
    from redis import Redis

    ext(app).redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"] == "unavailable"


class ThingInSchema(ma.Schema):
    name = ma.fields.String(required=True)


class ThingOutSchema(ma.Schema):
    name = ma.fields.String()
    role = ma.fields.String()


def _thing_blueprint(app: Flask) -> None:
    """A staff route declared with staff_route, registered on the app's API."""
    blueprint = Blueprint("things", __name__, url_prefix="/api/v1/staff/things")

    @blueprint.route("")
    class ThingsView(MethodView):
        @staff_route(
            blueprint,
            "analyst",
            args=ThingInSchema,
            status=201,
            schema=ThingOutSchema,
            replay="Replay of the same thing",
            errors={404: "No such shelf", 409: "Name taken"},
        )
        def post(self, data: dict) -> Any:
            return {"name": data["name"], "role": current_staff().role}, 201

    app.extensions["scrm.api"].register_blueprint(blueprint)


def test_staff_route_guards_with_the_roles_and_parses_the_arguments(app: Flask, client, staff):
    _thing_blueprint(app)
    assert_envelope(client.post("/api/v1/staff/things", json={"name": "a"}), 401, "token_required")
    denied = client.post("/api/v1/staff/things", json={"name": "a"}, headers=staff.headers("campaign_manager"))
    assert_envelope(denied, 403, "role_required")
    for role in ("analyst", "admin"):
        response = client.post("/api/v1/staff/things", json={"name": "a"}, headers=staff.headers(role))
        assert response.status_code == 201
        assert response.get_json() == {"name": "a", "role": role}
    invalid = client.post("/api/v1/staff/things", json={}, headers=staff.headers("analyst"))
    assert_envelope(invalid, 422, "invalid_input")


def test_staff_route_documents_security_body_and_responses(app: Flask, client):
    _thing_blueprint(app)
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/staff/things"]["post"]
    assert operation["security"] == [{"staffToken": []}]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ThingIn"}
    responses = operation["responses"]
    assert set(responses) == {"200", "201", "404", "409", "422", "default"}
    thing_out = {"$ref": "#/components/schemas/ThingOut"}
    assert responses["201"]["content"]["application/json"]["schema"] == thing_out
    assert responses["200"]["content"]["application/json"]["schema"] == thing_out
    assert responses["200"]["description"] == "Replay of the same thing"
    assert responses["404"]["description"] == "No such shelf"
    assert responses["409"]["description"] == "Name taken"


def test_staff_route_replay_needs_a_schema():
    with pytest.raises(ValueError, match="replay"):
        staff_route(Blueprint("nothing", __name__), replay="Replay")


def test_member_route_needs_a_member_token_and_documents_member_security(app: Flask, client, staff):
    from scrm.guards import member_tokens

    blueprint = Blueprint("mine", __name__, url_prefix="/api/v1/member/mine")

    @blueprint.route("")
    class MineView(MethodView):
        @member_route(blueprint, args=ThingInSchema, schema=ThingOutSchema, errors={409: "Taken"})
        def put(self, data: dict) -> Any:
            return {"name": data["name"], "role": "member"}

    app.extensions["scrm.api"].register_blueprint(blueprint)
    assert_envelope(client.put("/api/v1/member/mine", json={"name": "a"}), 401, "token_required")
    staff_token = client.put("/api/v1/member/mine", json={"name": "a"}, headers=staff.headers("admin"))
    assert staff_token.status_code == 401
    with app.app_context():
        token = member_tokens().issue(1, appid="wxTESTMP000000001")
    answer = client.put("/api/v1/member/mine", json={"name": "a"}, headers={"Authorization": f"Bearer {token}"})
    assert (answer.status_code, answer.get_json()) == (200, {"name": "a", "role": "member"})
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/member/mine"]["put"]
    assert operation["security"] == [{"memberToken": []}]
    assert set(operation["responses"]) == {"200", "409", "422", "default"}
