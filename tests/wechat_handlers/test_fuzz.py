"""T05: property-based fuzzing of ``open_callback``; only ``CallbackRejected`` may escape, and every input is fast."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wechat_handlers.errors import CallbackRejected
from wechat_handlers.parsing import CallbackMessage

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"
SEEDS = sorted(path.read_bytes() for path in FIXTURES_DIR.glob("*.xml"))
FIXED_PREFIX = b"0123456789abcdef"
# CPU time of this thread, so a busy CI machine (other xdist workers) does not fail the budget.
BUDGET_S = 0.1

# Derandomised so CI runs the same 2,200 inputs every time; no example database is written.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

XML_TOKENS = [
    "<xml>",
    "</xml>",
    "<ToUserName>",
    "</ToUserName>",
    "<FromUserName>",
    "<CreateTime>",
    "1700000000",
    "<MsgType>",
    "event",
    "text",
    "<Event>",
    "subscribe",
    "SCAN",
    "<EventKey>",
    "qrscene_",
    "<List>",
    "</List>",
    "<item>",
    "<![CDATA[",
    "]]>",
    "]]]]><![CDATA[>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x1F600;",
    "&lol;",
    "<!DOCTYPE xml [",
    "<!ENTITY lol 'x'>",
    "]>",
    "<?xml version='1.0' encoding='utf-16'?>",
    "<?pi x?>",
    "<!-- c -->",
    '<a xmlns:xi="http://www.w3.org/2001/XInclude">',
    "<xi:include/>",
    "<a b='1' b='2'>",
    "</a>",
    "<a/>",
    "gh_test0000001",
    "\x00",
    "\r\n",
    "\ufeff",
]


def _open_timed(sender, request, app) -> tuple[CallbackMessage | CallbackRejected, float]:
    started = time.thread_time()
    try:
        result: CallbackMessage | CallbackRejected = sender.open(request, app)
    except CallbackRejected as rejected:
        assert 400 <= rejected.status < 500
        result = rejected
    return result, time.thread_time() - started


def _open_within_budget(sender, request, app) -> CallbackMessage | CallbackRejected:
    result, elapsed = _open_timed(sender, request, app)
    if elapsed >= BUDGET_S:
        # A garbage-collection pause can land on any input; a truly slow input is slow twice.
        elapsed = min(elapsed, _open_timed(sender, request, app)[1])
    assert elapsed < BUDGET_S, f"{elapsed:.3f}s"
    return result


@settings(FUZZ, max_examples=800)
@given(body=st.binary(max_size=4096))
def test_arbitrary_bytes_are_refused_or_parsed(sender, plain_app, safe_app, body: bytes) -> None:
    _open_within_budget(sender, sender.plain(body), plain_app)
    _open_within_budget(sender, sender.plain(body).with_query(msg_signature="0" * 40), safe_app)
    _open_within_budget(sender, sender.encrypted(body, random_prefix=FIXED_PREFIX), safe_app)


def _mutate(data: bytes, mutations: list[tuple[str, int, int, bytes]]) -> bytes:
    buffer = bytearray(data)
    for kind, position, amount, payload in mutations:
        if not buffer:
            buffer.extend(payload)
            continue
        index = position % len(buffer)
        if kind == "flip":
            buffer[index] ^= 1 << (amount % 8)
        elif kind == "delete":
            del buffer[index : index + amount]
        elif kind == "insert":
            buffer[index:index] = payload
        elif kind == "truncate":
            del buffer[index:]
        elif kind == "duplicate":
            buffer[index:index] = buffer[index : index + amount]
    return bytes(buffer)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]),
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=64),
        st.one_of(st.binary(max_size=16), st.sampled_from([token.encode() for token in XML_TOKENS])),
    ),
    min_size=1,
    max_size=6,
)
QUERY_CHANGES = st.dictionaries(
    st.sampled_from(["signature", "timestamp", "nonce", "msg_signature", "encrypt_type", "openid"]),
    st.one_of(st.none(), st.text(max_size=48), st.sampled_from(["", "raw", "aes", "0" * 40, "-1", "9" * 20])),
    max_size=3,
)


@settings(FUZZ, max_examples=800)
@given(
    seed=st.sampled_from(SEEDS),
    mutations=MUTATIONS,
    target=st.sampled_from(["envelope", "message"]),
    query_changes=QUERY_CHANGES,
    content_type=st.sampled_from(["text/xml", "application/xml; charset=utf-8", None, "application/json"]),
)
def test_mutated_safe_requests_are_refused_or_parsed(
    sender, safe_app, compat_app, seed: bytes, mutations, target: str, query_changes, content_type
) -> None:
    if target == "message":
        # Mutate the plaintext, then encrypt and sign it validly: this reaches the parser after authentication.
        request = sender.encrypted(_mutate(seed, mutations), random_prefix=FIXED_PREFIX)
    else:
        valid = sender.encrypted(seed, random_prefix=FIXED_PREFIX)
        request = type(valid)(_mutate(valid.raw_body, mutations), valid.query)
    request = type(request)(request.raw_body, request.query, content_type).with_query(**query_changes)
    for app in (safe_app, compat_app):
        result = _open_within_budget(sender, request, app)
        if isinstance(result, CallbackMessage):
            assert result.to_user == "gh_test0000001"


@settings(FUZZ, max_examples=600)
@given(
    pieces=st.lists(
        st.one_of(st.sampled_from(XML_TOKENS), st.text(max_size=12)),
        max_size=48,
    )
)
def test_xml_like_text_is_refused_or_parsed(sender, plain_app, safe_app, pieces: list[str]) -> None:
    text = "".join(pieces)
    body = text.encode("utf-8", "surrogatepass")
    _open_within_budget(sender, sender.plain(body), plain_app)
    _open_within_budget(sender, sender.encrypted(body, random_prefix=FIXED_PREFIX), safe_app)
