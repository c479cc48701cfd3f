"""The WeChat sandbox's state: one lock over apps, users, tokens, codes, quotas, faults and counters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scrm.wechat.apps import AppCredentials
from scrm.wechat.sandbox.models import (
    Follow,
    InjectedFault,
    IssuedToken,
    OAuthUserToken,
    OneTimeCode,
    QrTicket,
    SandboxApiError,
    SandboxApp,
    SandboxUser,
    SentMessage,
)

log = logging.getLogger("scrm.wechat.sandbox")

TOKEN_LIFETIME_S = 7200
#: After cgi-bin/token issues a new token the previous one keeps working this long.
TOKEN_OVERLAP_S = 300
#: stable_token renews its token when less than this is left.
STABLE_TOKEN_RENEWAL_S = 300
CODE_LIFETIME_S = 300
CLIENT_MSG_ID_WINDOW_S = 600
TOKEN_PATHS = ("/cgi-bin/token", "/cgi-bin/stable_token")
FORCE_REFRESH_QUOTA_KEY = "/cgi-bin/stable_token#force_refresh"

#: Daily call quotas per app (WeChat's published defaults where known); a path not listed is unlimited.
DEFAULT_DAILY_QUOTAS: dict[str, int] = {
    "/cgi-bin/token": 2000,
    "/cgi-bin/stable_token": 500_000,
    FORCE_REFRESH_QUOTA_KEY: 20,
    "/cgi-bin/message/template/send": 100_000,
}

AppLoader = Callable[[], Iterable[AppCredentials]]


@dataclass
class CallbackSettings:
    """Where and how the sandbox posts callbacks to the service."""

    target_url: str | None
    timeout_s: float
    attempts: int


@dataclass
class Stats:
    token_fetches: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)

    def public(self) -> dict[str, Any]:
        return {"token_fetches": dict(self.token_fetches), "calls": dict(self.calls)}


class SandboxState:
    """Everything the sandbox remembers. Hold ``lock`` while reading or changing it; never do I/O under it.

    ``clock`` returns epoch seconds; tests replace it to move time forward.
    """

    def __init__(self, callbacks: CallbackSettings, *, app_loader: AppLoader | None = None) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], float] = time.time
        #: Set on shutdown so stalled requests stop waiting.
        self.stopping = threading.Event()
        self.callbacks = callbacks
        self.app_loader = app_loader
        self._openid_salt = secrets.token_bytes(16)
        self.reset()

    def reset(self) -> None:
        """Forget everything except the callback settings and the app loader."""
        with self.lock:
            self.apps: dict[str, SandboxApp] = {}
            self.users: dict[str, SandboxUser] = {}
            self.openid_owners: dict[str, tuple[str, str]] = {}  # openid → (appid, user_id)
            self.tokens: dict[str, IssuedToken] = {}
            self.current_token: dict[tuple[str, str], IssuedToken] = {}  # (appid, pool) → newest token
            self.codes: dict[str, OneTimeCode] = {}
            self.oauth_tokens: dict[str, OAuthUserToken] = {}
            self.tickets: dict[str, QrTicket] = {}
            self.tickets_by_short_id: dict[str, QrTicket] = {}
            self.messages: list[SentMessage] = []
            self.template_dedup: dict[tuple[str, str, str], tuple[int, float]] = {}
            self.sms: list[dict[str, Any]] = []
            self.callback_log: deque[dict[str, Any]] = deque(maxlen=200)
            self.daily_quotas: dict[tuple[str | None, str], int] = {
                (None, path): limit for path, limit in DEFAULT_DAILY_QUOTAS.items()
            }
            self.quota_usage: Counter[tuple[str, str, str]] = Counter()
            self.faults: dict[str, InjectedFault] = {}
            self.stats = Stats()
            self.msgids = itertools.count(2_000_000_000_000 + secrets.randbelow(10**9))

    # -- apps ---------------------------------------------------------------------------------------------------

    def register_app(self, app: SandboxApp) -> SandboxApp:
        """Add or replace an app; the state of a replaced app (tags, menu) is kept."""
        with self.lock:
            previous = self.apps.get(app.appid)
            if previous is not None:
                app.tags, app.next_tagid, app.menu = previous.tags, previous.next_tagid, previous.menu
            self.apps[app.appid] = app
            return app

    def find_app(self, appid: str | None) -> SandboxApp | None:
        """Return a known app, asking the app loader once when the appid is new."""
        if not appid:
            return None
        with self.lock:
            app = self.apps.get(appid)
        if app is not None or self.app_loader is None:
            return app
        try:
            loaded = list(self.app_loader())  # outside the lock: the loader may read a database
        except Exception:
            log.exception("the sandbox app loader failed")
            return None
        with self.lock:
            for credentials in loaded:
                if credentials.appid not in self.apps:
                    self.apps[credentials.appid] = SandboxApp.from_credentials(credentials, loaded=True)
            return self.apps.get(appid)

    def app_or_error(self, appid: str | None) -> SandboxApp:
        if not appid:
            raise SandboxApiError(41002)
        app = self.find_app(appid)
        if app is None:
            raise SandboxApiError(40013)
        return app

    def check_secret(self, app: SandboxApp, secret: str | None) -> None:
        if not secret:
            raise SandboxApiError(41004)
        if not hmac.compare_digest(app.secret.encode(), secret.encode()):
            raise SandboxApiError(40125)

    # -- users --------------------------------------------------------------------------------------------------

    def create_user(self, user_id: str | None = None, **profile: Any) -> SandboxUser:
        with self.lock:
            user_id = user_id or f"user{len(self.users) + 1}"
            if user_id in self.users:
                raise ValueError(f"user {user_id!r} exists")
            user = SandboxUser(user_id=user_id, unionid=make_wechat_id(secrets.token_bytes(21)), **profile)
            self.users[user_id] = user
            return user

    def openid_for(self, user: SandboxUser, appid: str) -> str:
        """The user's openid for ``appid``: stable, different per app, unguessable from the other apps'."""
        digest = hmac.new(self._openid_salt, f"{appid}\0{user.user_id}".encode(), hashlib.sha256).digest()
        openid = make_wechat_id(digest)
        with self.lock:
            self.openid_owners[openid] = (appid, user.user_id)
        return openid

    def user_by_openid(self, appid: str, openid: str | None) -> SandboxUser:
        with self.lock:
            owner = self.openid_owners.get(openid or "")
            if owner is None or owner[0] != appid:
                raise SandboxApiError(40003)
            return self.users[owner[1]]

    def user_json(self, user: SandboxUser) -> dict[str, Any]:
        with self.lock:
            return {
                "user_id": user.user_id,
                "unionid": user.unionid,
                "nickname": user.nickname,
                "phone": user.phone,
                "country_code": user.country_code,
                "risk_rank": user.risk_rank,
                "openids": {appid: self.openid_for(user, appid) for appid in self.apps},
                "follows": {
                    appid: {
                        "subscribed": follow.subscribed,
                        "subscribe_scene": follow.subscribe_scene,
                        "qr_scene_str": follow.qr_scene_str,
                        "tagids": list(follow.tagids),
                    }
                    for appid, follow in user.follows.items()
                },
            }

    # -- access tokens ------------------------------------------------------------------------------------------

    def issue_token(self, app: SandboxApp) -> IssuedToken:
        """``cgi-bin/token``: always a new token; the previous one lives on for the 5-minute overlap."""
        now = self.clock()
        with self.lock:
            previous = self.current_token.get((app.appid, "token"))
            if previous is not None and previous.expires_at > now:
                previous.expires_at = min(previous.expires_at, now + TOKEN_OVERLAP_S)
                previous.superseded = True
            return self._new_token(app.appid, "token", now)

    def stable_token(self, app: SandboxApp, *, force_refresh: bool) -> IssuedToken:
        """``cgi-bin/stable_token``: the same token while it is valid, unless forced (which kills the old one)."""
        now = self.clock()
        with self.lock:
            current = self.current_token.get((app.appid, "stable"))
            if current is not None and not force_refresh and current.expires_at - now > STABLE_TOKEN_RENEWAL_S:
                return current
            if current is not None and force_refresh:
                current.expires_at = min(current.expires_at, now)
                current.superseded = True
            return self._new_token(app.appid, "stable", now)

    def _new_token(self, appid: str, pool: str, now: float) -> IssuedToken:
        issued = IssuedToken(secrets.token_urlsafe(96), appid, pool, now + TOKEN_LIFETIME_S)
        self.tokens[issued.token] = issued
        self.current_token[(appid, pool)] = issued
        return issued

    def authenticate(self, access_token: str | None) -> SandboxApp:
        """Return the app an access token belongs to, or raise 41001 / 40001 / 42001 as WeChat does."""
        if not access_token:
            raise SandboxApiError(41001)
        with self.lock:
            issued = self.tokens.get(access_token)
            if issued is None:
                raise SandboxApiError(40001)
            if self.clock() >= issued.expires_at:
                raise SandboxApiError(40001 if issued.superseded else 42001)
            return self.apps[issued.appid]

    def expire_tokens(self, appid: str) -> int:
        """Fault injection: every live token of the app expires now; returns how many did."""
        now = self.clock()
        with self.lock:
            live = [t for t in self.tokens.values() if t.appid == appid and t.expires_at > now]
            for issued in live:
                issued.expires_at = now
            return len(live)

    # -- one-time codes -----------------------------------------------------------------------------------------

    def issue_code(self, kind: str, appid: str, user: SandboxUser, **extra: Any) -> str:
        code = secrets.token_hex(32) if kind == "phone" else secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = OneTimeCode(code, kind, appid, user.user_id, self.clock() + CODE_LIFETIME_S, **extra)
        return code

    def redeem_code(self, kind: str, appid: str, code: str | None) -> OneTimeCode:
        """Spend a code: unknown, expired or another app's → 40029; spent before → 40163."""
        if not code:
            raise SandboxApiError(41008)
        with self.lock:
            entry = self.codes.get(code)
            if entry is None or entry.kind != kind or entry.appid != appid:
                raise SandboxApiError(40029)
            if entry.used:
                raise SandboxApiError(40163)
            if self.clock() >= entry.expires_at:
                raise SandboxApiError(40029)
            entry.used = True
            return entry

    # -- QR tickets ---------------------------------------------------------------------------------------------

    def create_ticket(
        self, app: SandboxApp, *, scene_str: str | None, scene_id: int | None, expire_seconds: int | None
    ) -> QrTicket:
        now = self.clock()
        ticket = QrTicket(
            ticket=base64.b64encode(secrets.token_bytes(72)).decode(),
            short_id=secrets.token_urlsafe(12),
            appid=app.appid,
            scene_str=scene_str,
            scene_id=scene_id,
            expires_at=None if expire_seconds is None else now + expire_seconds,
            created_at=now,
        )
        with self.lock:
            self.tickets[ticket.ticket] = ticket
            self.tickets_by_short_id[ticket.short_id] = ticket
        return ticket

    def live_ticket(self, ticket: str) -> QrTicket | None:
        with self.lock:
            found = self.tickets.get(ticket)
            if found is None or (found.expires_at is not None and self.clock() >= found.expires_at):
                return None
            return found

    # -- messages -----------------------------------------------------------------------------------------------

    def record_message(self, kind: str, app: SandboxApp, user: SandboxUser, openid: str, body: dict[str, Any]) -> int:
        with self.lock:
            msgid = next(self.msgids)
            self.messages.append(SentMessage(kind, app.appid, openid, user.user_id, msgid, self.clock(), body))
            return msgid

    def next_msgid(self) -> int:
        with self.lock:
            return next(self.msgids)

    @staticmethod
    def open_window(follow: Follow, now: float, *, seconds: float, sends: int) -> None:
        """A user action opens a customer-service window; the newest action's window replaces the older one."""
        follow.window_expires_at = now + seconds
        follow.window_sends_left = sends

    # -- quotas, faults, counters -------------------------------------------------------------------------------

    def charge_quota(self, appid: str, key: str) -> None:
        """Count one call against the app's daily quota for ``key``; past the limit → 45009."""
        with self.lock:
            limit = self.daily_quotas.get((appid, key), self.daily_quotas.get((None, key)))
            if limit is None:
                return
            usage_key = (appid, key, datetime.fromtimestamp(self.clock(), UTC).date().isoformat())
            if self.quota_usage[usage_key] >= limit:
                raise SandboxApiError(45009)
            self.quota_usage[usage_key] += 1

    def set_quota(self, path: str, limit: int | None, appid: str | None = None) -> None:
        with self.lock:
            if limit is None:
                self.daily_quotas.pop((appid, path), None)
            else:
                self.daily_quotas[(appid, path)] = limit

    def quotas_json(self) -> dict[str, Any]:
        with self.lock:
            today = datetime.fromtimestamp(self.clock(), UTC).date().isoformat()
            return {
                "limits": [
                    {"appid": a, "path": p, "limit": n} for (a, p), n in sorted(self.daily_quotas.items(), key=str)
                ],
                "used_today": [
                    {"appid": a, "path": p, "count": n} for (a, p, day), n in self.quota_usage.items() if day == today
                ],
            }

    def add_fault(self, fault: InjectedFault) -> None:
        with self.lock:
            self.faults[fault.path] = fault

    def take_fault(self, path: str) -> InjectedFault | None:
        """Return the fault for this call of ``path``, counting it down."""
        with self.lock:
            fault = self.faults.get(path)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[path]
            return fault

    def record_call(self, path: str, token_fetch_appid: str | None = None) -> None:
        with self.lock:
            self.stats.calls[path] += 1
            if token_fetch_appid:
                self.stats.token_fetches[token_fetch_appid] += 1


def make_wechat_id(raw: bytes) -> str:
    """Shape bytes like a WeChat openid/unionid: 28 characters starting with "o"."""
    return "o" + base64.urlsafe_b64encode(raw).decode()[:27]
