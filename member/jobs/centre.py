"""Member-centre jobs: the SMS one-time-code sender (outbox handler) and the periodic tags-and-lifecycle pass."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from member.services import phone as phone_services
from member.services import tags as tag_services
from member.sms import sender_for
from scrm import jobs, outbox
from scrm.config import Config

#: Rule tags and lifecycle stages are recomputed this often.
SEGMENTS_EVERY_S = 3600


def _config() -> Config:
    return current_app.extensions["scrm"].config


@outbox.handler(phone_services.SEND_SMS_CODE)
def send_sms_code(session: Session, payload: dict[str, Any]) -> None:
    """Send one code (safe twice: a sent row has no message left to send)."""
    config = _config()
    delivery = phone_services.take_sms_delivery(session, int(payload["phone_code_id"]), secret_key=config.secret_key)
    if delivery is not None:
        sender_for(config).send(delivery["phone"], delivery["text"])


def refresh_segments() -> dict[str, int]:
    """Recompute rule tags and lifecycle stages (periodic; running it twice changes nothing the second time)."""
    scrm = current_app.extensions["scrm"]
    config: Config = scrm.config
    with scrm.db.transaction() as session:
        result = tag_services.recompute_rule_tags(session)
        result["lifecycle_changed"] = tag_services.recompute_lifecycle(
            session,
            new_days=config.member_lifecycle_new_days,
            active_days=config.member_lifecycle_active_days,
            silent_days=config.member_lifecycle_silent_days,
        )
    return result


jobs.periodic(
    jobs.PeriodicJob(name="member-segments", func="member.jobs.centre.refresh_segments", every_s=SEGMENTS_EVERY_S)
)
