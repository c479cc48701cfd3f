"""Hardened parsing of WeChat callback XML into a dict, and the typed ``CallbackMessage`` built from it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from xml.parsers import expat

from wechat_handlers.errors import CallbackRejected

#: ``xml`` is depth 1; the deepest documented payload (pic_* events: SendPicsInfo/PicList/item/PicMd5Sum) is 5.
MAX_DEPTH = 8
MAX_ELEMENTS = 1024
#: Elements that WeChat repeats, and that are therefore always parsed to lists, even when only one is present.
REPEATED_ELEMENTS = ("List", "item")
#: Longest identifier we accept in the fields that make up the dedup key (openids are 28, gh_ ids 15).
MAX_ID_LENGTH = 64
#: An upper bound on ``CallbackMessage.dedup_key`` length, for sizing the inbox column.
MAX_DEDUP_KEY_LENGTH = 320

_QR_SCENE_PREFIX = "qrscene_"
_JOB_FINISH_EVENTS = frozenset({"templatesendjobfinish", "masssendjobfinish"})
_LONG_EVENT_KEY = 64


def parse_callback_xml(text: str) -> dict[str, Any]:
    """Parse callback XML (a safe-mode envelope or a message) into the dict of the ``<xml>`` root's children.

    One expat pass refuses DTDs, entity declarations, processing instructions, namespaces, a root other than
    ``<xml>``, repeated top-level elements and trees deeper than ``MAX_DEPTH`` or larger than ``MAX_ELEMENTS``
    (expat is iterative, so 10,000-deep input cannot exhaust the stack), stopping at the first such construct, and
    builds the dict as it goes (the shape xmltodict gives). Text is kept exactly, whitespace included; ``List``
    and ``item`` are always lists; attributes are ignored (WeChat sends none).

    Args:
        text: The XML, already screened by ``security.check_xml_bytes``.

    Returns:
        The root's children: element name -> str, None (empty element), dict, or list of those.

    Raises:
        CallbackRejected: ``malformed_xml``, ``xml_too_deep``, ``too_many_elements``, ``duplicate_element``,
            ``doctype_forbidden``, ``processing_instruction_forbidden`` or ``namespace_forbidden`` (400).
    """
    builder = _TreeBuilder()
    _run_expat(text.encode("utf-8"), builder)
    root = builder.document.get("xml") if isinstance(builder.document, dict) else None
    if not isinstance(root, dict):
        raise CallbackRejected("malformed_xml")
    return root


class _StructureGuard:
    """expat handlers that stop the parse at the first construct WeChat never sends."""

    def __init__(self) -> None:
        self.depth = 0
        self.elements = 0
        self.top_level_names: set[str] = set()

    def start_element(self, name: str, attributes: list[str]) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > MAX_DEPTH:
            raise CallbackRejected("xml_too_deep")
        if self.elements > MAX_ELEMENTS:
            raise CallbackRejected("too_many_elements")
        if ":" in name or any(_is_namespaced(attribute) for attribute in attributes[::2]):
            raise CallbackRejected("namespace_forbidden")
        if self.depth == 1 and name != "xml":
            raise CallbackRejected("malformed_xml")
        if self.depth == 2:
            # A repeated ToUserName or MsgType would let two readers of one payload disagree.
            if name in self.top_level_names:
                raise CallbackRejected("duplicate_element")
            self.top_level_names.add(name)

    def end_element(self, name: str) -> None:
        self.depth -= 1


def _is_namespaced(attribute: str) -> bool:
    return attribute == "xmlns" or ":" in attribute


def _refuse_doctype(*_args: object) -> NoReturn:
    raise CallbackRejected("doctype_forbidden")


def _refuse_processing_instruction(*_args: object) -> NoReturn:
    raise CallbackRejected("processing_instruction_forbidden")


class _TreeBuilder(_StructureGuard):
    """The guard plus the dict building, in the same expat pass (one parse instead of two on the hot path).

    It builds what xmltodict would with attributes ignored and whitespace kept: an element with text only is its
    text, an empty one is None, one with children is a dict whose repeated names become lists (``List`` and
    ``item`` always are); whitespace between child elements is dropped and other text beside them refused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.document: dict[str, Any] | None = None
        self._stack: list[tuple[dict[str, Any] | None, list[str]]] = []
        self._item: dict[str, Any] | None = None
        self._text: list[str] = []

    def start_element(self, name: str, attributes: list[str]) -> None:
        super().start_element(name, attributes)
        self._stack.append((self._item, self._text))
        self._item, self._text = None, []

    def end_element(self, name: str) -> None:
        super().end_element(name)
        item, text = self._item, "".join(self._text)
        self._item, self._text = self._stack.pop()
        if item is not None and text and text.strip():
            # Real text mixed with child elements is never WeChat's: refused rather than silently dropped.
            raise CallbackRejected("malformed_xml")
        value: Any = item if item is not None else (text or None)
        parent = self._item if self._item is not None else {}
        existing = parent.get(name, _MISSING)
        if existing is _MISSING:
            parent[name] = [value] if name in REPEATED_ELEMENTS else value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            parent[name] = [existing, value]
        if self._stack:
            self._item = parent
        else:
            self.document = parent

    def character_data(self, data: str) -> None:
        self._text.append(data)


_MISSING = object()


def _check_structure(data: bytes) -> None:
    _run_expat(data, _StructureGuard())


def _run_expat(data: bytes, guard: _StructureGuard) -> None:
    # The explicit encoding overrides any encoding="..." in the XML declaration: the bytes were checked as UTF-8.
    parser = expat.ParserCreate("utf-8")
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = guard.start_element
    parser.EndElementHandler = guard.end_element
    if isinstance(guard, _TreeBuilder):
        parser.CharacterDataHandler = guard.character_data
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.UnparsedEntityDeclHandler = _refuse_doctype
    parser.NotationDeclHandler = _refuse_doctype
    parser.ElementDeclHandler = _refuse_doctype
    parser.AttlistDeclHandler = _refuse_doctype
    parser.ProcessingInstructionHandler = _refuse_processing_instruction
    parser.ExternalEntityRefHandler = _refuse_doctype
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        raise CallbackRejected("malformed_xml") from None


@dataclass(frozen=True)
class CallbackMessage:
    """A verified, decrypted WeChat message or event.

    Attributes:
        to_user: ``ToUserName``, the account's original id (``gh_...``).
        from_user: ``FromUserName``, the user's openid.
        create_time: ``CreateTime`` in seconds since the epoch.
        msg_type: ``MsgType`` as WeChat spells it (``text``, ``event``...).
        event: ``Event`` as WeChat spells it (``subscribe``, ``SCAN``...), or None for a message.
        event_key: ``EventKey`` (None when absent or empty).
        msg_id: ``MsgId`` of a message, or ``MsgID`` of an event that has one (template and mass sends).
        fields: Every element of the decrypted XML, as parsed; treat it as read-only.
        raw_xml: The decrypted XML text, for the inbox.
    """

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    event: str | None
    event_key: str | None
    msg_id: str | None
    fields: Mapping[str, Any] = field(repr=False, hash=False)
    raw_xml: str = field(default="", repr=False, hash=False, compare=False)

    @property
    def is_event(self) -> bool:
        """Whether this is an event push (``MsgType`` ``event``) rather than a user message."""
        return self.msg_type.lower() == "event"

    @property
    def normalized_event(self) -> str | None:
        """The event name lower-cased (WeChat sends ``SCAN`` and ``CLICK`` but ``subscribe``), for dispatch."""
        return self.event.lower() if self.event is not None else None

    @property
    def dedup_key(self) -> str:
        """The key that makes a message unique across WeChat's retries, prefixed by the account.

        ``MsgId`` for messages; ``MsgID`` for TEMPLATESENDJOBFINISH and MASSSENDJOBFINISH; otherwise
        FromUserName + CreateTime + Event + EventKey, so a subscribe and a SCAN in the same second stay distinct.
        At most ``MAX_DEDUP_KEY_LENGTH`` characters.
        """
        if not self.is_event and self.msg_id:
            return f"{self.to_user}:msgid:{self.msg_id}"
        if self.normalized_event in _JOB_FINISH_EVENTS and self.msg_id:
            return f"{self.to_user}:jobid:{self.msg_id}"
        event_key = self.event_key or ""
        if len(event_key) > _LONG_EVENT_KEY:
            # VIEW events carry a whole URL as EventKey; a digest keeps the key short enough to index.
            event_key = "sha256:" + hashlib.sha256(event_key.encode("utf-8", "surrogatepass")).hexdigest()
        # A message without MsgId (never sent by WeChat, but possible in an unsigned plain body) keys on its type.
        kind = self.normalized_event if self.is_event else self.msg_type.lower()
        return f"{self.to_user}:from:{self.from_user}:{self.create_time}:{kind}:{event_key}"

    def referral_scene(self) -> str | None:
        """The parametric-QR scene this event carries, if any.

        Returns:
            ``X`` for a ``subscribe`` whose EventKey is ``qrscene_X`` (a new follower from a QR code), the bare
            EventKey for a ``SCAN`` (an existing follower), otherwise None.
        """
        if not self.is_event or not self.event_key:
            return None
        if self.normalized_event == "subscribe" and self.event_key.startswith(_QR_SCENE_PREFIX):
            return self.event_key[len(_QR_SCENE_PREFIX) :] or None
        if self.normalized_event == "scan":
            return self.event_key
        return None

    def is_new_follow(self) -> bool:
        """Whether the user has just followed the account (a ``subscribe`` event, from a QR code or not)."""
        return self.is_event and self.normalized_event == "subscribe"


def message_from_fields(fields: dict[str, Any], *, raw_xml: str = "") -> CallbackMessage:
    """Build a ``CallbackMessage`` from parsed callback fields, checking the fields every message must have.

    Raises:
        CallbackRejected: ``invalid_message`` (400) when a required field is missing, empty, not text, too long,
            or when ``CreateTime`` is not an integer.
    """
    msg_type = _required_id(fields, "MsgType")
    is_event = msg_type.lower() == "event"
    create_time_text = _required_id(fields, "CreateTime").strip()
    if not (create_time_text.isascii() and create_time_text.isdigit()) or len(create_time_text) > 12:
        raise CallbackRejected("invalid_message")
    msg_id = _optional_id(fields, "MsgId") if not is_event else _optional_id(fields, "MsgID")
    return CallbackMessage(
        to_user=_required_id(fields, "ToUserName"),
        from_user=_required_id(fields, "FromUserName"),
        create_time=int(create_time_text),
        msg_type=msg_type,
        event=_required_id(fields, "Event") if is_event else None,
        event_key=_optional_text(fields, "EventKey"),
        msg_id=msg_id,
        fields=fields,
        raw_xml=raw_xml,
    )


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackRejected("invalid_message")
    return value or None


def _optional_id(fields: Mapping[str, Any], name: str) -> str | None:
    value = _optional_text(fields, name)
    if value is not None and len(value) > MAX_ID_LENGTH:
        raise CallbackRejected("invalid_message")
    return value


def _required_id(fields: Mapping[str, Any], name: str) -> str:
    value = _optional_id(fields, name)
    if value is None:
        raise CallbackRejected("invalid_message")
    return value
