"""Tests for the dispatcher: every fixture routes to its documented key, unknown types fall back."""

from __future__ import annotations

import pytest

from wechat_handlers.dispatch import (
    EVENT_TYPES,
    FALLBACK_ROUTE,
    KNOWN_ROUTES,
    MESSAGE_TYPES,
    Dispatcher,
    Route,
    route_of,
)
from wechat_handlers.parsing import CallbackMessage, message_from_fields, parse_callback_xml

EXPECTED_ROUTES = {
    "msg_text": Route("text"),
    "msg_text__markup": Route("text"),
    "msg_image": Route("image"),
    "msg_voice": Route("voice"),
    "msg_video": Route("video"),
    "msg_shortvideo": Route("shortvideo"),
    "msg_location": Route("location"),
    "msg_link": Route("link"),
    "event_subscribe": Route("event", "subscribe"),
    "event_subscribe__qrscene": Route("event", "subscribe"),
    "event_unsubscribe": Route("event", "unsubscribe"),
    "event_scan": Route("event", "scan"),
    "event_location": Route("event", "location"),
    "event_click": Route("event", "click"),
    "event_view": Route("event", "view"),
    "event_scancode_push": Route("event", "scancode_push"),
    "event_scancode_waitmsg": Route("event", "scancode_waitmsg"),
    "event_pic_sysphoto": Route("event", "pic_sysphoto"),
    "event_pic_photo_or_album": Route("event", "pic_photo_or_album"),
    "event_pic_weixin": Route("event", "pic_weixin"),
    "event_location_select": Route("event", "location_select"),
    "event_view_miniprogram": Route("event", "view_miniprogram"),
    "event_templatesendjobfinish": Route("event", "templatesendjobfinish"),
    "event_masssendjobfinish": Route("event", "masssendjobfinish"),
    "event_subscribe_msg_popup__one": Route("event", "subscribe_msg_popup_event"),
    "event_subscribe_msg_popup__many": Route("event", "subscribe_msg_popup_event"),
    "event_subscribe_msg_change": Route("event", "subscribe_msg_change_event"),
    "event_subscribe_msg_sent": Route("event", "subscribe_msg_sent_event"),
}


def parse(xml: str) -> CallbackMessage:
    return message_from_fields(parse_callback_xml(xml), raw_xml=xml)


def full_dispatcher() -> Dispatcher[list[Route], Route]:
    """A dispatcher with a handler on every known route that records and returns the route it ran for."""
    dispatcher: Dispatcher[list[Route], Route] = Dispatcher()
    for route in KNOWN_ROUTES:

        def handler(message: CallbackMessage, calls: list[Route], route: Route = route) -> Route:
            calls.append(route)
            return route

        dispatcher.handles(route.msg_type, route.event)(handler)
    return dispatcher


def test_known_routes_cover_every_documented_type() -> None:
    assert len(MESSAGE_TYPES) == 7
    assert len(EVENT_TYPES) == 18
    assert len(KNOWN_ROUTES) == 25
    assert set(EXPECTED_ROUTES.values()) == KNOWN_ROUTES


def test_every_fixture_has_an_expected_route(fixture_name: str) -> None:
    assert fixture_name in EXPECTED_ROUTES


def test_every_fixture_routes_and_dispatches_to_its_key(load_fixture, fixture_name: str) -> None:
    message = parse(load_fixture(fixture_name))
    dispatcher = full_dispatcher()
    calls: list[Route] = []
    assert route_of(message) == dispatcher.route(message) == EXPECTED_ROUTES[fixture_name]
    assert dispatcher.dispatch(message, calls) == EXPECTED_ROUTES[fixture_name]
    assert calls == [EXPECTED_ROUTES[fixture_name]]
    assert dispatcher.missing_routes() == frozenset()


def test_location_message_and_location_event_are_different_routes(load_fixture) -> None:
    assert route_of(parse(load_fixture("msg_location"))) == Route("location")
    assert route_of(parse(load_fixture("event_location"))) == Route("event", "location")


@pytest.mark.parametrize("spelling", ["SCAN", "scan", "Scan"])
def test_event_names_are_case_insensitive(load_fixture, spelling: str) -> None:
    dispatcher: Dispatcher[None, str] = Dispatcher()
    dispatcher.handles("EVENT", spelling)(lambda message, context: "scan handler")
    message = parse(load_fixture("event_scan").replace("SCAN", "sCaN"))
    assert dispatcher.route(message) == Route("event", "scan")
    assert dispatcher.dispatch(message, None) == "scan handler"


def test_unknown_types_go_to_the_fallback_never_to_an_error(load_fixture) -> None:
    dispatcher: Dispatcher[None, str] = Dispatcher()
    unknown_event = parse(load_fixture("event_click").replace("CLICK", "poi_check_notify"))
    unknown_message = parse(load_fixture("msg_text").replace("[text]", "[miniprogrampage]"))
    for message in (unknown_event, unknown_message):
        assert dispatcher.route(message) == FALLBACK_ROUTE
        assert dispatcher.dispatch(message, None) is None
    dispatcher.fallback(lambda message, context: f"fallback for {route_of(message)}")
    assert dispatcher.dispatch(unknown_event, None) == "fallback for Route(msg_type='event', event='poi_check_notify')"
    assert dispatcher.dispatch(unknown_message, None) == "fallback for Route(msg_type='miniprogrampage', event=None)"


def test_known_type_without_a_handler_goes_to_the_fallback(load_fixture) -> None:
    dispatcher: Dispatcher[None, str] = Dispatcher()
    dispatcher.handles("text")(lambda message, context: "text")
    dispatcher.fallback(lambda message, context: "fallback")
    assert dispatcher.dispatch(parse(load_fixture("event_click")), None) == "fallback"
    assert dispatcher.routes == frozenset({Route("text")})
    assert Route("event", "click") in dispatcher.missing_routes()


def test_registration_mistakes_are_refused() -> None:
    dispatcher: Dispatcher[None, None] = Dispatcher()
    dispatcher.handles("event", "subscribe")(lambda message, context: None)
    with pytest.raises(ValueError):
        dispatcher.handles("event", "SUBSCRIBE")(lambda message, context: None)
    with pytest.raises(ValueError):
        dispatcher.handles("event")
    with pytest.raises(ValueError):
        dispatcher.handles("text", "subscribe")
    dispatcher.fallback(lambda message, context: None)
    with pytest.raises(ValueError):
        dispatcher.fallback(lambda message, context: None)
