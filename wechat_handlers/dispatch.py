"""Routing of verified messages to handlers by (MsgType, Event), with a fallback for anything unknown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from wechat_handlers.parsing import CallbackMessage

ContextT = TypeVar("ContextT")
ResultT = TypeVar("ResultT")
Handler = Callable[[CallbackMessage, ContextT], ResultT]


class Route(NamedTuple):
    """A dispatch key: lower-case ``MsgType`` and, for events, the lower-case ``Event``."""

    msg_type: str
    event: str | None = None


#: User messages (MsgType other than ``event``).
MESSAGE_TYPES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
#: Events, lower-cased. ``subscribe`` covers both a plain follow and one from a parametric QR (``qrscene_``).
EVENT_TYPES = (
    "subscribe",
    "unsubscribe",
    "scan",
    "location",
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "view_miniprogram",
    "templatesendjobfinish",
    "masssendjobfinish",
    "subscribe_msg_popup_event",
    "subscribe_msg_change_event",
    "subscribe_msg_sent_event",
)
#: Every documented (MsgType, Event) pair; assert each has a handler with ``Dispatcher.missing_routes``.
KNOWN_ROUTES: frozenset[Route] = frozenset(
    [Route(msg_type) for msg_type in MESSAGE_TYPES] + [Route("event", event) for event in EVENT_TYPES]
)
#: What ``Dispatcher.route`` returns for a message no registered handler takes.
FALLBACK_ROUTE = Route("*")


def route_of(message: CallbackMessage) -> Route:
    """The dispatch key of ``message``, whether or not anything handles it."""
    if message.is_event:
        return Route("event", message.normalized_event)
    return Route(message.msg_type.lower())


class Dispatcher(Generic[ContextT, ResultT]):
    """A registry of handlers keyed by ``Route``; unknown messages go to the fallback, never to an error.

    Example::

        dispatcher: Dispatcher[HandlerContext, str] = Dispatcher()

        @dispatcher.handles("event", "subscribe")
        def on_subscribe(message: CallbackMessage, context: HandlerContext) -> str: ...
    """

    def __init__(self) -> None:
        self._handlers: dict[Route, Handler[ContextT, ResultT]] = {}
        self._fallback: Handler[ContextT, ResultT] | None = None

    def handles(
        self, msg_type: str, event: str | None = None
    ) -> Callable[[Handler[ContextT, ResultT]], Handler[ContextT, ResultT]]:
        """Register the decorated function for a message type, or for one event when ``msg_type`` is ``event``.

        Names are case-insensitive (``handles("event", "SCAN")`` equals ``handles("event", "scan")``).

        Raises:
            ValueError: An event route without an event, a message route with one, or a route taken twice.
        """
        route = _make_route(msg_type, event)

        def register(handler: Handler[ContextT, ResultT]) -> Handler[ContextT, ResultT]:
            if route in self._handlers:
                raise ValueError(f"{route} already has a handler")
            self._handlers[route] = handler
            return handler

        return register

    def fallback(self, handler: Handler[ContextT, ResultT]) -> Handler[ContextT, ResultT]:
        """Register the decorated function for every message no other handler takes."""
        if self._fallback is not None:
            raise ValueError("the fallback handler is already set")
        self._fallback = handler
        return handler

    def route(self, message: CallbackMessage) -> Route:
        """The route whose handler ``dispatch`` would call: the message's own, or ``FALLBACK_ROUTE``."""
        route = route_of(message)
        return route if route in self._handlers else FALLBACK_ROUTE

    def dispatch(self, message: CallbackMessage, context: ContextT) -> ResultT | None:
        """Call the handler for ``message`` with ``context`` and return its result.

        Returns:
            The handler's result, or None when nothing handles the message and no fallback is set.
        """
        handler = self._handlers.get(route_of(message), self._fallback)
        return handler(message, context) if handler is not None else None

    @property
    def routes(self) -> frozenset[Route]:
        """The routes that have a handler."""
        return frozenset(self._handlers)

    def missing_routes(self) -> frozenset[Route]:
        """The documented routes (``KNOWN_ROUTES``) that have no handler yet."""
        return KNOWN_ROUTES.difference(self._handlers)


def _make_route(msg_type: str, event: str | None) -> Route:
    msg_type = msg_type.lower()
    if msg_type == "event":
        if not event:
            raise ValueError("an event route needs the event name")
        return Route("event", event.lower())
    if event is not None:
        raise ValueError("only MsgType 'event' routes take an event name")
    return Route(msg_type)
