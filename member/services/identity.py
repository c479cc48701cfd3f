"""WeChat identities, follows and interactions. Services flush; the caller commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from member import signals
from member.models.identity import APP_KINDS, Member, WeChatIdentity


def ensure_identity(
    session: Session, *, appid: str, openid: str, app_kind: str, source: str, unionid: str | None = None
) -> WeChatIdentity:
    """The identity of (appid, openid), created with its member on first sight, and locked for update.

    A new identity joins the member who already holds its unionid; otherwise a new member is created.
    Concurrent first sightings of one openid (a follow and a message in the same instant) are safe:
    the loser of the unique-key race reads the winner's row.

    Args:
        appid / openid: the WeChat app and the user's id in it.
        app_kind: "oa" or "miniprogram".
        source: recorded on a new member ("oa_follow", "miniprogram", "oauth", …).
        unionid: when WeChat gave one.
    """
    if app_kind not in APP_KINDS:
        raise ValueError(f"app_kind must be one of {APP_KINDS}")
    for _attempt in range(3):
        identity = session.scalar(
            select(WeChatIdentity)
            .where(WeChatIdentity.appid == appid, WeChatIdentity.openid == openid)
            .with_for_update()
        )
        if identity is not None:
            if unionid and not identity.unionid:
                _attach_unionid(session, identity, unionid)
            return identity
        try:
            with session.begin_nested():
                member = _member_for_unionid(session, unionid)
                if member is None:
                    member = Member(unionid=unionid, source=source)
                    session.add(member)
                    session.flush()
                    signals.member_registered.send(member.id, session=session, source=source)
                identity = WeChatIdentity(
                    appid=appid, openid=openid, unionid=unionid, app_kind=app_kind, member_id=member.id
                )
                session.add(identity)
                session.flush()
            return identity
        except IntegrityError:
            # Another transaction created the identity or the member first; read theirs.
            continue
    raise RuntimeError(f"could not create the identity of {appid} after concurrent retries")


def _member_for_unionid(session: Session, unionid: str | None) -> Member | None:
    if not unionid:
        return None
    member = session.scalar(select(Member).where(Member.unionid == unionid, Member.merged_into_id.is_(None)))
    if member is not None:
        return member
    other = session.scalar(select(WeChatIdentity).where(WeChatIdentity.unionid == unionid).limit(1))
    return session.get(Member, other.member_id) if other is not None else None


def _attach_unionid(session: Session, identity: WeChatIdentity, unionid: str) -> None:
    identity.unionid = unionid
    member = session.get(Member, identity.member_id)
    holder = session.scalar(select(Member.id).where(Member.unionid == unionid))
    if member is not None and member.unionid is None and holder is None:
        member.unionid = unionid
    session.flush()


@dataclass(frozen=True)
class FollowResult:
    identity: WeChatIdentity
    was_following: bool
    first_ever: bool


def record_follow(
    session: Session,
    *,
    appid: str,
    openid: str,
    at: datetime,
    scene_str: str | None,
    is_new_follow: bool,
    unionid: str | None = None,
) -> FollowResult:
    """Record a `subscribe` (is_new_follow) or a follower's `SCAN` and send `wechat_followed`.

    The scene of the first follow is kept (`qr_scene_str`): later scans do not overwrite how the user came.
    """
    identity = ensure_identity(session, appid=appid, openid=openid, app_kind="oa", source="oa_follow", unionid=unionid)
    was_following = identity.subscribed
    first_ever = identity.first_subscribed_at is None
    if is_new_follow or not identity.subscribed:
        identity.subscribed = True
        identity.subscribed_at = at
        identity.unsubscribed_at = None
        if first_ever:
            identity.first_subscribed_at = at
            identity.subscribe_scene = "ADD_SCENE_QR_CODE" if scene_str else "ADD_SCENE_OTHERS"
            identity.qr_scene_str = scene_str
    identity.last_interaction_at = at
    session.flush()
    signals.wechat_followed.send(
        identity.member_id,
        session=session,
        identity=identity,
        scene_str=scene_str,
        is_new_follow=is_new_follow,
        first_ever=first_ever,
        at=at,
    )
    return FollowResult(identity=identity, was_following=was_following, first_ever=first_ever)


def record_unfollow(session: Session, *, appid: str, openid: str, at: datetime) -> WeChatIdentity:
    """Record an `unsubscribe` and send `wechat_unfollowed`; the identity and its history stay."""
    identity = ensure_identity(session, appid=appid, openid=openid, app_kind="oa", source="oa_follow")
    identity.subscribed = False
    identity.unsubscribed_at = at
    session.flush()
    signals.wechat_unfollowed.send(identity.member_id, session=session, identity=identity, at=at)
    return identity


def record_interaction(session: Session, *, appid: str, openid: str, at: datetime) -> WeChatIdentity:
    """Note that the user wrote or clicked (opens WeChat's 48-hour customer-service window)."""
    identity = ensure_identity(session, appid=appid, openid=openid, app_kind="oa", source="oa_follow")
    if identity.last_interaction_at is None or identity.last_interaction_at < at:
        identity.last_interaction_at = at
    session.flush()
    return identity
