"""T04: hostile XML, sent before authentication (plain mode) and inside a validly signed and encrypted envelope."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wechat_handlers.errors import CallbackRejected

HEADER = (
    "<ToUserName><![CDATA[gh_test0000001]]></ToUserName>"
    "<FromUserName><![CDATA[oTESTuser0000000000000000001]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
)
SECRET_MARKER = "scrm-t04-secret-file-content"
BUDGET_S = 0.2


@dataclass(frozen=True)
class Hostile:
    """One hostile payload and the refusal it must get."""

    body: bytes
    status: int
    content_type: str = "text/xml"


def _message(content: str, *, prologue: str = "", root_attributes: str = "") -> bytes:
    return f"{prologue}<xml{root_attributes}>{HEADER}<Content>{content}</Content></xml>".encode()


def _billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return _message("&lol9;", prologue=f"<!DOCTYPE xml [{''.join(entities)}]>")


def hostile_payloads(port: int, secret: Path) -> dict[str, Hostile]:
    remote = f"http://127.0.0.1:{port}"
    return {
        "xxe_local_file": Hostile(
            _message(
                "&xxe;", prologue=f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
            ),
            400,
        ),
        "xxe_http": Hostile(_message("&xxe;", prologue=f'<!DOCTYPE xml [<!ENTITY xxe SYSTEM "{remote}/xxe">]>'), 400),
        "parameter_entity": Hostile(
            _message("x", prologue=f'<!DOCTYPE xml [<!ENTITY % remote SYSTEM "{remote}/evil.dtd"> %remote;]>'), 400
        ),
        "billion_laughs": Hostile(_billion_laughs(), 400),
        "quadratic_blowup": Hostile(
            _message("&a;" * 3000, prologue=f'<!DOCTYPE xml [<!ENTITY a "{"x" * 20_000}">]>'), 400
        ),
        "external_dtd": Hostile(_message("x", prologue=f'<!DOCTYPE xml SYSTEM "{remote}/external.dtd">'), 400),
        "xinclude": Hostile(
            _message(
                f'<xi:include href="{secret.as_uri()}" parse="text"/>',
                root_attributes=' xmlns:xi="http://www.w3.org/2001/XInclude"',
            ),
            400,
        ),
        "xml_stylesheet": Hostile(
            _message("x", prologue=f'<?xml-stylesheet type="text/xsl" href="{remote}/style.xsl"?>'), 400
        ),
        "doctype_hidden_from_the_prescan": Hostile(
            _message("&e;", prologue=f'<!-- <![CDATA[ --><!DOCTYPE xml SYSTEM "{remote}/hidden.dtd"><!-- ]]> -->'),
            400,
        ),
        "nesting_10000_deep": Hostile(("<xml>" + "<a>" * 10_000 + "x").encode(), 400),
        "nesting_10000_deep_closed": Hostile(("<xml>" + "<a>" * 10_000 + "</a>" * 10_000 + "</xml>").encode(), 413),
        "body_2_mib": Hostile(_message("a" * (2 * 1024 * 1024)), 413),
        "invalid_utf8": Hostile(_message("x").replace(b">x<", b">\xc3\x28\xff<"), 400),
        "nul_byte": Hostile(_message("x\x00y"), 400),
        "duplicate_tags": Hostile(
            _message("x").replace(b"<MsgType>", b"<FromUserName><![CDATA[oVICTIM]]></FromUserName><MsgType>"), 400
        ),
        "missing_root_empty": Hostile(b"", 400),
        "missing_root_declaration_only": Hostile(b'<?xml version="1.0" encoding="UTF-8"?>', 400),
        "missing_root_text": Hostile(b"ToUserName=gh_test0000001&MsgType=text", 400),
        "non_xml_content_type": Hostile(_message("x"), 415, content_type="application/json"),
    }


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local TCP listener that any resolved external entity or DTD would connect to."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET_MARKER, encoding="utf-8")
    return path


def _assert_refused_quickly(call: Callable[[], object], status: int) -> CallbackRejected:
    started = time.thread_time()
    with pytest.raises(CallbackRejected) as rejected:
        call()
    elapsed = time.thread_time() - started
    assert rejected.value.status == status, rejected.value.code
    assert elapsed < BUDGET_S, f"{rejected.value.code} took {elapsed:.3f}s"
    assert SECRET_MARKER not in str(rejected.value)
    assert SECRET_MARKER not in rejected.value.message
    return rejected.value


def _assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


def test_t04_every_payload_is_refused_before_and_after_authentication(
    sender, plain_app, safe_app, listener, secret_file
) -> None:
    payloads = hostile_payloads(listener.getsockname()[1], secret_file)
    assert len(payloads) >= 14
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, hostile in payloads.items():
        plain = sender.plain(hostile.body)
        _assert_refused_quickly(
            lambda plain=plain, hostile=hostile: sender.open(
                type(plain)(plain.raw_body, plain.query, hostile.content_type), plain_app
            ),
            hostile.status,
        )
        sealed = sender.encrypted(hostile.body)
        rejected = _assert_refused_quickly(
            lambda sealed=sealed, hostile=hostile: sender.open(
                type(sealed)(sealed.raw_body, sealed.query, hostile.content_type), safe_app
            ),
            hostile.status,
        )
        # Inside the envelope the message is refused on its own merits, never for a signature or key problem.
        assert rejected.code not in {"bad_signature", "bad_msg_signature", "bad_ciphertext", "appid_mismatch"}, name
    _assert_no_connection(listener)
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) / 1024
    assert rss_growth_mib < 20


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("xxe_local_file", "doctype_forbidden"),
        ("billion_laughs", "doctype_forbidden"),
        ("xinclude", "namespace_forbidden"),
        ("xml_stylesheet", "processing_instruction_forbidden"),
        ("doctype_hidden_from_the_prescan", "doctype_forbidden"),
        ("nesting_10000_deep", "xml_too_deep"),
        ("invalid_utf8", "invalid_utf8"),
        ("nul_byte", "nul_byte"),
        ("duplicate_tags", "duplicate_element"),
        ("missing_root_empty", "malformed_xml"),
    ],
)
def test_t04_payloads_are_refused_for_the_right_reason(
    sender, safe_app, listener, secret_file, name: str, code: str
) -> None:
    hostile = hostile_payloads(listener.getsockname()[1], secret_file)[name]
    with pytest.raises(CallbackRejected) as rejected:
        sender.open(sender.encrypted(hostile.body), safe_app)
    assert rejected.value.code == code


def test_t04_body_over_the_cap_is_refused_without_being_parsed(sender, plain_app, monkeypatch) -> None:
    from wechat_handlers import pipeline

    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the parser must not run")

    monkeypatch.setattr(pipeline, "parse_callback_xml", fail)
    request = sender.plain(_message("a" * (64 * 1024)))
    with pytest.raises(CallbackRejected) as rejected:
        sender.open(request, plain_app)
    assert rejected.value.status == 413


def test_listener_check_would_see_a_connection(listener) -> None:
    # Guards the guard: the no-connection assertion above fails if anything does connect.
    with socket.create_connection(listener.getsockname(), timeout=1):
        time.sleep(0.05)
        connection, _ = listener.accept()
        connection.close()
