"""The callback dispatcher: one handler per documented message and event type, run in the callbacks queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from wechat_handlers.dispatch import Dispatcher
from wechat_handlers.parsing import CallbackMessage


@dataclass(frozen=True)
class HandlerContext:
    """What a handler gets besides the message: the transaction and the app the message came to."""

    session: Session
    appid: str

    @staticmethod
    def event_time(message: CallbackMessage) -> datetime:
        return datetime.fromtimestamp(message.create_time, tz=UTC)


#: Handlers return the name of what they did (recorded on the inbox row) or None.
dispatcher: Dispatcher[HandlerContext, str] = Dispatcher()

# Importing the modules registers their handlers on `dispatcher`.
from wechat_handlers.handlers import follows, messages, notifications  # noqa: E402, F401
