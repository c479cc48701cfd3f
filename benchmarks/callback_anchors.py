"""The two anchor servers of the callback benchmark: (A) signature check only, (B) the floor of a durable ack.

gunicorn 'benchmarks.callback_anchors:create_bare_app()' and 'benchmarks.callback_anchors:create_floor_app()'.
Both serve the callback path scrm serves, for the benchmark's one official account; B reads its database from
SCRM_BENCH_FLOOR_DSN (a psycopg connection string).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import xml.etree.ElementTree as ElementTree

import psycopg
from flask import Flask, Response, request

# The anchor is meant to cost what wechatpy's own crypto costs, so it calls wechatpy directly (scrm goes
# through wechat_handlers.crypto, which wraps the same cipher).
from wechatpy.crypto import WeChatCrypto

#: The benchmark's official account; throwaway credentials that exist only in the benchmark's own database.
APPID = "wxbench0000000001"
ORIGINAL_ID = "gh_bench00000001"
TOKEN = "benchtoken0123456789"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CALLBACK_PATH = f"/wechat/{APPID}/callback"

FLOOR_TABLE = "bench_floor_inbox"
FLOOR_DDL = f"""
CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (
    id bigserial PRIMARY KEY,
    msg_id text NOT NULL UNIQUE,
    raw_xml text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
_FLOOR_INSERT = f"INSERT INTO {FLOOR_TABLE} (msg_id, raw_xml) VALUES (%s, %s) ON CONFLICT (msg_id) DO NOTHING"  # noqa: S608 - a constant


def _signature_ok() -> bool:
    args = request.args
    parts = sorted((TOKEN, args.get("timestamp", ""), args.get("nonce", "")))
    expected = hashlib.sha1("".join(parts).encode()).hexdigest()  # noqa: S324 - WeChat's signature is SHA-1
    return hmac.compare_digest(expected, args.get("signature", ""))


def create_bare_app() -> Flask:
    """(A) Check the query signature and answer ``success``: the cost of Flask, gunicorn and the socket."""
    app = Flask("bench_bare")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post(CALLBACK_PATH)
    def callback() -> Response:
        request.get_data()
        if not _signature_ok():
            return Response("bad signature", status=401)
        return Response("success", mimetype="text/plain")

    return app


def create_floor_app() -> Flask:
    """(B) Check the signature, decrypt with wechatpy and commit one row per MsgId before answering ``success``."""
    app = Flask("bench_floor")
    dsn = os.environ["SCRM_BENCH_FLOOR_DSN"]
    crypto = WeChatCrypto(TOKEN, ENCODING_AES_KEY, APPID)
    local = threading.local()

    def connection() -> psycopg.Connection:
        conn = getattr(local, "conn", None)
        if conn is None or conn.closed:
            conn = local.conn = psycopg.connect(dsn)
        return conn

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post(CALLBACK_PATH)
    def callback() -> Response:
        body = request.get_data()
        if not _signature_ok():
            return Response("bad signature", status=401)
        args = request.args
        try:
            plaintext = crypto.decrypt_message(body, args["msg_signature"], args["timestamp"], args["nonce"])
        except Exception:
            return Response("bad message", status=400)
        # Authenticated by msg_signature just above; the floor parses it as cheaply as the standard library can.
        msg_id = ElementTree.fromstring(plaintext).findtext("MsgId")  # noqa: S314
        if not msg_id:
            return Response("no MsgId", status=400)
        conn = connection()
        with conn.cursor() as cursor:
            cursor.execute(_FLOOR_INSERT, (msg_id, plaintext))
        conn.commit()
        return Response("success", mimetype="text/plain")

    return app
